"""The audit store's interface: the chained record, windowed counters, holds.

Every backend (memory for tests, SQLite by default, Redis for several
gateways) implements `AuditStore`; the conformance tests in
tests/audit/test_store_contract.py run one suite against each. Times are
passed in (`now`, seconds since the epoch) so detectors and tests control
the clock; the store never reads the wall clock for decisions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

HOLD_KINDS = ("account", "address", "sender")
# account: a frozen login (proxy answers with the "frozen" page, relay with 535)
# address: a source IP blocked for a cool-down (password spraying)
# sender:  a user's further external sending held for review (anomalous transfers)


class StoreError(Exception):
    """The store cannot be used (unreachable, another installation's, broken); says why."""


@dataclass(frozen=True)
class Hold:
    kind: str  # one of HOLD_KINDS
    name: str  # account name, IP address or user
    reason: str  # why, for people; never raw PII
    since: float  # epoch seconds
    until: float = 0.0  # 0: until released by an administrator
    by: str = "leakguard"  # "leakguard" for automatic holds, else the administrator
    level: int = 1  # escalation step (repeat offenders get longer cool-downs)

    def active(self, now: float) -> bool:
        return self.until == 0.0 or now < self.until

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class AuditStore(Protocol):
    # -- the record: append-only, chained by hash (see audit.chain) ---------------------
    chain_key: bytes  # the HMAC key of the chain (audit.chain.chain_key)

    def append(self, event: dict) -> dict:
        """Store one event (already PII-masked); returns it with `seq`, `prev` and `hash`."""

    def append_many(self, events: list[dict]) -> list[dict]:
        """Store several events in one transaction, in order (the writer thread's batches)."""

    def events(
        self, *, after_seq: int = 0, since: float | None = None, until: float | None = None
    ) -> Iterator[dict]:
        """Every stored event in seq order, from the one after `after_seq`; `since`/`until`
        (epoch seconds, until excluded) keep those whose `time` falls in the period."""

    def head(self) -> dict | None:
        """The signed checkpoint of the last append ({seq, hash, mac}); None when empty."""

    # -- shared counters: one answer for every gateway using the store ---------------
    def add(self, key: str, now: float, window: float, amount: float = 1.0) -> float:
        """Add `amount` at `now`; return the sum of what was added within `window` seconds."""

    def distinct(self, key: str, member: str, now: float, window: float) -> int:
        """Note `member` (e.g. a keyed PII hash) at `now`; count distinct members in the window."""

    def first_seen(self, key: str, member: str) -> bool:
        """Remember `member` under `key` for good; True the first time it is seen."""

    def members(self, key: str) -> set[str]:
        """What `first_seen` remembers under `key`."""

    def reset(self, key: str) -> None:
        """Forget the counter, distinct set or seen set under `key` (a success resets failures)."""

    # -- holds: frozen accounts, blocked addresses, held senders ---------------------
    def put_hold(self, hold: Hold) -> None:
        """Create or replace the hold for (kind, name)."""

    def get_hold(self, kind: str, name: str) -> Hold | None:
        """The hold for (kind, name), expired or not; None if never held or released."""

    def drop_hold(self, kind: str, name: str) -> Hold | None:
        """Release; returns what was released."""

    def holds(self, kind: str | None = None) -> list[Hold]:
        """Every hold, or every hold of one kind, expired ones included."""

    def close(self) -> None: ...
