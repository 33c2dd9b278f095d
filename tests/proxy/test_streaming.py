"""Streamed request bodies: judged chunk by chunk, never waved through, memory bounded.

The first part drives the inspection addon as mitmproxy does (requestheaders,
then the `flow.request.stream` callable with each chunk and b"" at the end),
with the shipped policy: exact chunk boundaries, every byte that would go
upstream visible. The second part runs a real mitmproxy with the addon in
front of an origin on loopback that records every byte it received.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import random
import shutil
import socket
import threading
import time
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import brotli
import h11
import httpx
import openpyxl
import pytest
import zstandard
from mitmproxy import http, options
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons, tflow, tutils
from mitmproxy.tools.dump import DumpMaster
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request, TextMessage

from audit.events import MemoryLog
from proxy.inspect import STREAMED_KEY, Inspect
from proxy.services import Services
from proxy.streaming import StreamedBody
from rules.extract import Limits
from rules.extract.limits import size_text
from rules.policy.holder import PolicyHolder
from rules.stream import STEP, WINDOW

DEFAULT = Path(__file__).resolve().parents[2] / "rules" / "default"
ID = "11010519491231002X"  # a valid resident ID (checksum X), generated
PHONE = "13912345678"
PERSONAL = "identifying-to-personal-channels"
OFFICE_CLIENT = ("192.168.1.5", 50000)
PUBLIC = "203.0.113.10"
THRESHOLD = 64 * 1024  # stream_large_bodies in these tests
MiB = 2**20

# Filler without digits (any digit the origin receives comes from the value), varied enough
# that it compresses like prose, not like a bomb.
_PROSE = (
    "债务人 已按 协议 分期 还款 本月 无 逾期 记录 客户 要求 邮寄 纸质 对账单 分行 确认 计划 "
    "合同 金额 利息 减免 申请 审批 通过 联系 外访 催收 结清 证明 the debtor agreed to settle "
    "balance by end of quarter branch confirmed plan customer asked for a paper statement "
    "interest waiver approved visit collection letter closing certificate，。；：、"
)
WORDS = _PROSE.split()


def filler(size: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    out, length = [], 0
    while length < size:
        words = rng.choices(WORDS, k=4096)
        piece = " ".join(words).encode()
        out.append(piece)
        length += len(piece)
    return b"".join(out)[:size].decode("utf-8", "ignore").encode()


def longest_id_prefix(data: bytes, value: str = ID) -> int:
    return max((k for k in range(1, len(value) + 1) if value[:k].encode() in data), default=0)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog()


def make_services(log: MemoryLog, policy: Path = DEFAULT, **limits) -> Services:
    return Services(
        policy=PolicyHolder(policy),
        hash_key=b"k" * 32,
        record=log.record,
        limits=Limits(**limits),
    )


@pytest.fixture
def services(log: MemoryLog) -> Services:
    return make_services(log)


def upload(
    host: str,
    *,
    size: int | None,
    ctype: str = "text/plain; charset=utf-8",
    scheme: bytes = b"http",
    headers: dict[str, str] | None = None,
) -> http.HTTPFlow:
    """A flow whose body will be streamed; `size` None means chunked."""
    hdrs = http.Headers(host=host, **{"content-type": ctype})
    if size is None:
        hdrs["transfer-encoding"] = "chunked"
    else:
        hdrs["content-length"] = str(size)
    for k, v in (headers or {}).items():
        hdrs[k] = v
    port = 443 if scheme == b"https" else 80
    req = tutils.treq(
        host=host, port=port, method=b"POST", scheme=scheme, path=b"/upload", headers=hdrs
    )
    req.raw_content = None
    f = tflow.tflow(req=req)
    f.client_conn.peername = OFFICE_CLIENT
    f.server_conn.peername = None
    f.metadata["leakguard.dest_ip"] = PUBLIC
    return f


class Driven:
    """One streamed flow, driven chunk by chunk; `sent` is what went upstream, per call."""

    def __init__(self, services: Services, f: http.HTTPFlow, threshold: str = "64k") -> None:
        self.addon = Inspect(services)
        self.flow = f
        self._ctx = taddons.context(Proxyserver(), self.addon)
        tctx = self._ctx.__enter__()
        tctx.configure(self.addon, stream_large_bodies=threshold)
        f.request.stream = True  # what mitmproxy's body-size check sets before the hook
        self.addon.requestheaders(f)
        assert callable(f.request.stream) and f.metadata[STREAMED_KEY]
        self.judge: StreamedBody = f.request.stream
        self.sent: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        out = self.judge(chunk)
        assert isinstance(out, list) and all(out)  # never b"": an empty chunk ends the body
        self.sent.append(b"".join(out))
        return self.sent[-1]

    def run(self, chunks: Iterable[bytes]) -> bytes:
        for chunk in chunks:
            self.feed(chunk)
        self.feed(b"")
        self._ctx.__exit__(None, None, None)
        return b"".join(self.sent)

    @property
    def killed(self) -> bool:
        return self.flow.error is not None and self.flow.error.msg == "Connection killed."


def drive(services: Services, f: http.HTTPFlow, chunks: Iterable[bytes]) -> tuple[bytes, Driven]:
    d = Driven(services, f)
    return d.run(chunks), d


# -- text streams -----------------------------------------------------------------------------


def test_id_deep_in_a_chunked_upload_stops_the_flow_mid_stream(services, log):
    body = filler(3 * MiB) + f"客户身份证 {ID}，请核对。".encode() + filler(2 * MiB)
    at = body.index(ID.encode())
    d = Driven(services, upload("mail.qq.com", size=None))
    for chunk in pieces(body, 64 * 1024):
        d.feed(chunk)
        if d.judge.phase == "done":
            break
    d.run([])
    sent = b"".join(d.sent)
    assert d.killed and d.flow.response is None
    assert 2 * MiB < len(sent) < at  # the clean prefix went on; nothing of the value
    assert sent == body[: len(sent)]
    assert longest_id_prefix(sent) == 0
    assert d.judge.received < len(body)  # stopped before the body ended
    (event,) = log.events
    assert (event["action"], event["rule"]) == ("block", PERSONAL)
    assert event["incident"]
    received, sent = d.judge.received, len(sent)
    assert event["detail"] == (
        f"blocked mid-stream after {received:,} bytes ({size_text(received)}) of the request "
        f"body; {sent:,} bytes ({size_text(sent)}) had gone upstream, judged clean"
    )
    assert ID not in json.dumps(event, ensure_ascii=False)


def test_a_value_split_across_two_chunks_is_found_at_every_position(services, log):
    head = filler(4 * STEP) + "身份证 ".encode()  # several scan steps before the value
    body = head + ID.encode() + "，".encode() + filler(STEP)
    at = len(head)
    for split in range(at - 2, at + len(ID) + 2):
        log.events.clear()
        d = Driven(services, upload("pan.baidu.com", size=len(body)))
        first = d.feed(body[:split])
        assert 0 < len(first) < at  # the clean text before it went on
        sent = first + d.run([body[split:]])
        assert d.killed, f"split at {split - at}"
        assert longest_id_prefix(sent) == 0, f"split at {split - at}: {sent[-40:]!r}"
        assert [e["rule"] for e in log.events] == [PERSONAL]


def test_a_large_clean_body_passes_byte_identical_and_progressively(services, log):
    words = filler(6 * MiB).split(b" ")
    body = b"".join(
        f"{i:08d},HT-2024-{i % 9999:04d},{i * 37 % 100000 / 100:.2f},".encode()
        + b" ".join(words[i * 20 : i * 20 + 20])
        + b"\n"
        for i in range(60_000)
    )
    sizes = [1, 4096, 65536, 100_003, 7]
    chunks, pos, i = [], 0, 0
    while pos < len(body):
        chunks.append(body[pos : pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    sent, d = drive(services, upload("example.com", size=None, ctype="text/csv"), chunks)
    assert sent == body
    assert not d.killed and not log.events
    assert sum(map(len, d.sent[:-1])) > len(body) - 2 * (STEP + WINDOW)  # not all at the end


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data)


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data)


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def _br(data: bytes) -> bytes:
    return brotli.compress(data, quality=5)


CODINGS = {"gzip": _gzip, "deflate": _deflate, "br": _br, "zstd": _zstd}


def _decoded_prefix(coding: str, raw: bytes) -> bytes:
    """What the origin could decode from the raw bytes it received (a prefix)."""
    if coding in ("gzip", "deflate"):
        return zlib.decompressobj(16 + 15 if coding == "gzip" else 15).decompress(raw)
    if coding == "br":
        try:
            return brotli.Decompressor().process(raw)
        except brotli.error:
            return b""
    out = io.BytesIO()
    with zstandard.ZstdDecompressor().stream_writer(out, closefd=False) as w:
        w.write(raw)
    return out.getvalue()


@pytest.mark.parametrize("coding", CODINGS)
def test_a_compressed_streamed_body_with_an_id_is_caught(services, log, coding):
    text = filler(6 * MiB) + f"身份证号 {ID}\n".encode() + filler(MiB)
    raw = CODINGS[coding](text)
    f = upload("mail.qq.com", size=len(raw), headers={"content-encoding": coding})
    sent, d = drive(services, f, pieces(raw, 16 * 1024))
    assert d.killed
    assert log.events[-1]["rule"] == PERSONAL
    assert longest_id_prefix(_decoded_prefix(coding, sent)) == 0


@pytest.mark.parametrize("coding", CODINGS)
def test_a_compressed_clean_body_passes_byte_identical(services, log, coding):
    raw = CODINGS[coding](filler(4 * MiB))
    f = upload("example.com", size=None, headers={"content-encoding": coding})
    sent, d = drive(services, f, pieces(raw, 8 * 1024))
    assert sent == raw and not d.killed and not log.events


def test_a_corrupt_compressed_stream_fails_closed(services, log):
    raw = gzip.compress(filler(MiB))
    raw = raw[:100_000] + b"\xff" * 64 + raw[100_064:]
    f = upload("example.com", size=None, headers={"content-encoding": "gzip"})
    _, d = drive(services, f, pieces(raw, 16 * 1024))
    assert d.killed
    assert log.events[-1]["rule"] == "fail-closed"
    assert "cannot be inspected" in log.events[-1]["reason"]


def test_a_bomb_is_stopped_by_the_ratio(services, log):
    raw = gzip.compress(b" " * (400 * MiB))
    f = upload("example.com", size=len(raw), headers={"content-encoding": "gzip"})
    _, d = drive(services, f, pieces(raw, 64 * 1024))
    assert d.killed and "200:1" in log.events[-1]["reason"]


def test_held_back_memory_stays_bounded_over_200_mb(services, log):
    chunk = filler(MiB)
    total = 200
    d = Driven(services, upload("example.com", size=total * MiB))
    held = buffered = 0
    for _ in range(total):
        d.feed(chunk)
        held = max(held, d.judge.held)
        buffered = max(buffered, d.judge.buffered)
    assert len(d.run([])) == total * MiB and not d.killed
    # One chunk plus one scan step and window of text, whatever the body's size.
    assert held <= MiB + 3 * (STEP + WINDOW), held
    assert buffered <= 2 * MiB + 4 * (STEP + WINDOW), buffered


# -- masking, small bodies ----------------------------------------------------------------------


def test_values_to_mask_in_a_streamed_body_block_it(services, log):
    body = filler(MiB) + f"联系电话 {PHONE}\n".encode() + filler(MiB)
    f = upload("portal.lawfirm.example", size=len(body), scheme=b"https")
    sent, d = drive(services, f, pieces(body, 64 * 1024))
    assert d.killed and longest_id_prefix(sent, PHONE) < 5
    event = log.events[-1]
    assert event["action"] == "block"
    assert "values to mask were found in a streamed body" in event["reason"]


def test_a_chunked_body_within_the_threshold_is_judged_whole_and_masked(services, log):
    body = f"contact={PHONE}&note=hi".encode()
    f = upload("portal.lawfirm.example", size=None, ctype="application/x-www-form-urlencoded",
               scheme=b"https")  # fmt: skip
    sent, d = drive(services, f, [body[:10], body[10:]])
    assert d.sent[:-1] == [b"", b""]  # nothing before the verdict
    assert PHONE not in sent.decode() and "139****5678" in sent.decode()
    assert log.events[-1]["action"] == "mask"


# -- containers ---------------------------------------------------------------------------------


def xlsx(*rows: list[str], padding: int = 0) -> bytes:
    wb = openpyxl.Workbook()
    for row in rows:
        wb.active.append(row)
    for i in range(padding):  # enough cells to pass the streaming threshold
        wb.active.append([f"行{i}", "备注" * 20])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def stored_zip(size: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("data.bin", bytes(range(256)) * (size // 256))
    return out.getvalue()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_a_zip_larger_than_can_be_opened_is_refused_at_once(log):
    small = make_services(log, max_input_bytes=MiB)
    data = stored_zip(3 * MiB)
    f = upload("example.com", size=len(data), ctype="application/zip")
    sent, d = drive(small, f, pieces(data, 64 * 1024))
    assert sent == b"" and d.killed
    assert d.judge.received < 256 * 1024  # refused once its first bytes said what it is
    assert log.events[-1]["rule"] == "fail-closed"
    assert log.events[-1]["reason"] == (
        "a 3.0 MiB zip archive is larger than the 1 MiB that can be opened for inspection"
    )


def test_a_chunked_zip_is_refused_when_it_passes_the_limit(log):
    small = make_services(log, max_input_bytes=MiB)
    data = stored_zip(3 * MiB)
    sent, d = drive(small, upload("example.com", size=None), pieces(data, 64 * 1024))
    assert sent == b"" and d.killed
    assert MiB < d.judge.received < MiB + 128 * 1024
    assert "zip archive of more than 1 MiB" in log.events[-1]["reason"]


def test_a_spreadsheet_with_an_id_is_held_whole_and_blocked(services, log):
    data = xlsx(["姓名", "身份证号"], ["张三", ID], padding=8000)
    assert len(data) > THRESHOLD
    sent, d = drive(services, upload("pan.baidu.com", size=None, ctype=XLSX), pieces(data, 8192))
    assert sent == b"" and d.killed
    assert log.events[-1]["rule"] == PERSONAL
    assert "streamed zip archive held back until judged whole" in log.events[-1]["detail"]


def test_a_clean_spreadsheet_is_held_whole_then_forwarded_identical(services, log):
    data = xlsx(["姓名", "备注"], ["张三", "无"], padding=8000)
    sent, d = drive(services, upload("pan.baidu.com", size=len(data), ctype=XLSX),
                    pieces(data, 8192))  # fmt: skip
    assert sent == data and not d.killed
    assert all(not piece for piece in d.sent[:-1])  # nothing before the end


def multipart(*parts: tuple[str, str | None, str, bytes]) -> tuple[bytes, str]:
    boundary = "----leakguardstream"
    out = io.BytesIO()
    for name, filename, ctype, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.write(f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode())
        if ctype:
            out.write(f"Content-Type: {ctype}\r\n".encode())
        out.write(b"\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def test_multipart_text_part_with_an_id_is_stopped_mid_stream(services, log):
    note = filler(2 * MiB) + f"身份证 {ID}\n".encode() + filler(2 * MiB)
    body, ctype = multipart(("note", None, "", b"hello"), ("file", "notes.txt", "text/plain", note))
    sent, d = drive(services, upload("pan.baidu.com", size=None, ctype=ctype), pieces(body, 65536))
    assert d.killed and len(sent) > 0 and longest_id_prefix(sent) == 0
    assert "mid-stream" in log.events[-1]["detail"]


def test_multipart_spreadsheet_part_is_extracted_before_it_goes(services, log):
    sheet = xlsx(["姓名", "身份证号"], ["张三", ID])
    body, ctype = multipart(
        ("note", None, "", filler(MiB)), ("file", "客户.xlsx", XLSX, sheet), ("x", None, "", b"y")
    )
    sent, d = drive(services, upload("pan.baidu.com", size=None, ctype=ctype), pieces(body, 65536))
    assert d.killed
    assert b"PK\x03\x04" not in sent  # not a byte of the spreadsheet went
    event = log.events[-1]
    assert event["rule"] == PERSONAL
    assert "客户.xlsx" in event["findings"][0]["location"]


def test_clean_multipart_with_a_spreadsheet_passes_identical(services, log):
    sheet = xlsx(["姓名", "备注"], ["张三", "无"])
    body, ctype = multipart(
        ("note", None, "", filler(MiB)), ("file", "a.xlsx", XLSX, sheet), ("end", None, "", b"!")
    )
    sent, d = drive(services, upload("pan.baidu.com", size=len(body), ctype=ctype),
                    pieces(body, 4096))  # fmt: skip
    assert sent == body and not d.killed
    assert [(e["action"], e["findings"], e["size"]) for e in log.events] == [
        ("allow", (), len(body))
    ]


def test_a_multipart_file_larger_than_can_be_opened_is_refused(log):
    small = make_services(log, max_input_bytes=MiB)
    body, ctype = multipart(("file", f"{ID}.zip", "application/zip", stored_zip(2 * MiB)))
    sent, d = drive(small, upload("example.com", size=len(body), ctype=ctype), pieces(body, 65536))
    assert d.killed and b"PK" not in sent
    reason = log.events[-1]["reason"]
    assert "zip archive '110105********002X.zip' is larger than the 1 MiB" in reason
    assert ID not in reason


# -- the request hook runs off the event loop -----------------------------------------------------


def buffered_flow(host: str, body: bytes) -> http.HTTPFlow:
    f = upload(host, size=len(body))
    f.request.raw_content = body
    return f


async def test_a_large_buffered_scan_leaves_the_event_loop_free(services, log):
    body = filler(8 * MiB) + f"身份证 {ID}".encode()
    f = buffered_flow("mail.qq.com", body)
    addon = Inspect(services)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    with taddons.context(addon):
        started = time.monotonic()
        await addon.request(f)
        seconds = time.monotonic() - started
    ticker.cancel()
    assert f.response is not None and f.response.status_code == 403
    assert seconds > 0.05 and ticks >= seconds / 0.005 / 4  # the loop kept turning


async def test_a_scan_that_takes_too_long_fails_closed(log):
    slow = make_services(log, max_seconds=0.01)
    f = buffered_flow("example.com", filler(8 * MiB))
    addon = Inspect(slow)
    with taddons.context(addon):
        await addon.request(f)
    assert f.response is not None and f.response.status_code == 403
    assert log.events[-1]["rule"] == "fail-closed"
    assert log.events[-1]["reason"] == "inspection did not finish within 0.01 s"


# -- through a real mitmproxy -------------------------------------------------------------------


class Origin:
    """HTTP/1.1 on loopback (h11): records the raw bytes and each request's body, complete or
    not; answers 200 once a body has ended."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.raw = bytearray()
        self.requests: list[tuple[bytes, bool]] = []  # (body, complete)
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        h = h11.Connection(h11.SERVER)
        body, complete = bytearray(), False
        conn.settimeout(20)
        try:
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    data = conn.recv(65536)
                    self.raw += data
                    h.receive_data(data)
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    complete = True
                    answer = h11.Response(status_code=200, headers=[("content-length", "2")])
                    conn.sendall(h.send(answer) + h.send(h11.Data(data=b"ok")))
                    conn.sendall(h.send(h11.EndOfMessage()))
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    break
        except (h11.RemoteProtocolError, OSError):
            pass
        finally:
            self.requests.append((bytes(body), complete))
            conn.close()
            self.done.set()

    def close(self) -> None:
        self._sock.close()


class WebSocketOrigin:
    """A WebSocket echo server on loopback (wsproto) that records the client's messages."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.messages: list[str] = []
        self.close_code: int | None = None
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self._sock.accept()
        ws = WSConnection(ConnectionType.SERVER)
        conn.settimeout(20)
        try:
            while True:
                data = conn.recv(65536)
                ws.receive_data(data or None)
                for event in ws.events():
                    if isinstance(event, Request):
                        conn.sendall(ws.send(AcceptConnection()))
                    elif isinstance(event, Message):
                        self.messages.append(event.data)
                        conn.sendall(ws.send(TextMessage(event.data)))
                    elif isinstance(event, CloseConnection):
                        self.close_code = event.code
                        conn.sendall(ws.send(event.response()))
                        return
                if not data:
                    return
        except OSError:
            pass
        finally:
            conn.close()
            self.done.set()

    def close(self) -> None:
        self._sock.close()


class PinDestination:
    """Stands in for proxy.isolation: the destination's address as the policy should see it
    (the origin is on loopback, the policy must see a public server)."""

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.metadata["leakguard.dest_ip"] = PUBLIC


class Proxy:
    def __init__(self, master: DumpMaster, task: asyncio.Task, port: int) -> None:
        self.master, self.task, self.port = master, task, port
        self.url = f"http://127.0.0.1:{port}"


async def start_proxy(services: Services, confdir: Path) -> Proxy:
    opts = options.Options(listen_host="127.0.0.1", listen_port=0, confdir=str(confdir))
    master = DumpMaster(opts, with_termlog=False, with_dumper=False)
    master.options.update(stream_large_bodies=str(THRESHOLD), connection_strategy="lazy")
    master.addons.add(PinDestination(), Inspect(services))
    task = asyncio.create_task(master.run())
    proxyserver = master.addons.get("proxyserver")
    for _ in range(500):
        if proxyserver.listen_addrs():
            break
        await asyncio.sleep(0.01)
    return Proxy(master, task, proxyserver.listen_addrs()[0][1])


def policy_allowing_ports(tmp_path: Path, *ports: int) -> Path:
    """The shipped policy, with the origins' ports reachable from the office like 80 and 443."""
    policy = tmp_path / "policy"
    shutil.copytree(DEFAULT, policy)
    zones = (policy / "zones.yaml").read_text("utf-8")
    assert "ports: [80, 443]" in zones
    web = ", ".join(map(str, (80, 443, *ports)))
    (policy / "zones.yaml").write_text(zones.replace("ports: [80, 443]", f"ports: [{web}]"))
    return policy


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.log = MemoryLog()
        self.origin = Origin()
        self.ws_origin = WebSocketOrigin()
        policy = policy_allowing_ports(tmp_path, self.origin.port, self.ws_origin.port)
        self.services = make_services(self.log, policy)

    async def post(self, body: Iterable[bytes] | bytes, **headers: str) -> httpx.Response | None:
        """POST through the proxy to the origin, as mail.qq.com; None if the proxy cut it."""

        async def chunks():
            for chunk in body:
                yield chunk
                await asyncio.sleep(0.001)

        content = body if isinstance(body, bytes) else chunks()
        async with httpx.AsyncClient(proxy=self.proxy.url, timeout=20) as client:
            try:
                return await client.post(
                    f"http://127.0.0.1:{self.origin.port}/upload",
                    content=content,
                    headers={"Host": "mail.qq.com", **headers},
                )
            except httpx.TransportError:
                return None


@pytest.fixture
async def rig(tmp_path: Path):
    r = Rig(tmp_path)
    r.proxy = await start_proxy(r.services, tmp_path / "mitmproxy")
    try:
        yield r
    finally:
        r.proxy.master.shutdown()
        await r.proxy.task
        r.origin.close()
        r.ws_origin.close()


def refused(answer: httpx.Response | None) -> bool:
    """Never the origin's answer. Blocked mid-body after clean bytes went upstream: cut off
    (None) or mitmproxy's 502 for the aborted upstream request; blocked at the body's end:
    the block page (proxy.held_stream)."""
    if answer is None or answer.status_code == 502:
        return True
    return answer.status_code == 403 and "incident" in answer.text.lower()


async def wait_for(event: threading.Event) -> None:
    await asyncio.to_thread(event.wait, 10)


async def test_e2e_chunked_upload_with_an_id_never_reaches_the_origin(rig: Rig):
    body = filler(2 * MiB) + f"身份证 {ID} ".encode() + filler(MiB)
    answer = await rig.post(pieces(body, 16 * 1024))
    await wait_for(rig.origin.done)
    assert refused(answer)
    ((received, complete),) = rig.origin.requests
    assert not complete  # the origin saw an aborted request, not a short one
    assert 0 < len(received) < body.index(ID.encode())
    assert received == body[: len(received)]
    assert longest_id_prefix(received) == 0
    assert ID[:7].encode() not in rig.origin.raw
    (event,) = rig.log.events
    assert (event["rule"], event["destination"]) == (PERSONAL, "mail.qq.com")
    assert "blocked mid-stream after" in event["detail"]


async def test_e2e_an_id_split_across_two_chunks_is_found(rig: Rig):
    head = filler(4 * STEP) + "身份证 ".encode()
    body = head + ID.encode() + b" " + filler(THRESHOLD)
    split = len(head) + 9
    answer = await rig.post([body[:split], body[split:]])
    await wait_for(rig.origin.done)
    assert refused(answer)
    ((received, complete),) = rig.origin.requests
    assert not complete and longest_id_prefix(received) == 0
    assert len(received) > 0 and received == body[: len(received)]
    assert rig.log.events[-1]["rule"] == PERSONAL


async def test_e2e_blocked_at_the_end_after_clean_bytes_went_up_gets_the_page(rig: Rig):
    """The value ends the body, so its verdict waits for the end: the client has sent
    everything and gets the block page; the origin, which had the clean start, an aborted
    request (mitmproxy alone would answer 502 'server closed connection')."""
    body = filler(2 * MiB) + f"身份证 {ID}".encode()
    answer = await rig.post(pieces(body, 64 * 1024))
    await wait_for(rig.origin.done)
    assert answer is not None and answer.status_code == 403, answer
    assert "incident" in answer.text.lower() and ID not in answer.text
    assert answer.headers["connection"] == "close"
    ((received, complete),) = rig.origin.requests
    assert not complete and 0 < len(received) < len(body) - len(ID)
    assert received == body[: len(received)] and longest_id_prefix(received) == 0
    (event,) = rig.log.events
    assert event["action"] == "block" and event["rule"] == PERSONAL


async def test_e2e_a_value_before_anything_went_up_leaves_the_origin_untouched(rig: Rig):
    """Blocked in the first step of a large body: the head never went upstream, so the
    rest is read and dropped and the client gets the page at the end."""
    body = f"身份证 {ID} ".encode() + filler(2 * MiB)
    answer = await rig.post(pieces(body, 64 * 1024))
    assert answer is not None and answer.status_code == 403, answer
    assert "incident" in answer.text.lower() and ID not in answer.text
    await asyncio.sleep(0.2)
    assert rig.origin.requests == [] and rig.origin.raw == b""
    (event,) = rig.log.events
    assert event["action"] == "block" and event["rule"] == PERSONAL


async def test_e2e_a_large_clean_body_arrives_byte_identical(rig: Rig):
    body = filler(12 * MiB)
    answer = await rig.post(pieces(body, 64 * 1024))
    assert answer is not None and answer.status_code == 200
    await wait_for(rig.origin.done)  # the origin records a request after it has answered
    ((received, complete),) = rig.origin.requests
    assert complete and received == body
    assert not rig.log.events


async def test_e2e_a_gzip_streamed_body_with_an_id_is_caught(rig: Rig):
    raw = gzip.compress(filler(6 * MiB) + f"身份证 {ID}\n".encode() + filler(MiB))
    answer = await rig.post(raw, **{"Content-Encoding": "gzip"})
    await wait_for(rig.origin.done)
    assert refused(answer)
    ((received, complete),) = rig.origin.requests
    assert not complete
    assert longest_id_prefix(_decoded_prefix("gzip", received)) == 0
    assert rig.log.events[-1]["rule"] == PERSONAL


def _ws_client(proxy_port: int, origin_port: int, messages: list[list[str]]) -> tuple[list, object]:
    """A WebSocket client through the proxy (absolute-form upgrade, Host: wx.qq.com): sends
    each batch of messages once the socket is open or the previous batch's echo came."""
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    ws = WSConnection(ConnectionType.CLIENT)
    upgrade = ws.send(Request(host="wx.qq.com", target="/chat")).decode()
    upgrade = upgrade.replace("GET /chat ", f"GET http://127.0.0.1:{origin_port}/chat ", 1)
    sock.sendall(upgrade.encode())
    received: list = []
    closed = None
    pending = list(messages)
    try:
        while closed is None:
            data = sock.recv(65536)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, AcceptConnection | Message):
                    if isinstance(event, Message):
                        received.append(event.data)
                    for text in pending.pop(0) if pending else []:
                        sock.sendall(ws.send(TextMessage(text)))
                elif isinstance(event, CloseConnection):
                    closed = event
            if not data:
                break
    finally:
        sock.close()
    return received, closed


async def test_e2e_websocket_block_closes_with_1008_naming_the_incident(rig: Rig):
    messages = [["你好"], [f"客户身份证 {ID}", "still there?"]]
    received, closed = await asyncio.to_thread(
        _ws_client, rig.proxy.port, rig.ws_origin.port, messages
    )
    await wait_for(rig.ws_origin.done)
    assert received == ["你好"]  # the echo of the first; nothing after the block
    # the clean first message is summed into an allow event of its own when the socket ends
    (event,) = [e for e in rig.log.events if e["action"] != "allow"]
    assert (event["type"], event["rule"]) == ("websocket.message", PERSONAL)
    assert closed is not None and closed.code == 1008
    assert closed.reason == f"blocked by policy (incident {event['incident']})"
    assert rig.ws_origin.messages == ["你好"]  # nothing more from the client reached it


async def test_small_plain_bodies_are_judged_on_the_loop_and_expanding_ones_are_not(log) -> None:
    # With a zero time limit, only work sent to a worker thread can time out: a small plain
    # body is judged inline (and blocked for its content), a small gzip body goes to a worker.
    impatient = make_services(log, max_seconds=0)
    addon = Inspect(impatient)
    plain_body = buffered_flow("mail.qq.com", f"身份证 {ID}".encode())
    gzipped = buffered_flow("mail.qq.com", gzip.compress(f"身份证 {ID}".encode()))
    gzipped.request.headers["content-encoding"] = "gzip"
    with taddons.context(addon):
        await addon.request(plain_body)
        await addon.request(gzipped)
    assert plain_body.response is not None and plain_body.response.status_code == 403
    assert gzipped.response is not None and gzipped.response.status_code == 403
    timed_out = "inspection did not finish within 0 s"
    inline, threaded = log.events
    # (the zero limit also exhausts extraction's own budget: judged, as uninspectable)
    assert (inline["rule"], inline["reason"] != timed_out) == ("uninspectable-to-external", True)
    assert (threaded["rule"], threaded["reason"]) == ("fail-closed", timed_out)
