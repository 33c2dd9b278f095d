"""What judging a message needs: the policy in use, engines, certificates, the event record.

Built once by `leakguard run` (or a test) and handed to `mailrelay.judge`,
so judging never reaches for globals and a test can build a real one in a
line (the model is `proxy.services`; this module imports nothing of the
proxy):

    Services(policy=PolicyHolder("rules/default"), hash_key=key,
             record=log.record, state_dir=Path("var"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from audit.events import Event, new_incident_id
from audit.transfers import HoldLookup
from certs.parties import PartyCertificates
from rules.engine import Engine
from rules.engines import EnginePerThread
from rules.extract import Limits
from rules.policy import Policy
from rules.policy.holder import PolicyHolder


@dataclass(frozen=True)
class HeaderLimits:
    """Header sizes judged before any parsing.

    Python's e-mail parser spends time quadratic in the size of a structured
    field (a 100 KiB Content-Type takes seconds, 1 MiB minutes), so oversized
    headers are refused unparsed as uninspectable content. The SMTP side
    refuses most of these at DATA already; this is the judge's own guard.
    """

    max_bytes: int = 1 * 2**20  # the top-level header section
    max_fields: int = 1_000  # fields in the top-level header section
    max_field_bytes: int = 64 * 2**10  # one top-level field, folded lines together
    max_content_field_bytes: int = 8 * 2**10  # one Content-* field anywhere in the message
    max_content_bytes: int = 256 * 2**10  # all Content-* fields of the message together


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    policy: PolicyHolder
    hash_key: bytes
    record: Callable[[Event | dict], None]
    state_dir: Path  # party certificates live in <state_dir>/certs/parties/
    limits: Limits = field(default_factory=Limits)
    headers: HeaderLimits = field(default_factory=HeaderLimits)
    new_incident: Callable[[], str] = new_incident_id
    now: Callable[[], datetime] = _utc_now  # agreement dates, certificate validity (aware)
    port: int = 25  # the port mail leaves on, for the policy's reach (zones.yaml)
    postmaster: str = "postmaster@localhost"  # From: of the notices the relay writes
    contact: str = "信息安全部 the security team"
    # shareable between Services with the same key (tests build many; compiling is slow)
    engines: EnginePerThread | None = field(default=None, repr=False)
    # (user, source_ip) → why the sender is held for review, or None (audit.transfers)
    sender_hold: HoldLookup | None = None

    def __post_init__(self) -> None:
        if self.engines is None:
            self.engines = EnginePerThread(self.hash_key)

    def engine(self, policy: Policy) -> Engine:
        """One engine per thread and policy (custom detectors come from the policy)."""
        assert self.engines is not None
        return self.engines.get(policy)

    @property
    def certificates(self) -> PartyCertificates:
        return PartyCertificates(Path(self.state_dir))
