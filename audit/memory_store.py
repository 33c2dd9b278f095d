"""AuditStore in memory: the reference semantics, and a store for unit tests."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator

from audit.store import Hold


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._adds: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._distinct: dict[str, dict[str, float]] = defaultdict(dict)
        self._seen: dict[str, set[str]] = defaultdict(set)
        self._holds: dict[tuple[str, str], Hold] = {}

    def append(self, event: dict) -> dict:
        from audit.chain import link  # the chain rule is shared by every backend

        with self._lock:
            prev = self._events[-1] if self._events else None
            stored = link(event, prev)
            self._events.append(stored)
            return stored

    def events(self, *, after_seq: int = 0) -> Iterator[dict]:
        with self._lock:
            snapshot = list(self._events)
        return (e for e in snapshot if e["seq"] > after_seq)

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
