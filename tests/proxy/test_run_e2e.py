"""`leakguard run` end to end: a subprocess, real clients, origins that record what they got.

One gateway serves the module (`rig`), with the shipped policy except its zones
(tests/data/e2e/policy/zones.yaml: office is 127.0.0.1 only, so origins on
127.0.0.2+ are external) and `--resolve` names for them:

    mail.qq.com             127.0.0.2   personal webmail (HTTP and HTTPS origins)
    portal.lawfirm.example  127.0.0.3   an approved party (HTTP and HTTPS origins)
    other.example           127.0.0.4   an uncategorised external site (HTTP)
    rebind.example          127.0.0.4
    alias.test              127.0.0.1   the gateway's own address under another name
    (restricted)            127.0.0.9   a client-data server in the restricted zone

Every assertion about a block checks what the origin received (nothing: not a
connection, not a request head), and that no raw value reached the block
page, the event log, or the gateway's stdout/stderr. Tests that change the
policy or need the embedded defaults start their own gateway.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import stat
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import h2.connection
import h2.events
import httpx
import pytest
from cryptography import x509

from audit.events import EVENT_FIELDS
from tests.support.gateway import Gateway, GatewayFailed, run_gateway_once, running_gateway
from tests.support.origin import Origin, TestCA, WebSocketClient

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "rules" / "default"
E2E = ROOT / "tests" / "data" / "e2e"

# Generated values (tests/proxy/test_inspect.py): GB 11643 check, Luhn, an allocated range.
ID = "11010519491231002X"
ID_MASKED = "110105********002X"
CARD = "6222021234567890128"
PHONE = "13912345678"
PHONE_MASKED = "139****5678"
RAW = (ID, ID.lower(), CARD, PHONE)
INCIDENT = re.compile(r"^LG-\d{8}-[2-9A-HJ-NP-Z]{6}$")

WEBMAIL, PARTY, OTHER, RESTRICTED = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"
PERSONAL_RULE = "identifying-to-personal-channels"


def _loopback_aliases() -> bool:
    try:
        with socket.socket() as s:
            s.bind((RESTRICTED, 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _loopback_aliases(), reason="needs 127.0.0.x aliases on loopback (Linux has them)"
)


# -- the rig -------------------------------------------------------------------------------


def e2e_policy(target: Path) -> Path:
    """The shipped policy with the e2e files laid over it (today: zones.yaml)."""
    shutil.copytree(SHIPPED, target)
    for f in (E2E / "policy").glob("*.yaml"):
        shutil.copy(f, target / f.name)
    return target


@dataclass
class Rig:
    gw: Gateway
    ca: TestCA
    webmail: Origin  # https://mail.qq.com
    webmail_http: Origin  # http://mail.qq.com
    party: Origin  # https://portal.lawfirm.example
    party_http: Origin  # http://portal.lawfirm.example
    other: Origin  # http://other.example
    restricted: Origin  # http://127.0.0.9

    @property
    def origins(self) -> list[Origin]:
        return [
            self.webmail,
            self.webmail_http,
            self.party,
            self.party_http,
            self.other,
            self.restricted,
        ]

    def client(self, **kw) -> httpx.Client:
        return proxied_client(self.gw, **kw)


def proxied_client(gw: Gateway, **kw) -> httpx.Client:
    assert gw.ca_path is not None
    trust = ssl.create_default_context(cafile=str(gw.ca_path))
    settings = {"proxy": gw.proxy_url, "verify": trust, "timeout": 15, "trust_env": False}
    return httpx.Client(**{**settings, **kw})


def resolve_args(names: dict[str, str]) -> list[str]:
    return [arg for name, ip in names.items() for arg in ("--resolve", f"{name}={ip}")]


CONTACT = "信息安全部 e2e@firm.example"
STREAM_ABOVE = 64 * 1024
# The flags override the file; the file gives what has no flag.
CONFIG = f"""\
version: 1
contact: {CONTACT}
proxy:
  stream_above: 64KiB   # the smallest allowed: large uploads without 16 MiB of test data
"""

NAMES = {
    "mail.qq.com": WEBMAIL,
    "portal.lawfirm.example": PARTY,
    "other.example": OTHER,
    "rebind.example": OTHER,
    "alias.test": "127.0.0.1",
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    base = tmp_path_factory.mktemp("e2e")
    ca = TestCA(base / "origin-ca")
    policy = e2e_policy(base / "policy")
    config = base / "leakguard.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    with ExitStack() as stack:
        origins = [
            Origin(WEBMAIL, tls=ca.server_context(["mail.qq.com"]), name="webmail"),
            Origin(WEBMAIL, name="webmail-http"),
            Origin(PARTY, tls=ca.server_context(["portal.lawfirm.example"]), name="party"),
            Origin(PARTY, name="party-http"),
            Origin(OTHER, name="other"),
            Origin(RESTRICTED, name="restricted"),
        ]
        for origin in origins:
            stack.enter_context(origin)
        gw = stack.enter_context(
            running_gateway(
                "--config",
                str(config),
                "--policy",
                str(policy),
                "--upstream-ca",
                str(ca.pem_path),
                *resolve_args(NAMES),
                state_dir=base / "var",
            )
        )
        yield Rig(gw, ca, *origins)


@pytest.fixture
def r(rig: Rig) -> Rig:
    """The rig with every origin's record cleared."""
    for origin in rig.origins:
        origin.clear()
    return rig


# -- helpers -------------------------------------------------------------------------------


def assert_untouched(*origins: Origin) -> None:
    for origin in origins:
        assert origin.connections == [], f"{origin.name} was connected to: {origin.connections}"
        assert origin.requests == [], f"{origin.name} received {origin.requests}"


def assert_no_raw(gw: Gateway, *texts: str | bytes) -> None:
    """No raw value in `texts`, the event log, or anything the gateway printed."""
    where = {
        "events.jsonl": gw.events_file_text(),
        "stdout": gw.stdout,
        "stderr": gw.stderr,
        **{f"text {i}": t if isinstance(t, str) else t.decode() for i, t in enumerate(texts)},
    }
    for name, text in where.items():
        for value in RAW:
            assert value not in text, f"raw value {value[:3]}… in {name}"


def events_since(gw: Gateway, n: int) -> list[dict]:
    return gw.events()[n:]


def incident_event(gw: Gateway, incident: str) -> dict:
    return gw.wait_for_event(lambda e: e.get("incident") == incident, timeout=5)


def assert_block_page(resp: httpx.Response, rule: str, *masked: str) -> str:
    """A 403 page in Chinese and English naming the rule, the incident and masked values."""
    assert resp.status_code == 403, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("text/html")
    incident = resp.headers["x-leakguard-incident"]
    assert INCIDENT.match(incident), incident
    page = resp.text
    assert "已阻止" in page and "blocked" in page.lower()
    assert incident in page
    assert rule in page
    for value in masked:
        assert value in page
    return incident


def raw_proxy_request(gw: Gateway, request: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Send bytes to the proxy as they are (odd host notations httpx would not write)."""
    with socket.create_connection(gw.address, timeout=timeout) as s:
        s.sendall(request)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
                head, sep, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head) if sep else None
                if length and len(body) >= int(length[1]):
                    break
        except TimeoutError:
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def h2_requests(
    gw: Gateway, authority: str, requests: list[tuple[str, str, dict[str, str], bytes]]
) -> list[tuple[int, bytes]]:
    """Requests over one HTTP/2 connection through a CONNECT tunnel: [(status, body)].
    (httpx does not offer h2 inside a proxy tunnel, so this speaks it with `h2`.)"""
    assert gw.ca_path is not None
    raw = socket.create_connection(gw.address, timeout=10)
    raw.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    trust = ssl.create_default_context(cafile=str(gw.ca_path))
    trust.set_alpn_protocols(["h2"])
    with trust.wrap_socket(raw, server_hostname=authority.rsplit(":", 1)[0]) as tls:
        assert tls.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection()
        conn.initiate_connection()
        streams: dict[int, list] = {}
        for method, path, headers, body in requests:
            sid = conn.get_next_available_stream_id()
            head = [(":method", method), (":path", path), (":scheme", "https")]
            head += [(":authority", authority), *headers.items()]
            conn.send_headers(sid, head, end_stream=not body)
            if body:
                conn.send_data(sid, body, end_stream=True)
            streams[sid] = [0, b"", False]
        tls.sendall(conn.data_to_send())
        while not all(done for _, _, done in streams.values()):
            data = tls.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    streams[event.stream_id][0] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id][1] += event.data
                    conn.acknowledge_received_data(len(event.data), event.stream_id)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    streams[event.stream_id][2] = True
            tls.sendall(conn.data_to_send())
    return [(status, body) for status, body, _ in streams.values()]


def get(host: str, port: int, path: str = "/") -> bytes:
    return (
        f"GET http://{host}:{port}{path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


# -- the gateway itself --------------------------------------------------------------------


def test_gateway_announces_where_it_is(rig: Rig) -> None:
    gw = rig.gw
    assert gw.modes == ["regular"]
    assert gw.host == "127.0.0.1" and gw.port > 0
    assert gw.ca_path is not None and gw.ca_path.is_file()
    assert f"http://127.0.0.1:{gw.port}/proxy.pac" in gw.stdout
    assert f"events: {gw.events_path}" in gw.stdout


# -- PII to personal webmail ---------------------------------------------------------------


FORM = {"to": "friend@qq.com", "body": f"客户 张三 身份证 {ID} 卡号 {CARD} 手机 {PHONE}"}


class TestPersonalWebmail:
    def test_form_upload_is_blocked_with_a_page_and_the_origin_gets_nothing(self, r: Rig) -> None:
        with r.client() as c:
            resp = c.post(f"https://mail.qq.com:{r.webmail.port}/compose/send", data=FORM)
        incident = assert_block_page(resp, PERSONAL_RULE, ID_MASKED, PHONE_MASKED, "mail.qq.com")
        assert CONTACT in resp.text  # from the --config file
        assert_untouched(r.webmail, r.webmail_http)
        event = incident_event(r.gw, incident)
        assert event["type"] == "http.request"
        assert event["action"] == "block" and event["rule"] == PERSONAL_RULE
        assert event["destination"] == "mail.qq.com"
        assert event["destination_ip"] == WEBMAIL
        assert event["destination_zone"] == "external"
        assert event["source_ip"] == "127.0.0.1" and event["source_zone"] == "office"
        assert "personal-webmail" in event["categories"]
        masked = {f["masked"] for f in event["findings"]}
        assert ID_MASKED in masked and PHONE_MASKED in masked
        assert_no_raw(r.gw, resp.text)

    def test_api_clients_get_json(self, r: Rig) -> None:
        with r.client() as c:
            resp = c.post(
                f"https://mail.qq.com:{r.webmail.port}/api/send",
                json={"text": f"身份证 {ID}"},
                headers={"Accept": "application/json"},
            )
        assert resp.status_code == 403
        assert resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        assert body["blocked"] is True
        assert body["rule"] == PERSONAL_RULE
        assert INCIDENT.match(body["incident"])
        assert body["incident"] == resp.headers["x-leakguard-incident"]
        assert ID_MASKED in [f["masked"] for f in body["findings"]]
        assert "已阻止" in body["message"] and "Blocked" in body["message"]
        assert_untouched(r.webmail)
        assert_no_raw(r.gw, resp.text)

    @pytest.mark.parametrize("declared", [True, False], ids=["content-length", "unknown-length"])
    def test_http2_upload_is_blocked(self, r: Rig, declared: bool) -> None:
        """With a content-length, as browsers send it, the body is buffered whole; without,
        it is streamed and its head waits (proxy.held_stream): the body ends before anything
        is released, and either way the page goes back on the same HTTP/2 connection."""
        body = urlencode(FORM).encode()
        form = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
        if declared:
            form["content-length"] = str(len(body))
        host = f"mail.qq.com:{r.webmail.port}"
        results = h2_requests(
            r.gw, host, [("POST", "/compose/send", form, body), ("GET", "/inbox", {}, b"")]
        )
        (status, page), (clean, _) = results
        assert status == 403 and json.loads(page)["rule"] == PERSONAL_RULE
        assert clean == 200
        assert [q.path for q in r.webmail.requests] == ["/inbox"]  # HTTP/1.1 upstream
        assert_no_raw(r.gw, page)

    def test_plain_http_is_blocked_too(self, r: Rig) -> None:
        with r.client() as c:
            resp = c.post(f"http://mail.qq.com:{r.webmail_http.port}/send", data=FORM)
        incident = assert_block_page(resp, PERSONAL_RULE, ID_MASKED)
        assert incident_event(r.gw, incident)["destination_ip"] == WEBMAIL
        assert_untouched(r.webmail_http)
        assert_no_raw(r.gw, resp.text)

    def test_mail_without_client_data_goes_through(self, r: Rig) -> None:
        """The control: the same site, no client data; the origin gets every byte."""
        with r.client() as c:
            resp = c.post(
                f"https://mail.qq.com:{r.webmail.port}/compose/send",
                data={"subject": "周末", "body": "周末一起吃饭？"},
            )
        assert resp.status_code == 200, resp.text
        (got,) = r.webmail.requests
        assert got.complete and got.method == "POST" and got.path == "/compose/send"
        assert "周末一起吃饭".encode() in httpx.QueryParams(got.text).get("body", "").encode()
        assert got.host == f"mail.qq.com:{r.webmail.port}"
        assert r.webmail.connections[0].sni == "mail.qq.com"


def _chunks() -> Iterator[bytes]:
    yield f"note=身份证 {ID[:8]}".encode()
    time.sleep(0.05)
    yield f"{ID[8:]}&x=1".encode()


BODY_FORMS = {
    "multipart file": dict(
        files={"attachment": ("debtors.txt", f"张三 身份证 {ID}\n".encode(), "text/plain")},
        data={"subject": "名单"},
    ),
    "gzip content-encoding": dict(
        content=gzip.compress(json.dumps({"note": f"证件号 {ID}"}).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    ),
    "base64 inside json": dict(
        json={"file": base64.b64encode(f"身份证号码 {ID} 银行卡 {CARD}".encode()).decode()}
    ),
    "split across form fields": dict(data={"id_a": ID[:9], "id_b": ID[9:]}),
}


class TestBodyForms:
    @pytest.mark.parametrize("form", list(BODY_FORMS))
    def test_disguised_upload_is_blocked(self, r: Rig, form: str) -> None:
        with r.client() as c:
            resp = c.post(f"https://mail.qq.com:{r.webmail.port}/upload", **BODY_FORMS[form])
        assert_block_page(resp, PERSONAL_RULE, ID_MASKED)
        assert_untouched(r.webmail)
        assert_no_raw(r.gw, resp.text)

    def test_value_in_the_url_query_is_blocked(self, r: Rig) -> None:
        with r.client() as c:
            resp = c.get(f"https://mail.qq.com:{r.webmail.port}/search", params={"q": ID})
        assert_block_page(resp, PERSONAL_RULE, ID_MASKED)
        assert_untouched(r.webmail)
        assert_no_raw(r.gw, resp.text)

    def test_chunked_upload_is_judged_whole_and_the_value_never_reaches_the_origin(
        self, r: Rig
    ) -> None:
        """Unknown length: held back as a stream; the value split across chunks is found."""
        n = len(r.gw.events())
        with r.client() as c:
            resp = c.post(
                f"https://mail.qq.com:{r.webmail.port}/upload",
                content=_chunks(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        # nothing went upstream, so the held stream is answered like a buffered body
        assert_block_page(resp, PERSONAL_RULE, ID_MASKED)
        event = r.gw.wait_for_event(lambda e: e["type"] == "http.request", after=n)
        assert event["action"] == "block" and event["rule"] == PERSONAL_RULE
        assert "held back" in event["detail"]  # judged as a stream, not left to mitmproxy
        time.sleep(0.2)
        assert ID[:8].encode() not in r.webmail.everything()
        assert ID[8:].encode() not in r.webmail.everything()
        assert all(req.body == b"" for req in r.webmail.requests)
        # nor was an empty request completed in its place (a form submitted without it)
        assert not any(req.complete for req in r.webmail.requests), r.webmail.requests
        assert_no_raw(r.gw)

    def test_blocked_chunked_upload_does_not_even_connect(self, r: Rig) -> None:
        with r.client() as c, contextlib.suppress(httpx.TransportError):
            c.post(
                f"https://mail.qq.com:{r.webmail.port}/upload",
                content=_chunks(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        time.sleep(0.3)
        assert_untouched(r.webmail)


def _large(declared: bool) -> dict:
    """A form above stream_above with the value at its start (and one near its end)."""
    head = f"note=身份证 {ID} ".encode()
    pad = b"a" * 8192
    tail = f" 卡号 {CARD}".encode()
    if declared:
        return {"content": head + pad * 12 + tail}
    return {"content": iter([head, *[pad] * 12, tail])}


class TestLargeUploads:
    """Bodies above proxy.stream_above (64 KiB here) are scanned as a stream, held back."""

    @pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
    def test_the_value_never_reaches_the_origin(self, r: Rig, declared: bool) -> None:
        n = len(r.gw.events())
        with r.client(timeout=3) as c, contextlib.suppress(httpx.TransportError):
            c.post(
                f"http://mail.qq.com:{r.webmail_http.port}/upload",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                **_large(declared),
            )
        event = r.gw.wait_for_event(lambda e: e["type"] == "http.request", after=n)
        assert event["action"] == "block", event
        assert event["rule"] == PERSONAL_RULE, event
        time.sleep(0.2)
        everything = r.webmail_http.everything()
        assert ID.encode() not in everything and CARD.encode() not in everything
        assert not any(len(req.body) for req in r.webmail_http.requests)
        assert_no_raw(r.gw)

    @pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
    def test_a_blocked_large_upload_is_answered_promptly(self, r: Rig, declared: bool) -> None:
        """A refusal or a closed connection are both answers; a client left waiting is not."""
        started = time.monotonic()
        try:
            with r.client(timeout=5) as c:
                resp = c.post(
                    f"http://mail.qq.com:{r.webmail_http.port}/upload",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    **_large(declared),
                )
            assert resp.status_code == 403, resp.status_code  # the page, never a 502
        except httpx.RemoteProtocolError:
            pass
        assert time.monotonic() - started < 5

    def test_a_blocked_large_upload_gets_the_block_page(self, r: Rig) -> None:
        with r.client(timeout=5) as c:
            resp = c.post(
                f"http://mail.qq.com:{r.webmail_http.port}/upload",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                **_large(True),
            )
        assert_block_page(resp, PERSONAL_RULE, ID_MASKED)

    def test_a_large_clean_upload_goes_through_whole(self, r: Rig) -> None:
        body = b"x=" + b"0123456789abcdef" * 8192  # 128 KiB, nothing sensitive
        with r.client() as c:
            resp = c.post(f"http://mail.qq.com:{r.webmail_http.port}/big", content=body)
        assert resp.status_code == 200
        # (a blocked upload of the test before may still be reaching this origin: its path
        # differs, and what it carries is that test's business)
        (got,) = [q for q in r.webmail_http.requests if q.path == "/big"]
        assert got.complete and got.body == body


class TestWebSocket:
    def test_client_message_with_pii_never_reaches_the_origin(self, r: Rig) -> None:
        ws = WebSocketClient(r.gw.address, "mail.qq.com", r.webmail_http.port, "/chat")
        try:
            assert ws.open, ws.response_head
            ws.send("你好")
            assert ws.receive() == "你好"  # the echo: the socket works
            ws.send(f"客户身份证 {ID}，卡号 {CARD}")
            ws.send("之后的消息")  # after a block nothing more goes through
            with contextlib.suppress(TimeoutError):
                assert ws.receive(timeout=1.5) is None  # no echo of either
        finally:
            ws.close()
        time.sleep(0.2)
        (upgrade,) = r.webmail_http.requests
        assert upgrade.ws_messages == ["你好"]
        assert ID.encode() not in r.webmail_http.everything()
        event = r.gw.wait_for_event(
            lambda e: e["type"] == "websocket.message" and e["action"] == "block"
        )
        assert event["rule"] == PERSONAL_RULE and INCIDENT.match(event["incident"])
        assert event["channel"] == "websocket"
        assert_no_raw(r.gw)

    def test_the_socket_is_closed_after_a_block(self, r: Rig) -> None:
        ws = WebSocketClient(r.gw.address, "mail.qq.com", r.webmail_http.port, "/chat")
        try:
            assert ws.open
            ws.send(f"身份证 {ID}")
            assert ws.receive(timeout=5) is None  # closed (1008), not left hanging
        finally:
            ws.close()


# -- an approved party ---------------------------------------------------------------------


class TestApprovedParty:
    def test_https_upload_goes_with_contact_details_masked(self, r: Rig) -> None:
        """The law firm receives identity and financial data, contact details masked."""
        n = len(r.gw.events())
        with r.client() as c:
            resp = c.post(f"https://portal.lawfirm.example:{r.party.port}/cases", data=FORM)
        assert resp.status_code == 200, resp.text[:300]
        (got,) = r.party.requests
        body = httpx.QueryParams(got.text)["body"]
        assert ID in body and CARD in body
        assert PHONE not in got.text and PHONE_MASKED in body
        assert int(got.header("content-length") or -1) == len(got.body)
        (event,) = [e for e in events_since(r.gw, n) if e["type"] == "http.request"]
        assert event["action"] == "mask"
        assert event["rule"] == "important-to-party-over-https"
        assert event["party"] == "example-law-firm"
        assert_no_raw(r.gw)

    def test_plain_http_to_the_party_is_blocked(self, r: Rig) -> None:
        with r.client() as c:
            resp = c.post(f"http://portal.lawfirm.example:{r.party_http.port}/cases", data=FORM)
        assert_block_page(resp, "important-elsewhere", ID_MASKED)
        assert_untouched(r.party_http, r.party)
        assert_no_raw(r.gw, resp.text)

    def test_basic_data_elsewhere_is_forwarded_and_recorded(self, r: Rig) -> None:
        n = len(r.gw.events())
        with r.client() as c:
            resp = c.post(f"http://other.example:{r.other.port}/form", data={"tel": PHONE})
        assert resp.status_code == 200
        (got,) = r.other.requests
        assert PHONE in got.text  # report: forwarded unchanged
        (event,) = [e for e in events_since(r.gw, n) if e["type"] == "http.request"]
        assert event["action"] == "report" and event["rule"] == "basic-to-external-recorded"
        assert event["incident"] == ""
        assert_no_raw(r.gw)


# -- isolation through the running gateway -------------------------------------------------


class TestIsolation:
    def test_host_header_fronting_is_blocked(self, r: Rig) -> None:
        """CONNECT and SNI say the law firm; the request inside says personal webmail."""
        with r.client() as c:
            resp = c.post(
                f"https://portal.lawfirm.example:{r.party.port}/x",
                content=b"hello",
                headers={"Host": "mail.qq.com"},
            )
        assert resp.status_code == 403
        assert_untouched(r.party, r.webmail)

    def test_sni_fronting_is_refused(self, r: Rig) -> None:
        """CONNECT to the law firm, then TLS naming personal webmail: no TLS, no upstream."""
        assert r.gw.ca_path is not None
        trust = ssl.create_default_context(cafile=str(r.gw.ca_path))
        with socket.create_connection(r.gw.address, timeout=10) as s:
            target = f"portal.lawfirm.example:{r.party.port}"
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            with (
                pytest.raises((ssl.SSLError, OSError)),
                trust.wrap_socket(s, server_hostname="mail.qq.com") as tls,
            ):
                tls.sendall(b"GET / HTTP/1.1\r\nHost: mail.qq.com\r\n\r\n")
                if not tls.recv(4096):
                    raise OSError("closed")
        time.sleep(0.2)
        assert_untouched(r.party, r.webmail)

    def test_plain_http_fronting_is_blocked(self, r: Rig) -> None:
        request = (
            f"POST http://other.example:{r.other.port}/x HTTP/1.1\r\n"
            f"Host: mail.qq.com:{r.webmail_http.port}\r\nContent-Length: 2\r\n"
            "Connection: close\r\n\r\nhi"
        ).encode()
        status, _ = raw_proxy_request(r.gw, request)
        assert status == 403
        assert_untouched(r.other, r.webmail_http)

    @pytest.mark.parametrize(
        "host",
        ["0x7f.0.0.4", "0177.0.0.4", "2130706436", "0x7f000004", "127.4"],
        ids=["hex-dotted", "octal", "decimal", "hex", "short"],
    )
    def test_odd_ip_notation_is_judged_as_the_address_it_names(self, r: Rig, host: str) -> None:
        n = len(r.gw.events())
        status, data = raw_proxy_request(r.gw, get(host, r.other.port, "/odd"))
        assert status == 200, data[:300]
        (got,) = r.other.requests
        assert got.path == "/odd"
        (event,) = [e for e in events_since(r.gw, n) if e["type"] == "proxy.connect"]
        assert event["destination_ip"] == OTHER
        assert event["destination_zone"] == "external"

    @pytest.mark.parametrize("host", ["0x7f.0.0.9", "2130706441", "127.0.0.9", "[::ffff:7f00:9]"])
    def test_odd_ip_notation_of_a_restricted_server_is_refused(self, r: Rig, host: str) -> None:
        status, data = raw_proxy_request(r.gw, get(host, r.restricted.port))
        assert status == 403, data[:300]
        assert b"reach:office->restricted" in data
        assert_untouched(r.restricted)

    def test_the_address_resolved_is_the_address_connected_to(self, r: Rig) -> None:
        """DNS rebinding needs a second lookup; the gateway's one answer is what it connects to
        (a resolver that changes its answers is tested in tests/proxy/test_isolation.py)."""
        n = len(r.gw.events())
        with r.client() as c:
            assert c.get(f"http://rebind.example:{r.other.port}/a").status_code == 200
            assert c.get(f"http://rebind.example:{r.other.port}/b").status_code == 200
        assert [q.path for q in r.other.requests] == ["/a", "/b"]
        assert {q.host for q in r.other.requests} == {f"rebind.example:{r.other.port}"}
        connects = [e for e in events_since(r.gw, n) if e["type"] == "proxy.connect"]
        assert connects and {e["destination_ip"] for e in connects} == {OTHER}

    @pytest.mark.parametrize(
        ("alias", "expected"),
        [
            ("localhost", 404),  # the proxy itself: ClientSetup answers (/x is not a file)
            ("2130706433", 404),  # 127.0.0.1
            ("127.0.0.5", 403),  # another loopback address, our port: refused, not looped
            ("alias.test", 403),  # a name for 127.0.0.1 (--resolve): refused as a loop
        ],
    )
    def test_the_proxys_own_port_is_not_looped(self, r: Rig, alias: str, expected: int) -> None:
        n = len(r.gw.events())
        started = time.monotonic()
        status, data = raw_proxy_request(r.gw, get(alias, r.gw.port, "/x"), timeout=10)
        assert time.monotonic() - started < 5
        assert status == expected, data[:300]
        if status == 403:
            assert b"isolation:self" in data
        time.sleep(0.2)
        # a loop would show as the proxy accepting its own connections, request after request
        connects = [e for e in events_since(r.gw, n) if e["type"] == "proxy.connect"]
        assert len(connects) <= 1, connects

    def test_no_addon_errors_on_an_ordinary_request(self, r: Rig) -> None:
        before = r.gw.stderr.count("Addon error")
        with r.client() as c:
            assert c.get(f"http://other.example:{r.other.port}/").status_code == 200
        time.sleep(0.2)
        assert r.gw.stderr.count("Addon error") == before, r.gw.stderr[-2000:]

    def test_a_keep_alive_upstream_connection_is_reused(self, r: Rig) -> None:
        with r.client() as c:
            assert c.get(f"http://other.example:{r.other.port}/1").status_code == 200
            assert c.get(f"http://other.example:{r.other.port}/2").status_code == 200
        first, second = r.other.requests
        assert second.connection == first.connection
        assert len(r.other.connections) == 1


# -- every event has the fixed fields ------------------------------------------------------


def test_every_event_has_the_fixed_fields(r: Rig) -> None:
    with r.client() as c:
        c.get(f"http://other.example:{r.other.port}/")
        c.post(f"http://mail.qq.com:{r.webmail_http.port}/", data={"id": ID})
    events = r.gw.events()
    assert {"proxy.connect", "http.request"} <= {e["type"] for e in events}
    for event in events:
        assert tuple(event)[: len(EVENT_FIELDS)] == EVENT_FIELDS, event


# -- what `make run` gives ------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """No flags but the state directory and an ephemeral port: the embedded defaults."""
    state = tmp_path_factory.mktemp("defaults") / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKGUARD_")}
    with running_gateway(state_dir=state, env=env) as gw:
        yield gw


class TestDefaults:
    def test_state_directory_and_ca_key_are_private(self, plain_gateway: Gateway) -> None:
        state = plain_gateway.state_dir
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert plain_gateway.ca_path == state / "ca" / "current" / "ca-cert.pem"
        key = state / "ca" / "current" / "ca-key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE((state / "installation.key").stat().st_mode) == 0o600
        assert stat.S_IMODE(plain_gateway.events_path.stat().st_mode) == 0o600
        assert f"policy: {SHIPPED}" in plain_gateway.stdout

    @pytest.mark.parametrize("via_proxy", [False, True], ids=["direct", "through-the-proxy"])
    def test_ca_is_served_as_pem_and_der(self, plain_gateway: Gateway, via_proxy: bool) -> None:
        gw = plain_gateway
        assert gw.ca_path is not None
        kw = {"proxy": gw.proxy_url} if via_proxy else {}
        with httpx.Client(trust_env=False, timeout=10, **kw) as c:
            pem = c.get(f"{gw.proxy_url}/leakguard/ca.pem")
            der = c.get(f"{gw.proxy_url}/leakguard/ca.der")
        assert pem.status_code == 200 and der.status_code == 200
        on_disk = x509.load_pem_x509_certificate(gw.ca_path.read_bytes())
        assert gw.ca_path.read_bytes() in pem.content
        assert x509.load_der_x509_certificate(der.content) == on_disk
        assert der.headers["content-type"] == "application/x-x509-ca-cert"

    def test_pac_is_served(self, plain_gateway: Gateway) -> None:
        gw = plain_gateway
        with httpx.Client(trust_env=False, timeout=10) as c:
            resp = c.get(f"{gw.proxy_url}/proxy.pac")
            wpad = c.get(f"{gw.proxy_url}/wpad.dat")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/x-ns-proxy-autoconfig"
        assert "function FindProxyForURL(url, host)" in resp.text
        assert f'"PROXY 127.0.0.1:{gw.port}"' in resp.text
        assert wpad.text == resp.text

    def test_index_page_links_the_files(self, plain_gateway: Gateway) -> None:
        with httpx.Client(trust_env=False, timeout=10) as c:
            page = c.get(f"{plain_gateway.proxy_url}/").text
        assert "/leakguard/ca.pem" in page and "/proxy.pac" in page

    def test_sigterm_stops_it_cleanly(self, tmp_path: Path) -> None:
        gw = Gateway(state_dir=tmp_path / "var").start()
        assert gw.stop() == 0
        assert "Traceback" not in gw.stderr


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_listening_on_ipv6(tmp_path: Path) -> None:
    with running_gateway(state_dir=tmp_path / "var", listen="[::1]:0") as gw:
        assert gw.host == "::1" and gw.proxy_url == f"http://[::1]:{gw.port}"
        with httpx.Client(trust_env=False, timeout=10) as c:
            pac = c.get(f"{gw.proxy_url}/proxy.pac")
        assert pac.status_code == 200 and f'"PROXY [::1]:{gw.port}"' in pac.text


def test_a_gateway_that_cannot_start_is_reported_with_its_output(tmp_path: Path) -> None:
    gw = Gateway(["--policy", str(tmp_path / "none")], state_dir=tmp_path / "var")
    with pytest.raises(GatewayFailed, match="exited with status 2") as caught:
        gw.start()
    assert "cannot be used" in str(caught.value)  # its stderr, in the failure


# -- reload ---------------------------------------------------------------------------------

BLOCK_CONTACT = """
  - id: e2e-no-phones-to-other
    description: Added by the reload test
    when:
      host: [other.example]
      class: [contact]
    action: block
    message: "已阻止：测试规则。Blocked: e2e reload rule."
"""


MASK_PHONES = """
  - id: e2e-mask-phones-to-other
    description: Added by the reload test
    when:
      host: [other.example]
      class: [contact]
    action: mask
"""


def with_rule(rules_yaml: str, rule: str) -> str:
    head, sep, tail = rules_yaml.partition("rules:\n")
    assert sep
    return head + sep + rule.lstrip("\n") + "\n" + tail


def send_phone(conn: http.client.HTTPConnection, port: int) -> tuple[int, bytes]:
    body = f"tel={PHONE}".encode()
    conn.request(
        "POST",
        f"http://other.example:{port}/form",
        body,
        {"Content-Type": "application/x-www-form-urlencoded", "Host": f"other.example:{port}"},
    )
    resp = conn.getresponse()
    return resp.status, resp.read()


def is_reload(outcome: str):
    return lambda e: e["type"] == "policy.reload" and e.get("outcome") == outcome


class TestReload:
    @pytest.fixture
    def setup(self, tmp_path: Path) -> Iterator[tuple[Gateway, Origin, Path]]:
        policy = e2e_policy(tmp_path / "policy")
        with (
            Origin(OTHER, name="other") as other,
            running_gateway(
                "--policy", str(policy), *resolve_args(NAMES), state_dir=tmp_path / "var"
            ) as gw,
        ):
            yield gw, other, policy

    def test_sighup_reloads_without_dropping_a_connection(self, setup) -> None:
        gw, other, policy = setup
        conn = http.client.HTTPConnection(*gw.address, timeout=10)
        try:
            status, _ = send_phone(conn, other.port)
            assert status == 200  # shipped rules: basic data leaving is recorded
            sock = conn.sock
            assert sock is not None
            local = sock.getsockname()

            rules = policy / "rules.yaml"
            rules.write_text(with_rule(rules.read_text(), MASK_PHONES), encoding="utf-8")
            n = len(gw.events())
            gw.reload()
            gw.wait_for_event(is_reload("loaded"), after=n, timeout=5)

            status, _ = send_phone(conn, other.port)  # on the same keep-alive connection
            assert status == 200
            assert conn.sock is sock and sock.getsockname() == local
        finally:
            conn.close()
        first, second = other.requests
        assert first.text == f"tel={PHONE}"  # the old policy: recorded, forwarded
        assert second.text == f"tel={PHONE_MASKED}"  # the new one: masked
        event = gw.wait_for_event(lambda e: e["rule"] == "e2e-mask-phones-to-other", after=n)
        assert event["action"] == "mask"

    def test_sighup_alone_reloads(self, setup) -> None:
        """No file changed, so only the signal can have caused the event."""
        gw, _, _ = setup
        time.sleep(0.3)
        n = len(gw.events())
        gw.reload()
        event = gw.wait_for_event(is_reload("loaded"), after=n, timeout=3)
        assert tuple(event)[: len(EVENT_FIELDS)] == EVENT_FIELDS, event
        assert event["time"] and event["id"]

    def test_broken_edit_is_refused_and_the_last_good_policy_stays(self, setup) -> None:
        gw, other, policy = setup
        rules = policy / "rules.yaml"
        good = rules.read_text(encoding="utf-8")
        rules.write_text(with_rule(good, BLOCK_CONTACT), encoding="utf-8")
        gw.reload()
        gw.wait_for_event(is_reload("loaded"), timeout=5)

        broken = with_rule(good, BLOCK_CONTACT).replace("action: block", "actoin: block", 1)
        rules.write_text(broken, encoding="utf-8")
        n = len(gw.events())
        gw.reload()
        event = gw.wait_for_event(is_reload("refused"), after=n, timeout=5)
        assert any("actoin" in p and "rules.yaml:" in p for p in event["problems"]), event

        with proxied_client(gw) as c:  # the rule of the last good policy still decides
            resp = c.post(f"http://other.example:{other.port}/form", data={"tel": PHONE})
        assert resp.status_code == 403 and "e2e-no-phones-to-other" in resp.text
        assert other.requests == []
        assert gw.returncode is None

    def test_a_file_edit_is_picked_up_without_a_signal(self, setup) -> None:
        gw, other, policy = setup
        rules = policy / "rules.yaml"
        n = len(gw.events())
        rules.write_text(with_rule(rules.read_text(), BLOCK_CONTACT), encoding="utf-8")
        gw.wait_for_event(is_reload("loaded"), after=n, timeout=8)  # polled every 2 s
        with proxied_client(gw) as c:
            resp = c.post(f"http://other.example:{other.port}/form", data={"tel": PHONE})
        assert resp.status_code == 403 and "e2e-no-phones-to-other" in resp.text
        assert other.requests == []


# -- configuration ----------------------------------------------------------------------------


def test_unknown_config_key_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "leakguard.yaml"
    config.write_text("version: 1\nproxy:\n  listen: 127.0.0.1:0\n  lisen: 127.0.0.1:0\n")
    done = run_gateway_once("--config", str(config), state_dir=tmp_path / "var")
    assert done.returncode == 2, done
    assert f"{config}:4" in done.stderr, done.stderr
    assert "lisen" in done.stderr
    assert "ready" not in done.stdout


def test_broken_policy_at_start_exits_2(tmp_path: Path) -> None:
    policy = e2e_policy(tmp_path / "policy")
    rules = policy / "rules.yaml"
    rules.write_text(rules.read_text().replace("action: block", "actoin: block", 1))
    done = run_gateway_once(
        "--policy", str(policy), "--proxy-listen", "127.0.0.1:0", state_dir=tmp_path / "var"
    )
    assert done.returncode == 2
    assert "rules.yaml:" in done.stderr and "actoin" in done.stderr
