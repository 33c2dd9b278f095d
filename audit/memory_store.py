"""AuditStore in memory: the reference semantics, and a store for unit tests."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator

from audit.chain import checkpoint, in_period, link
from audit.store import Hold

TEST_KEY = b"memory store: a chain key for tests"


class MemoryStore:
    def __init__(self, chain_key: bytes = TEST_KEY) -> None:
        self.chain_key = chain_key
        self._head: dict | None = None
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._adds: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._distinct: dict[str, dict[str, float]] = defaultdict(dict)
        self._seen: dict[str, set[str]] = defaultdict(set)
        self._holds: dict[tuple[str, str], Hold] = {}

    def append(self, event: dict) -> dict:
        return self.append_many([event])[0]

    def append_many(self, events: list[dict]) -> list[dict]:
        with self._lock:
            out = []
            for event in events:
                stored = link(event, self._head, self.chain_key)
                self._events.append(stored)
                self._head = checkpoint(stored["seq"], stored["hash"], self.chain_key)
                out.append(stored)
            return [dict(e) for e in out]

    def events(
        self, *, after_seq: int = 0, since: float | None = None, until: float | None = None
    ) -> Iterator[dict]:
        with self._lock:
            snapshot = list(self._events)
        return (dict(e) for e in snapshot if e["seq"] > after_seq and in_period(e, since, until))

    def head(self) -> dict | None:
        with self._lock:
            return dict(self._head) if self._head else None

    def add(self, key: str, now: float, window: float, amount: float = 1.0) -> float:
        with self._lock:
            entries = [(t, a) for t, a in self._adds[key] if t > now - window]
            entries.append((now, amount))
            self._adds[key] = entries
            return sum(a for _, a in entries)

    def distinct(self, key: str, member: str, now: float, window: float) -> int:
        with self._lock:
            members = {m: t for m, t in self._distinct[key].items() if t > now - window}
            members[member] = now
            self._distinct[key] = members
            return len(members)

    def first_seen(self, key: str, member: str) -> bool:
        with self._lock:
            new = member not in self._seen[key]
            self._seen[key].add(member)
            return new

    def members(self, key: str) -> set[str]:
        with self._lock:
            return set(self._seen.get(key, ()))

    def reset(self, key: str) -> None:
        with self._lock:
            self._adds.pop(key, None)
            self._distinct.pop(key, None)
            self._seen.pop(key, None)

    def put_hold(self, hold: Hold) -> None:
        with self._lock:
            self._holds[(hold.kind, hold.name)] = hold

    def get_hold(self, kind: str, name: str) -> Hold | None:
        with self._lock:
            return self._holds.get((kind, name))

    def drop_hold(self, kind: str, name: str) -> Hold | None:
        with self._lock:
            return self._holds.pop((kind, name), None)

    def holds(self, kind: str | None = None) -> list[Hold]:
        with self._lock:
            return [h for (k, _), h in sorted(self._holds.items()) if kind in (None, k)]

    def close(self) -> None:
        pass
