"""Delivery workers: take spool entries to the smarthost (or MX), bounce, hold, notify, retry.

    Deliverer(spool, upstream | route factory, settings, record)
        submit(entry)    a freshly accepted entry (no re-read from disk)
        start(names)     the recovered queue; workers and the scheduler begin
        flush()          everything due now, and the queue directory re-read

For one entry a worker does, in order, what is not done yet (state.json
says what is; it is saved after each step when more remains):

  1. a quarantine decision taken by `leakguard mail quarantine …`: its event
  2. QUARANTINE groups → copied into the quarantine area, event
  3. DELIVER groups → the smarthost (one transaction per group; per recipient:
     2xx delivered, 5xx failed, anything else deferred)
  4. BOUNCE groups → one DSN to the sender naming rule and masked findings
  5. the sender told that groups are held (quarantine notice)
  6. the Plan's notices, each a separate mail
  7. recipients failed (5xx) or expired (older than the maximum queue age)
     → one DSN to the sender

When nothing remains the entry leaves the spool; else it is retried with
exponential backoff. A crash between a send and the state save repeats that
one send (at-least-once). A null sender (<>) never gets a DSN.

Connections to the smarthost are kept per worker and reused (RSET between
transactions; a reused connection that turns out dead is replaced once).
Without a smarthost, mailrelay.mx delivers to each recipient domain's MX.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import aiosmtplib

from mailrelay import dsn
from mailrelay.events import mail_event
from mailrelay.lanes import Batcher, Lane
from mailrelay.plan import Delivery, Outcome
from mailrelay.spool import QUEUE, REJECT, RELEASE, Entry, Spool

log = logging.getLogger("leakguard.mailrelay")

Record = Callable[[dict], None]

# Items a worker ticks off in state["done"]
DECISION_EVENT, QUARANTINED, BOUNCE_DSN, HELD_NOTICE = "decision", "quarantined", "bounce", "held"

TEMPORARY = 0  # our code for "no reply" (connection refused, timeout, TLS failure)
FRESH_BYTES = 64 * 2**20  # accepted messages kept in memory for the workers, at most


@dataclass(frozen=True)
class Upstream:
    """Where delivered mail goes: the smarthost (or the embedded sink)."""

    host: str
    port: int
    tls: str = "opportunistic"  # opportunistic: STARTTLS when offered | required | none
    verify: bool = True  # check the smarthost's certificate (system store or `cafile`)
    cafile: Path | None = None
    username: str | None = None
    password: str | None = None
    local_hostname: str = "localhost"
    timeout: float = 60.0
    idle_close: float = 30.0  # a connection unused this long is closed rather than reused


@dataclass(frozen=True)
class DeliverySettings:
    workers: int = 8
    retry_initial: float = 60.0  # seconds before the first retry; doubled each time …
    retry_max: float = 3600.0  # … up to this
    max_queue_age: float = 5 * 86400.0  # then a DSN to the sender and the entry leaves
    poll_interval: float = 1.0  # how often the flush request file is looked for
    rescan_interval: float = 30.0  # how often queue/ is re-read for entries put there by others
    hostname: str = "localhost"  # the name in DSNs (Reporting-MTA, MAILER-DAEMON@)
    contact: str = ""  # shown in DSNs


# -- one connection to the smarthost ---------------------------------------------------------


class Connection:
    """One reusable SMTP client connection (one per worker, so never shared)."""

    def __init__(self, upstream: Upstream, *, context: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream
        self.smtp: aiosmtplib.SMTP | None = None
        self.last_used = 0.0
        self._context: ssl.SSLContext | None = context  # shared, or made on first use

    def _tls_context(self) -> ssl.SSLContext | None:
        up = self.upstream
        if up.tls == "none":
            return None
        if self._context is None:  # loading the trust store costs tens of ms: once
            context = ssl.create_default_context(cafile=str(up.cafile) if up.cafile else None)
            if not up.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._context = context
        return self._context

    async def _connect(self) -> aiosmtplib.SMTP:
        up = self.upstream
        start_tls = {"required": True, "none": False}.get(up.tls)
        context = self._tls_context()
        smtp = aiosmtplib.SMTP(
            hostname=up.host,
            port=up.port,
            start_tls=start_tls,
            tls_context=context,
            validate_certs=up.verify,
            username=up.username,
            password=up.password,
            local_hostname=up.local_hostname,
            timeout=up.timeout,
        )
        await smtp.connect()
        return smtp

    async def send(
        self, sender: str, recipients: list[str], data: bytes, options: list[str]
    ) -> dict[str, tuple[int, str]]:
        """One transaction → each recipient's (code, text). Never raises for SMTP trouble."""
        for attempt in (1, 2):
            reused = self.smtp is not None and self.smtp.is_connected
            if reused and time.monotonic() - self.last_used > self.upstream.idle_close:
                self.close()
                reused = False
            try:
                if not reused:
                    self.close()
                    self.smtp = await self._connect()
                assert self.smtp is not None
                usable = [o for o in options if self._supports(o)]
                errors, reply = await self.smtp.sendmail(
                    sender, recipients, data, mail_options=usable
                )
                self.last_used = time.monotonic()
                ok = (250, reply)
                return {
                    r: (errors[r].code, errors[r].message) if r in errors else ok
                    for r in recipients
                }
            except aiosmtplib.SMTPRecipientsRefused as err:
                self.last_used = time.monotonic()
                refused = {e.recipient: (e.code, e.message) for e in err.recipients}
                return {r: refused.get(r, (TEMPORARY, "refused")) for r in recipients}
            except aiosmtplib.SMTPResponseException as err:
                self.last_used = time.monotonic()
                if err.code in (421,) or not (self.smtp and self.smtp.is_connected):
                    self.close()
                    if reused and attempt == 1:
                        continue
                return dict.fromkeys(recipients, (err.code, err.message))
            except (aiosmtplib.SMTPException, OSError, ssl.SSLError, ValueError) as err:
                self.close()
                if reused and attempt == 1:
                    continue  # the server dropped an idle connection: once more, fresh
                return dict.fromkeys(recipients, (TEMPORARY, _describe(err)))
        return dict.fromkeys(recipients, (TEMPORARY, "connection lost"))

    def _supports(self, option: str) -> bool:
        assert self.smtp is not None
        name = option.split("=", 1)[0].lower()
        if name == "body":
            return self.smtp.supports_extension("8bitmime")
        return self.smtp.supports_extension(name)

    def close(self) -> None:
        if self.smtp is not None:
            with contextlib.suppress(Exception):
                self.smtp.close()
        self.smtp = None

    async def quit(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.smtp.quit(), 2)
        self.close()


def _describe(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return " ".join(text.split())[:300]


# -- the workers and their schedule ----------------------------------------------------------


class Route(Protocol):
    """Where a worker sends: one smarthost Connection, or mailrelay.mx.MXRoute."""

    async def send(
        self, sender: str, recipients: list[str], data: bytes, options: list[str]
    ) -> dict[str, tuple[int, str]]: ...

    async def quit(self) -> None: ...


class Deliverer:
    def __init__(
        self,
        spool: Spool,
        route: Upstream | Callable[[], Route],
        settings: DeliverySettings,
        record: Record,
    ) -> None:
        """`route`: the smarthost, or a factory of one Route per worker (direct to MX)."""
        self.spool = spool
        if isinstance(route, Upstream):
            upstream = route
            self.new_route: Callable[[], Route] = lambda: Connection(replace(upstream))
        else:
            self.new_route = route
        self.settings = settings
        self.record = record
        self._due: list[tuple[float, str]] = []  # heap; stale items skipped
        self._when: dict[str, float] = {}  # entries waiting, and when they are due
        self._busy: set[str] = set()  # entries a worker holds
        self._fresh: dict[str, Entry] = {}  # accepted just now: no need to read them back
        self._fresh_bytes = 0
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._connections: list[Route] = []
        self._last_rescan = 0.0
        self._io = Lane("relay-delivery-io", threads=2)  # spool reads, state, quarantine
        self._removing: set[str] = set()  # delivered, being unlinked: never scheduled again
        self._remover = Batcher("relay-spool-remove", self._remove_batch)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered = 0  # groups delivered (for tests and a status line)

    # -- control ------------------------------------------------------------------------

    async def start(self, names: list[str]) -> None:
        self._loop = asyncio.get_running_loop()
        for name in names:
            self._schedule(name, 0.0)
        self._last_rescan = time.monotonic()
        for i in range(self.settings.workers):
            conn = self.new_route()
            self._connections.append(conn)
            self._tasks.append(asyncio.create_task(self._worker(conn), name=f"delivery-{i}"))
        self._tasks.append(asyncio.create_task(self._scheduler(), name="delivery-scheduler"))

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking work; give deliveries in flight `grace` seconds, then cancel them."""
        for task in self._tasks:
            if task.get_name() == "delivery-scheduler":
                task.cancel()
        for _ in self._connections:
            self._ready.put_nowait("")  # a stop sign for each worker
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*self._tasks, return_exceptions=True), timeout=grace
            )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(c.quit() for c in self._connections))
        self._tasks.clear()
        self._io.stop()
        self._remover.stop()
        await asyncio.to_thread(self._remover.join, 5)  # delivered entries really gone

    def submit(self, entry: Entry) -> None:
        """A message just accepted: deliver it now, from memory while the backlog is small
        (a slow smarthost must not make the relay hold every accepted message in RAM)."""
        size = len(entry.raw) + sum(len(d.message or b"") for d in entry.plan.deliveries)
        if self._fresh_bytes + size <= FRESH_BYTES:
            self._fresh[entry.name] = entry
            self._fresh_bytes += size
        self._when[entry.name] = 0.0
        self._ready.put_nowait(entry.name)

    def flush(self) -> None:
        """Retry everything now (and look for entries that appeared in queue/)."""
        now = time.monotonic()
        for name in list(self._when):
            self._schedule(name, now)
        self._last_rescan = 0.0
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._when) + len(self._busy)

    def _schedule(self, name: str, when: float) -> None:
        if name in self._busy or name in self._removing:
            return
        self._when[name] = when
        heapq.heappush(self._due, (when, name))
        self._wake.set()

    # -- tasks --------------------------------------------------------------------------

    async def _scheduler(self) -> None:
        poll = self.settings.poll_interval
        last_poll = 0.0
        while True:
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                when, name = heapq.heappop(self._due)
                if self._when.get(name) == when and name not in self._busy:
                    del self._when[name]
                    self._ready.put_nowait(name)
            if now - last_poll >= poll:
                last_poll = now
                if await self._io.run(self.spool.take_flush_request):
                    log.info("flush requested: retrying the whole queue now")
                    self.flush()
                    continue
            if now - self._last_rescan >= self.settings.rescan_interval:
                self._last_rescan = now
                for name in await self._io.run(self.spool.names, QUEUE):
                    if name not in self._when:
                        self._schedule(name, now)
                continue
            timeout = poll - (now - last_poll)
            if self._due:
                timeout = min(timeout, self._due[0][0] - now)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(timeout, 0.01))

    async def _worker(self, conn: Route) -> None:
        while True:
            name = await self._ready.get()
            if not name:
                return
            if name in self._busy:
                continue
            self._when.pop(name, None)
            self._busy.add(name)
            retry_at: float | None = None
            try:
                entry = self._fresh.pop(name, None)
                if entry is not None:
                    self._fresh_bytes -= len(entry.raw) + sum(
                        len(d.message or b"") for d in entry.plan.deliveries
                    )
                else:
                    entry = await self._io.run(self.spool.load, name)
                if entry is not None:
                    retry_at = await self.process(entry, conn)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop delivery of everything else
                log.exception("delivery of %s failed; retrying later", name)
                retry_at = time.monotonic() + self.settings.retry_initial
            finally:
                self._busy.discard(name)
            if retry_at is not None:
                self._schedule(name, retry_at)

    # -- one entry ----------------------------------------------------------------------

    async def process(self, entry: Entry, conn: Route) -> float | None:
        """Do what remains for `entry`; the monotonic time to retry at, or None when done."""
        state = _initial_state(entry) if not entry.state else entry.state
        deliveries = effective_deliveries(entry)
        done: list[str] = state["done"]
        now = time.time()
        base = entry.decision["at"] if entry.decision else entry.received
        sender = entry.envelope.mail_from
        dirty = False

        async def save() -> None:
            nonlocal dirty
            if dirty and _remaining(state, deliveries, entry):
                await self._io.run(self.spool.save_state, entry, state)
            dirty = False

        # 1. the security team's decision (the quarantine copy a crash may have left goes)
        if entry.decision and DECISION_EVENT not in done:
            await self._io.run(self.spool.drop_quarantined, entry)
            kind = "release" if entry.decision["decision"] == RELEASE else "reject"
            for d in deliveries:
                self._event(
                    f"smtp.quarantine.{kind}",
                    entry,
                    d,
                    d.recipients,
                    f"{kind}d by {entry.decision.get('by', '?')}"
                    + (f": {entry.decision['note']}" if entry.decision.get("note") else ""),
                )
            done.append(DECISION_EVENT)
            dirty = True

        # 2. quarantine
        held = [i for i, d in enumerate(deliveries) if d.outcome is Outcome.QUARANTINE]
        if held and QUARANTINED not in done:
            await self._io.run(self.spool.quarantine, entry, held)
            for i in held:
                d = deliveries[i]
                self._event("smtp.quarantine", entry, d, d.recipients, "held for review")
            done.append(QUARANTINED)
            dirty = True
            await save()

        # 3. delivery
        last_error = ""
        for i, d in enumerate(deliveries):
            if d.outcome is not Outcome.DELIVER:
                continue
            todo = _pending(state, i, d)
            if not todo:
                continue
            body = d.message if d.message is not None else entry.raw
            results = await conn.send(sender, todo, body, _options(entry))
            ok = [r for r, (code, _) in results.items() if 200 <= code < 300]
            failed = [r for r, (code, _) in results.items() if 500 <= code < 600]
            deferred = [r for r in todo if r not in ok and r not in failed]
            if ok:
                state["delivered"].setdefault(str(i), []).extend(ok)
                self.delivered += 1
                self._event("smtp.delivery", entry, d, ok, _reply(results[ok[0]]))
            for r in failed:
                code, text = results[r]
                state["failed"].append(_failure(i, r, code, text))
            if failed:
                self._event("smtp.delivery.failed", entry, d, failed, _reply(results[failed[0]]))
            if deferred:
                last_error = _reply(results[deferred[0]])
                self._event(
                    "smtp.delivery.deferred",
                    entry,
                    d,
                    deferred,
                    f"attempt {state['attempts'] + 1}: {last_error}",
                )
            if ok or failed:
                dirty = True
                await save()

        # 4–6. mail the relay writes itself
        mta, contact = self.settings.hostname, self.settings.contact
        bounced = [d for d in deliveries if d.outcome is Outcome.BOUNCE]
        if bounced and BOUNCE_DSN not in done:
            items = [_bounce_item(d, rejected=bool(entry.decision)) for d in bounced]
            sent, error = await self._report(conn, entry, items, mta, contact)
            last_error = last_error or error
            if sent:
                for d in bounced:
                    self._event("smtp.bounce", entry, d, d.recipients, _dsn_detail(sender))
                done.append(BOUNCE_DSN)
                dirty = True
                await save()
        if held and HELD_NOTICE not in done:
            items = [_held_item(deliveries[i]) for i in held]
            sent, error = await self._report(conn, entry, items, mta, contact)
            last_error = last_error or error
            if sent:
                done.append(HELD_NOTICE)
                dirty = True
                await save()
        for j, notice in enumerate(entry.plan.notices):
            key = f"notice-{j}"
            if key in done:
                continue
            results = await conn.send("", [notice.to], notice.message, [])
            code, text = results[notice.to]
            if 200 <= code < 300 or 500 <= code < 600:
                outcome = "sent" if code < 300 else f"refused: {code} {text}"
                self._event("smtp.notice", entry, None, [notice.to], outcome)
                done.append(key)
                dirty = True
                await save()
            else:
                last_error = _reply((code, text))

        # 7. expiry, then the failure report
        if now - base > self.settings.max_queue_age:
            expired = []
            for i, d in enumerate(deliveries):
                if d.outcome is Outcome.DELIVER:
                    for r in _pending(state, i, d):
                        why = last_error or state.get("last_error") or "?"
                        text = f"delivery time expired; last error: {why}"
                        state["failed"].append(_failure(i, r, 0, text, status="4.4.7"))
                        expired.append((d, r))
            for d in {id(d): d for d, _ in expired}.values():
                rcpts = [r for dd, r in expired if dd is d]
                self._event("smtp.delivery.failed", entry, d, rcpts, "expired in the queue")
            dirty = dirty or bool(expired)
        unreported = [f for f in state["failed"] if not f.get("reported")]
        if unreported:
            items = [_failure_item(f, deliveries) for f in unreported]
            sent, error = await self._report(conn, entry, items, mta, contact)
            last_error = last_error or error
            if sent:
                for f in unreported:
                    f["reported"] = True
                dirty = True

        # reports and notices that could not be sent for twice the queue age: give up on them
        if now - base > 2 * self.settings.max_queue_age and _remaining(state, deliveries, entry):
            self._event(
                "smtp.expired",
                entry,
                None,
                [entry.envelope.mail_from] if entry.envelope.mail_from else [],
                f"reports and notices could not be sent; dropped (last error: {last_error})",
            )
            self._remove(entry)
            return None

        if not _remaining(state, deliveries, entry):
            self._remove(entry)
            return None
        state["attempts"] += 1
        state["last_error"] = last_error
        delay = min(
            self.settings.retry_max, self.settings.retry_initial * 2 ** (state["attempts"] - 1)
        )
        delay *= random.uniform(0.9, 1.1)
        state["next"] = now + delay
        await self._io.run(self.spool.save_state, entry, state)
        return time.monotonic() + delay

    def _remove(self, entry: Entry) -> None:
        """Done with `entry`: unlinked soon, on the remover's thread, in a batch."""
        self._removing.add(entry.name)
        self._remover.put(entry)

    def _remove_batch(self, entries: list[Entry]) -> None:  # the remover's thread
        for entry in entries:
            try:
                self.spool.remove(entry)
            except OSError as err:  # left in the queue: the next rescan delivers it again
                log.error("removing delivered %s from the spool failed: %s", entry.name, err)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(self._removed, [e.name for e in entries])

    def _removed(self, names: list[str]) -> None:
        self._removing.difference_update(names)

    async def _report(self, conn, entry, items, mta, contact) -> tuple[bool, str]:
        """Send a DSN to the sender → (done with it: sent, refused or no sender; the error)."""
        sender = entry.envelope.mail_from
        if not sender:
            return True, ""  # never a DSN to the null sender (no bounce loops)
        message = dsn.report(
            reporting_mta=mta,
            sender=sender,
            message_id=entry.message_id,
            arrival=entry.received,
            items=items,
            original=entry.raw,
            contact=contact,
        )
        results = await conn.send("", [sender], message, [])
        code, text = results[sender]
        if 500 <= code < 600:
            log.warning("DSN for %s refused by the next hop: %s %s", entry.name, code, text)
        if 200 <= code < 300 or 500 <= code < 600:
            return True, ""
        return False, _reply((code, text))

    def _event(
        self,
        event_type: str,
        entry: Entry,
        d: Delivery | None,
        recipients,
        detail: str,
    ) -> None:
        event = mail_event(
            event_type, entry.envelope, recipients, d, detail, message_id=entry.message_id
        )
        try:
            self.record(event.to_dict())
        except Exception:
            log.exception("could not record a %s event", event_type)


# -- the plan as work ------------------------------------------------------------------------


def effective_deliveries(entry: Entry) -> tuple[Delivery, ...]:
    """The Plan's deliveries with a quarantine decision applied."""
    if not entry.decision:
        return entry.plan.deliveries
    release = entry.decision.get("decision") == RELEASE
    note = entry.decision.get("note") or ""
    out = []
    for d in entry.plan.deliveries:
        if d.outcome is Outcome.QUARANTINE and release:
            d = replace(d, outcome=Outcome.DELIVER)
        elif d.outcome is Outcome.QUARANTINE and entry.decision.get("decision") == REJECT:
            why = "rejected by the security team after review" + (f": {note}" if note else "")
            d = replace(
                d, outcome=Outcome.BOUNCE, reason=f"{d.reason} — {why}" if d.reason else why
            )
        out.append(d)
    return tuple(out)


def _initial_state(entry: Entry) -> dict:
    return {"attempts": 0, "done": [], "delivered": {}, "failed": [], "last_error": ""}


def _pending(state: dict, i: int, d: Delivery) -> list[str]:
    finished = set(state["delivered"].get(str(i), ()))
    finished.update(f["rcpt"] for f in state["failed"] if f["group"] == i)
    return [r for r in d.recipients if r not in finished]


def _remaining(state: dict, deliveries: tuple[Delivery, ...], entry: Entry) -> bool:
    done = state["done"]
    for i, d in enumerate(deliveries):
        if d.outcome is Outcome.DELIVER and _pending(state, i, d):
            return True
    if any(d.outcome is Outcome.BOUNCE for d in deliveries) and BOUNCE_DSN not in done:
        return True
    if any(d.outcome is Outcome.QUARANTINE for d in deliveries) and (
        QUARANTINED not in done or HELD_NOTICE not in done
    ):
        return True
    if any(f"notice-{j}" not in done for j in range(len(entry.plan.notices))):
        return True
    return any(not f.get("reported") for f in state["failed"])


def _options(entry: Entry) -> list[str]:
    keep = []
    for option in entry.mail_options:
        name = option.split("=", 1)[0].upper()
        if name in ("BODY", "SMTPUTF8"):
            keep.append(option)
    return keep


def _failure(i: int, rcpt: str, code: int, text: str, status: str = "") -> dict:
    if not status:
        status = _enhanced(text) or ("5.0.0" if code >= 500 else "4.0.0")
    return {"group": i, "rcpt": rcpt, "code": code, "text": text, "status": status}


def _enhanced(text: str) -> str:
    head = text.split(" ", 1)[0]
    parts = head.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and parts[0] in ("2", "4", "5"):
        return head
    return ""


def _reply(result: tuple[int, str]) -> str:
    code, text = result
    text = " ".join(str(text).split())[:300]
    return f"{code} {text}" if code else text


def _dsn_detail(sender: str) -> str:
    return "DSN sent to the sender" if sender else "null sender: no DSN"


def _bounce_item(d: Delivery, *, rejected: bool) -> dsn.Item:
    return dsn.Item(
        recipients=d.recipients,
        action=dsn.FAILED,
        status="5.7.1",
        diagnostic="550 5.7.1 refused by the data-loss-prevention policy"
        + (f" (rule {d.rule})" if d.rule else ""),
        explanation=(
            "rejected by the security team after review"
            if rejected
            else "refused by the data-loss-prevention policy"
        ),
        rule=d.rule,
        reason=d.reason,
        findings=d.findings,
        incident=d.incident,
    )


def _held_item(d: Delivery) -> dsn.Item:
    return dsn.Item(
        recipients=d.recipients,
        action=dsn.DELAYED,
        status="4.7.0",
        diagnostic="held for review by the security team",
        explanation="held for review by the security team (quarantine)",
        rule=d.rule,
        reason=d.reason,
        findings=d.findings,
        incident=d.incident,
    )


def _failure_item(f: dict, deliveries: tuple[Delivery, ...]) -> dsn.Item:
    expired = f["status"] == "4.4.7"
    text = f"{f['code']} {f['text']}" if f["code"] else f["text"]
    d = deliveries[f["group"]] if f["group"] < len(deliveries) else None
    return dsn.Item(
        recipients=(f["rcpt"],),
        action=dsn.FAILED,
        status="5.4.7" if expired else f["status"],
        diagnostic=text,
        explanation=(
            "not delivered within the maximum queue time"
            if expired
            else "refused by the next mail server"
        ),
        incident=d.incident if d else "",
    )
