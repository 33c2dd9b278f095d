"""What the proxy's addons share: the policy in use, engines, the event record.

Built once by `leakguard run` (or a test) and handed to each addon, so an
addon never reaches for globals and a test can build a real one in a line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from audit.events import Event, new_incident_id
from rules.engine import Engine
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
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def engine(self, policy: Policy) -> Engine:
        """One engine per thread and policy (custom detectors come from the policy)."""
        cached = getattr(self._local, "engine", None)
        if cached is None or cached[0] is not policy:
            engine = Engine(
                hash_key=self.hash_key, custom=[s.build() for s in policy.custom_detectors]
            )
            self._local.engine = cached = (policy, engine)
        return cached[1]
