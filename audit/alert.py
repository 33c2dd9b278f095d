"""Alerts as data. Detectors raise them; audit.alerts (sinks, dedup, rate limit) sends them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Alert:
    kind: str  # e.g. "login.bruteforce", "login.spraying", "login.new_subnet", "transfer.bulk"
    key: str  # what makes two alerts "the same" for dedup, e.g. "login.bruteforce:alice"
    summary: str  # one line for people; PII masked
    severity: str = "warning"
    user: str = ""
    source_ip: str = ""
    detail: dict = field(default_factory=dict)  # constant field names; masked values only
    time: float = 0.0  # epoch seconds, from the detector's clock
    count: int = 1  # how many raises this alert stands for after dedup

    def to_dict(self) -> dict:
        return asdict(self)


class AlertSender(Protocol):
    def send(self, alert: Alert) -> None:
        """Queue an alert; never blocks the caller on a slow sink, never raises."""
