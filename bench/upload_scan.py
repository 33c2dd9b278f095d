"""The proxy's scan of 1 MiB JSON uploads, alone: where `make bench-proxy`'s upload time goes.

Builds the same bodies as bench/proxy.py (`json_body`: office-profile documents
as JSON strings, so JSON inside JSON with escapes) and judges them the way the
proxy's inspection does (`request_content.body_parts` then `inspect.scan`, with
the engine of the shipped policy), with no proxy around: MB/s of CPU time,
findings per body, and with --cprofile the functions that cost most.

    .venv/bin/python bench/upload_scan.py
    .venv/bin/python bench/upload_scan.py --bodies 8 --repeats 5 --cprofile
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
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


if __name__ == "__main__":
    main()
