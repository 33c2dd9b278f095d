"""`leakguard scan` as a user runs it: the installed console script, real files, stdin."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS_FILES = Path(__file__).parent.parent / "data" / "corpus" / "files"
LEAKGUARD = shutil.which("leakguard", path=str(Path(sys.executable).parent))

# Synthetic values (valid check characters), never real people.
RESIDENT_ID = "11010519491231002X"
CARD = "6222021234567890128"  # Luhn-valid, UnionPay prefix


def _run(args, *, stdin: bytes | None = None, state: Path) -> subprocess.CompletedProcess:
    assert LEAKGUARD, "the leakguard console script is not installed in the venv"
    return subprocess.run(
        [LEAKGUARD, "scan", "--state-dir", str(state), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state"


def test_json_lines_carry_the_documented_fields_and_no_raw_value(tmp_path, state):
    sample = tmp_path / "notice.txt"
    sample.write_text(f"身份证号：{RESIDENT_ID}，还款卡号 {CARD}", encoding="utf-8")
    result = _run(["--json", str(sample)], state=state)
    assert result.returncode == 1, result.stderr
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert {r["type"] for r in rows} == {"cn_resident_id", "cn_bank_card"}
    for row in rows:
        assert {"source", "type", "score", "location", "masked"} <= set(row)
        assert row["source"] == str(sample)
    assert {r["masked"] for r in rows} == {"110105********002X", "6222 **** **** 0128"}
    assert RESIDENT_ID.encode() not in result.stdout
    assert CARD.encode() not in result.stdout


def test_clean_input_exits_zero(tmp_path, state):
    sample = tmp_path / "clean.txt"
    sample.write_text("订单号 20240315123456789012，客服热线 95533", encoding="utf-8")
    result = _run([str(sample)], state=state)
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"no findings" in result.stdout


def test_stdin_is_scanned(state):
    result = _run(["--json", "-"], stdin=f"sfz {RESIDENT_ID}".encode(), state=state)
    assert result.returncode == 1
    (row,) = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert row["source"] == "-"
    assert row["type"] == "cn_resident_id"


def test_missing_file_is_an_error_with_a_clear_message(tmp_path, state):
    missing = tmp_path / "nope.xlsx"
    result = _run([str(missing)], state=state)
    assert result.returncode == 2
    assert str(missing).encode() in result.stderr
    assert b"No such file" in result.stderr


def test_error_wins_over_findings(tmp_path, state):
    sample = tmp_path / "a.txt"
    sample.write_text(RESIDENT_ID)
    result = _run([str(sample), str(tmp_path / "missing")], state=state)
    assert result.returncode == 2


def test_table_output_names_location_inside_archives(state):
    result = _run([str(CORPUS_FILES / "nested_zip.zip")], state=state)
    assert result.returncode == 1
    out = result.stdout.decode()
    assert "nested_zip.zip › level1/inner.zip › level2/debtor.csv" in out
    assert "cn_resident_id" in out


def test_encrypted_archive_is_reported(state):
    result = _run(["--json", str(CORPUS_FILES / "encrypted_aes.zip")], state=state)
    assert result.returncode == 1
    types = {json.loads(line)["type"] for line in result.stdout.decode().splitlines()}
    assert types == {"encrypted_archive"}


def test_installation_key_is_created_private_and_reused(tmp_path, state):
    sample = tmp_path / "a.txt"
    sample.write_text(RESIDENT_ID)
    first = _run(["--json", str(sample)], state=state)
    key = state / "installation.key"
    assert key.stat().st_mode & 0o777 == 0o600
    second = _run(["--json", str(sample)], state=state)
    assert json.loads(first.stdout)["hash"] == json.loads(second.stdout)["hash"]
    other = _run(["--json", str(sample)], state=tmp_path / "other-state")
    assert json.loads(other.stdout)["hash"] != json.loads(first.stdout)["hash"]


def test_a_file_named_after_a_client_is_reported_masked(tmp_path, state):
    sample = tmp_path / f"张三_{RESIDENT_ID}.txt"
    sample.write_text(f"卡号 {CARD}")
    result = _run(["--json", str(sample), str(tmp_path / f"{RESIDENT_ID}.missing")], state=state)
    assert result.returncode == 2
    assert RESIDENT_ID.encode() not in result.stdout + result.stderr
    row = json.loads(result.stdout)
    assert "110105********002X" in row["source"]
    assert "110105********002X" in row["location"]
    assert b"110105********002X.missing" in result.stderr


def test_names_are_masked_whatever_the_reporting_threshold(tmp_path, state):
    mobile = "13812345678"
    sample = tmp_path / f"张三_{mobile}.txt"
    sample.write_text(f"身份证 {RESIDENT_ID}")
    result = _run(["--json", "--min-score", "0.99", str(sample)], state=state)
    assert mobile.encode() not in result.stdout + result.stderr
    assert "138****5678" in json.loads(result.stdout)["source"]
