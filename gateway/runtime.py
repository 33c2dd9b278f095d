"""`leakguard run`: the gateway as one supervised program.

    Gateway(config).serve() -> exit status

Start-up, in order, each step failing with a clear message and status 2:
the state directory (0700), the installation key, the CA (created on first
start, key 0600) written where mitmproxy reads it, the event log, the
policy; then the mail relay (its spool recovered before it accepts mail)
and the proxy, until SIGTERM/SIGINT. Either can be disabled; the relay
delivers to its smarthost, or to the embedded sink in <state>/sink when none
is set. SIGUSR1 retries the relay's queue now. SIGHUP reloads the policy;
so does a change to the policy files (polled every POLL_SECONDS). A reload
swaps one reference (rules.policy.holder): connections and flows in progress
carry on, each decision uses one whole policy. A broken edit is refused,
recorded as a `policy.reload` event, and the last good policy stays.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
from pathlib import Path
from typing import TextIO

from cryptography import x509

from audit.alerts import Alerts, open_alerts
from audit.catch_up import catch_up, recovered_event
from audit.events import EVENT_FIELDS, Event
from audit.log import AuditLog
from audit.logins import LoginWatcher
from audit.open import open_store
from audit.store import AuditStore, StoreError
from audit.transfers import TransferWatcher, hold_lookup
from certs.ca import create_ca, find_ca, write_mitmproxy_confdir
from certs.errors import CAExists
from gateway.config import Config
from gateway.rules_command import default_policy_dir
from gateway.state import installation_key
from mailrelay import services as mail_services
from mailrelay.auth import Users
from mailrelay.judge import judge
from mailrelay.server import Relay, RelayError, RelaySettings
from proxy.client_setup import CA_PEM, PAC
from proxy.server import ProxySettings, build_master
from proxy.services import Services
from rules.extract import Limits
from rules.policy.errors import PolicyError
from rules.policy.holder import PolicyHolder

log = logging.getLogger("leakguard")

POLL_SECONDS = 2.0
EVENTS_FILE = "events.jsonl"
CONFDIR = "mitmproxy"  # under the state directory: the CA as mitmproxy reads it


class StartupError(Exception):
    """The gateway cannot start; the message says why and what to do."""


class Gateway:
    def __init__(self, config: Config, out: TextIO = sys.stdout) -> None:
        self.config = config
        self.out = out
        self.state_dir = Path(config.state_dir).absolute()
        self.store: AuditStore | None = None  # the record, counters and holds (audit.open)
        self.events: AuditLog | None = None  # record(event): to the store, mirrored to events.jsonl
        self.alerts: Alerts | None = None  # what detectors raise alerts through (audit.alerts)
        self.logins: LoginWatcher | None = None  # SMTP AUTH, proxy and web-app logins, holds
        self.holder: PolicyHolder | None = None
        self.master = None
        self.relay: Relay | None = None
        self.key = b""
        self.ready = False
        self._tasks: set[asyncio.Task] = set()

    async def serve(self) -> int:
        try:
            services = self._prepare()
        except StartupError as err:
            print(f"leakguard run: {err}", file=sys.stderr)
            self._close_record()
            return 2
        proxy, relay_config = self.config.proxy, self.config.relay
        if not proxy.enabled and not relay_config.enabled:
            print("leakguard run: nothing to run (proxy and relay disabled)", file=sys.stderr)
            self._close_record()
            return 2
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop, stopped)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        watcher = asyncio.create_task(self._watch_policy())
        try:
            if relay_config.enabled:
                try:
                    self.relay = await self._start_relay()
                except (RelayError, OSError, StartupError) as err:
                    print(f"leakguard run: the mail relay could not start: {err}", file=sys.stderr)
                    return 2
                loop.add_signal_handler(signal.SIGUSR1, self.relay.flush)
            if not proxy.enabled:
                self._announce([])
                await stopped.wait()
                return 0
            return await self._run_proxy(services)
        finally:
            watcher.cancel()
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
                loop.remove_signal_handler(sig)
            if self.relay is not None:
                # mail alerts go through the relay: let the last ones out before it stops
                await asyncio.to_thread(self._close_alerts)
                await self.relay.stop()
            self._close_record()

    def _close_alerts(self) -> None:
        if self.alerts is not None:
            if self.events is not None:
                self.events.flush()  # the detectors have seen everything: their alerts are raised
            self.alerts.close()  # open summaries go out, sinks drain, "alert" events recorded
            self.alerts = None

    def _close_record(self) -> None:
        self._close_alerts()
        if self.events is not None:
            self.events.close()  # drains: every recorded event is stored before we exit
        if self.store is not None:
            self.store.close()
        self.events = self.store = None

    def _stop(self, stopped: asyncio.Event) -> None:
        stopped.set()
        if self.master is not None:
            self.master.shutdown()

    async def _run_proxy(self, services: Services) -> int:
        proxy = self.config.proxy
        settings = ProxySettings(
            host=proxy.listen.host,
            port=proxy.listen.port,
            mode=proxy.mode,
            stream_above=proxy.stream_above,
            upstream_ca=proxy.upstream_ca,
        )
        self.master = build_master(
            settings, services, self.state_dir, self.state_dir / CONFDIR, self._announce
        )
        try:
            await self.master.run()
        except SystemExit:
            # mitmproxy exits when an error is logged during start-up (a port in use, say);
            # the error is on stderr already, in mitmproxy's words.
            if self.ready:
                raise
            print(
                f"leakguard run: the proxy could not start on {proxy.listen} (see above)",
                file=sys.stderr,
            )
            return 2
        return 0

    async def _start_relay(self) -> Relay:
        c = self.config.relay
        assert self.holder is not None and self.events is not None
        password = None
        if c.smarthost_password_file is not None:
            try:
                password = c.smarthost_password_file.read_text(encoding="utf-8").strip()
            except OSError as err:
                raise StartupError(f"smarthost password file: {err}") from err
        settings = RelaySettings(
            listen=(c.listen.host, c.listen.port),
            hostname=c.hostname,
            smarthost=(c.smarthost.host, c.smarthost.port) if c.smarthost else None,
            smarthost_tls=c.smarthost_tls,
            smarthost_ca=c.smarthost_ca,
            smarthost_user=c.smarthost_user,
            smarthost_password=password,
            tls_cert=c.tls_cert,
            tls_key=c.tls_key,
            users_file=c.users_file,
            trusted_networks=c.trusted_networks,
            max_message_size=c.max_message_size,
            max_recipients=c.max_recipients,
            max_queue_age=c.max_queue_age,
            direct_to_mx=c.delivery == "mx",
            dns_servers=tuple((e.host, e.port) for e in c.dns_servers),
            mx_port=c.mx_port,
            contact=self.config.contact,
        )
        judging = mail_services.Services(
            policy=self.holder,
            hash_key=self.key,
            record=self.events.record,
            state_dir=self.state_dir,
            contact=self.config.contact,
            sender_hold=hold_lookup(self.store),
        )
        relay = Relay(
            settings, functools.partial(judge, services=judging), self.events.record, self.state_dir
        )
        await relay.start()
        relay.handler.logins = self.logins  # before the loop runs again: no AUTH goes unwatched
        judging.postmaster = f"postmaster@{relay.hostname or 'localhost'}"
        return relay

    # -- start-up ---------------------------------------------------------------------

    def _prepare(self) -> Services:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = self.key = installation_key(self.state_dir)
            ca = find_ca(self.state_dir)
            if ca is None:
                try:
                    ca = create_ca(self.state_dir)
                    log.info("created the interception CA in %s", ca.cert_path.parent)
                except CAExists:  # `certs init` ran at the same moment: use its CA
                    ca = find_ca(self.state_dir)
            write_mitmproxy_confdir(self.state_dir, self.state_dir / CONFDIR)
            self.store = open_store(self.config, self.state_dir)
            recovered = catch_up(self.store, self.state_dir / EVENTS_FILE)
            self.events = AuditLog(self.store, self.state_dir / EVENTS_FILE)
            if recovered:
                self.events.record(recovered_event(recovered))
        except (OSError, ValueError) as err:
            raise StartupError(f"state directory {self.state_dir}: {err}") from err
        except StoreError as err:
            raise StartupError(str(err)) from err
        upstream_ca = self.config.proxy.upstream_ca
        if upstream_ca is not None:
            _check_upstream_ca(Path(upstream_ca))
        policy_dir = Path(self.config.policy or default_policy_dir())
        try:
            self.holder = PolicyHolder(policy_dir, on_event=self._policy_event)
        except PolicyError as err:
            problems = "\n".join(f"  {issue}" for issue in err.issues)
            raise StartupError(
                f"the policy in {policy_dir} cannot be used:\n{problems}\n"
                f"(`leakguard rules check {policy_dir}` shows the same)"
            ) from err
        self.ca_cert = ca.cert_path if ca else None
        self._watch_transfers()
        self.logins = LoginWatcher.for_policy(
            self.store, self.alerts, self.events.record, self.holder
        )
        return Services(
            policy=self.holder,
            hash_key=key,
            record=self.events.record,
            contact=self.config.contact,
            limits=Limits(),
            hosts=dict(self.config.proxy.hosts),
            sender_hold=hold_lookup(self.store),
            logins=self.logins,
            verify_login=self._proxy_users(),
        )

    def _proxy_users(self):
        """Proxy authentication's password check (the relay's users file format), or None."""
        path = self.config.proxy.users_file
        if path is None:
            return None
        try:
            return Users(path).verify
        except (OSError, UnicodeDecodeError) as err:
            raise StartupError(f"proxy users file {path}: {err}") from err

    def _watch_transfers(self) -> None:
        """Alerts as configured, and the anomalous-transfer detector on the record."""
        assert self.store is not None and self.events is not None and self.holder is not None
        relay = self.config.relay
        try:
            self.alerts = open_alerts(
                self.config.alerts,
                self.state_dir,
                record=self.events.record,
                relay_address=self._relay_address if relay.enabled else None,
            )
        except (OSError, ValueError) as err:
            raise StartupError(f"alerts: {err}") from err
        holder = self.holder
        self.events.add_watcher(
            TransferWatcher(
                self.store,
                self.alerts,
                self.events.record,
                lambda: holder.policy.watch.transfers,
                timezone=lambda: holder.policy.timezone,
            )
        )

    def _relay_address(self) -> tuple[str, int]:
        """Where mail alerts go: the relay's own listener (loopback when it listens on all)."""
        if self.relay is None:
            raise OSError("the mail relay is not running")
        host, port = self.relay.address[:2]
        return ("127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host), port

    def _announce(self, addresses: list[tuple[str, int]]) -> None:
        """Where everything is, once the proxy listens (tests read the first line)."""
        self.ready = True
        mode = self.config.proxy.mode
        assert self.holder is not None
        if self.relay is not None:
            host, port = self.relay.address[:2]
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            target = self.config.relay.smarthost
            sink = "{}:{}".format(*self.relay.smarthost[:2])
            goes = f"smarthost {target}" if target else f"the local sink on {sink}"
            if self.config.relay.delivery == "mx":
                goes = "each recipient domain's MX"
            print(
                f"leakguard: mail relay listening on {shown} (delivering to {goes})", file=self.out
            )
        for host, port in addresses:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if host in ("0.0.0.0", "::"):
                base = f"http://<this host's address>:{port}"
            else:
                base = f"http://{shown}"
            print(f"leakguard: proxy listening on {shown} ({mode} mode)", file=self.out)
            print(f"leakguard: CA certificate: {self.ca_cert}", file=self.out)
            print(f"leakguard:   also served at {base}{CA_PEM}", file=self.out)
            print(f"leakguard: PAC file: {base}{PAC[0]}", file=self.out)
        holder = self.holder
        print(f"leakguard: policy: {holder.directory} ({holder.fingerprint})", file=self.out)
        print(f"leakguard: events: {self.state_dir / EVENTS_FILE}", file=self.out)
        print("leakguard: ready (SIGHUP or a policy edit reloads; Ctrl-C stops)", file=self.out)
        self.out.flush()

    # -- reload -----------------------------------------------------------------------

    def _policy_event(self, report: dict) -> None:
        """The holder's reload report as an event: the fixed fields (id, time, …) first,
        then its own (outcome, source, fingerprint, problems)."""
        assert self.events is not None
        outcome = str(report.get("outcome", ""))
        problems = report.get("problems") or []
        event = Event(
            type=str(report.get("type", "policy.reload")),
            reason=f"{outcome}: {len(problems)} problems" if problems else outcome,
            detail=f"{report.get('source', '')} ({report.get('fingerprint', '')})",
        )
        extra = {k: v for k, v in report.items() if k not in EVENT_FIELDS}
        self.events.record({**event.to_dict(), **extra})

    def _reload_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload())
        self._tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._tasks.discard)

    async def _reload(self) -> None:
        assert self.holder is not None
        log.info(
            "SIGHUP: reloading the policy from %s, reopening the log files", self.holder.directory
        )
        # logrotate's postrotate sends SIGHUP: the JSON-lines files are opened by name again
        for opened in (self.events, self.alerts):
            try:
                if opened is not None:
                    opened.reopen()
            except OSError as err:  # that file stays in use: nothing is lost, it is said
                log.error("reopening the log files failed: %s", err)
        await asyncio.to_thread(self.holder.reload)

    async def _watch_policy(self) -> None:
        assert self.holder is not None
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await asyncio.to_thread(self.holder.reload_if_changed)
            except Exception:  # the watcher must outlive any one failure
                log.exception("policy watch failed")


def _check_upstream_ca(path: Path) -> None:
    """The CAs for origin servers must be readable PEM certificates: mitmproxy would take
    a missing file silently and then fail every HTTPS connection."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise StartupError(f"upstream CA file {path}: {err.strerror or err}") from err
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as err:
        raise StartupError(
            f"upstream CA file {path}: no PEM certificate in it (it needs one or more "
            "-----BEGIN CERTIFICATE----- blocks)"
        ) from err
