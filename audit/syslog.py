"""Alerts as syslog messages: RFC 5424 over UDP (RFC 5426) or TCP (RFC 6587 octet counting).

    SyslogSink("udp://127.0.0.1:514", app_name="leakguard", facility="auth")

Formatted here rather than by a library: the stdlib SysLogHandler writes the
older BSD format (RFC 3164), and the RFC 5424 packages on PyPI have seen no
release for years (rfc5424-logging-handler 2019, syslog-rfc5424-formatter
2022). The format is small: one header, one structured-data element with the
alert's fields, the summary as the message (UTF-8 with its BOM).

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [leakguard@32473 k="v" …] BOM summary
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime
from urllib.parse import urlsplit

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
SEVERITY_CODES = {"critical": 2, "warning": 4, "info": 6}  # RFC 5424 crit, warning, info
# 32473 is the enterprise number RFC 5612 sets aside for examples and documentation;
# an SD-ID without "@" is reserved to IANA.
SD_ID = "leakguard@32473"
SD_PARAMS = ("id", "kind", "key", "severity", "count", "user", "source_ip")
UDP_MAX = 2048  # RFC 5426: every receiver takes 2048 octets
BOM = "\ufeff"
NILVALUE = "-"


def parse_address(text: str) -> tuple[str, str, int]:
    """'udp://127.0.0.1:514', 'tcp://[::1]:6514' → (transport, host, port); ValueError."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("udp", "tcp"):
        raise ValueError(f"{text!r}: write udp://HOST:PORT or tcp://HOST:PORT")
    try:
        port = parts.port or 514
    except ValueError:
        raise ValueError(f"{text!r}: the port must be 0-65535") from None
    if not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"{text!r}: write udp://HOST:PORT or tcp://HOST:PORT")
    return parts.scheme, parts.hostname, port


def _printable(text: str, limit: int) -> str:
    """PRINTUSASCII (33-126), at most `limit` characters, "-" when nothing is left."""
    out = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return out or NILVALUE


def _param(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_alert(
    alert: dict,
    *,
    app_name: str = "leakguard",
    facility: str = "auth",
    hostname: str | None = None,
    procid: int | None = None,
    max_bytes: int | None = None,
) -> bytes:
    """One RFC 5424 message for an alert dict (Alert.to_dict() plus `id`)."""
    pri = FACILITIES[facility] * 8 + SEVERITY_CODES.get(alert.get("severity", ""), 4)
    when = datetime.fromtimestamp(float(alert.get("time") or 0), UTC)
    timestamp = when.isoformat(timespec="microseconds").replace("+00:00", "Z")
    header = " ".join(
        (
            f"<{pri}>1",
            timestamp,
            _printable(hostname if hostname is not None else socket.gethostname(), 255),
            _printable(app_name, 48),
            _printable(str(procid if procid is not None else os.getpid()), 128),
            _printable(str(alert.get("kind", "")), 32),
        )
    )
    params = " ".join(
        f'{name}="{_param(alert[name])}"' for name in SD_PARAMS if alert.get(name) not in (None, "")
    )
    head = f"{header} [{SD_ID} {params}] ".encode()
    body = (BOM + str(alert.get("summary", ""))).encode()
    if max_bytes is not None and len(head) + len(body) > max_bytes:
        body = body[: max(0, max_bytes - len(head))].decode("utf-8", "ignore").encode()
    return head + body


class SyslogSink:
    retries = 3

    def __init__(self, address: str, *, app_name: str = "leakguard", facility: str = "auth"):
        if facility not in FACILITIES:
            raise ValueError(f"{facility!r} is not a syslog facility ({', '.join(FACILITIES)})")
        self.transport, self.host, self.port = parse_address(address)
        self.name = f"syslog {address}"
        self.app_name = app_name
        self.facility = facility
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def deliver(self, alert: dict) -> None:
        udp = self.transport == "udp"
        message = format_alert(
            alert,
            app_name=self.app_name,
            facility=self.facility,
            max_bytes=UDP_MAX if udp else None,
        )
        with self._lock:
            try:
                sock = self._connected()
                if udp:
                    sock.send(message)
                else:  # RFC 6587 octet counting: "LEN SP MSG"
                    sock.sendall(str(len(message)).encode() + b" " + message)
            except OSError:
                self._drop()  # reconnect on the retry
                raise

    def _connected(self) -> socket.socket:
        if self._sock is not None and self.transport == "tcp" and _peer_closed(self._sock):
            self._drop()  # a write into it would vanish: TCP syslog has no acknowledgement
        if self._sock is None:
            kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
            info = socket.getaddrinfo(self.host, self.port, type=kind)[0]
            sock = socket.socket(info[0], kind)
            sock.settimeout(10)
            try:
                sock.connect(info[4])
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def _peer_closed(sock: socket.socket) -> bool:
    """The receiver has closed (or reset) the connection; a peek, nothing is read."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False  # open, nothing to read: the normal case
    except OSError:
        return True
    finally:
        sock.settimeout(10)
