"""Policy evaluation: time per decision with a thousand rules.

Builds a policy of N generated rules (default 1000) in front of the
shipped default rules, then times `evaluate` (the indexed path the
gateway uses) on a mix of decisions beside `evaluate_linear` (every rule
checked in order) — the baseline, measured in the same run on the same
decisions. Also times loading and compiling the policy. The target:
well under a millisecond per decision.

    .venv/bin/python bench/policy.py [--rules 1000] [--decisions 2000]
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from rules.engine import Engine
from rules.policy import Context, evaluate, load_policy
from rules.policy.evaluate import evaluate_linear

DEFAULT = Path(__file__).resolve().parent.parent / "rules" / "default"
TARGET_MS = 1.0


def generated_rules(n: int, seed: int = 7) -> list[dict]:
    """Rules that look like a large firm's: per user, group, host and class exceptions."""
    rnd = random.Random(seed)
    classes = ["identity", "financial", "contact", "organisation", "business-secret"]
    categories = ["personal-webmail", "instant-messaging", "file-sharing", "paste", "ai-chat"]
    out = []
    for i in range(n):
        when: dict = {}
        kind = i % 5
        if kind == 0:
            when["user"] = [f"user{rnd.randrange(5000)}"]
        elif kind == 1:
            when["group"] = [f"team{rnd.randrange(200)}"]
        elif kind == 2:
            when["host"] = [f"app{rnd.randrange(10000)}.partner{rnd.randrange(50)}.example"]
        elif kind == 3:
            when["category"] = [rnd.choice(categories)]
            when["user"] = [f"user{rnd.randrange(5000)}"]
        else:
            when["source"] = [f"10.{rnd.randrange(1, 9)}.{rnd.randrange(256)}.0/24"]
            when["group"] = [f"team{rnd.randrange(200)}"]
        when["class"] = rnd.sample(classes, rnd.randint(1, 2))
        if rnd.random() < 0.3:
            when["min_distinct"] = rnd.randint(2, 50)
        out.append(
            {
                "id": f"gen-{i:05d}",
                "when": when,
                "action": rnd.choice(["allow", "report", "mask", "block"]),
            }
        )
    return out


def decisions(engine: Engine) -> list[tuple[list, Context]]:
    when = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    office = ipaddress.ip_address("10.1.2.3")
    ids = engine.scan_text("身份证 11010519491231002X 手机 13912345678 卡号 6222021234567890128")
    phone = engine.scan_text("联系电话 13912345678")
    return [
        (
            ids,
            Context(
                "https",
                office,
                user="user17",
                groups=frozenset({"team3"}),
                host="mail.qq.com",
                dest_ip=ipaddress.ip_address("203.0.113.5"),
                port=443,
                when=when,
            ),
        ),
        (ids, Context("smtp", office, user="user99", recipient="case@lawfirm.example", when=when)),
        (
            [],
            Context(
                "https",
                office,
                user="user5",
                host="www.example.com",
                dest_ip=ipaddress.ip_address("198.51.100.7"),
                port=443,
                when=when,
            ),
        ),
        (
            phone,
            Context(
                "https",
                office,
                user="user1234",
                groups=frozenset({"team150"}),
                host="portal.lawfirm.example",
                dest_ip=ipaddress.ip_address("198.51.100.9"),
                port=443,
                when=when,
            ),
        ),
    ]


def build_policy_dir(n: int) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="lg-bench-policy-"))
    for f in DEFAULT.glob("*.yaml"):
        shutil.copy(f, directory / f.name)
    doc = yaml.safe_load((DEFAULT / "rules.yaml").read_text(encoding="utf-8"))
    doc["rules"] = generated_rules(n) + doc["rules"]
    (directory / "rules.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return directory


def per_call_us(fn, cases, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for findings, ctx in cases:
            fn(findings, ctx)
    return (time.perf_counter() - started) / (repeat * len(cases)) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()

    directory = build_policy_dir(args.rules)
    try:
        started = time.perf_counter()
        policy = load_policy(directory)
        load_ms = (time.perf_counter() - started) * 1e3
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    cases = decisions(Engine(hash_key=b"bench-policy-key-0123456789abcdef"))
    for findings, ctx in cases:  # same answers, or the comparison means nothing
        a, b = evaluate(policy, findings, ctx), evaluate_linear(policy, findings, ctx)
        assert (a.action, a.rule, a.reason) == (b.action, b.rule, b.reason), (a, b)
    repeat = max(1, args.decisions // len(cases))
    indexed = per_call_us(lambda f, c: evaluate(policy, f, c), cases, repeat)
    linear = per_call_us(lambda f, c: evaluate_linear(policy, f, c), cases, repeat)
    print(f"policy: {len(policy.rules)} rules, loaded and compiled in {load_ms:.0f} ms")
    print(f"{'':26}{'µs/decision':>12}{'decisions/s':>14}")
    print(f"{'evaluate (indexed)':26}{indexed:12.1f}{1e6 / indexed:14,.0f}")
    print(f"{'baseline: linear scan':26}{linear:12.1f}{1e6 / linear:14,.0f}")
    print(
        f"speed-up {linear / indexed:.1f}×; target < {TARGET_MS * 1000:.0f} µs: "
        f"{'met' if indexed < TARGET_MS * 1000 else 'MISSED'}"
    )
    return 0 if indexed < TARGET_MS * 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
