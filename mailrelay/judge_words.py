"""The notices the judge writes (DSNs, the 550 text and the quarantine notice are mailrelay.dsn's).

    password_notice(...)  Notice to the sender: the zip password, never in the mail itself

The subject shown comes through the engine's `redact` (no value in clear);
the Message-ID is shown as it is (an identifier the sender's program made).
Recipient addresses are written in full: they are the sender's own
correspondents, and the sender must know whom to give the password to.
"""

from __future__ import annotations

import email.utils
import textwrap
from collections.abc import Iterable
from datetime import datetime
from email.message import EmailMessage

from mailrelay.judge_inspect import MAIL_POLICY
from mailrelay.plan import Notice


def password_notice(
    *,
    sender: str,
    postmaster: str,
    now: datetime,
    recipients: Iterable[str],
    password: str,
    rule: str,
    why: str,
    incident: str,
    subject: str,
    message_id: str,
    relay_id: str,
    contact: str,
) -> Notice:
    listed = "\n".join(f"    {r}" for r in recipients)
    english = textwrap.fill(
        "Your message was delivered with its attachments in an AES-256 encrypted zip "
        f"file (attachments.zip): rule {rule} requires encryption and {why}. "
        "Give the recipients this password by another channel (phone, text message), "
        "never by e-mail.",
        width=76,
    )
    text = f"""\
您的邮件附件已放入 AES-256 加密压缩包（attachments.zip）后发送。
请通过电话、短信等其他渠道把下面的密码告诉收件人，切勿用电子邮件发送密码。

{english}

  Message:    {subject or "(no subject)"}
              {message_id or "(no Message-ID)"}, relay id {relay_id or "-"}
  Recipients:
{listed}
  Password:   {password}

Incident {incident}. Questions: {contact}.
"""
    title = "加密附件的密码 Password for the encrypted attachments of your message"
    return Notice(to=sender, message=_mail(postmaster, sender, title, text, now))


def _mail(sender: str, to: str, subject: str, text: str, now: datetime) -> bytes:
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = f"leakguard <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(now)
    domain = sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = email.utils.make_msgid("leakguard", domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    return message.as_bytes()
