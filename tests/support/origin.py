"""Origin servers on loopback that record everything they receive.

    ca = TestCA(tmp_path)                           # ca.pem_path for `--upstream-ca`
    with Origin("127.0.0.2") as web:                # HTTP on 127.0.0.2:<free port>
        ...
        web.connections                             # one Connection per TCP connection accepted
        web.requests                                # Received(method, path, headers, body, ...)
    with Origin("127.0.0.3", tls=ca.server_context(["portal.lawfirm.example", "127.0.0.3"])):
        ...                                         # HTTPS

Every request is answered 200 with a small JSON summary (never the body, so a
response cannot carry PII back past the proxy). A request is recorded as soon
as its head arrives (`complete` once its whole body has); bodies are recorded
as received on the wire, de-chunked but not decoded (a gzip body stays gzip).
A request with `Upgrade: websocket` becomes a WebSocket that records each
client message and echoes it back (wsproto, a mitmproxy dependency).

`ws_connect_via_proxy` is a minimal WebSocket client that speaks through a
regular-mode HTTP proxy (absolute-form GET with Upgrade), for tests that need
one without another dependency.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CA_USAGE = dict.fromkeys(
    ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
     "encipher_only", "decipher_only"), False,
) | {"digital_signature": True, "key_cert_sign": True, "crl_sign": True}  # fmt: skip

# -- a test CA ---------------------------------------------------------------------------------


class TestCA:
    """A CA (EC P-256) that issues server certificates for names and IP addresses."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: str | Path, name: str = "leakguard test origin CA") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(**_CA_USAGE),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.pem_path = self.directory / "origin-ca.pem"
        self.pem_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._issued = 0

    def issue(self, names: list[str]) -> tuple[Path, Path]:
        """A server certificate for `names` (host names and IP literals): (cert file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        self._issued += 1
        cert_path = self.directory / f"server-{self._issued}.pem"
        key_path = self.directory / f"server-{self._issued}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path

    def server_context(self, names: list[str]) -> ssl.SSLContext:
        cert_path, key_path = self.issue(names)
        sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sslctx.load_cert_chain(cert_path, key_path)
        sslctx.set_alpn_protocols(["http/1.1"])
        return sslctx


# -- what an origin received -------------------------------------------------------------------


@dataclass
class Accepted:
    peer: tuple[str, int]
    sni: str | None = None
    tls_error: str = ""


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    connection: int  # index into Origin.connections
    host: str = ""  # the Host header
    complete: bool = False  # the whole body arrived (False: the head, and maybe part of it)
    ws_messages: list[str | bytes] = field(default_factory=list)  # for a WebSocket upgrade

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, origin: Origin, address: tuple[str, int]) -> None:
        self.origin = origin
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:  # a failed handshake, say
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        origin = self.server.origin
        conn = Accepted(peer=self.client_address)
        with origin.lock:
            origin.connections.append(conn)
            self.conn_index = len(origin.connections) - 1
        if origin.tls is not None:
            raw = self.request
            raw.settimeout(10)
            try:
                self.request = origin.tls.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as err:
                conn.tls_error = str(err)
                raise
            conn.sni = getattr(self.request, "leakguard_sni", None)
        super().setup()

    def log_message(self, format: str, *args) -> None:  # quiet
        pass

    def _read_body(self, received: Received) -> None:
        """The body into `received.body` as it arrives (de-chunked); `complete` at its end."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline()
                if not size_line:
                    return  # the connection closed mid-body
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunk = self.rfile.read(size)
                with self.server.origin.lock:
                    received.body += chunk
                if len(chunk) < size:
                    return
                self.rfile.readline()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with self.server.origin.lock:
                received.body = body
            if len(body) < length:
                return
        received.complete = True

    def _handle(self) -> None:
        origin = self.server.origin
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
            return
        received = Received(
            method=self.command,
            path=self.path,
            headers=list(self.headers.items()),
            body=b"",
            connection=self.conn_index,
            host=self.headers.get("Host", ""),
        )
        origin._add(received)  # recorded as soon as the head arrived
        self._read_body(received)
        if not received.complete:
            self.close_connection = True
            return
        reply = json.dumps(
            {"origin": origin.name, "method": received.method, "bytes": len(received.body)}
        ).encode()
        self.send_response(origin.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _websocket(self) -> None:
        origin = self.server.origin
        received = Received(
            method=self.command,
            path=self.path,
            headers=list(self.headers.items()),
            body=b"",
            connection=self.conn_index,
            host=self.headers.get("Host", ""),
            complete=True,
        )
        origin._add(received)
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        ws = Connection(ConnectionType.SERVER)
        sock = self.request
        sock.settimeout(30)
        while True:
            for event in ws.events():
                if isinstance(event, Message):
                    with origin.lock:
                        received.ws_messages.append(event.data)
                    sock.sendall(ws.send(Message(data=event.data)))  # echo
                elif isinstance(event, Ping):
                    sock.sendall(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    with contextlib.suppress(OSError):
                        sock.sendall(ws.send(event.response()))
                    self.close_connection = True
                    return
            try:
                data = self.rfile.read1(65536)  # what the request's reader buffered, first
            except OSError:
                data = b""
            if not data:
                self.close_connection = True
                return
            ws.receive_data(data)


class Origin:
    """An HTTP(S) server on `host` (any 127.0.0.x) that records what it received."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: ssl.SSLContext | None = None,
        name: str = "",
        status: int = 200,
    ) -> None:
        self.tls = tls
        if tls is not None:
            tls.sni_callback = _remember_sni
        self.status = status
        self.lock = threading.Lock()
        self.connections: list[Accepted] = []
        self.requests: list[Received] = []
        self._server = _Server(self, (host, port))
        self.host, self.port = self._server.server_address[:2]
        self.name = name or f"{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def start(self) -> Origin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Origin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def clear(self) -> None:
        with self.lock:
            self.connections.clear()
            self.requests.clear()

    def _add(self, received: Received) -> None:
        with self.lock:
            self.requests.append(received)

    def everything(self) -> bytes:
        """All bytes recorded (request lines, headers, bodies, WebSocket messages): for
        asserting that a value never reached this origin in any form."""
        out = bytearray()
        with self.lock:
            for r in self.requests:
                out += f"{r.method} {r.path}\n".encode()
                for k, v in r.headers:
                    out += f"{k}: {v}\n".encode()
                out += r.body + b"\n"
                for m in r.ws_messages:
                    out += (m.encode() if isinstance(m, str) else m) + b"\n"
        return bytes(out)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.requests)


def _remember_sni(sslsocket, server_name, _context) -> None:
    sslsocket.leakguard_sni = server_name


# -- a WebSocket client through a regular-mode proxy -------------------------------------------


class WebSocketClient:
    """A blocking WebSocket over plain HTTP through a proxy (absolute-form upgrade)."""

    def __init__(self, proxy: tuple[str, int], url_host: str, port: int, path: str = "/ws"):
        self.sock = socket.create_connection(proxy, timeout=10)
        self.ws = Connection(ConnectionType.CLIENT)
        self.response_head = b""
        self.response_body = b""
        key = base64.b64encode(b"leakguard-ws-key").decode()
        self.sock.sendall(
            (
                f"GET http://{url_host}:{port}{path} HTTP/1.1\r\nHost: {url_host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        self.response_head, _, rest = data.partition(b"\r\n\r\n")
        status_line = self.response_head.split(b"\r\n", 1)[0].decode("latin-1")
        self.status = int(status_line.split()[1]) if status_line else None
        if self.status == 101:
            expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
            assert expected in self.response_head, self.response_head
            if rest:
                self.ws.receive_data(rest)
        else:  # a refusal: read its body (a block page)
            self.response_body = rest
            self.sock.settimeout(2)
            try:
                while chunk := self.sock.recv(65536):
                    self.response_body += chunk
            except OSError:
                pass

    @property
    def open(self) -> bool:
        return self.status == 101

    def send(self, text: str | bytes) -> None:
        msg = TextMessage(text) if isinstance(text, str) else BytesMessage(text)
        self.sock.sendall(self.ws.send(msg))

    def receive(self, timeout: float = 5.0) -> str | bytes | None:
        """The next message, or None when the connection closed; TimeoutError if neither
        happens within `timeout`."""
        self.sock.settimeout(timeout)
        parts: list = []
        while True:
            for event in self.ws.events():
                if isinstance(event, Message):
                    parts.append(event.data)
                    if event.message_finished:
                        first = parts[0]
                        return ("" if isinstance(first, str) else b"").join(parts)
                elif isinstance(event, CloseConnection):
                    return None
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:
                return None
            if not data:
                return None
            self.ws.receive_data(data)

    def close(self) -> None:
        try:
            if self.open:
                self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        except Exception:
            pass
        self.sock.close()


__all__ = [
    "Accepted",
    "Origin",
    "Received",
    "TestCA",
    "WebSocketClient",
]
