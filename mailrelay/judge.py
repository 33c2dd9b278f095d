"""judge(raw, envelope, services) -> Plan: what happens to one message, for each recipient.

    inspect      mailrelay.judge_inspect: the engine's extraction and scan, plus what
                 only mail has (oversized headers, malformed MIME, broken charsets,
                 the message's own addresses are not content)
    evaluate     the policy once per recipient (channel smtp, the client's address and
                 login, the recipient, now); recipients with the same action, rule,
                 party, values to mask and encryption scope form one group
    apply        per group:
                   allow, report     DELIVER the original
                   mask              DELIVER a rewritten copy (mailrelay.mail_mask), scanned
                                     again: a value to mask that survives (an xlsx, a pdf, a
                                     zip…) turns the group into a BOUNCE
                   encrypt           values the party may not see masked first; then
                                     S/MIME (AES-256) to the party's certificate, the whole
                                     message or its attachments as the party's
                                     `encrypt_scope` says; a party with no certificate
                                     gets its attachments in an AES-256 zip and the sender
                                     a Notice with the password. Anything the rule wanted
                                     protected that would still travel in clear, an expired
                                     or unusable certificate, a failure: BOUNCE
                   quarantine        QUARANTINE
                   block             BOUNCE
    record       one `smtp.message` event per group, findings masked, recipients masked,
                 detail "message <relay id>; …"

Choices:
- A party certificate is the party's, not a mailbox's: it was checked against
  the party's addresses/domains when imported (`leakguard certs import`), so
  every recipient of the party is encrypted to it.
- `encrypt_scope: attachments` with a certificate, when the body itself
  carries what the rule wanted encrypted (or there is no attachment): the
  whole message is enveloped instead — stricter, still readable by the party.
- Without a certificate only attachments can be protected: if the body or
  subject carries a value the rule was about, the group is bounced.

Never raises: anything unexpected bounces every recipient with the reason
(rule `fail-closed`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from audit.events import decision_event
from audit.transfers import held_verdict
from certs.archive import new_password
from certs.errors import CannotEncrypt, CertsError
from certs.parties import CertState
from certs.smime import encryption_certificate
from mailrelay.judge_inspect import Inspection, header_text, inspect_message, scan_message
from mailrelay.judge_words import password_notice
from mailrelay.mail_encrypt import (
    NO_ATTACHMENTS,
    smime_attachments,
    smime_message,
    zip_attachments,
)
from mailrelay.mail_mask import CannotTransform, mask_message
from mailrelay.plan import Delivery, Envelope, Notice, Outcome, Plan
from mailrelay.services import Services
from rules.engine import Engine
from rules.findings import Finding
from rules.policy import Action, Context, Verdict, evaluate
from rules.policy.evaluate import summarize
from rules.policy.model import IPAddress, Policy
from rules.policy.places import plain_ip

log = logging.getLogger(__name__)

EVENT_TYPE = "smtp.message"
OUTCOMES = {
    Action.ALLOW: Outcome.DELIVER,
    Action.REPORT: Outcome.DELIVER,
    Action.MASK: Outcome.DELIVER,
    Action.ENCRYPT: Outcome.DELIVER,
    Action.QUARANTINE: Outcome.QUARANTINE,
    Action.BLOCK: Outcome.BOUNCE,
}
NO_INCIDENT = (Action.ALLOW, Action.REPORT)
CANNOT_MASK = (
    "已阻止：敏感信息无法安全脱敏。"
    "Blocked: the sensitive values could not be masked safely ({why})."
)
CANNOT_ENCRYPT = (
    "已阻止：邮件必须加密发送，但无法加密。"
    "Blocked: the message must be sent encrypted and could not be ({why})."
)
FAILED = "已阻止：邮件无法检查。Blocked: the message could not be inspected ({why})."

Key = tuple[Action, str, str, frozenset[tuple[str, str]], str]


def judge(raw: bytes, envelope: Envelope, services: Services) -> Plan:
    """The Plan for one message; never raises (a failure bounces every recipient)."""
    try:
        return _Judging(raw, envelope, services).plan()
    except Exception as err:  # fail closed; the log names the error type, not content
        log.exception("judging message %s failed", envelope.message_id)
        return failed_plan(envelope, services, f"inspection failed ({type(err).__name__})")


def failed_plan(envelope: Envelope, services: Services, why: str) -> Plan:
    """Every recipient bounced with `why`; recorded as one event (never raises)."""
    recipients = tuple(dict.fromkeys(envelope.rcpt_tos))
    incident = ""
    try:
        incident = services.new_incident()
        verdict = Verdict(message=FAILED.format(why=why)).failed(why)
        ctx = Context(channel="smtp", source_ip=_ip(envelope.source_ip), user=envelope.user or None)
        detail = f"message {envelope.message_id}; {len(recipients)} recipient(s)"
        services.record(decision_event(EVENT_TYPE, verdict, ctx, incident=incident, detail=detail))
    except Exception:
        log.exception("recording the failure of message %s failed", envelope.message_id)
    if not recipients:
        return Plan(())
    delivery = Delivery(
        recipients=recipients,
        outcome=Outcome.BOUNCE,
        action=str(Action.BLOCK),
        rule="fail-closed",
        reason=why,
        incident=incident,
        explanation=FAILED.format(why=why),
    )
    return Plan((delivery,))


class _CannotMask(CannotTransform):
    """The values to mask could not all be masked (as opposed to: could not encrypt)."""


@dataclass
class _Applied:
    verdict: Verdict
    message: bytes | None = None
    transform: list[str] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    detail: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Member:
    address: str
    verdict: Verdict
    ctx: Context


class _Judging:
    def __init__(self, raw: bytes, envelope: Envelope, services: Services) -> None:
        self.raw = raw
        self.envelope = envelope
        self.services = services
        self.policy: Policy = services.policy.policy  # read once: one policy per message
        self.engine: Engine = services.engine(self.policy)
        self.now: datetime = services.now()
        self.source_ip = _ip(envelope.source_ip)
        self._masked: dict[frozenset[tuple[str, str]], bytes] = {}
        self.inspection: Inspection | None = None

    # -- the whole message --------------------------------------------------------------

    def plan(self) -> Plan:
        recipients = list(dict.fromkeys(self.envelope.rcpt_tos))
        if not recipients:
            return Plan(())
        self.inspection = inspect_message(self.raw, self.envelope, self.engine, self.services)
        groups: dict[Key, list[_Member]] = {}
        for address in recipients:
            ctx = self.context(address)
            verdict = evaluate(self.policy, self.inspection.findings, ctx)
            verdict = held_verdict(verdict, self.services.sender_hold, ctx.user, ctx.source_ip)
            groups.setdefault(_key(verdict), []).append(_Member(address, verdict, ctx))
        deliveries: list[Delivery] = []
        notices: list[Notice] = []
        for members in groups.values():
            delivery, more = self.decide(members)
            deliveries.append(delivery)
            notices += more
        return Plan(tuple(deliveries), tuple(notices))

    def context(self, recipient: str) -> Context:
        return Context(
            channel="smtp",
            source_ip=self.source_ip,
            user=self.envelope.user or None,
            port=self.services.port,
            recipient=recipient,
            when=self.now,
        )

    # -- one recipient group --------------------------------------------------------------

    def decide(self, members: list[_Member]) -> tuple[Delivery, list[Notice]]:
        verdict = _group_verdict([m.verdict for m in members])
        recipients = tuple(m.address for m in members)
        incident = "" if verdict.action in NO_INCIDENT else self.services.new_incident()
        try:
            applied = self.apply(verdict, recipients, incident)
        except CannotTransform as err:
            masking = isinstance(err, _CannotMask) or verdict.action is not Action.ENCRYPT
            why = self.engine.redact(err.reason)  # built from masked parts; redact once more
            blocked = _blocked(verdict, why, CANNOT_MASK if masking else CANNOT_ENCRYPT)
            applied = _Applied(blocked, detail=[why])
        except Exception as err:  # a library failing on this group: this group fails closed
            log.exception("transforming message %s failed", self.envelope.message_id)
            how = "encryption" if verdict.action is Action.ENCRYPT else "masking"
            why = f"{how} failed ({type(err).__name__})"
            template = CANNOT_ENCRYPT if verdict.action is Action.ENCRYPT else CANNOT_MASK
            applied = _Applied(_blocked(verdict, why, template), detail=[why])
        final = applied.verdict
        detail = "; ".join(
            [
                f"message {self.envelope.message_id}",
                f"{len(recipients)} recipient(s)",
                *self.inspection_notes(),
                *(["sent as " + "+".join(applied.transform)] if applied.transform else []),
                *applied.detail,
            ]
        )
        self.record(final, members[0].ctx, incident, detail)
        delivery = Delivery(
            recipients=recipients,
            outcome=OUTCOMES[final.action],
            action=str(final.action),
            rule=final.rule,
            reason=final.reason,
            findings=tuple(f.to_dict() for f in final.findings),
            incident=incident,
            message=applied.message if OUTCOMES[final.action] is Outcome.DELIVER else None,
            explanation=final.message,
            transform="+".join(applied.transform),
        )
        notices = applied.notices if delivery.outcome is Outcome.DELIVER else []
        return delivery, notices

    def apply(self, verdict: Verdict, recipients: tuple[str, ...], incident: str) -> _Applied:
        applied = _Applied(verdict)
        if verdict.action.holds:
            return applied
        content = self.raw
        if verdict.mask:
            try:
                content = self.masked(verdict.mask)
            except CannotTransform as err:
                raise _CannotMask(err.reason) from None
            applied.transform.append("masked")
        if verdict.action is Action.ENCRYPT:
            content = self.encrypted(verdict, content, recipients, incident, applied)
        if content is not self.raw:
            applied.message = content
        return applied

    # -- mask -----------------------------------------------------------------------------

    def masked(self, mask: Iterable[Finding]) -> bytes:
        wanted = frozenset((f.detector, f.value_hash) for f in mask)
        if wanted not in self._masked:
            self._masked[wanted] = self._mask(wanted)
        return self._masked[wanted]

    def _mask(self, wanted: frozenset[tuple[str, str]]) -> bytes:
        self.require_parsed("masked")

        def find(text: str) -> list[Finding]:
            return [f for f in self.engine.scan_text(text) if (f.detector, f.value_hash) in wanted]

        rewritten = mask_message(self.raw, find)
        left = self.readable(rewritten, wanted)
        if left:
            raise CannotTransform(
                f"{summarize(left)} would remain in {_places(left)}, "
                "content that cannot be rewritten"
            )
        return rewritten

    # -- encrypt ----------------------------------------------------------------------------

    def encrypted(
        self,
        verdict: Verdict,
        content: bytes,
        recipients: tuple[str, ...],
        incident: str,
        applied: _Applied,
    ) -> bytes:
        self.require_parsed("encrypted")
        scope = verdict.encrypt_scope or "message"
        party = verdict.party
        protect = frozenset((f.detector, f.value_hash) for f in verdict.findings if f.value_hash)
        cert, why_not = self.certificate(party)
        if cert is not None:
            if scope == "attachments":
                sealed = smime_attachments(content, cert)
                if sealed is not None and not self.readable(sealed, protect):
                    applied.transform.append("smime:attachments")
                    return sealed
                applied.detail.append(
                    "the message text carries what the rule protects (or there is no "
                    "attachment): the whole message is encrypted"
                )
            sealed = smime_message(content, cert)
            left = self.readable(sealed, protect)
            if left:
                raise CannotTransform(
                    f"{summarize(left)} would travel in clear in {_places(left)} "
                    "(S/MIME leaves the headers unencrypted)"
                )
            applied.transform.append("smime:message")
            return sealed
        # No certificate: only the attachments can go encrypted (a zip), the password apart.
        password = new_password()
        try:
            sealed = zip_attachments(content, password)
        except CannotTransform as err:
            if err.reason == NO_ATTACHMENTS:
                raise CannotTransform(f"{why_not}, and {NO_ATTACHMENTS}") from None
            raise
        left = self.readable(sealed, protect)
        if left:
            raise CannotTransform(
                f"{summarize(left)} in {_places(left)} cannot be sent in clear, and "
                f"{why_not}: only attachments can be encrypted (zip)"
            )
        if not self.envelope.mail_from:
            raise CannotTransform("the message has no sender to give the zip password to")
        applied.transform.append("zip:attachments")
        applied.notices.append(
            password_notice(
                sender=self.envelope.mail_from,
                postmaster=self.services.postmaster,
                now=self.now,
                recipients=recipients,
                password=password,
                rule=verdict.rule,
                why=why_not,
                incident=incident,
                subject=self.header("subject"),
                message_id=self.header("message-id", redact=False),
                relay_id=self.envelope.message_id,
                contact=self.services.contact,
            )
        )
        return sealed

    def certificate(self, party: str | None):
        """(certificate, "") when S/MIME is possible; (None, why not) for the zip fallback.

        A certificate that exists but cannot be used (expired, not yet valid,
        wrong key, unreadable) raises CannotTransform: the mail is bounced,
        never sent with a weaker protection than the party agreed to.
        """
        if not party:
            return None, "the recipient is not an approved party with a certificate"
        store = self.services.certificates
        try:
            status = store.status(party, self.now)
            if status.state is CertState.MISSING:
                return None, f"party {party} has no certificate"
            return encryption_certificate(store, party, self.now), ""
        except CannotEncrypt as err:
            raise CannotTransform(err.reason) from None
        except CertsError as err:
            raise CannotTransform(
                f"the certificate of party {party} cannot be used: {err}"
            ) from None

    # -- helpers ----------------------------------------------------------------------------

    def readable(self, message: bytes, wanted: frozenset[tuple[str, str]]) -> list[Finding]:
        """Findings of `wanted` values still readable in `message` (what the relay made)."""
        if not wanted:
            return []
        found = scan_message(message, self.envelope, self.engine, self.services)
        return [f for f in found if (f.detector, f.value_hash) in wanted]

    def require_parsed(self, how: str) -> None:
        assert self.inspection is not None
        if self.inspection.message is None:
            raise CannotTransform(f"a message that could not be parsed cannot be {how}")

    def header(self, name: str, *, redact: bool = True) -> str:
        message = self.inspection.message if self.inspection else None
        value = header_text(message, name)[:300] if message is not None else ""
        return self.engine.redact(value) if redact else value

    def inspection_notes(self) -> list[str]:
        if self.inspection is None or not self.inspection.problems:
            return []
        return ["uninspectable: " + self.engine.redact(", ".join(self.inspection.problems))]

    def record(self, verdict: Verdict, ctx: Context, incident: str, detail: str) -> None:
        try:
            event = decision_event(
                EVENT_TYPE, verdict, ctx, incident=incident, detail=detail, size=len(self.raw)
            )
            self.services.record(event)
        except Exception:  # the decision stands; the log says the record is missing
            log.exception("recording the decision on message %s failed", self.envelope.message_id)


def _key(verdict: Verdict) -> Key:
    masked = frozenset((f.detector, f.value_hash) for f in verdict.mask)
    return (verdict.action, verdict.rule, verdict.party or "", masked, verdict.encrypt_scope)


def _group_verdict(verdicts: list[Verdict]) -> Verdict:
    """One Verdict for a group: destinations listed (masked), categories together."""
    first = verdicts[0]
    if len(verdicts) == 1:
        return first
    shown = ", ".join(dict.fromkeys(v.place.destination for v in verdicts if v.place.destination))
    reason = _joined((v.reason, v.place.destination) for v in verdicts)
    message = _joined((v.message, v.place.destination) for v in verdicts)
    categories = frozenset().union(*(v.place.categories for v in verdicts))
    place = replace(first.place, destination=shown, categories=categories)
    return replace(first, reason=reason, message=message, place=place)


def _joined(texts: Iterable[tuple[str, str]]) -> str:
    """The same sentence for every recipient becomes one, naming them all."""
    pairs = list(texts)
    marker = "\x00"
    templates = {text.replace(dest, marker) if dest else text for text, dest in pairs}
    if len(templates) == 1:
        shown = ", ".join(dict.fromkeys(dest for _, dest in pairs if dest))
        return next(iter(templates)).replace(marker, shown)
    return " | ".join(dict.fromkeys(text for text, _ in pairs))


def _blocked(verdict: Verdict, why: str, template: str) -> Verdict:
    return replace(
        verdict,
        action=Action.BLOCK,
        reason=f"{verdict.reason}; blocked because {why}",
        findings=verdict.findings or verdict.mask,
        mask=(),
        encrypt_scope="",
        message=template.format(why=why),
    )


def _places(findings: list[Finding]) -> str:
    places = list(dict.fromkeys(f.location or "the message" for f in findings))
    shown = ", ".join(places[:3])
    return shown + (f" and {len(places) - 3} more places" if len(places) > 3 else "")


def _ip(text: str) -> IPAddress | None:
    text = (text or "").strip().strip("[]")
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        return plain_ip(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None


__all__ = ["failed_plan", "judge"]
