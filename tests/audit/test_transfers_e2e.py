"""A slow leak through the real gateway: many small allowed uploads, one ID number each.

`leakguard run` (real proxy, real relay) with a policy that lets one ID
number at a time go to a payroll portal (a bulk list is blocked), and a
transfer watch that holds a sender after 6 distinct ID numbers within an
hour. Each upload on its own is allowed; together they cross the threshold:
a transfer.anomaly event, an alert at a real syslog listener (UDP), a real
webhook server and — by mail through the gateway's own relay — a real SMTP
sink; the sender is held, the next upload is refused with "held for
review", and `leakguard senders release` lets it through again. No raw ID
number appears in any event, alert, page or mail.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.audit.synthetic import resident_id
from tests.audit.test_alerts_sinks import UdpListener, Webhook, parse_rfc5424
from tests.support.gateway import ROOT, running_gateway
from tests.support.origin import Origin
from tests.support.smtp import RecordingSink

PAYROLL = "127.0.0.4"  # an external origin (tests/data/audit/transfers/zones.yaml)
DATA = ROOT / "tests" / "data" / "audit" / "transfers"
LIMIT = 6  # watch.yaml: distinct_pii limit
SECURITY = "security@firm.example"


def _loopback_aliases() -> bool:
    try:
        with socket.socket() as s:
            s.bind((PAYROLL, 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _loopback_aliases(), reason="needs 127.0.0.x aliases on loopback (Linux has them)"
)


def _policy(target: Path) -> Path:
    shutil.copytree(ROOT / "rules" / "default", target)
    for name in ("zones.yaml", "watch.yaml"):
        shutil.copy(DATA / name, target / name)
    rules = target / "rules.yaml"
    head, sep, tail = rules.read_text(encoding="utf-8").partition("rules:\n")
    assert sep
    extra = (DATA / "rule-single-ids.yaml").read_text(encoding="utf-8")
    rules.write_text(head + sep + extra + "\n" + tail, encoding="utf-8")
    return target


def _config(path: Path, syslog: str, webhook: str) -> Path:
    path.write_text(
        f"""\
version: 1
alerts:
  dedup_window: 1m
  syslog: {{address: "{syslog}", app_name: leakguard-e2e, facility: local4}}
  webhook: {{url: "{webhook}", timeout: 5s, retries: 2}}
  mail: {{to: [{SECURITY}], from: leakguard@firm.example}}
""",
        encoding="utf-8",
    )
    return path


def _senders(*args: str, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "senders", *args, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_a_slow_leak_is_held_alerted_everywhere_and_released(tmp_path):
    state = tmp_path / "var"
    syslog = UdpListener()
    hook = Webhook()
    ids = [resident_id(1000 + i) for i in range(LIMIT + 6)]
    try:
        with (
            RecordingSink() as sink,
            Origin(PAYROLL, name="payroll") as payroll,
            running_gateway(
                "--config", str(_config(tmp_path / "leakguard.yaml", syslog.address, hook.url)),
                "--policy", str(_policy(tmp_path / "policy")),
                "--resolve", f"payroll.example={PAYROLL}",
                "--smarthost", "{}:{}".format(*sink.address),
                state_dir=state,
            ) as gw,
            httpx.Client(proxy=gw.proxy_url, trust_env=False, timeout=15) as client,
        ):  # fmt: skip
            url = f"http://payroll.example:{payroll.port}/employees"

            def upload(*values: str) -> httpx.Response:
                body = {"employees": [{"name": "测试", "id_no": v} for v in values]}
                return client.post(url, json=body, headers={"Accept": "application/json"})

            # A bulk list in one request is over the per-request threshold: blocked, and a
            # blocked transfer is not counted as sent.
            assert upload(*ids[-5:]).status_code == 403
            for n, value in enumerate(ids[: LIMIT - 1]):
                assert upload(value).status_code == 200, n
                assert upload(ids[0]).status_code == 200  # the same value again adds nothing
            time.sleep(0.5)  # the watch runs behind the record: give it every chance
            assert not [e for e in gw.events() if e["type"] == "sender.held"]
            assert upload(ids[LIMIT - 1]).status_code == 200  # the one that crosses it
            held = gw.wait_for_event(lambda e: e["type"] == "sender.held", timeout=10)
            anomaly = next(e for e in gw.events() if e["type"] == "transfer.anomaly")
            assert anomaly["rule"] == "transfer.distinct_pii" and anomaly["action"] == "hold"
            assert anomaly["anomaly"]["distinct"] == LIMIT and anomaly["source_ip"] == "127.0.0.1"
            assert held["incident"] == anomaly["incident"]
            delivered = len(payroll.requests)
            assert delivered == 2 * (LIMIT - 1) + 1

            refused = upload(ids[LIMIT])
            assert refused.status_code == 403
            page = refused.json()
            assert page["rule"] == "sender-held"
            assert page["reason"].startswith("held for review: 127.0.0.1 sent 6 distinct")
            assert len(payroll.requests) == delivered  # nothing reached the origin

            # The alert, at every sink.
            alert = parse_rfc5424(syslog.receive())
            assert alert["msgid"] == "transfer.distinct_pii" and alert["app"] == "leakguard-e2e"
            assert alert["pri"] == 20 * 8 + 2  # local4, crit
            assert alert["params"]["source_ip"] == "127.0.0.1"
            (posted,) = hook.wait(1)
            assert posted["kind"] == "transfer.distinct_pii" and posted["severity"] == "critical"
            assert posted["detail"]["incident"] == anomaly["incident"]
            (mail,) = sink.wait_for(1, timeout=15)
            assert mail.rcpt_tos == (SECURITY,)
            assert mail.message["Subject"].startswith("[leakguard] critical: 127.0.0.1 sent 6")
            assert posted["id"] in mail.message["X-Leakguard-Alert"]

            listed = _senders("list", "--json", state=state)
            (hold,) = [json.loads(line) for line in listed.stdout.splitlines()]
            assert hold["name"] == "127.0.0.1" and hold["active"]
            released = _senders("release", "127.0.0.1", "--reason", "reviewed", state=state)
            assert released.returncode == 0, released.stderr
            again = upload(ids[LIMIT + 1])
            assert again.status_code == 200
            assert len(payroll.requests) == delivered + 1
            gw.wait_for_event(lambda e: e["type"] == "sender.released")
        everything = "\n".join(
            [
                (state / "events.jsonl").read_text(encoding="utf-8"),
                (state / "alerts.jsonl").read_text(encoding="utf-8"),
                json.dumps(hook.bodies, ensure_ascii=False),
                mail.data.decode("utf-8", "replace"),
                refused.text,
            ]
        )
        assert not [v for v in ids if v in everything]
        alerts = [json.loads(line) for line in (state / "alerts.jsonl").read_text().splitlines()]
        assert [a["kind"] for a in alerts] == ["transfer.distinct_pii"]
    finally:
        hook.close()
