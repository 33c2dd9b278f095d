"""Real SMTP servers for tests: a recording sink, and the relay in a thread of its own.

    with RecordingSink() as sink:          aiosmtpd Controller on 127.0.0.1:<free port>
        …                                  sink.messages, sink.wait_for(n), sink.stop()/start()
    relay = RelayThread(settings, judge, state_dir).start()
        relay.address, relay.events, relay.call(fn), relay.stop()

`deliver_all` and `by_domain` are judges for relay tests that are not about
judging (the real one is mailrelay.judge): they return real Plans.
"""

from __future__ import annotations

import asyncio
import collections
import email
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

from mailrelay.plan import Delivery, Envelope, Outcome, Plan

SINK_HOSTNAME = "sink.test"

FINDING = {
    "type": "cn_resident_id",
    "score": 1.0,
    "location": "attachment 债务清单.xlsx › Sheet1!C7",
    "start": 0,
    "end": 18,
    "masked": "110105********002X",
    "hash": "0" * 32,
    "why": ["GB 11643 check"],
}
RAW_ID = "11010519491231002X"  # the value FINDING masks: must never appear in DSNs or events


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool = False  # the session had done STARTTLS
    login: str = ""  # the AUTH login, if any

    @property
    def message(self) -> email.message.Message:
        return email.message_from_bytes(self.data)

    def header(self, name: str) -> str:
        return str(self.message.get(name, ""))


class _Recorder:
    def __init__(self, sink: RecordingSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.sink.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.reply:
            return self.sink.reply
        mail_from = "" if envelope.mail_from == "<>" else envelope.mail_from
        login = session.auth_data.login.decode() if session.authenticated else ""
        got = Received(
            mail_from,
            tuple(envelope.rcpt_tos),
            envelope.original_content,
            tls=session.ssl is not None,
            login=login,
        )
        with self.sink.cond:
            self.sink.messages.append(got)
            self.sink.cond.notify_all()
        return "250 2.0.0 Ok: recorded"


@dataclass
class RecordingSink:
    """Stores every message it accepts in memory; can be stopped and started on its port."""

    port: int = 0
    reply: str = ""  # when set, DATA is answered with it and nothing is recorded
    refuse: dict[str, str] = field(default_factory=dict)  # recipient → RCPT reply
    messages: list[Received] = field(default_factory=list)
    tls_context: ssl.SSLContext | None = None  # offer STARTTLS with it
    users: dict[str, str] = field(default_factory=dict)  # require AUTH with these logins
    host: str = "127.0.0.1"  # another loopback address: several sinks on one port (MX tests)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.cond = threading.Condition()
        self._controller: Controller | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def start(self) -> RecordingSink:
        extra = {}
        if self.tls_context is not None:
            extra["tls_context"] = self.tls_context
        if self.users:
            extra.update(auth_required=True, authenticator=self._authenticate)
        self._controller = Controller(
            _Recorder(self),
            hostname=self.host,
            port=self.port,
            server_hostname=SINK_HOSTNAME,
            data_size_limit=None,
            **extra,
        )
        self._controller.start()
        return self

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        login = auth_data.login.decode()
        ok = self.users.get(login) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> RecordingSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """At least `count` messages, or AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the sink got {len(self.messages)} messages, expected {count}"
                    )
                self.cond.wait(left)
            return list(self.messages)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]

    def count_header(self, name: str) -> collections.Counter:
        return collections.Counter(m.header(name) for m in self.messages)


class RelayThread:
    """mailrelay.server.Relay running in its own event loop and thread (like a Controller)."""

    def __init__(self, settings, judge, state_dir: Path, record: Callable | None = None) -> None:
        from mailrelay.server import Relay

        self.events: list[dict] = []
        self.relay = Relay(settings, judge, record or self.events.append, state_dir)
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    def start(self) -> RelayThread:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self.relay.start())
            except BaseException as err:
                failure.append(err)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.relay.stop())
            self.loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="relay")
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self.relay.address

    def call(self, fn: Callable, *args):
        """Run `fn(*args)` in the relay's loop and return its result."""

        async def wrapped():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(10)

    def stop(self) -> None:
        if self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
            self._thread = None

    def __enter__(self) -> RelayThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def events_of(self, event_type: str) -> list[dict]:
        return [e for e in list(self.events) if e["type"] == event_type]


# -- judges for tests that are not about judging ---------------------------------------------


def deliver_all(raw: bytes, envelope: Envelope) -> Plan:
    return Plan(
        deliveries=(Delivery(envelope.rcpt_tos, Outcome.DELIVER, "allow", "", "no rule matched"),)
    )


def by_domain(
    bounce: tuple[str, ...] = ("qq.com",), quarantine: tuple[str, ...] = ("hold.example",)
) -> Callable[[bytes, Envelope], Plan]:
    """Recipients at `bounce` domains blocked, at `quarantine` domains held, the rest delivered."""

    def judge(raw: bytes, envelope: Envelope) -> Plan:
        groups: dict[Outcome, list[str]] = {}
        for rcpt in envelope.rcpt_tos:
            domain = rcpt.rpartition("@")[2].lower()
            outcome = (
                Outcome.BOUNCE
                if domain in bounce
                else Outcome.QUARANTINE
                if domain in quarantine
                else Outcome.DELIVER
            )
            groups.setdefault(outcome, []).append(rcpt)
        deliveries = []
        for outcome, rcpts in groups.items():
            if outcome is Outcome.BOUNCE:
                d = Delivery(
                    tuple(rcpts),
                    outcome,
                    "block",
                    "identifying-to-personal-channels",
                    "已阻止：客户信息不得发送至个人邮箱。Blocked: client information cannot go to "
                    "personal mail.",
                    (FINDING,),
                    "LG-20260101-TEST01",
                )
            elif outcome is Outcome.QUARANTINE:
                d = Delivery(
                    tuple(rcpts),
                    outcome,
                    "quarantine",
                    "hold-for-review",
                    "held: identity data to an unknown party",
                    (FINDING,),
                    "LG-20260101-TEST02",
                )
            else:
                d = Delivery(tuple(rcpts), outcome, "allow", "", "no rule matched")
            deliveries.append(d)
        return Plan(deliveries=tuple(deliveries))

    return judge


mixed_judge = by_domain()
