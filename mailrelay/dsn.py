"""Delivery status notifications (RFC 3464 multipart/report) the relay sends to a sender.

    report(...)  →  bytes of a message from MAILER-DAEMON, sent with MAIL FROM:<>

One report covers a list of `Item`s (recipients and why): refused by a rule
(bounce), rejected from the quarantine, refused by the next hop or expired
in the queue (failed), or held for review (delayed). It names the rule, its
reason and the findings **masked** — the report never carries a raw value —
and returns only a few headers of the original (Message-ID, Date, From), not
its body or subject, which may hold the very data that was stopped.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from email.header import Header
from email.utils import formatdate

MAX_FINDINGS = 20
RETURNED_HEADERS = ("message-id", "date", "from")

FAILED, DELAYED = "failed", "delayed"


@dataclass(frozen=True)
class Item:
    recipients: tuple[str, ...]
    action: str  # FAILED | DELAYED
    status: str  # enhanced status code, e.g. 5.7.1
    diagnostic: str  # the SMTP reply, e.g. "550 5.7.1 refused by policy"
    explanation: str  # one line for people
    rule: str = ""
    reason: str = ""
    findings: tuple[dict, ...] = ()
    incident: str = ""


SUBJECTS = {
    FAILED: "Undelivered mail returned to sender (退信: 邮件未能送达)",
    DELAYED: "Mail held for review (邮件已暂扣待审核)",
}
INTROS = {
    FAILED: (
        "您的邮件未能送达以下收件人。\nYour message could not be delivered to the recipients below."
    ),
    DELAYED: (
        "您的邮件已被暂扣，等待信息安全部审核；审核结果将另行通知。\n"
        "Your message is held for review by the security team for the recipients below;\n"
        "you will be told if it is rejected."
    ),
}


def report(
    *,
    reporting_mta: str,
    sender: str,
    message_id: str,
    arrival: float,
    items: list[Item],
    original: bytes = b"",
    contact: str = "",
) -> bytes:
    """The whole DSN message as bytes (CRLF line ends)."""
    action = FAILED if any(i.action == FAILED for i in items) else DELAYED
    boundary = f"=_leakguard_{secrets.token_hex(12)}"
    original_id = _header(original, "message-id")
    headers = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{sender}>",
        f"Subject: {Header(SUBJECTS[action], 'utf-8').encode()}",
        f"Date: {formatdate(localtime=True)}",
        f"Message-ID: <dsn.{message_id}.{secrets.token_hex(4)}@{reporting_mta}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    if original_id:
        headers += [f"In-Reply-To: {original_id}", f"References: {original_id}"]
    text = _human(reporting_mta, sender, message_id, arrival, items, action, contact)
    status = _status(reporting_mta, message_id, arrival, items)
    returned = _returned_headers(original)
    parts = [
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + _crlf(text).encode(),
        b"Content-Type: message/delivery-status\r\n\r\n" + _crlf(status).encode("ascii"),
        b"Content-Type: text/rfc822-headers\r\n\r\n" + returned,
    ]
    out = (
        "\r\n".join(headers).encode()
        + b"\r\n\r\nThis is a MIME-formatted delivery status report.\r\n"
    )
    for part in parts:
        out += f"\r\n--{boundary}\r\n".encode() + part
    return out + f"\r\n--{boundary}--\r\n".encode()


def _human(mta, sender, message_id, arrival, items, action, contact) -> str:
    lines = [
        INTROS[action],
        "",
        f"Message: relay id {message_id}, received {formatdate(arrival, localtime=True)}",
        f"Sender:  {sender}",
        "",
    ]
    for item in items:
        lines.append("  " + ", ".join(item.recipients))
        lines.append(f"    {item.explanation}")
        if item.rule:
            lines.append(f"    rule: {item.rule}")
        if item.reason:
            lines.append(f"    reason: {item.reason}")
        if item.incident:
            lines.append(f"    incident: {item.incident}")
        if item.findings:
            lines.append("    found (values masked):")
            for f in item.findings[:MAX_FINDINGS]:
                lines.append(f"      {_finding(f)}")
            if len(item.findings) > MAX_FINDINGS:
                lines.append(f"      … and {len(item.findings) - MAX_FINDINGS} more")
        lines.append(f"    ({item.diagnostic})")
        lines.append("")
    if contact:
        lines.append(f"Questions: {contact}")
    lines.append(f"-- the mail relay at {mta} (leakguard)")
    return "\n".join(lines) + "\n"


def _finding(f: dict) -> str:
    kind = str(f.get("type", "finding"))
    shown = str(f.get("masked") or "")
    if not shown:
        why = f.get("why") or ()
        shown = str(why[0]) if why else ""
    where = str(f.get("location") or "")
    return " ".join(p for p in (kind, shown, f"in {where}" if where else "") if p)


def _status(mta: str, message_id: str, arrival: float, items: list[Item]) -> str:
    blocks = [
        "\n".join(
            [
                f"Reporting-MTA: dns; {_ascii(mta)}",
                f"X-Leakguard-Message-ID: {_ascii(message_id)}",
                f"Arrival-Date: {formatdate(arrival)}",
            ]
        )
    ]
    for item in items:
        for rcpt in item.recipients:
            kind = "rfc822" if rcpt.isascii() else "utf-8"
            blocks.append(
                "\n".join(
                    [
                        f"Final-Recipient: {kind}; {_ascii(rcpt)}",
                        f"Action: {item.action}",
                        f"Status: {item.status}",
                        f"Diagnostic-Code: smtp; {_ascii(item.diagnostic)}",
                    ]
                )
            )
    return "\n\n".join(blocks) + "\n"


def _returned_headers(raw: bytes) -> bytes:
    out = []
    for name in RETURNED_HEADERS:
        value = _header(raw, name)
        if value:
            out.append(f"{name.title()}: {value}".encode("utf-8", "replace"))
    return b"\r\n".join(out) + b"\r\n" if out else b"\r\n"


def _header(raw: bytes, name: str) -> str:
    """The first `name:` header of the message, unfolded, or ''."""
    end = raw.find(b"\r\n\r\n")
    block = raw[: end if end >= 0 else min(len(raw), 65536)]
    current: list[str] = []
    for line in block.decode("utf-8", "replace").split("\r\n"):
        if line[:1] in (" ", "\t") and current:
            current.append(line.strip())
            continue
        if current:
            break
        field, sep, value = line.partition(":")
        if sep and field.strip().lower() == name:
            current.append(value.strip())
    return " ".join(current)[:998]


def _ascii(text: str) -> str:
    """RFC 3464 fields are ASCII: other characters as \\x{HEX} (RFC 6533's embedding)."""
    one_line = " ".join(str(text).split())
    return "".join(c if 32 <= ord(c) < 127 else f"\\x{{{ord(c):X}}}" for c in one_line)


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")
