"""The proxy's scan of 1 MiB JSON uploads, alone: where `make bench-proxy`'s upload time goes.

Builds the same bodies as bench/proxy.py (`json_body`: office-profile documents
as JSON strings, so JSON inside JSON with escapes) and judges them the way the
proxy's inspection does (`request_content.body_parts` then `inspect.scan`, with
the engine of the shipped policy), with no proxy around: MB/s of CPU time,
findings per body, and with --cprofile the functions that cost most.

With --floors, ms of CPU per body for what any inspection of such a body must
do at least, beside the whole judgement: decoding it as UTF-8 and one pass of
the engine's token triggers (hyperscan) over it, and, for comparison, the
engine on the same documents with no JSON escapes around them, and
`json.loads`. `make bench-proxy` prints these beside the budget its goal
leaves (bench/proxy.py runs this script with --floors --json).

    .venv/bin/python bench/upload_scan.py
    .venv/bin/python bench/upload_scan.py --bodies 8 --repeats 5 --cprofile
    .venv/bin/python bench/upload_scan.py --floors
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path.pop(0)  # run as a script: `proxy` must be the package, not bench/proxy.py

from mitmproxy import http  # noqa: E402

from proxy.inspect import scan  # noqa: E402
from proxy.request_content import body_parts  # noqa: E402
from rules.engines import EnginePerThread  # noqa: E402
from rules.extract import Limits  # noqa: E402
from rules.policy import load_policy  # noqa: E402

KEY = b"bench-key-not-secret-0123456789ab"


def _proxy_bench():
    """bench/proxy.py (for its json_body), loaded by path: `proxy` is the package."""
    sys.path.append(str(HERE))  # for its own `import corpus_gen`
    spec = importlib.util.spec_from_file_location("bench_proxy", HERE / "proxy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_proxy"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=4, help="different 1 MiB bodies")
    parser.add_argument("--repeats", type=int, default=3, help="passes over all bodies")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--policy", type=Path, default=HERE.parent / "rules" / "default")
    parser.add_argument("--cprofile", action="store_true", help="profile one more pass")
    parser.add_argument("--floors", action="store_true", help="least costs, ms per body")
    parser.add_argument("--json", action="store_true", help="--floors as one JSON line")
    args = parser.parse_args()

    proxy_bench = _proxy_bench()
    bodies, doc = [], 0
    for _ in range(args.bodies):
        body, _planted, doc = proxy_bench.json_body(proxy_bench.MIB, args.seed, doc)
        bodies.append(body)
    engine = EnginePerThread(KEY).get(load_policy(args.policy))
    headers = http.Headers(content_type="application/json")
    limits = Limits()

    def judge_all() -> int:
        return sum(len(scan(engine, body_parts(b, headers, limits))) for b in bodies)

    if args.floors:
        floors = least_costs(bodies, engine, lambda b: scan(engine, body_parts(b, headers, limits)))
        if args.json:
            print(json.dumps(floors))
        else:
            for what, ms in floors.items():
                print(f"{what:<48}{ms:8.2f} ms per 1 MiB body")
        return

    findings = judge_all()  # warm-up: caches filled, pages touched
    rates = []
    for _ in range(args.repeats):
        start = time.process_time()
        judge_all()
        rates.append(sum(map(len, bodies)) / (time.process_time() - start) / 1e6)
    print(
        f"{len(bodies)} JSON bodies of 1 MiB, backend {engine.backend}: "
        f"{statistics.median(rates):.1f} MB/s of CPU (median of {args.repeats}; "
        f"{min(rates):.1f}-{max(rates):.1f}), {findings / len(bodies):.1f} findings per body"
    )
    if args.cprofile:
        profile = cProfile.Profile()
        profile.runcall(judge_all)
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


def least_costs(bodies: list[bytes], engine, judge) -> dict[str, float]:
    """Median ms of CPU per body: the whole judgement, and what any scan costs at least."""

    def per_body(work) -> float:
        work(bodies[0])  # warm-up
        times = []
        for _ in range(3):
            for body in bodies:
                start = time.process_time()
                work(body)
                times.append(time.process_time() - start)
        return 1000 * statistics.median(times)

    plain = {id(b): "\n".join(a["text"] for a in json.loads(b)["attachments"]) for b in bodies}
    return {
        "whole judgement (extract + engine)": per_body(judge),
        "engine on the same text, no JSON escapes": per_body(
            lambda b: engine.scan_text(plain[id(b)])
        ),
        "json.loads": per_body(json.loads),
        "UTF-8 decode": per_body(bytes.decode),
        "one pass of the engine's token triggers": per_body(engine._triggers.ends),
    }


if __name__ == "__main__":
    main()
