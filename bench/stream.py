"""Streaming scan over a long input: throughput and peak RSS.

Feeds N MiB (default 1024) of generated text — ordinary Chinese/English prose
with a value every few kilobytes and a few disguises — through
`rules.stream.TextStream` in 64 KiB chunks, never holding the input, and
prints MB/s and the process's peak RSS beside the RSS before the stream
started (the baseline: interpreter, engine and hyperscan database).

    .venv/bin/python bench/stream.py [--mb 1024]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from rules.engine import Engine
from rules.stream import TextStream

CHUNK = 64 * 1024
TARGET_RSS_MB = 200


def _block() -> str:
    prose = (
        "债务人已按协议分期还款，合同编号 HT-2024-0315，金额 12,345.67 元。"
        "The debtor agreed to settle the outstanding balance by 2025-03-31. "
    )
    values = (
        "身份证 11010519491231002X；",
        "还款卡号 6222 0212 3456 7890 128；",
        "联系电话 +86 139-1234-5678；",
        "邮箱 zhang.wei@example.com；",
        "证件号 &#49;&#49;0105194912310&#48;2X；",
        "ＩＤ：１１０１０５１９４９１２３１００２Ｘ；",
    )
    return "".join(prose * 20 + v + "\n" for v in values)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="MiB of text to stream")
    args = parser.parse_args()

    engine = Engine(hash_key=b"bench-stream-key-0123456789abcdef")
    block = _block()
    chunk = (block * (CHUNK // len(block) + 1))[:CHUNK]
    chunk_bytes = len(chunk.encode())
    chunks = max(1, args.mb * 2**20 // chunk_bytes)

    baseline = _rss_mb()
    stream = TextStream(engine, "bench")
    found = 0
    started = time.perf_counter()
    for _ in range(chunks):
        found += len(stream.feed(chunk))
    found += len(stream.close())
    seconds = time.perf_counter() - started
    megabytes = chunks * chunk_bytes / 1e6
    peak = _rss_mb()

    print(f"streamed   {megabytes:,.0f} MB in {chunks:,} chunks of {chunk_bytes:,} bytes")
    print(f"throughput {megabytes / seconds:,.1f} MB/s ({seconds:.1f} s), {found:,} findings")
    print(
        f"RSS        baseline {baseline:,.0f} MB, peak {peak:,.0f} MB "
        f"(goal: under {TARGET_RSS_MB} MB) -> {'PASS' if peak < TARGET_RSS_MB else 'MISS'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
