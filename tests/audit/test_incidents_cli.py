"""`leakguard incidents` against real records.

Most cases fill a real SQLite store in a state directory (audit.open, as the
gateway does) and call the command as `leakguard` would; the last test
proxies a blocked upload through a real `leakguard run` and asks the
installed command, in a subprocess, while that gateway still runs.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from audit.events import Event
from audit.open import DB_FILE, open_store
from gateway.cli import main
from gateway.config import Config
from tests.support.gateway import running_gateway
from tests.support.origin import Origin

ROOT = Path(__file__).resolve().parents[2]
# Generated values (tests/proxy/test_inspect.py): GB 11643 check, Luhn.
ID, ID_MASKED = "11010519491231002X", "110105********002X"
CARD = "6222021234567890128"
RULE = "identifying-to-personal-channels"
BLOCKED, HELD = "LG-20261120-AAAAAA", "LG-20261120-BBBBBB"
FINDING = {
    "type": "cn_resident_id",
    "class": "identity",
    "level": "important",
    "location": "form field id_no",
    "masked": ID_MASKED,
    "hash": "9f86d0…",
    "score": 0.95,
}


def ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat(timespec="milliseconds")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory whose store holds two incidents, one ten days old."""
    directory = tmp_path / "var"
    store = open_store(Config(), directory)
    for e in (
        Event(time=ago(days=10), type="http.request", channel="https", user="alice",
              source_ip="10.1.0.5", destination="mail.qq.com", action="block", rule=RULE,
              reason="identity data to a personal channel", findings=(FINDING,),
              incident=BLOCKED, detail=f"form field id_no (a leak: {ID})"),
        Event(time=ago(hours=5), type="smtp.message", channel="smtp", user="bob",
              destination="a***@law.example", action="quarantine", rule="held-for-review",
              findings=(FINDING,), incident=HELD),
        Event(time=ago(hours=4), type="smtp.quarantine", channel="smtp", user="bob",
              destination="a***@law.example", action="quarantine", rule="held-for-review",
              incident=HELD, detail="held for review"),
        Event(time=ago(hours=3), type="http.request", channel="http", user="carol",
              action="allow"),
    ):  # fmt: skip
        store.append(e.to_dict())
    store.close()
    return directory


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["incidents", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_the_table_says_who_what_to_whom_which_rule_what_happened(state, capsys):
    code, out, _ = run(capsys, "--state-dir", str(state))
    assert code == 0
    head, first, second, *_ = out.splitlines()
    assert head.split() == ["TIME", "INCIDENT", "USER", "CHANNEL", "TO", "RULE", "ACTION",
                            "WHAT", "OUTCOME"]  # fmt: skip
    for cell in (BLOCKED, "alice", "https", "mail.qq.com", RULE, "block", ID_MASKED):
        assert cell in first
    for cell in (HELD, "bob", "held-for-review", "quarantine", "smtp.quarantine"):
        assert cell in second
    assert "2 incident(s)" in out
    assert ID not in out


def test_json_lists_one_object_per_incident(state, capsys):
    code, out, _ = run(capsys, "--state-dir", str(state), "--json")
    assert code == 0
    rows = json_lines(out)
    assert [r["incident"] for r in rows] == [BLOCKED, HELD]
    assert rows[0]["findings"] == [
        {"type": "cn_resident_id", "class": "identity", "masked": ID_MASKED,
         "location": "form field id_no"}
    ]  # fmt: skip
    assert rows[1]["events"] == 2 and rows[1]["outcome"] == "smtp.quarantine"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--since", "7d"], [HELD]),
        (["--until", "7d"], [BLOCKED]),
        (["--since", "30d", "--until", "now"], [BLOCKED, HELD]),
        (["--user", "alice"], [BLOCKED]),
        (["--rule", RULE], [BLOCKED]),
        (["--action", "quarantine"], [HELD]),
        (["--type", "smtp"], [HELD]),
        (["--user", "nobody"], []),
        (["--limit", "1"], [HELD]),
        (["--since", (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%d")], [HELD]),
    ],
)
def test_filters(state, capsys, argv, expected):
    code, out, _ = run(capsys, "--state-dir", str(state), "--json", *argv)
    assert code == 0
    assert [r["incident"] for r in json_lines(out)] == expected


def test_nothing_matching_is_not_an_error(state, capsys):
    code, out, _ = run(capsys, "--state-dir", str(state), "--user", "nobody")
    assert code == 0 and out.strip() == "no incidents match"


def test_show_gives_every_event_findings_masked(state, capsys):
    code, out, _ = run(capsys, "--state-dir", str(state), "show", HELD.lower())
    assert code == 0
    assert out.splitlines()[0] == f"incident {HELD}"
    assert "smtp.message" in out and "smtp.quarantine" in out and "held for review" in out
    assert f"cn_resident_id (identity) {ID_MASKED} at form field id_no" in out

    # options before or after `show` alike
    code, out, _ = run(capsys, "--json", "show", BLOCKED, "--state-dir", str(state))
    shown = json.loads(out)
    assert code == 0 and shown["incident"] == BLOCKED and len(shown["events"]) == 1
    (event,) = shown["events"]
    assert event["seq"] == 1 and event["rule"] == RULE
    assert event["detail"] == f"form field id_no (a leak: {ID_MASKED})"  # masked when shown
    assert ID not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "LG-20261120-ZZZZZZ"], "no incident 'LG-20261120-ZZZZZZ' in the record"),
        (["--since", "yesterday"], "'yesterday' is not a time: write e.g. 7d"),
        (["--until", "2026-02-30"], "'2026-02-30' is not a time"),
        (["--since", "1d", "--until", "2d"], "--since 1d is not before --until 2d"),
    ],
)
def test_bad_arguments_and_unknown_ids_exit_2_with_one_sentence(state, capsys, argv, message):
    code, out, err = run(capsys, "--state-dir", str(state), *argv)
    assert code == 2 and out == ""
    assert err.startswith("leakguard incidents: ") and message in err


def test_a_wrong_state_directory_is_an_error_not_an_empty_record(tmp_path, capsys):
    code, _, err = run(capsys, "--state-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "no audit record in" in err
    assert not (tmp_path / "nowhere" / DB_FILE).exists()


def test_config_file_names_the_state_directory(state, tmp_path, capsys):
    config = tmp_path / "leakguard.yaml"
    config.write_text(f"version: 1\nstate_dir: {state}\n", encoding="utf-8")
    code, out, _ = run(capsys, "--config", str(config), "--json")
    assert code == 0 and len(json_lines(out)) == 2
    config.write_text("version: 1\nstate_dri: var\n", encoding="utf-8")
    code, _, err = run(capsys, "--config", str(config))
    assert code == 2 and "state_dri" in err and ":2" in err  # line-numbered, like `run`


# -- through a running gateway ----------------------------------------------------------------

WEBMAIL = "127.0.0.2"
E2E = ROOT / "tests" / "data" / "e2e"


def _loopback_aliases() -> bool:
    try:
        with socket.socket() as s:
            s.bind((WEBMAIL, 0))
        return True
    except OSError:
        return False


def leakguard(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(not _loopback_aliases(), reason="needs 127.0.0.x aliases on loopback")
def test_a_blocked_upload_through_leakguard_run_is_an_incident_and_reported(tmp_path):
    policy = tmp_path / "policy"
    shutil.copytree(ROOT / "rules" / "default", policy)
    shutil.copy(E2E / "policy" / "zones.yaml", policy / "zones.yaml")  # office is 127.0.0.1
    state = tmp_path / "var"
    with (
        Origin(WEBMAIL, name="webmail") as webmail,
        running_gateway(
            "--policy", str(policy), "--resolve", f"mail.qq.com={WEBMAIL}", state_dir=state
        ) as gw,
        httpx.Client(proxy=gw.proxy_url, trust_env=False, timeout=15) as client,
    ):
        resp = client.post(
            f"http://mail.qq.com:{webmail.port}/send", data={"id_no": ID, "note": "客户资料"}
        )
        assert resp.status_code == 403
        incident = resp.headers["x-leakguard-incident"]
        assert webmail.requests == []
        # asked beside the running gateway, as an administrator would
        deadline, rows = time.monotonic() + 20, []
        while time.monotonic() < deadline:
            listed = leakguard("incidents", "--state-dir", str(state), "--json")
            assert listed.returncode == 0, listed.stderr
            rows = [json.loads(line) for line in listed.stdout.splitlines()]
            if any(r["incident"] == incident for r in rows):
                break
            time.sleep(0.5)
        (row,) = [r for r in rows if r["incident"] == incident]
        assert row["rule"] == RULE and row["action"] == "block"
        assert row["channel"] == "http" and row["destination"] == "mail.qq.com"
        assert [f["masked"] for f in row["findings"]] == [ID_MASKED]
        shown = leakguard("incidents", "show", incident, "--state-dir", str(state))
        assert shown.returncode == 0, shown.stderr
        assert incident in shown.stdout and ID_MASKED in shown.stdout
        # and the periodic report counts it
        out = tmp_path / "report.html"
        reported = leakguard(
            "report", "--state-dir", str(state), "--since", "1h", "--out", str(out)
        )
        assert reported.returncode == 0, reported.stderr
        assert "1 transfer(s), 1 blocked" in reported.stdout
        html = out.read_text(encoding="utf-8")
        assert incident in html and "身份信息 Identity" in html
        for text in (listed.stdout, shown.stdout, shown.stderr, html):
            assert ID not in text
