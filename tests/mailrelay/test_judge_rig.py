"""What the judging tests share: real services, real messages, real party certificates.

No tests here. The policies are the shipped one (`rules/default`) and
`tests/data/mail/policy` (the same plus an internal mail domain, a party that
wants attachments encrypted, and a quarantine rule). Values come from the
labelled corpus (`tests/data/corpus`): generated, nobody's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from audit.events import MemoryLog
from certs.parties import PartyCertificates, import_certificate
from mailrelay.judge import judge
from mailrelay.plan import Delivery, Envelope, Plan
from mailrelay.services import Services
from rules.engines import EnginePerThread
from rules.policy.holder import PolicyHolder
from tests.certs.makecerts import Issued, mail_cert, rsa_key

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "corpus" / "files"
DEFAULT_POLICY = ROOT / "rules" / "default"
MAIL_POLICY = ROOT / "tests" / "data" / "mail" / "policy"
KEY = b"judge-test-key".ljust(32, b".")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # both parties' agreements in force

SENDER = "zhang.wei@firm.example"
OFFICE_IP = "192.168.1.5"
COURT = "clerk@court.example"
LAWFIRM = "cases@lawfirm.example"
AUDITOR = "files@audit.example"
WEBMAIL = "debt.lists@qq.com"
GMAIL = "someone@gmail.com"
OTHER = "info@example.org"
COLLEAGUE = "li.na@firm.example"

XLSX = "debtors.xlsx"  # IDs (shared and inline strings), mobiles stored as numbers, a card
XLSX_IDS = ("120104200407137661", "12010119610422951X")
XLSX_MOBILES = ("13340492349", "13972926727")
XLSX_CARD = "622909591023869093"
CSV = "debtors_gbk.csv"  # GBK, no BOM: six rows of ID, mobile, card
CSV_IDS = ("110102195907064157", "310104197505196834", "310107198211265164")
CSV_MOBILES = ("15152866064", "15859935967", "15912276240")
CSV_CARDS = ("62226234897618420", "6226905384170051")
ID = "11010519491231002X"
MOBILE = "13912345678"


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=email_policy.default).parsebytes(raw)  # type: ignore[return-value]


@dataclass
class Shared:
    """Built once per test module: loading the policy is cheap, an engine is not."""

    holders: dict[Path, PolicyHolder] = field(default_factory=dict)
    engines: dict[Path, EnginePerThread] = field(default_factory=dict)

    def rig(self, state_dir: Path, policy: Path = DEFAULT_POLICY) -> Rig:
        holder = self.holders.setdefault(policy, PolicyHolder(policy))
        engines = self.engines.setdefault(policy, EnginePerThread(KEY))
        return Rig(holder, engines, state_dir)


class Rig:
    def __init__(self, holder: PolicyHolder, engines: EnginePerThread, state_dir: Path) -> None:
        self.log = MemoryLog()
        self.clock = NOW
        self.services = Services(
            policy=holder,
            hash_key=KEY,
            record=self.log.record,
            state_dir=state_dir,
            now=lambda: self.clock,
            postmaster="postmaster@firm.example",
            engines=engines,
        )

    def judge(
        self,
        raw: bytes,
        *recipients: str,
        sender: str = SENDER,
        ip: str = OFFICE_IP,
        message_id: str = "R-0001",
    ) -> Plan:
        envelope = Envelope(sender, tuple(recipients), ip, "", message_id)
        return judge(raw, envelope, self.services)

    def certificate(self, party: str, domain: str, n: int = 2, **kw) -> Issued:
        """A party's mail certificate (RSA, emailProtection, keyEncipherment), imported."""
        issued = mail_cert(f"smime@{domain}", key=rsa_key(n), **kw)
        store = PartyCertificates(self.services.state_dir)
        import_certificate(store, party, issued.pem, name=f"{party}.pem", domains=[domain], now=NOW)
        return issued


def mail(
    *,
    to: str = "",
    subject: str = "债务清单 debt list",
    text: str | None = "您好，附件为本月清单。Please find the list attached.",
    html: str | None = None,
    attachments: tuple[tuple[str, bytes, str], ...] = (),
    charset: str = "utf-8",
    cte: str | None = None,
) -> bytes:
    """A message as a mail program writes it; attachments are (name, bytes, type/subtype)."""
    m = EmailMessage(policy=email_policy.SMTP)
    m["From"] = f"张伟 <{SENDER}>"
    m["To"] = to or LAWFIRM
    m["Subject"] = subject
    m["Message-ID"] = "<20260601.1@firm.example>"
    if text is not None:
        m.set_content(text, charset=charset, cte=cte)
    if html is not None:
        if text is None:
            m.set_content(html, subtype="html", charset=charset, cte=cte)
        else:
            m.add_alternative(html, subtype="html", charset=charset, cte=cte)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes()


def xlsx_attachment() -> tuple[str, bytes, str]:
    return (
        XLSX,
        corpus(XLSX),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


def csv_attachment() -> tuple[str, bytes, str]:
    return (CSV, corpus(CSV), "text/csv")


def group(plan: Plan, recipient: str) -> Delivery:
    (found,) = [d for d in plan.deliveries if recipient in d.recipients]
    return found


def attachment(message: EmailMessage, name: str) -> bytes:
    for part in message.iter_attachments():
        if part.get_filename() == name:
            return part.get_payload(decode=True)
    raise AssertionError(f"no attachment {name}")


def text_of(message: EmailMessage, kind: str = "plain") -> str:
    """A body's text with the line ends a reader sees."""
    return message.get_body((kind,)).get_content().replace("\r\n", "\n")


def words(plan: Plan, log: MemoryLog) -> str:
    """Everything the relay says about a message: deliveries' words, notices, events."""
    said = [
        {
            "reason": d.reason,
            "explanation": d.explanation,
            "findings": d.findings,
            "rule": d.rule,
            "incident": d.incident,
        }
        for d in plan.deliveries
    ]
    notices = [parse(n.message).get_body(("plain",)).get_content() for n in plan.notices]
    subjects = [str(parse(n.message)["subject"]) for n in plan.notices]
    return json.dumps([said, notices, subjects, log.events], ensure_ascii=False)


def assert_nothing_raw(plan: Plan, log: MemoryLog, *values: str) -> None:
    said = words(plan, log)
    for value in values:
        assert value not in said, f"{value[:4]}… appears unmasked"
