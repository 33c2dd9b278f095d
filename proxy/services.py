"""What the proxy's addons share: the policy in use, engines, the event record.

Built once by `leakguard run` (or a test) and handed to each addon, so an
addon never reaches for globals and a test can build a real one in a line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from audit.events import Event, new_incident_id
from audit.logins import LoginWatcher
from audit.transfers import HoldLookup
from rules.engine import Engine
from rules.engines import EnginePerThread
from rules.extract import Limits
from rules.policy import Policy
from rules.policy.holder import PolicyHolder
from rules.policy.model import IPAddress


@dataclass
class Services:
    policy: PolicyHolder
    hash_key: bytes
    record: Callable[[Event | dict], None]
    contact: str = "信息安全部 the security team"
    limits: Limits = field(default_factory=Limits)
    new_incident: Callable[[], str] = new_incident_id
    # names the proxy answers itself, before DNS (split-horizon names; tests on loopback)
    hosts: Mapping[str, IPAddress] = field(default_factory=dict)
    # shareable between Services with the same key (tests build many; compiling is slow)
    engines: EnginePerThread | None = field(default=None, repr=False)
    # (user, source_ip) → why the sender is held for review, or None (audit.transfers)
    sender_hold: HoldLookup | None = None
    # logins seen by the proxy (proxy authentication, web applications) and frozen accounts
    logins: LoginWatcher | None = None
    # proxy authentication: (login, password) → bool, blocking (scrypt); None: no 407
    verify_login: Callable[[str, str], bool] | None = None

    def __post_init__(self) -> None:
        if self.engines is None:
            self.engines = EnginePerThread(self.hash_key)

    def engine(self, policy: Policy) -> Engine:
        """One engine per thread and policy (custom detectors come from the policy)."""
        assert self.engines is not None
        return self.engines.get(policy)
