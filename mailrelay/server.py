"""The relay as one object the gateway starts and stops in its event loop.

    relay = Relay(settings, judge, record, state_dir)
    await relay.start()      spool recovered, STARTTLS certificate issued, workers running,
                             listening (relay.address); the embedded sink when no smarthost
    relay.flush()            retry the queue now (what SIGUSR1 should call)
    await relay.stop()

`judge(raw, envelope) -> Plan` runs in a thread pool; `record(dict)` takes
events. State lives in `<state_dir>/spool` (see mailrelay.spool),
`<state_dir>/mailrelay/` (the STARTTLS key and certificate, reissued from the
CA at every start) and `<state_dir>/sink` (the embedded sink).

A runner for tests and manual use (the crash test kills it with SIGKILL):

    python -m mailrelay.server --state-dir DIR --listen 127.0.0.1:0 \\
        [--smarthost HOST:PORT] [--policy DIR | --judge MODULE:CALLABLE] [--retry-initial S] …

It prints `mailrelay: listening on HOST:PORT` once it accepts mail.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import importlib
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from certs.ca import create_ca, find_ca, issue_server_certificate
from certs.errors import CAExists
from certs.files import private_dir, replace_file
from mailrelay.auth import DEFAULT_TRUSTED_NETWORKS, Users, parse_networks
from mailrelay.delivery import Deliverer, DeliverySettings, Record, Route, Upstream
from mailrelay.handler import AcceptPolicy, Judge, RelayHandler, RelaySMTP
from mailrelay.lanes import Lane
from mailrelay.mx import MXResolver, MXRoute, MXSettings
from mailrelay.sink import Sink
from mailrelay.spool import SPOOL_DIR, Spool
from mailrelay.spool_writer import SpoolWriter

log = logging.getLogger("leakguard.mailrelay")

TLS_DIR = "mailrelay"
TLS_CERT, TLS_KEY = "relay-cert.pem", "relay-key.pem"
SINK_DIR = "sink"
SESSION_TIMEOUT = 300  # seconds an idle client may stay connected (RFC 5321 asks for 5 min)


class RelayError(Exception):
    """The relay cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class RelaySettings:
    listen: tuple[str, int] = ("127.0.0.1", 2525)
    hostname: str = ""  # EHLO, Received and DSN name; "" → this host's FQDN, looked up once
    # where mail goes: None → the embedded sink in <state>/sink
    smarthost: tuple[str, int] | None = None
    smarthost_tls: str = "opportunistic"  # opportunistic | required | none
    smarthost_verify: bool = True
    smarthost_ca: Path | None = None
    smarthost_user: str | None = None
    smarthost_password: str | None = None
    # or straight to each recipient domain's MX (mailrelay.mx); no smarthost then
    direct_to_mx: bool = False
    dns_servers: tuple[tuple[str, int], ...] = ()  # () → the system's resolver configuration
    mx_port: int = 25  # another port only for tests
    # who may relay
    tls: bool = True  # offer STARTTLS (certificate from the CA unless tls_cert/tls_key)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    users_file: Path | None = None  # AUTH PLAIN/LOGIN after STARTTLS; None → no AUTH
    trusted_networks: tuple[str, ...] = DEFAULT_TRUSTED_NETWORKS
    # limits
    max_message_size: int = 25 * 2**20
    max_recipients: int = 100
    max_header_bytes: int = 256 * 2**10
    max_header_fields: int = 500
    max_header_field_bytes: int = 32 * 2**10
    judge_timeout: float = 60.0
    judge_threads: int = 2  # judging holds the GIL: more threads only take turns with the loop
    # delivery
    workers: int = 8
    retry_initial: float = 60.0
    retry_max: float = 3600.0
    max_queue_age: float = 5 * 86400.0
    contact: str = ""
    sink_listen: tuple[str, int] = field(default=("127.0.0.1", 0))


class Relay:
    def __init__(
        self, settings: RelaySettings, judge: Judge, record: Record, state_dir: str | Path
    ) -> None:
        self.settings = settings
        self.judge = judge
        self.record = record
        self.state_dir = Path(state_dir).absolute()
        self.spool: Spool | None = None
        self.deliverer: Deliverer | None = None
        self.handler: RelayHandler | None = None
        self.sink: Sink | None = None
        self.server: asyncio.AbstractServer | None = None
        self.address: tuple[str, int] = ("", 0)
        self.smarthost: tuple[str, int] = ("", 0)
        self.hostname = ""
        self._pools: list[concurrent.futures.ThreadPoolExecutor] = []
        self._lanes: list[Lane | SpoolWriter] = []  # threads to stop
        self._sessions: weakref.WeakSet[RelaySMTP] = weakref.WeakSet()

    async def start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        # aiosmtpd logs every command line at INFO ("mail.log"): costly, and it would put
        # addresses in the log; our own events say what happened
        aiosmtpd_log = logging.getLogger("mail.log")
        if aiosmtpd_log.getEffectiveLevel() < logging.WARNING and not log.isEnabledFor(
            logging.DEBUG
        ):
            aiosmtpd_log.setLevel(logging.WARNING)
        if s.direct_to_mx and s.smarthost is not None:
            raise RelayError("direct delivery to MX and a smarthost exclude each other")
        try:
            trusted = parse_networks(s.trusted_networks)
        except ValueError as err:
            raise RelayError(f"trusted networks: {err}") from None
        self.hostname = s.hostname or await asyncio.to_thread(socket.getfqdn)
        try:
            self.spool = Spool(self.state_dir / SPOOL_DIR)
            names = await asyncio.to_thread(self.spool.recover)
            tls_context = await asyncio.to_thread(self._tls_context) if s.tls else None
        except OSError as err:
            raise RelayError(f"state directory {self.state_dir}: {err}") from err
        users = None
        if s.users_file is not None:
            try:
                users = Users(s.users_file)
            except (OSError, UnicodeDecodeError) as err:
                raise RelayError(f"users file {s.users_file}: {err}") from None
            if tls_context is None:
                log.warning("AUTH needs STARTTLS, which is off: nobody can authenticate")
        if s.direct_to_mx:
            log.info("no smarthost: delivering to each recipient domain's MX")
        elif s.smarthost is None:
            self.sink = Sink(self.state_dir / SINK_DIR)
            self.smarthost = await self.sink.start(*s.sink_listen)
            log.info("no smarthost: delivering to the local sink in %s", self.state_dir / SINK_DIR)
        else:
            self.smarthost = s.smarthost
        upstream = Upstream(
            host=self.smarthost[0],
            port=self.smarthost[1],
            tls=s.smarthost_tls if s.smarthost is not None else "none",
            verify=s.smarthost_verify,
            cafile=s.smarthost_ca,
            username=s.smarthost_user,
            password=s.smarthost_password,
            local_hostname=self.hostname,
        )
        delivery = DeliverySettings(
            workers=s.workers,
            retry_initial=s.retry_initial,
            retry_max=s.retry_max,
            max_queue_age=s.max_queue_age,
            poll_interval=min(1.0, s.retry_initial),
            hostname=self.hostname,
            contact=s.contact,
        )
        route: Upstream | Callable[[], Route] = upstream
        if s.direct_to_mx:
            resolver = MXResolver(s.dns_servers)
            mx = MXSettings(port=s.mx_port, local_hostname=self.hostname)
            route = lambda: MXRoute(resolver, mx)  # noqa: E731  one per worker
        self.deliverer = Deliverer(self.spool, route, delivery, self.record)
        await self.deliverer.start(names)
        if names:
            log.info("recovered %d spooled messages", len(names))
        judge_lane = Lane("relay-judge", s.judge_threads)
        spool_writer = SpoolWriter(self.spool)
        self._lanes = [judge_lane, spool_writer]
        io_pool = concurrent.futures.ThreadPoolExecutor(4, "relay-auth")
        self._pools = [io_pool]
        policy = AcceptPolicy(
            hostname=self.hostname,
            trusted_networks=trusted,
            max_message_size=s.max_message_size,
            max_recipients=s.max_recipients,
            max_header_bytes=s.max_header_bytes,
            max_header_fields=s.max_header_fields,
            max_header_field_bytes=s.max_header_field_bytes,
            judge_timeout=s.judge_timeout,
        )
        self.handler = RelayHandler(
            self.judge,
            self.spool,
            policy,
            self.deliverer.submit,
            self.record,
            users=users,
            judge_lane=judge_lane,
            spool_writer=spool_writer,
            io_pool=io_pool,
        )
        handler = self.handler

        def session() -> RelaySMTP:
            smtp = RelaySMTP(
                handler,
                hostname=self.hostname,
                data_size_limit=s.max_message_size,
                enable_SMTPUTF8=True,
                tls_context=tls_context,
                auth_require_tls=True,
                timeout=SESSION_TIMEOUT,
                loop=loop,
            )
            self._sessions.add(smtp)
            return smtp

        try:
            self.server = await loop.create_server(
                session,
                s.listen[0],
                s.listen[1],
            )
        except OSError as err:
            await self.stop()
            raise RelayError(f"cannot listen on {_show(s.listen)}: {err}") from None
        self.address = self.server.sockets[0].getsockname()[:2]

    def flush(self) -> None:
        if self.deliverer is not None:
            self.deliverer.flush()

    async def stop(self) -> None:
        """Stop listening, drop client connections (what they had not been answered 250 for
        is theirs to resend), let deliveries in flight finish briefly, stop the sink."""
        if self.server is not None:
            self.server.close()
            for smtp in list(self._sessions):
                if smtp.transport is not None:
                    smtp.transport.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None
        if self.deliverer is not None:
            await self.deliverer.stop()
            self.deliverer = None
        if self.sink is not None:
            await self.sink.stop()
            self.sink = None
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools = []
        for lane in self._lanes:
            lane.stop()
        self._lanes = []

    def _tls_context(self) -> ssl.SSLContext:
        s = self.settings
        if s.tls_cert and s.tls_key:
            cert, key = s.tls_cert, s.tls_key
        else:
            cert, key = self._issue_certificate()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        return context

    def _issue_certificate(self) -> tuple[Path, Path]:
        ca = find_ca(self.state_dir)
        if ca is None:
            try:
                ca = create_ca(self.state_dir)
            except CAExists:
                ca = find_ca(self.state_dir)
        assert ca is not None
        names = [self.hostname, "localhost"]
        host = self.settings.listen[0]
        with contextlib.suppress(ValueError):
            if not ipaddress.ip_address(host).is_unspecified:
                names.append(host)
        cert_pem, key_pem = issue_server_certificate(ca, list(dict.fromkeys(names)))
        directory = private_dir(self.state_dir / TLS_DIR)
        replace_file(directory / TLS_KEY, key_pem, 0o600)
        replace_file(directory / TLS_CERT, cert_pem, 0o644)
        return directory / TLS_CERT, directory / TLS_KEY


def _show(address: tuple[str, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: write HOST:PORT")
    return host.strip("[]"), int(port)


def load_judge(spec: str) -> Judge:
    """'package.module:callable' → the callable (a judge taking raw bytes and an Envelope)."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"{spec!r}: write MODULE:CALLABLE")
    return getattr(importlib.import_module(module), attr)


def real_judge(state_dir: Path, policy: Path | None, record: Record) -> Judge:
    """mailrelay.judge with its services, as the runner (not the gateway) builds them."""
    import functools

    import rules
    from mailrelay.judge import judge
    from mailrelay.services import Services
    from rules.policy.holder import PolicyHolder

    key_file = state_dir / "installation.key"
    try:
        key = key_file.read_bytes()
    except FileNotFoundError:  # the gateway creates it; a throwaway key only for this run
        log.warning("%s is missing: value hashes in events use a key for this run only", key_file)
        key = os.urandom(32)
    holder = PolicyHolder(policy or Path(rules.__file__).parent / "default")
    services = Services(policy=holder, hash_key=key, record=record, state_dir=state_dir)
    return functools.partial(judge, services=services)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailrelay.server")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--listen", type=_endpoint, default=("127.0.0.1", 2525))
    parser.add_argument("--smarthost", type=_endpoint, help="default: the embedded sink")
    parser.add_argument("--mx", action="store_true", help="deliver to each domain's MX")
    parser.add_argument(
        "--dns-server", type=_endpoint, action="append", default=[], help="HOST:PORT (--mx)"
    )
    parser.add_argument("--mx-port", type=int, default=25, help=argparse.SUPPRESS)
    parser.add_argument(
        "--judge",
        default="real",
        help="'real' (mailrelay.judge with --policy) or MODULE:CALLABLE, (bytes, Envelope) → Plan",
    )
    parser.add_argument("--policy", type=Path, help="policy directory (default: the shipped one)")
    parser.add_argument("--hostname", default="")
    parser.add_argument("--users-file", type=Path)
    parser.add_argument("--no-tls", action="store_true")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--judge-threads", type=int, default=RelaySettings.judge_threads)
    parser.add_argument("--retry-initial", type=float, default=60.0)
    parser.add_argument("--retry-max", type=float, default=3600.0)
    parser.add_argument("--max-queue-age", type=float, default=5 * 86400.0)
    parser.add_argument("--events", help="events file (default <state-dir>/events.jsonl)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from audit.events import JsonLinesLog

    state_dir = Path(args.state_dir)
    events = JsonLinesLog(args.events or state_dir / "events.jsonl")
    settings = RelaySettings(
        listen=args.listen,
        hostname=args.hostname or "localhost",
        smarthost=args.smarthost,
        direct_to_mx=args.mx,
        dns_servers=tuple(args.dns_server),
        mx_port=args.mx_port,
        smarthost_tls="opportunistic",
        smarthost_verify=False,
        tls=not args.no_tls,
        users_file=args.users_file,
        workers=args.workers,
        judge_threads=args.judge_threads,
        retry_initial=args.retry_initial,
        retry_max=args.retry_max,
        max_queue_age=args.max_queue_age,
    )
    if args.judge == "real":
        judge = real_judge(state_dir, args.policy, events.record)
    else:
        judge = load_judge(args.judge)
    relay = Relay(settings, judge, events.record, state_dir)

    async def run() -> None:
        await relay.start()
        print(f"mailrelay: listening on {_show(relay.address)}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, relay.flush)
        await stop.wait()
        await relay.stop()

    try:
        asyncio.run(run())
    except RelayError as err:
        print(f"mailrelay: {err}", file=sys.stderr)
        return 2
    finally:
        events.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
