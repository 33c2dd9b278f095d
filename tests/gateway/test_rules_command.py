"""`leakguard rules check|test|explain` as the security team uses them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "rules" / "default"
RAW_ID = "11010519491231002X"


@pytest.fixture
def id_file(tmp_path: Path) -> Path:
    path = tmp_path / "debtors.txt"
    path.write_text(f"债务人 张三 身份证号 {RAW_ID}\n", encoding="utf-8")
    return path


@pytest.fixture
def state(tmp_path: Path) -> list[str]:
    return ["--state-dir", str(tmp_path / "state")]


def test_check_accepts_the_shipped_policy(capsys) -> None:
    assert main(["rules", "check", str(DEFAULT)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "9 rules" in out and "2 parties" in out


def test_check_names_file_line_key_and_fix(tmp_path: Path, capsys) -> None:
    broken = tmp_path / "policy"
    shutil.copytree(DEFAULT, broken)
    rules = broken / "rules.yaml"
    lines = rules.read_text(encoding="utf-8").splitlines()
    n = next(i for i, line in enumerate(lines) if line.strip() == "action: encrypt")
    lines[n] = lines[n].replace("action:", "actoin:")
    rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["rules", "check", str(broken)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{broken / 'rules.yaml'}:{n + 1}: `rules[].actoin`: unknown key; did you mean "
        "`action`?" in err
    )
    assert "the policy was not loaded" in err


def test_check_exit_status_from_the_installed_command(tmp_path: Path) -> None:
    (tmp_path / "zones.yaml").write_text("version: 2\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "rules", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert "zones.yaml:1: `version`: version 2 is not supported" in done.stderr
    assert "rules.yaml: missing" in done.stderr


def test_test_blocks_an_id_to_personal_webmail(id_file: Path, state, capsys) -> None:
    assert main(["rules", "test", "--to", "mail.qq.com", *state, str(id_file)]) == 1
    out = capsys.readouterr().out
    assert "verdict: BLOCK" in out
    assert "identifying-to-personal-channels" in out
    assert "110105********002X" in out
    assert RAW_ID not in out


def test_test_takes_a_policy_dir_before_the_options(id_file: Path, state, capsys) -> None:
    code = main(
        [
            "rules",
            "test",
            str(DEFAULT),
            "--to",
            "case@lawfirm.example",
            "--json",
            *state,
            str(id_file),
        ]
    )
    assert code == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["action"] == "encrypt"
    assert verdict["rule"] == "important-to-party-by-mail"
    assert verdict["party"] == "example-law-firm"
    assert verdict["findings"][0]["class"] == "identity"
    assert verdict["destination"] == "c***@lawfirm.example"
    assert RAW_ID not in json.dumps(verdict, ensure_ascii=False)


def test_test_dates_the_agreement(id_file: Path, state, capsys) -> None:
    code = main(
        [
            "rules",
            "test",
            "--to",
            "case@lawfirm.example",
            "--at",
            "2028-01-05T10:00+08:00",
            "--json",
            *state,
            str(id_file),
        ]
    )
    assert code == 1
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["rule"] == "important-elsewhere"
    assert "expired on 2027-12-31" in verdict["reason"]


def test_test_from_a_restricted_server(id_file: Path, state, capsys) -> None:
    code = main(
        [
            "rules",
            "test",
            "--to",
            "203.0.113.9",
            "--from",
            "10.9.0.5",
            "--json",
            *state,
            str(id_file),
        ]
    )
    assert code == 1
    assert json.loads(capsys.readouterr().out)["rule"] == "reach:restricted->external"


def test_test_refuses_a_mail_address_over_https(id_file: Path, state, capsys) -> None:
    code = main(["rules", "test", "--to", "a@qq.com", "--channel", "https", *state, str(id_file)])
    assert code == 2
    assert "mail address" in capsys.readouterr().err


def test_test_reads_office_files(tmp_path: Path, state, capsys) -> None:
    data = ROOT / "tests" / "data" / "corpus"
    sample = next((p for p in sorted(data.rglob("*.xlsx"))), None)
    if sample is None:
        pytest.skip("no spreadsheet in the corpus copy")
    code = main(["rules", "test", "--to", "pan.baidu.com", "--json", *state, str(sample)])
    verdict = json.loads(capsys.readouterr().out)
    assert code == (1 if verdict["action"] in ("block", "quarantine") else 0)
    assert verdict["findings"], "the corpus spreadsheet holds client data"
    assert verdict["action"] == "block"


def test_explain_in_words(capsys) -> None:
    assert main(["rules", "explain", str(DEFAULT)]) == 0
    out = capsys.readouterr().out
    assert "Rules (top to bottom; the first enforce-mode rule that matches decides)" in out
    assert "refused: restricted → office, restricted → external" in out
    assert "example-law-firm" in out and "otherwise → allow" in out
