"""Alerts out of the gateway: deduplicated, rate-limited, delivered in the background.

    alerts = Alerts([FileSink(state / "alerts.jsonl")], record=audit_log.record)
    alerts.send(Alert(kind="transfer.distinct_pii", key="transfer.distinct_pii:alice", ...))
    ...
    alerts.close()   # summaries still open go out, every sink drains

`send` never blocks on a sink and never raises: it decides (dedup) under a
lock and hands the alert to one thread per sink, so a slow webhook delays
neither the caller nor the syslog. Dedup and rate limit are one rule: the
first alert for a `key` goes out at once and opens a window of
`dedup_window` seconds; raises of that key inside the window are counted
and go out as one summary alert (`count` = how many) when the window closes,
which opens the next window, so a burst that goes on yields one alert per
window. A window that closes with nothing counted is forgotten.

A sink that fails is retried with backoff; each failure is logged by sink
name and error (alerts carry masked values only, and nothing of the alert
is logged). Each alert that goes out is also recorded as an "alert" event.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

from audit.alert import Alert
from audit.appendfile import AppendFile
from audit.chain import iso
from audit.events import Event
from audit.syslog import SyslogSink
from audit.webhook import WebhookSink

log = logging.getLogger("leakguard.alerts")

ALERTS_FILE = "alerts.jsonl"  # under the state directory
DEFAULT_DEDUP_WINDOW = 300.0
TICK_SECONDS = 0.25  # how often the window-closing thread looks at the clock
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
QUEUE_MAX = 10_000  # per sink; beyond this an alert is dropped and the drop is logged


class Sink(Protocol):
    name: str  # for logs: "file", "syslog udp://…", "webhook https://…", "mail"
    retries: int  # further attempts after a failure

    def deliver(self, alert: dict) -> None:
        """Deliver one alert (Alert.to_dict() plus `id` and `at`); raise on failure."""

    def close(self) -> None: ...


class FileSink:
    """JSON lines, one write per alert so lines never interleave (the default sink)."""

    retries = 2

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = f"file {self.path}"
        self._file = AppendFile(self.path)

    def deliver(self, alert: dict) -> None:
        self._file.write(json.dumps(alert, ensure_ascii=False).encode() + b"\n")

    def reopen(self) -> None:
        """The file by its name again, after logrotate moved it away."""
        self._file.reopen()

    def close(self) -> None:
        self._file.close()


class MailSink:
    """Mail to the security team through the gateway's own relay (from loopback, a
    trusted network, so no AUTH). The relay judges it like any mail: alerts carry
    masked values only, so it goes through."""

    retries = 3

    def __init__(
        self,
        relay: tuple[str, int] | Callable[[], tuple[str, int]],
        to: Iterable[str],
        sender: str = "",
        *,
        timeout: float = 30.0,
    ) -> None:
        self.relay = relay
        self.to = tuple(to)
        if not self.to:
            raise ValueError("mail alerts need at least one recipient")
        self.sender = sender or f"leakguard@{socket.getfqdn()}"
        self.timeout = timeout
        self.name = "mail via the relay"

    def deliver(self, alert: dict) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        subject = f"[leakguard] {alert['severity']}: {alert['summary']}"
        message["Subject"] = " ".join(subject.split())[:200]
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid("alert", self.sender.rpartition("@")[2] or None)
        message["X-Leakguard-Alert"] = f"{alert['kind']} {alert['id']}"
        lines = [alert["summary"], ""]
        lines += [f"{k}: {alert[k]}" for k in ("kind", "severity", "count", "user", "source_ip")]
        lines += ["at: " + alert["at"], "", json.dumps(alert, ensure_ascii=False, indent=2)]
        message.set_content("\n".join(lines))
        # The relay's address may be known only once it listens (port 0 in tests).
        host, port = self.relay() if callable(self.relay) else self.relay
        with smtplib.SMTP(host or "127.0.0.1", port, timeout=self.timeout) as smtp:
            smtp.send_message(message, from_addr=self.sender, to_addrs=list(self.to))

    def close(self) -> None:
        pass


def build_sinks(
    state_dir: Path,
    *,
    file: str | os.PathLike | None = None,
    syslog: dict | None = None,
    webhook: dict | None = None,
    mail: dict | None = None,
) -> list[Sink]:
    """The sinks a configuration names; the JSON-lines file always (default
    <state>/alerts.jsonl). Raises ValueError for a setting that cannot work."""
    sinks: list[Sink] = [FileSink(Path(file) if file else state_dir / ALERTS_FILE)]
    if syslog:
        sinks.append(SyslogSink(**syslog))
    if webhook:
        sinks.append(WebhookSink(**webhook))
    if mail:
        sinks.append(MailSink(**mail))
    return sinks


def open_alerts(
    config,
    state_dir: Path,
    *,
    record: Callable[[dict], None] | None,
    relay_address: Callable[[], tuple[str, int]] | None = None,
) -> Alerts:
    """Alerts as the config file's `alerts:` section (gateway.config.AlertsConfig) says.
    Raises ValueError for a setting that cannot work (mail without a relay)."""
    mail = None
    if config.mail is not None:
        if relay_address is None:
            raise ValueError("alerts.mail goes through the relay: enable it (relay.enabled: true)")
        mail = {"relay": relay_address, "to": config.mail.to, "sender": config.mail.sender}
    syslog, webhook = config.syslog, config.webhook
    sinks = build_sinks(
        state_dir,
        file=config.file,
        syslog=None
        if syslog is None
        else {"address": syslog.address, "app_name": syslog.app_name, "facility": syslog.facility},
        webhook=None
        if webhook is None
        else {"url": webhook.url, "timeout": webhook.timeout, "retries": webhook.retries},
        mail=mail,
    )
    return Alerts(sinks, record=record, dedup_window=config.dedup_window)


def alert_record(alert: dict) -> dict:
    """The "alert" event: the fixed event fields, then the alert as data."""
    event = Event(
        type="alert",
        user=alert.get("user", ""),
        source_ip=alert.get("source_ip", ""),
        rule=alert["kind"],
        reason=alert["summary"],
        detail=f"{alert['severity']}, count {alert['count']}",
    )
    return {**event.to_dict(), "alert": alert}


@dataclass
class _Window:
    opened: float
    count: int = 0  # raises suppressed since `opened`
    last: Alert | None = None


class _SinkWorker:
    """One sink's queue and thread: deliver in order, retry with backoff."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.queue: queue.Queue = queue.Queue(QUEUE_MAX)
        self.closing = False
        self.thread = threading.Thread(target=self._run, name=f"alerts {sink.name}", daemon=True)
        self.thread.start()

    def put(self, alert: dict) -> None:
        try:
            self.queue.put_nowait(alert)
        except queue.Full:
            log.error("alert sink %s: queue full, alert %s dropped", self.sink.name, alert["id"])

    def _run(self) -> None:
        while True:
            alert = self.queue.get()
            if alert is None:
                return
            self._deliver(alert)

    def _deliver(self, alert: dict) -> None:
        delay = BACKOFF_FIRST
        for attempt in range(self.sink.retries + 1):
            try:
                self.sink.deliver(alert)
                return
            except Exception as err:  # a sink must never take the gateway down
                last = attempt == self.sink.retries
                log.warning(
                    "alert sink %s: attempt %d failed (%s: %s)%s",
                    self.sink.name,
                    attempt + 1,
                    type(err).__name__,
                    err,
                    "; alert not delivered" if last else f"; retrying in {delay:g}s",
                )
                if last:
                    return
                time.sleep(delay if not self.closing else min(delay, BACKOFF_FIRST))
                delay = min(delay * 2, BACKOFF_MAX)

    def stop(self, timeout: float) -> None:
        self.closing = True
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=timeout)
        self.thread.join(timeout)
        try:
            self.sink.close()
        except Exception as err:
            log.warning("alert sink %s: close failed (%s)", self.sink.name, err)


class Alerts:
    """AlertSender with dedup/rate limit and background sinks."""

    def __init__(
        self,
        sinks: Iterable[Sink],
        *,
        record: Callable[[dict], None] | None = None,
        dedup_window: float = DEFAULT_DEDUP_WINDOW,
        clock: Callable[[], float] = time.time,
        tick: float | None = TICK_SECONDS,
    ) -> None:
        self.dedup_window = dedup_window
        self.clock = clock
        self._record = record
        self._workers = [_SinkWorker(s) for s in sinks]
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._ticker = None
        if tick:  # tests with an injected clock pass tick=None and call close_due()
            self._ticker = threading.Thread(
                target=self._tick, args=(tick,), name="alerts dedup", daemon=True
            )
            self._ticker.start()

    # -- the caller's side --------------------------------------------------------------

    def reopen(self) -> None:
        """Sinks that write files open them by name again (after logrotate); raises OSError."""
        for worker in self._workers:
            reopen = getattr(worker.sink, "reopen", None)
            if reopen is not None:
                reopen()

    def send(self, alert: Alert) -> None:
        try:
            now = self.clock()
            with self._lock:
                if self._closed.is_set():
                    log.error("alert %s raised after close; dropped", alert.kind)
                    return
                window = self._windows.get(alert.key)
                if window is not None and now < window.opened + self.dedup_window:
                    window.count += alert.count
                    window.last = alert
                    return
                self._windows[alert.key] = _Window(opened=now)
            self._dispatch(alert)
        except Exception:  # never raise into a detector
            log.exception("alert %s could not be queued", getattr(alert, "kind", "?"))

    # -- windows closing ----------------------------------------------------------------

    def close_due(self, *, everything: bool = False) -> int:
        """Send the summary of each window that has closed (all of them if `everything`);
        returns how many summaries went out."""
        now = self.clock()
        due: list[tuple[Alert, int, float]] = []
        with self._lock:
            for key, w in list(self._windows.items()):
                if not everything and now < w.opened + self.dedup_window:
                    continue
                if w.count and w.last is not None:
                    due.append((w.last, w.count, w.opened))
                    self._windows[key] = _Window(opened=now)  # the burst may go on
                else:
                    del self._windows[key]
        for last, count, opened in due:
            detail = {
                **last.detail,
                "window_opened": iso(opened),
                "window_seconds": self.dedup_window,
            }
            self._dispatch(replace(last, count=count, time=now, detail=detail))
        return len(due)

    def _tick(self, every: float) -> None:
        while not self._closed.wait(every):
            try:
                self.close_due()
            except Exception:
                log.exception("alert windows could not be closed")

    # -- delivery -----------------------------------------------------------------------

    def _dispatch(self, alert: Alert) -> None:
        data = alert.to_dict()
        data["time"] = data["time"] or self.clock()
        data = {"id": os.urandom(8).hex(), "at": iso(data["time"]), **data}
        if self._record is not None:
            try:
                self._record(alert_record(data))
            except Exception as err:
                log.error("alert %s could not be recorded (%s)", data["id"], type(err).__name__)
        for worker in self._workers:
            worker.put(data)

    def close(self, timeout: float = 10.0) -> None:
        """Summaries still open go out now; every sink drains (up to `timeout` each)."""
        if self._closed.is_set():
            return
        self.close_due(everything=True)
        self._closed.set()
        if self._ticker is not None:
            self._ticker.join(timeout)
        for worker in self._workers:
            worker.stop(timeout)
