"""What the anomaly detectors watch for, as typed settings (the policy's `watch.yaml`).

Defaults here are what a firm gets without a watch.yaml. The YAML reader
(line-numbered errors, house style) builds these; detectors only read them.
Durations are seconds; an `action` is "alert" or "hold" (alert, and hold the
account/sender until an administrator releases it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

ACTIONS = ("alert", "hold")
FAILURE_SIGNS = ("status", "redirect", "body")


@dataclass(frozen=True)
class Failures:
    """N failed logins for one account within `within` → freeze it (and alert)."""

    count: int = 5
    within: float = 600.0
    freeze: bool = True


@dataclass(frozen=True)
class Spraying:
    """Many accounts failing from one address → block the address for a cool-down."""

    accounts: int = 5
    within: float = 600.0
    block_for: float = 900.0
    escalate: float = 4.0  # each repeat multiplies the cool-down by this …
    max_block: float = 86400.0  # … up to this


@dataclass(frozen=True)
class Unusual:
    """A login from a place or at an hour never seen for the account."""

    new_subnet: str = "alert"  # "alert" | "hold" | "off"
    external: str = "hold"  # login from the external zone ("异地 IP")
    odd_hour: str = "alert"
    learn_logins: int = 20  # hours are judged only after this many successful logins
    subnet_v4: int = 24  # prefix lengths that make "a subnet"
    subnet_v6: int = 64
    geoip_database: str = ""  # MaxMind-format file the user supplies; "" = off
    impossible_kmh: float = 900.0


@dataclass(frozen=True)
class FailureSign:
    """How a web application shows a failed login."""

    kind: str  # one of FAILURE_SIGNS
    statuses: tuple[int, ...] = ()  # kind == "status"
    location: str = ""  # kind == "redirect": a substring of the Location header
    marker: str = ""  # kind == "body": a substring of the response body


@dataclass(frozen=True)
class WebLogin:
    """An internal web application whose logins the proxy watches."""

    name: str
    host: str
    path: str  # the login form's POST path
    username_field: str
    failure: FailureSign


@dataclass(frozen=True)
class LoginWatch:
    failures: Failures = field(default_factory=Failures)
    spraying: Spraying = field(default_factory=Spraying)
    unusual: Unusual = field(default_factory=Unusual)
    web_apps: tuple[WebLogin, ...] = ()


@dataclass(frozen=True)
class Threshold:
    """A per-user limit within the transfer window; `action` when it is crossed."""

    limit: float
    action: str = "alert"


@dataclass(frozen=True)
class OffHours:
    start: time = time(8, 0)  # working hours, in the policy's time zone
    end: time = time(20, 0)
    days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    action: str = "alert"


@dataclass(frozen=True)
class Baseline:
    """Volume far above the user's own history (daily bytes to external destinations)."""

    factor: float = 10.0
    min_bytes: float = 50e6  # below this, never an anomaly
    learn_days: int = 7
    action: str = "alert"


@dataclass(frozen=True)
class TransferWatch:
    window: float = 3600.0
    external_bytes: Threshold | None = field(default_factory=lambda: Threshold(500e6, "alert"))
    distinct_pii: Threshold | None = field(default_factory=lambda: Threshold(200, "hold"))
    new_destination: str = "alert"  # "alert" | "hold" | "off"
    off_hours: OffHours | None = field(default_factory=OffHours)
    baseline: Baseline | None = field(default_factory=Baseline)


@dataclass(frozen=True)
class Watch:
    logins: LoginWatch = field(default_factory=LoginWatch)
    transfers: TransferWatch = field(default_factory=TransferWatch)
