"""The benchmarks still run: a small corpus end to end (figures are not judged here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _run(*args: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_scan_bench_compares_all_engines_on_both_corpora(tmp_path):
    out = _run(
        str(BENCH / "scan.py"),
        "--quick",
        "--mb",
        "2",
        "--cache-dir",
        str(tmp_path),
        "--no-extract",
        tmp_path=tmp_path,
    )
    for heading in ("debt-file dense corpus", "office traffic corpus"):
        assert heading in out
    for engine in ("leakguard hyperscan", "leakguard re backend", "plain re", "Presidio"):
        assert engine in out
    assert ">= 10x Presidio" in out and ">=  3x plain re" in out


def test_stream_bench_reports_throughput_and_rss(tmp_path):
    out = _run(str(BENCH / "stream.py"), "--mb", "4", tmp_path=tmp_path)
    assert "MB/s" in out
    assert "peak" in out and "baseline" in out


def test_policy_bench_compares_the_index_with_a_linear_scan(tmp_path):
    out = _run(str(BENCH / "policy.py"), "--rules", "200", "--decisions", "40", tmp_path=tmp_path)
    assert "policy: 209 rules" in out
    assert "evaluate (indexed)" in out and "baseline: linear scan" in out
    assert "speed-up" in out
