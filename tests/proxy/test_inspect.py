"""The inspection addon with real services, the shipped policy and mitmproxy's test flows."""

from __future__ import annotations

import base64
import gzip
import io
import json
import urllib.parse

import openpyxl
import pytest
from mitmproxy import http, websocket
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons, tflow, tutils
from wsproto.frame_protocol import Opcode

from audit.events import MemoryLog
from proxy.inspect import STREAMED_KEY, Inspect
from proxy.services import Services
from rules.extract import Limits
from rules.policy.holder import PolicyHolder

ID = "11010519491231002X"
ID_MASKED = "110105********002X"
CARD = "6222021234567890128"
PHONE = "13912345678"
OFFICE_CLIENT = ("192.168.1.5", 50000)
PUBLIC_SERVER = ("203.0.113.10", 443)


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def services(log: MemoryLog) -> Services:
    return Services(policy=PolicyHolder("rules/default"), hash_key=b"k" * 32, record=log.record)


def flow_to(
    host: str,
    content: bytes = b"",
    *,
    ctype: str = "",
    method: bytes = b"POST",
    path: bytes = b"/upload",
    scheme: bytes = b"http",
    headers: dict[str, str] | None = None,
) -> http.HTTPFlow:
    hdrs = http.Headers(host=host, **({"content-type": ctype} if ctype else {}))
    for k, v in (headers or {}).items():
        hdrs[k] = v
    port = 443 if scheme == b"https" else 80
    req = tutils.treq(
        host=host, port=port, method=method, scheme=scheme, path=path, headers=hdrs, content=b""
    )
    req.raw_content = content
    if content and "transfer-encoding" not in hdrs:
        req.headers["content-length"] = str(len(content))
    f = tflow.tflow(req=req)
    f.client_conn.peername = OFFICE_CLIENT
    f.server_conn.peername = None
    f.server_conn.address = (host, port)
    f.metadata["leakguard.dest_ip"] = PUBLIC_SERVER[0]
    return f


async def run(services: Services, f: http.HTTPFlow) -> http.HTTPFlow:
    addon = Inspect(services)
    with taddons.context(addon):
        addon.requestheaders(f)
        if not f.response and not f.error:
            await addon.request(f)
    return f


def assert_blocked(f: http.HTTPFlow, log: MemoryLog, rule: str, *raw: str) -> str:
    assert f.response is not None and f.response.status_code == 403, f.response
    page = f.response.get_text()
    assert f.response.headers["X-Leakguard-Rule"] == rule
    events = json.dumps(log.events, ensure_ascii=False)
    for value in raw:
        assert value not in page
        assert value not in events
    assert log.events[-1]["rule"] == rule and log.events[-1]["incident"]
    return page


def form(**fields: str) -> bytes:
    return urllib.parse.urlencode(fields).encode()


async def test_urlencoded_form_with_an_id_to_personal_webmail_is_blocked(services, log):
    f = await run(services, flow_to("mail.qq.com", form(id_no=ID), ctype=FORM))
    page = assert_blocked(f, log, "identifying-to-personal-channels", ID)
    assert ID_MASKED in page
    assert log.events[-1]["action"] == "block"
    assert log.events[-1]["source_ip"] == "192.168.1.5"


FORM = "application/x-www-form-urlencoded"


async def test_json_api_body(services, log):
    body = json.dumps({"customer": {"card": CARD, "note": "还款"}}).encode()
    f = await run(services, flow_to("chatgpt.com", body, ctype="application/json"))
    assert_blocked(f, log, "identifying-to-personal-channels", CARD)


async def test_json_client_gets_a_json_block(services, log):
    f = flow_to("mail.qq.com", form(id_no=ID), ctype=FORM, headers={"accept": "application/json"})
    await run(services, f)
    assert json.loads(f.response.content)["incident"] == log.events[-1]["incident"]


def multipart(*parts: tuple[str, str | None, str, bytes]) -> tuple[bytes, str]:
    boundary = "----leakguardtest"
    out = io.BytesIO()
    for name, filename, ctype, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode())
        if ctype:
            out.write(f"Content-Type: {ctype}\r\n".encode())
        out.write(b"\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def xlsx(*rows: list[str]) -> bytes:
    wb = openpyxl.Workbook()
    for row in rows:
        wb.active.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


async def test_multipart_text_file(services, log):
    body, ctype = multipart(("file", "clients.txt", "text/plain", f"张三 {ID}".encode()))
    f = await run(services, flow_to("pan.baidu.com", body, ctype=ctype))
    assert_blocked(f, log, "identifying-to-personal-channels", ID)
    assert "clients.txt" in log.events[-1]["findings"][0]["location"]


async def test_multipart_xlsx(services, log):
    sheet = xlsx(["姓名", "身份证号"], ["张三", ID])
    ctype_x = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    body, ctype = multipart(("file", "债务清单.xlsx", ctype_x, sheet))
    f = await run(services, flow_to("pan.baidu.com", body, ctype=ctype))
    assert_blocked(f, log, "identifying-to-personal-channels", ID)


async def test_file_name_carrying_an_id_is_redacted_in_locations(services, log):
    body, ctype = multipart(("file", f"{ID}.txt", "text/plain", f"号码 {ID}".encode()))
    f = await run(services, flow_to("pan.baidu.com", body, ctype=ctype))
    page = assert_blocked(f, log, "identifying-to-personal-channels", ID)
    assert f"{ID_MASKED}.txt" in page


async def test_gzip_compressed_body(services, log):
    body = gzip.compress(form(id_no=ID))
    f = await run(
        services, flow_to("mail.qq.com", body, ctype=FORM, headers={"content-encoding": "gzip"})
    )
    assert_blocked(f, log, "identifying-to-personal-channels", ID)


async def test_corrupt_gzip_fails_closed(services, log):
    body = gzip.compress(form(note="hello"))[:-12] + b"garbage!"
    f = await run(
        services, flow_to("example.com", body, ctype=FORM, headers={"content-encoding": "gzip"})
    )
    assert_blocked(f, log, "fail-closed")
    assert "could not be decoded" in log.events[-1]["reason"]


async def test_base64_inside_json(services, log):
    encoded = base64.b64encode(f"客户身份证号码：{ID}，请核对".encode()).decode()
    body = json.dumps({"attachment": encoded}).encode()
    f = await run(services, flow_to("wx.qq.com", body, ctype="application/json"))
    assert_blocked(f, log, "identifying-to-personal-channels", ID)


async def test_id_split_across_two_form_fields(services, log):
    f = await run(services, flow_to("mail.qq.com", form(id1=ID[:12], id2=ID[12:]), ctype=FORM))
    page = assert_blocked(f, log, "identifying-to-personal-channels", ID)
    assert ID_MASKED in page
    assert log.events[-1]["findings"][0]["location"] == "form fields joined"


async def test_url_query_carrying_an_id(services, log):
    path = f"/cgi-bin/compose?to=me&body=%E8%BA%AB%E4%BB%BD%E8%AF%81{ID}".encode()
    f = await run(services, flow_to("mail.qq.com", method=b"GET", path=path))
    assert_blocked(f, log, "identifying-to-personal-channels", ID)


async def test_raw_put(services, log):
    f = await run(services, flow_to("paste.ee", f"身份证 {ID}\n".encode(), method=b"PUT"))
    assert_blocked(f, log, "identifying-to-personal-channels", ID)


async def test_plain_upload_without_findings_is_forwarded_and_recorded_as_sent(services, log):
    body = form(q="weather")
    f = await run(services, flow_to("example.com", body, ctype=FORM))
    assert f.response is None
    [event] = log.events  # every upload is in the record: the access log, the transfer watch
    assert (event["action"], event["findings"], event["size"]) == ("allow", (), len(body))


async def test_a_request_that_carries_nothing_adds_no_event_of_its_own(services, log):
    f = await run(services, flow_to("example.com", method=b"GET", path=b"/weather"))
    assert f.response is None and not log.events  # its connection's proxy.connect covers it


async def test_id_upload_to_the_law_firm_over_https_is_allowed(services, log):
    body, ctype = multipart(("file", "clients.txt", "text/plain", f"张三 {ID}".encode()))
    f = await run(services, flow_to("portal.lawfirm.example", body, ctype=ctype, scheme=b"https"))
    assert f.response is None
    assert f.request.raw_content == body
    assert log.events[-1]["rule"] == "important-to-party-over-https"
    assert log.events[-1]["action"] == "allow"


async def test_phone_to_the_law_firm_is_masked(services, log):
    f = flow_to(
        "portal.lawfirm.example", form(contact=PHONE, note="hi"), ctype=FORM, scheme=b"https"
    )
    await run(services, f)
    assert f.response is None
    sent = f.request.get_text()
    assert "139****5678" in urllib.parse.unquote_plus(sent) and PHONE not in sent
    assert f.request.headers["content-length"] == str(len(f.request.raw_content))
    assert log.events[-1]["action"] == "mask" and PHONE not in json.dumps(log.events)


async def test_phone_in_gzip_json_to_the_law_firm_is_masked_and_recompressed(services, log):
    body = gzip.compress(json.dumps({"tel": PHONE}).encode())
    f = flow_to(
        "portal.lawfirm.example",
        body,
        ctype="application/json",
        scheme=b"https",
        headers={"content-encoding": "gzip"},
    )
    await run(services, f)
    assert f.response is None
    assert json.loads(gzip.decompress(f.request.raw_content)) == {"tel": "139****5678"}


async def test_phone_in_an_xlsx_to_the_law_firm_cannot_be_masked_so_is_blocked(services, log):
    ctype_x = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    body, ctype = multipart(("file", "contacts.xlsx", ctype_x, xlsx(["电话", PHONE])))
    f = await run(services, flow_to("portal.lawfirm.example", body, ctype=ctype, scheme=b"https"))
    assert_blocked(f, log, log.events[-1]["rule"], PHONE)
    assert "cannot be rewritten" in log.events[-1]["reason"]


async def test_buffered_body_over_the_limit_is_refused_with_413(log):
    """Chunked, with no stream_large_bodies: mitmproxy buffered it, too large to judge."""
    small = Services(
        policy=PolicyHolder("rules/default"),
        hash_key=b"k" * 32,
        record=log.record,
        limits=Limits(max_input_bytes=1024),
    )
    chunked = {"transfer-encoding": "chunked"}
    f = await run(small, flow_to("example.com", b"x" * 2048, method=b"PUT", headers=chunked))
    assert f.response.status_code == 413
    assert (
        log.events[-1]["rule"] == "fail-closed" and "inspection limit" in log.events[-1]["reason"]
    )


async def streamed(services: Services, f: http.HTTPFlow, chunks: list[bytes]) -> bytes:
    """Drive a flow as mitmproxy does with stream_large_bodies=1k: headers, chunks, end."""
    addon = Inspect(services)
    with taddons.context(Proxyserver(), addon) as tctx:
        tctx.configure(addon, stream_large_bodies="1k")
        assert addon.stream_threshold == 1024
        f.request.stream = True  # what mitmproxy's body-size check sets before the hook
        addon.requestheaders(f)
        assert callable(f.request.stream) and f.metadata[STREAMED_KEY]
        sent = b"".join(piece for c in [*chunks, b""] for piece in f.request.stream(c))
        await addon.request(f)  # the hook after a streamed body: must not act again
    return sent


async def test_streamed_body_with_an_id_is_never_forwarded(services, log):
    data = b"a" * 5000 + f"身份证 {ID} ".encode() + b"b" * 5000
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    f = flow_to("pan.baidu.com", data, method=b"PUT")
    assert await streamed(services, f, chunks) == b""
    assert f.error is not None and f.response is None  # killed
    assert log.events[-1]["rule"] == "identifying-to-personal-channels"
    assert ID not in json.dumps(log.events, ensure_ascii=False)


async def test_streamed_clean_body_is_forwarded_whole(services, log):
    data = b"plain text " * 1000
    f = flow_to("example.com", data, method=b"PUT")
    assert await streamed(services, f, [data[:4000], data[4000:]]) == data
    assert f.error is None


async def test_declared_body_over_the_limit_is_streamed_not_refused(log):
    """Larger than can be buffered for inspection: the addon streams it itself."""
    small = Services(
        policy=PolicyHolder("rules/default"),
        hash_key=b"k" * 32,
        record=log.record,
        limits=Limits(max_input_bytes=4096),
    )
    data = b"x" * 3000 + b"y" * 3000 + b"z" * 10
    f = flow_to("example.com", data, method=b"PUT")
    addon = Inspect(small)
    with taddons.context(addon):  # no stream_large_bodies at all
        addon.requestheaders(f)
        assert callable(f.request.stream) and f.metadata[STREAMED_KEY]
        chunks = (data[:3000], data[3000:], b"")
        sent = b"".join(piece for c in chunks for piece in f.request.stream(c))
    assert sent == data and f.error is None
    assert [(e["action"], e["findings"], e["size"]) for e in log.events] == [
        ("allow", (), len(data))
    ]


def websocket_flow(host: str) -> http.HTTPFlow:
    f = tflow.twebsocketflow()
    f.request.host = host
    f.request.headers["host"] = host
    f.client_conn.peername = OFFICE_CLIENT
    f.metadata["leakguard.dest_ip"] = PUBLIC_SERVER[0]
    return f


async def test_websocket_message_with_an_id_is_dropped_and_the_socket_closed(services, log):
    f = websocket_flow("wx.qq.com")
    addon = Inspect(services)
    with taddons.context(addon):
        msg = websocket.WebSocketMessage(Opcode.TEXT, True, f'{{"msg":"{ID}"}}'.encode())
        f.websocket.messages.append(msg)
        await addon.websocket_message(f)
        assert msg.dropped
        assert f.websocket.close_code == 1008
        later = websocket.WebSocketMessage(Opcode.TEXT, True, b"hello")
        f.websocket.messages.append(later)
        await addon.websocket_message(f)
        assert later.dropped
    assert log.events[-1]["type"] == "websocket.message"
    assert log.events[-1]["channel"] == "websocket"
    assert log.events[-1]["rule"] == "identifying-to-personal-channels"
    assert ID not in json.dumps(log.events, ensure_ascii=False)


async def test_websocket_message_from_the_server_is_not_inspected(services, log):
    f = websocket_flow("wx.qq.com")
    addon = Inspect(services)
    with taddons.context(addon):
        msg = websocket.WebSocketMessage(Opcode.TEXT, False, ID.encode())
        f.websocket.messages.append(msg)
        await addon.websocket_message(f)
    assert not msg.dropped and not log.events


def test_destination_from_the_isolation_addon_metadata(services):
    from proxy.inspect import destination_ip

    f = flow_to("example.com")
    del f.metadata["leakguard.dest_ip"]
    f.metadata["leakguard.destination"] = {"ip": "198.51.100.7", "port": 80}
    assert str(destination_ip(f)) == "198.51.100.7"
    del f.metadata["leakguard.destination"]
    assert destination_ip(f) is None  # a name, not an address: the policy uses the host


async def test_clean_websocket_messages_are_summed_into_one_event(services, log, monkeypatch):
    """A chat sends hundreds of messages: the clean ones become one event with their bytes,
    at close, or as soon as the sum reaches WS_TALLY_BYTES (here 100), for the transfer watch."""
    import proxy.inspect

    monkeypatch.setattr(proxy.inspect, "WS_TALLY_BYTES", 100)
    f = websocket_flow("wx.qq.com")
    addon = Inspect(services)
    with taddons.context(addon):
        for text in (b"hello", b"see you at three", b"x" * 90, b"bye"):
            f.websocket.messages.append(websocket.WebSocketMessage(Opcode.TEXT, True, text))
            await addon.websocket_message(f)
        f.websocket.messages.append(websocket.WebSocketMessage(Opcode.TEXT, False, b"server"))
        await addon.websocket_message(f)
        assert [e["size"] for e in log.events] == [5 + 16 + 90]  # the third crossed 100
        addon.websocket_end(f)
        addon.websocket_end(f)  # nothing left to record twice
    assert [(e["type"], e["action"], e["size"]) for e in log.events] == [
        ("websocket.message", "allow", 111),
        ("websocket.message", "allow", 3),
    ]
    assert log.events[0]["detail"].startswith("3 client message(s) with nothing found")
    assert log.events[1]["detail"].endswith("summed at close")
    assert log.events[0]["destination"] == "wx.qq.com" and log.events[0]["channel"] == "websocket"
    assert log.events[0]["time"] <= log.events[1]["time"]  # each dated at its last message
