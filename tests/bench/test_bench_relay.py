"""bench/relay.py still runs: sink, plain relay and leakguard's relay, both phases, tiny.

Without Postfix (--no-postfix), so CI never needs it; figures are not judged.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_relay_bench_compares_leakguard_with_a_plain_relay(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH / "relay.py"), "--quick", "--no-postfix"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert "plain relay" in out and "postfix" in out and "leakguard" in out
    assert "ratio vs plain" in out and ">=70% plain" in out
    for metric in ("10 KiB delivered msg/s", "10 KiB accepted msg/s", "attachment delivered MB/s"):
        assert metric in out
    assert "Postfix skipped" in out and "The sink alone" in out
    # every message reached the sink; leakguard judged, recorded and delivered each one
    assert "Errors: none" in out
    assert "REPORT with findings" in out and "WARNING" not in out
