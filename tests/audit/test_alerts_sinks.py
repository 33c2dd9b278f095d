"""Alert sinks against real listeners: syslog over UDP and TCP, a webhook HTTP server."""

from __future__ import annotations

import json
import re
import socket
import socketserver
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from audit.alert import Alert
from audit.alerts import Alerts
from audit.syslog import SD_ID, SyslogSink, format_alert, parse_address
from audit.webhook import WebhookSink

# RFC 5424 section 6 ABNF, as a pattern: HEADER SP STRUCTURED-DATA [SP MSG]
RFC5424 = re.compile(
    rb"<(?P<pri>\d{1,3})>(?P<version>1) (?P<timestamp>\S+) (?P<hostname>[!-~]{1,255}) "
    rb"(?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) "
    rb"(?P<sd>-|(?:\[[^\]\s=\"]+(?: [^\]\s=\"]+=\"(?:[^\"\\\]]|\\.)*\")*\])+)"
    rb"(?: (?P<msg>.*))?",
    re.S,
)
SD_PARAM = re.compile(r'([^\s=\]"]+)="((?:[^"\\\]]|\\.)*)"')


def parse_rfc5424(raw: bytes) -> dict:
    m = RFC5424.fullmatch(raw)
    assert m, raw
    sd = m["sd"].decode()
    sd_id = sd[1:].split(" ", 1)[0]
    params = {k: re.sub(r"\\(.)", r"\1", v) for k, v in SD_PARAM.findall(sd)}
    msg = m["msg"] or b""
    assert msg.startswith(b"\xef\xbb\xbf"), "a UTF-8 MSG starts with the BOM"
    return {
        "pri": int(m["pri"]),
        "timestamp": datetime.fromisoformat(m["timestamp"].decode()),
        "hostname": m["hostname"].decode(),
        "app": m["app"].decode(),
        "procid": m["procid"].decode(),
        "msgid": m["msgid"].decode(),
        "sd_id": sd_id,
        "params": params,
        "msg": msg[3:].decode(),
    }


def _alert(**kw) -> Alert:
    base = dict(
        kind="transfer.distinct_pii",
        key="transfer.distinct_pii:alice",
        summary='alice sent 12 distinct ID numbers to "external" ] in 1 h — 张三',
        severity="critical",
        user="alice",
        source_ip="10.1.2.3",
        time=1_800_000_000.25,
    )
    return Alert(**{**base, **kw})


class UdpListener:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.address = f"udp://127.0.0.1:{self.sock.getsockname()[1]}"

    def receive(self) -> bytes:
        return self.sock.recv(65535)


class TcpListener:
    """Reads RFC 6587 octet-counted frames: 'LEN SP MSG'."""

    def __init__(self, frames_per_connection: int = 0) -> None:
        self.frames: list[bytes] = []
        self.cond = threading.Condition()
        self.closed = threading.Event()
        listener = self

        class Handler(socketserver.StreamRequestHandler):
            def finish(self) -> None:
                super().finish()
                self.connection.close()
                listener.closed.set()

            def handle(self) -> None:
                for _ in (
                    iter(int, 1) if not frames_per_connection else range(frames_per_connection)
                ):
                    digits = b""
                    while (c := self.rfile.read(1)) not in (b" ", b""):
                        assert c.isdigit(), (digits, c)
                        digits += c
                    if not digits:
                        return
                    frame = self.rfile.read(int(digits))
                    with listener.cond:
                        listener.frames.append(frame)
                        listener.cond.notify_all()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"tcp://127.0.0.1:{self.server.server_address[1]}"

    def wait(self, n: int) -> list[bytes]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.frames) >= n, 10), self.frames
            return list(self.frames)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _check_fields(got: dict, alert: Alert) -> None:
    assert got["pri"] == 4 * 8 + 2  # facility auth, severity crit
    assert got["timestamp"].timestamp() == pytest.approx(alert.time)
    assert got["timestamp"].utcoffset().total_seconds() == 0
    assert got["hostname"] == socket.gethostname()
    assert got["app"] == "leakguard-test"
    assert got["procid"].isdigit()
    assert got["msgid"] == "transfer.distinct_pii"
    assert got["sd_id"] == SD_ID
    p = got["params"]
    assert p["kind"] == alert.kind and p["key"] == alert.key and p["severity"] == "critical"
    assert p["user"] == "alice" and p["source_ip"] == "10.1.2.3" and p["count"] == "1"
    assert len(p["id"]) == 16
    assert got["msg"] == alert.summary


def test_syslog_over_udp_is_rfc5424_field_by_field(tmp_path):
    listener = UdpListener()
    alerts = Alerts([SyslogSink(listener.address, app_name="leakguard-test")], tick=None)
    alert = _alert()
    alerts.send(alert)
    _check_fields(parse_rfc5424(listener.receive()), alert)
    alerts.close()


def test_syslog_over_tcp_is_octet_counted_rfc5424():
    listener = TcpListener()
    try:
        sink = SyslogSink(listener.address, app_name="leakguard-test")
        alerts = Alerts([sink], tick=None)
        first, second = _alert(), _alert(key="other", summary="second\nline")
        alerts.send(first)
        alerts.send(second)
        frames = listener.wait(2)
        alerts.close()
    finally:
        listener.close()
    _check_fields(parse_rfc5424(frames[0]), first)
    assert parse_rfc5424(frames[1])["msg"] == "second\nline"  # framing, not newlines, splits


def test_syslog_tcp_reconnects_when_the_receiver_closed_the_connection():
    listener = TcpListener(frames_per_connection=1)
    try:
        alerts = Alerts([SyslogSink(listener.address, app_name="leakguard-test")], tick=None)
        for i in range(3):
            alerts.send(_alert(key=f"k{i}", summary=f"alert {i}"))
            listener.wait(i + 1)
            assert listener.closed.wait(5)  # the receiver hung up after each frame
            listener.closed.clear()
        alerts.close()
    finally:
        listener.close()
    assert [parse_rfc5424(f)["msg"] for f in listener.frames] == ["alert 0", "alert 1", "alert 2"]


def test_udp_messages_are_cut_to_2048_octets_on_a_character_boundary():
    raw = format_alert(
        {**_alert(summary="长" * 2000).to_dict(), "id": "x"}, max_bytes=2048, hostname="gw"
    )
    assert len(raw) <= 2048
    assert parse_rfc5424(raw)["msg"].strip("长") == ""


def test_sd_values_are_escaped_and_names_printable():
    raw = format_alert(
        {**_alert(user='a"b]c\\d').to_dict(), "id": "x"}, app_name="l g", hostname="h o"
    )
    got = parse_rfc5424(raw)
    assert got["params"]["user"] == 'a"b]c\\d'
    assert got["app"] == "lg" and got["hostname"] == "ho"


@pytest.mark.parametrize(
    "text", ["127.0.0.1:514", "http://x:1", "udp://:514", "tcp://h:99999", "udp://h:1/x"]
)
def test_bad_syslog_addresses_say_what_to_write(text):
    with pytest.raises(ValueError, match=r"udp://HOST:PORT|port"):
        parse_address(text)


class Webhook:
    """A real HTTP server that answers `fail_first` requests with 503, then 204."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with hook.cond:
                    status = 503 if len(hook.statuses) < fail_first else 204
                    hook.statuses.append(status)
                    if status == 204:
                        assert self.headers["Content-Type"].startswith("application/json")
                        hook.bodies.append(json.loads(body))
                    hook.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/leakguard?token=s3cret"

    def wait(self, n: int) -> list[dict]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.bodies) >= n, 15), self.statuses
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_receives_the_alert_as_json():
    hook = Webhook()
    try:
        alerts = Alerts([WebhookSink(hook.url, timeout=5, retries=0)], tick=None)
        alert = _alert()
        alerts.send(alert)
        (got,) = hook.wait(1)
        alerts.close()
    finally:
        hook.close()
    for name, value in alert.to_dict().items():
        assert got[name] == value, name
    assert got["at"] == "2027-01-15T08:00:00.250+00:00"


def test_webhook_failing_then_ok_is_retried_and_failures_logged_without_the_token(caplog):
    hook = Webhook(fail_first=2)
    try:
        alerts = Alerts([WebhookSink(hook.url, timeout=5, retries=3)], tick=None)
        started = time.monotonic()
        alerts.send(_alert())
        (got,) = hook.wait(1)
        waited = time.monotonic() - started
        alerts.close()
    finally:
        hook.close()
    assert hook.statuses == [503, 503, 204]
    assert waited >= 0.5 + 1.0  # backoff: 0.5 s, then 1 s
    assert got["key"] == "transfer.distinct_pii:alice"
    logged = [r.getMessage() for r in caplog.records if r.name == "leakguard.alerts"]
    assert len(logged) == 2 and all("503" in m for m in logged)
    assert not any("s3cret" in m or "alice" in m or "张三" in m for m in logged)


def test_a_webhook_that_never_answers_does_not_hold_back_the_caller(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
    alerts = Alerts([WebhookSink(url, timeout=1, retries=0)], tick=None)
    started = time.monotonic()
    for i in range(50):
        alerts.send(_alert(key=f"k{i}"))
    assert time.monotonic() - started < 0.5
    alerts.close(timeout=0.5)
    silent.close()
