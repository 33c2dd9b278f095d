"""bench/proxy.py still runs: both proxies, the origin, every phase, tiny (figures not judged)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _run(*args: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / "proxy.py"), "--quick", "--seconds", "0.3", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def test_proxy_bench_compares_leakguard_with_plain_mitmproxy(tmp_path):
    out = _run("--big-mib", "17", tmp_path=tmp_path)
    assert "mitmproxy" in out and "leakguard" in out and "ratio" in out
    for metric in ("GET 1 KiB", "POST 1 KiB", "upload 1 MiB", "upload 17 MiB (streamed)"):
        assert metric in out
    assert ">=85%" in out and ">=70%" in out
    assert "p50" in out and "p99" in out and "peak RSS" in out
    assert "The origin alone" in out
    # every request answered, and leakguard judged (and recorded) the uploads with PII
    assert "Errors: none" in out
    assert "http.request events with findings" in out and "WARNING" not in out


def test_proxy_bench_over_https(tmp_path):
    out = _run("--no-big", "--https", tmp_path=tmp_path)
    assert "HTTPS: CONNECT" in out
    assert "Errors: none" in out  # origin, mitmproxy and leakguard certificates all verified
    assert "http.request events with findings" in out and "WARNING" not in out
