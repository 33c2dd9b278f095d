"""The SMTP side of the relay: who may relay, the limits, and the durable 250.

    RelayHandler(judge, spool, policy, on_spooled, record)   aiosmtpd handler hooks
    RelaySMTP(handler, …)                                    aiosmtpd's SMTP, our reply texts

MAIL/RCPT: only a client on a trusted network or one that authenticated
(AUTH PLAIN/LOGIN, offered only after STARTTLS) may relay; anyone else gets
530 at MAIL and 554 at RCPT — never an open relay. Recipients per message
are limited (452 4.5.3); the size is advertised (SIZE) and enforced (552).

DATA: the header block is checked (field count, field length, total size,
hops), a Received line is added, then the judge runs on its own threads
(mailrelay.lanes) with a timeout (fail closed: 451 4.7.0). A Plan that
refuses every recipient is answered 550 5.7.1 with the rule's reason and
nothing is stored; any other Plan is written to the spool (fsync'ed, group
commit: mailrelay.spool_writer) and only then answered 250.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from email.utils import formatdate

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from audit.events import Event
from audit.logins import LoginWatcher
from mailrelay.auth import DEFAULT_TRUSTED_NETWORKS, Network, Users, in_networks, parse_networks
from mailrelay.events import mail_event
from mailrelay.lanes import Lane
from mailrelay.plan import Envelope, Outcome, Plan
from mailrelay.spool import Entry, Spool, SpoolError, new_message_id
from mailrelay.spool_writer import SpoolWriter
from rules.extract.mime import all_text, forget_parse, parse_mail

log = logging.getLogger("leakguard.mailrelay")

Judge = Callable[[bytes, Envelope], Plan]
Record = Callable[[dict], None]

# -- reply codes ------------------------------------------------------------------------------
SENDER_OK = "250 2.1.0 Sender ok"
RECIPIENT_OK = "250 2.1.5 Recipient ok"
QUEUED = "250 2.0.0 Ok: queued as {id}"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_REQUIRED = "530 5.7.0 Authentication required (this network may not relay without it)"
RELAY_DENIED = "554 5.7.1 Relay access denied"
BAD_ADDRESS = "553 5.1.3 Address is not valid UTF-8 or ASCII"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients (at most {max} per message)"
SIZE_EXCEEDED = "552 5.3.4 Message size exceeds fixed maximum message size ({max} bytes)"
HEADER_TOO_LARGE = "552 5.3.4 Message header too large ({size} bytes; at most {max})"
TOO_MANY_FIELDS = "552 5.3.4 Too many header fields ({count}; at most {max})"
FIELD_TOO_LONG = "552 5.3.4 Header field {name} too long ({size} bytes; at most {max})"
TOO_MANY_HOPS = "554 5.4.6 Too many Received headers ({count}): a mail loop?"
REFUSED = "550 5.7.1 {reason}"
INSPECTION_FAILED = "451 4.7.0 The message could not be inspected now; try again later"
SPOOL_FAILED = "451 4.3.0 The message could not be queued; try again later"
INTERNAL_ERROR = "451 4.3.0 Internal error; try again later"

# Small mail whose parts are all text bodies is judged on the event loop: its judging
# (~1 ms) is bounded by its size, and the hop to a judge thread and back cost more in GIL
# hand-offs than the judging itself. Anything extraction would open as a file (an archive,
# an office file, a PDF: content that expands; any named part or attachment; a nested
# message) goes to the judge lane, under its timeout. Decided on the parsed structure,
# which the judge then reuses (rules.extract.mime.parse_mail keep=True).
JUDGE_INLINE_BELOW = 32 * 1024
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
# an account frozen (or an address blocked) after it logged in: its open sessions stop too
ACCOUNT_HELD = "535 5.7.8 This login is held by the security team; please contact them"
AUTH_TEMPFAIL = "454 4.7.0 Temporary authentication failure"
AUTH_TOO_MANY = "421 4.7.0 Too many authentication failures; closing the connection"

MAX_REPLY_TEXT = 400


@dataclass(frozen=True)
class AcceptPolicy:
    """Who may relay and how much: the acceptance half of the relay settings."""

    hostname: str = "localhost"
    trusted_networks: tuple[Network, ...] = field(
        default_factory=lambda: parse_networks(DEFAULT_TRUSTED_NETWORKS)
    )
    max_message_size: int = 25 * 2**20
    max_recipients: int = 100
    max_header_bytes: int = 256 * 2**10
    max_header_fields: int = 500
    max_header_field_bytes: int = 32 * 2**10
    max_received: int = 50
    judge_timeout: float = 60.0
    auth_failure_delay: float = 1.0  # slows guessing; the connection closes after …
    max_auth_failures: int = 3  # … this many failures


class RelaySMTP(SMTP):
    """aiosmtpd's SMTP with our texts for its own size refusals."""

    def __init__(self, handler: RelayHandler, **kwargs) -> None:
        self._size_reply = SIZE_EXCEEDED.format(max=kwargs.get("data_size_limit"))
        super().__init__(handler, **kwargs)

    async def push(self, status) -> None:
        if isinstance(status, str) and status.startswith("552 Error:"):
            status = self._size_reply
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd 1.4's own, less a typing.Protocol class it builds on every MAIL and RCPT
        (5 % of the relay's CPU under load)."""
        if not arg:
            return "", ""
        try:
            if arg.lstrip().startswith("<"):
                address, rest = get_angle_addr(arg)
            else:
                address, rest = get_addr_spec(arg)
        except HeaderParseError:
            return None, None
        addr = address.addr_spec
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest


class RelayHandler:
    def __init__(
        self,
        judge: Judge,
        spool: Spool,
        policy: AcceptPolicy,
        on_spooled: Callable[[Entry], None],
        record: Record,
        *,
        users: Users | None = None,
        judge_lane: Lane,
        spool_writer: SpoolWriter,
        io_pool: concurrent.futures.Executor | None = None,
        logins: LoginWatcher | None = None,
    ) -> None:
        self.judge = judge
        self.spool = spool
        self.policy = policy
        self.on_spooled = on_spooled
        self.record = record
        self.users = users
        self.judge_lane = judge_lane
        self.spool_writer = spool_writer
        self.io_pool = io_pool  # AUTH's password checks
        self.logins = logins  # frozen accounts, blocked addresses, anomalies (settable later)
        self.accepted = 0

    # -- who may relay ------------------------------------------------------------------

    def _trusted(self, session) -> bool:
        trusted = getattr(session, "leakguard_trusted", None)
        if trusted is None:  # the peer does not change within a session: look once
            peer = session.peer
            host = peer[0] if isinstance(peer, tuple) else str(peer or "")
            trusted = session.leakguard_trusted = in_networks(host, self.policy.trusted_networks)
        return trusted

    def _may_relay(self, session) -> bool:
        return bool(session.authenticated) or self._trusted(session)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # without a users file there is nothing to authenticate against: AUTH is not offered
        return [r for r in responses if not (r.startswith("250-AUTH") and self.users is None)]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not self._may_relay(session):
            self._refusal_event(session, "", (), "MAIL refused: not authenticated, untrusted")
            return AUTH_REQUIRED
        if not _valid_address(address):
            return BAD_ADDRESS
        held = await self._held_now(session)
        if held:
            return held
        envelope.mail_from = address  # aiosmtpd spells the null sender "<>"
        envelope.mail_options.extend(mail_options)
        return SENDER_OK

    async def _held_now(self, session) -> str | None:
        """A session that logged in before its account was frozen (or its address blocked)
        sends nothing more: each MAIL asks the watch again. Trusted-network sessions without
        a login are the firm's mail server, not an account: they are not asked."""
        if not (session.authenticated and self.logins):
            return None
        name, ip = _login(session), _peer_ip(session)
        try:
            refused = await asyncio.get_running_loop().run_in_executor(
                self.io_pool, self.logins.check, "smtp", name, ip
            )
        except Exception:  # the audit store is down: fail closed, the client may retry
            log.exception("login watch failed for MAIL of an authenticated session")
            return AUTH_TEMPFAIL
        if refused:
            self._refusal_event(session, "", (), f"MAIL refused: {refused.why}")
            return ACCOUNT_HELD
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not self._may_relay(session):
            return RELAY_DENIED
        if not _valid_address(address) or address == "<>":
            return BAD_ADDRESS
        if len(envelope.rcpt_tos) >= self.policy.max_recipients:
            return TOO_MANY_RECIPIENTS.format(max=self.policy.max_recipients)
        if address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return RECIPIENT_OK

    # -- AUTH (offered only after STARTTLS: aiosmtpd's auth_require_tls) ----------------

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = _b64decode(args[1])
            except ValueError:
                await server.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        try:
            _authz, login, password = blob.split(b"\x00")
        except ValueError:
            await server.push("501 5.5.2 Cannot split the PLAIN credentials")
            return AuthResult(success=False, handled=True)
        return await self._check(server, login, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await server.challenge_auth(SMTP.AuthLoginUsernameChallenge)
            if not isinstance(login, bytes):
                return AuthResult(success=False, handled=True)
        else:
            try:
                login = _b64decode(args[1])
            except ValueError:
                await server.push("501 5.5.2 Cannot decode base64")
                return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(SMTP.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._check(server, login, password)

    async def _check(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        session = server.session
        if self.users is None:
            return AuthResult(success=False, handled=False, message=AUTH_INVALID)
        loop = asyncio.get_running_loop()
        name = login.decode("utf-8", "replace")[:64]
        watcher, ip = self.logins, _peer_ip(session)
        try:  # a frozen account or a blocked address: 535 whatever the password, like a guess
            refused = watcher and await loop.run_in_executor(
                self.io_pool, watcher.check, "smtp", name, ip
            )
            ok = not refused and await loop.run_in_executor(
                self.io_pool, self.users.verify, login, password
            )
            if watcher and not refused:
                attempt = functools.partial(watcher.attempt, "smtp", name, ip, ok=bool(ok))
                refused = await loop.run_in_executor(self.io_pool, attempt)
        except OSError as err:
            log.error("users file %s: %s", self.users.path, err)
            return AuthResult(success=False, handled=False, message=AUTH_TEMPFAIL)
        except Exception:  # the audit store is down: fail closed, the client may retry
            log.exception("login watch failed for an SMTP AUTH")
            return AuthResult(success=False, handled=False, message=AUTH_TEMPFAIL)
        if ok and not refused:
            return AuthResult(success=True, auth_data=LoginPassword(login, b""))
        failures = getattr(session, "leakguard_failures", 0) + 1
        session.leakguard_failures = failures
        self._record(
            Event(
                type="smtp.auth.failure",
                channel="smtp",
                source_ip=_peer_ip(session),
                user=name,
                action="refuse",
                detail=f"{refused.why if refused else 'wrong login or password'} "
                f"(failure {failures} in this connection)",
            )
        )
        await asyncio.sleep(self.policy.auth_failure_delay)
        if failures >= self.policy.max_auth_failures:
            await server.push(AUTH_TOO_MANY)
            if server.transport is not None:
                server.transport.close()
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=AUTH_INVALID)

    # -- DATA ---------------------------------------------------------------------------

    async def handle_DATA(self, server, session, envelope) -> str:
        raw: bytes = envelope.original_content or b""
        problem = check_headers(raw, self.policy)
        if problem:
            self._refusal_event(session, envelope.mail_from, envelope.rcpt_tos, problem)
            return problem
        message_id = new_message_id()
        env = Envelope(
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            source_ip=_peer_ip(session),
            user=_login(session),
            message_id=message_id,
        )
        raw = self._received(server, session, message_id) + raw
        started = time.monotonic()
        try:
            if judged_inline(raw):
                plan = self.judge(raw, env)
            else:
                plan = await asyncio.wait_for(
                    self.judge_lane.run(self.judge, raw, env),
                    self.policy.judge_timeout,
                )
        except TimeoutError:
            log.error(
                "judging %s took over %.0f s: refused for now",
                message_id,
                time.monotonic() - started,
            )
            self._refusal_event(
                session, env.mail_from, env.rcpt_tos, "inspection timed out", message_id
            )
            return INSPECTION_FAILED
        except Exception:
            log.exception("judging %s failed: refused for now", message_id)
            self._refusal_event(
                session, env.mail_from, env.rcpt_tos, "inspection failed", message_id
            )
            return INSPECTION_FAILED
        problem = plan_problem(plan, env)
        if problem:
            log.error("the plan for %s is unusable (%s): refused for now", message_id, problem)
            self._refusal_event(
                session, env.mail_from, env.rcpt_tos, f"bad plan: {problem}", message_id
            )
            return INSPECTION_FAILED
        if plan.all_refused:
            reply = refusal_reply(plan, utf8=bool(envelope.smtp_utf8))
            for d in plan.deliveries:
                self._record(_event("smtp.refused", env, d.recipients, d, reply))
            return reply
        try:
            entry = await self.spool_writer.store(raw, env, plan, tuple(envelope.mail_options))
        except (OSError, SpoolError) as err:
            log.error("spooling %s failed: %s", message_id, err)
            self._refusal_event(session, env.mail_from, env.rcpt_tos, f"spool: {err}", message_id)
            return SPOOL_FAILED
        self.accepted += 1
        self._record(
            _event(
                "smtp.accepted",
                env,
                env.rcpt_tos,
                None,
                f"{len(raw)} bytes; "
                + ", ".join(f"{len(d.recipients)} {d.outcome}" for d in plan.deliveries),
            )
        )
        self.on_spooled(entry)
        return QUEUED.format(id=message_id)

    async def handle_exception(self, error: Exception) -> str:
        log.exception("SMTP session error", exc_info=error)
        return INTERNAL_ERROR

    def _received(self, server: SMTP, session, message_id: str) -> bytes:
        helo = _printable(session.host_name or "unknown")[:80]
        tls = session.ssl is not None
        auth = bool(session.authenticated)
        proto = ("ESMTP" if session.extended_smtp else "SMTP") + ("S" if tls else "")
        proto += "A" if auth else ""
        return (
            f"Received: from {helo} ([{_peer_ip(session)}])\r\n"
            f"\tby {server.hostname} (leakguard) with {proto} id {message_id};\r\n"
            f"\t{_date_now()}\r\n"
        ).encode()

    def _refusal_event(self, session, mail_from, rcpts, why: str, message_id: str = "") -> None:
        env = Envelope(
            mail_from="" if mail_from in ("<>", None) else mail_from,
            rcpt_tos=tuple(rcpts or ()),
            source_ip=_peer_ip(session),
            user=_login(session),
            message_id=message_id,
        )
        self._record(_event("smtp.refused", env, env.rcpt_tos, None, why))

    def _record(self, event: Event) -> None:
        try:
            self.record(event.to_dict())
        except Exception:
            log.exception("could not record a %s event", event.type)


# -- checks -----------------------------------------------------------------------------------


def check_headers(raw: bytes, policy: AcceptPolicy) -> str:
    """A refusal reply when the header block breaks a limit, else ''."""
    end = raw.find(b"\r\n\r\n")
    header = raw if end < 0 else raw[: end + 2]
    if len(header) > policy.max_header_bytes:
        return HEADER_TOO_LARGE.format(size=len(header), max=policy.max_header_bytes)
    count = received = 0
    name, size = b"", 0
    for line in header.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and name:
            size += len(line) + 2
        else:
            if name and size > policy.max_header_field_bytes:
                return FIELD_TOO_LONG.format(
                    name=_field_name(name), size=size, max=policy.max_header_field_bytes
                )
            if not line:
                name = b""
                continue
            count += 1
            name = line.split(b":", 1)[0].strip() or b"?"
            size = len(line) + 2
            if name.lower() == b"received":
                received += 1
    if name and size > policy.max_header_field_bytes:
        return FIELD_TOO_LONG.format(
            name=_field_name(name), size=size, max=policy.max_header_field_bytes
        )
    if count > policy.max_header_fields:
        return TOO_MANY_FIELDS.format(count=count, max=policy.max_header_fields)
    if received > policy.max_received:
        return TOO_MANY_HOPS.format(count=received)
    return ""


def plan_problem(plan: Plan, env: Envelope) -> str:
    """Why a Plan cannot be carried out safely ('' when it can): fail closed on judge bugs."""
    if not isinstance(plan, Plan) or not plan.deliveries:
        return "no deliveries"
    seen: list[str] = []
    for d in plan.deliveries:
        if not isinstance(d.outcome, Outcome):
            return f"unknown outcome {d.outcome!r}"
        seen.extend(d.recipients)
    if len(seen) != len(set(seen)):
        return "a recipient is in two groups"
    if set(seen) != set(env.rcpt_tos):
        return "the groups do not cover exactly the envelope's recipients"
    return ""


def refusal_reply(plan: Plan, *, utf8: bool = False) -> str:
    """'550 5.7.1 <reason> (rule …, incident …)' on one line; ASCII unless SMTPUTF8 was used."""
    reasons, rules, incidents = [], [], []
    for d in plan.deliveries:
        text = d.reason if utf8 else _ascii_part(d.reason)
        if text and text not in reasons:
            reasons.append(text)
        if d.rule and d.rule not in rules:
            rules.append(d.rule)
        if d.incident and d.incident not in incidents:
            incidents.append(d.incident)
    reason = "; ".join(reasons) or "Refused by the data-loss-prevention policy"
    extra = []
    if rules:
        extra.append("rule " + ", ".join(_printable(r) for r in rules))
    if incidents:
        extra.append("incident " + ", ".join(_printable(i) for i in incidents))
    text = " ".join(reason.split())
    suffix = f" ({'; '.join(extra)})" if extra else ""
    if len(text) + len(suffix) > MAX_REPLY_TEXT:
        text = text[: MAX_REPLY_TEXT - len(suffix) - 1] + "…"
    return REFUSED.format(reason=text + suffix)


def _ascii_part(text: str) -> str:
    """The ASCII sentences of a bilingual reason ('已阻止：…。Blocked: …' → 'Blocked: …')."""
    kept = " ".join(re.sub(r"[^\x20-\x7e]+", " ", text or "").split()).strip(" :;,")
    return kept if sum(c.isalpha() for c in kept) >= 3 else ""


def _event(event_type: str, env: Envelope, rcpts, d, detail: str) -> Event:
    return mail_event(event_type, env, rcpts, d, detail, message_id=env.message_id)


def _peer_ip(session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")


def judged_inline(raw: bytes) -> bool:
    """Small, and every part a text body (rules.extract.mime.all_text)."""
    if len(raw) > JUDGE_INLINE_BELOW:
        return False
    if all_text(parse_mail(raw, keep=True)):
        return True  # the judge, on this thread, reads the same parse
    forget_parse()
    return False


def _login(session) -> str:
    data = session.auth_data
    if isinstance(data, LoginPassword):
        return data.login.decode("utf-8", "replace")
    return ""


def _valid_address(address: str) -> bool:
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes that are not UTF-8
        return False
    return not any(c in address for c in "\r\n\x00")


def _field_name(name: bytes) -> str:
    return _printable(name.decode("ascii", "replace"))[:40] or "?"


_date_cache: tuple[int, str] = (0, "")


def _date_now() -> str:
    """The RFC 5322 date for Received, formatted once a second (it showed in profiles)."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, formatdate(second, localtime=True))
    return _date_cache[1]


def _printable(text: str) -> str:
    return "".join(c if 32 < ord(c) < 127 else "?" for c in text)


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, UnicodeEncodeError) as err:
        raise ValueError(str(err)) from None
