"""The record's chain rule: every event carries `seq`, `prev` and a keyed `hash`.

    hash = HMAC-SHA256(chain key, canonical JSON of the event with its seq and prev)

Why keyed: a plain SHA-256 chain only proves the record is consistent with
itself; whoever can edit audit.db can edit an event and recompute every
hash after it. With HMAC the hashes can be recomputed only by someone
holding the chain key, which is derived (HKDF) from the installation key in
the state directory (mode 0600, never in the database or in Redis). So
editing, inserting or deleting an event needs the key as well as the store,
and an export shipped to a SIEM stays verifiable (with the key) against the
store it came from.

The head checkpoint (`seq`, `hash` and a MAC over both) is kept beside the
events and updated in the same transaction: deleting events from the tail
leaves the checkpoint pointing past the end, and it cannot be rewritten to
the new tail without the key. A whole store rolled back to an older copy of
itself is consistent and cannot be detected from inside; compare with an
export kept elsewhere (the SIEM's copy of events.jsonl) for that. A deleted
checkpoint is reported; a store that finds its checkpoint gone (or rows
past it) carries on
from its last event but first records an `audit.checkpoint_lost` event,
which verification reports, so the cut cannot be papered over by the
gateway's own next append.

Gateways sharing one Redis share one chain, so they must share the
installation key (copy installation.key; the keyed PII hashes need that
anyway to count the same value seen by two gateways as one). `key_id`
lets a store notice a gateway with another key before it writes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

GENESIS = "0" * 64
CHECKPOINT_LOST = "audit.checkpoint_lost"
EVERY_SEQ = -(2**63)  # events(after_seq=EVERY_SEQ): rows someone slipped in below seq 1 too
CHAIN_FIELDS = ("seq", "prev", "hash")
_INFO = b"leakguard audit chain v1"


def chain_key(installation_key: bytes) -> bytes:
    """The chain's HMAC key: its own key, so the installation key is never used twice."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        installation_key
    )


def key_id(key: bytes) -> str:
    """A public fingerprint of the chain key (stored, so a wrong key is noticed at open)."""
    return hmac.new(key, b"key id", hashlib.sha256).hexdigest()[:16]


def canonical(event: dict) -> bytes:
    return json.dumps(event, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def body_of(event: dict) -> dict:
    """The event as JSON will give it back (tuples → lists, …), without its chain fields:
    what is hashed must be exactly what is stored and read back."""
    body = {k: v for k, v in event.items() if k not in CHAIN_FIELDS}
    return json.loads(json.dumps(body, ensure_ascii=False))


def event_hash(body: dict, seq: int, prev: str, key: bytes) -> str:
    return hmac.new(key, canonical({**body, "seq": seq, "prev": prev}), hashlib.sha256).hexdigest()


def link(event: dict, prev: dict | None, key: bytes) -> dict:
    """The stored form of `event` after `prev` (which needs only `seq` and `hash`)."""
    body = body_of(event)
    seq = (prev["seq"] + 1) if prev else 1
    prev_hash = prev["hash"] if prev else GENESIS
    return {**body, "seq": seq, "prev": prev_hash, "hash": event_hash(body, seq, prev_hash, key)}


def checkpoint(seq: int, head_hash: str, key: bytes) -> dict:
    mac = hmac.new(key, f"head {seq} {head_hash}".encode(), hashlib.sha256).hexdigest()
    return {"seq": seq, "hash": head_hash, "mac": mac}


def checkpoint_lost(last_seq: int) -> dict:
    """The event a store appends first when its checkpoint is gone but events are there."""
    return {
        "id": secrets.token_hex(8),
        "time": iso(time.time()),
        "type": CHECKPOINT_LOST,
        "reason": f"the head checkpoint was gone, unreadable or behind the last event; "
        f"the chain goes on from seq {last_seq}",
    }


def resume(head: dict | None, last: tuple[int, str] | None) -> tuple[dict | None, dict | None]:
    """Where a store's next append goes, from its checkpoint and its last event (seq, hash):
    after the checkpoint (not the last event, so a cut tail stays a gap). When the checkpoint
    is gone or unreadable, or events sit past it, after the last event, with a notice event
    (checkpoint_lost) to append first, which verification reports. → (head, notice)"""
    usable = head is not None and isinstance(head.get("seq"), int) and "hash" in head
    if usable and (last is None or last[0] <= head["seq"]):
        return head, None
    if last is None:
        return None, None
    return {"seq": last[0], "hash": last[1]}, checkpoint_lost(last[0])


def iso(ts: float) -> str:
    """Epoch seconds in the events' own time format, so periods compare as text."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def in_period(event: dict, since: float | None, until: float | None) -> bool:
    t = str(event.get("time", ""))
    return (since is None or t >= iso(since)) and (until is None or t < iso(until))


# -- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    seq: int | None  # where in the chain (None: not known)
    id: str  # the event's id, "" when there is no event (deleted ones)
    what: str
    line: int | None = None  # in an export file

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        seq = f"seq {self.seq}" if self.seq is not None else "seq ?"
        ident = f" (id {self.id})" if self.id else ""
        return f"{where}{seq}{ident}: {self.what}"


def verify(
    events: Iterable[dict],
    key: bytes,
    *,
    head: dict | None = None,
    checkpointed: bool = False,
    from_start: bool = True,
    lines: Iterable[int] | None = None,
) -> tuple[int, list[Problem]]:
    """Walk `events` (in seq order) and say what is wrong where; returns (events seen, problems).

    `from_start`: the events begin at seq 1 (a store, a full export); otherwise the
    first event's `prev` is taken on trust (an export of a period). `head`: the
    store's checkpoint, read before the events, to detect a cut tail; `checkpointed`:
    the events come from a store, which must have one."""
    problems: list[Problem] = []
    expected: int | None = 1 if from_start else None
    prev_hash: str | None = GENESIS if from_start else None
    numbers = iter(lines) if lines is not None else None
    count = 0
    last: dict | None = None
    at_head = None  # the hash of the event the checkpoint names
    for event in events:
        line = next(numbers) if numbers is not None else None
        count += 1
        seq, ident = event.get("seq"), str(event.get("id", ""))
        stated_prev, stated_hash = event.get("prev"), event.get("hash")
        chained = isinstance(stated_prev, str) and isinstance(stated_hash, str)
        if not isinstance(seq, int) or isinstance(seq, bool) or not chained:
            what = "no valid seq/prev/hash: not from the chain"
            problems.append(Problem(None, ident, what, line))
            continue
        gap = False
        if expected is not None and seq < expected:
            problems.append(
                Problem(seq, ident, f"seq {seq} where seq {expected} belongs: inserted", line)
            )
            continue
        if expected is not None and seq > expected:
            through = "" if seq == expected + 1 else f" (through seq {seq - 1})"
            problems.append(Problem(expected, "", f"missing{through}: deleted", line))
            gap = True
        if not gap and prev_hash is not None and stated_prev != prev_hash:
            what = f"prev does not match seq {seq - 1}: inserted or reordered"
            problems.append(Problem(seq, ident, what, line))
        if event_hash(body_of(event), seq, stated_prev, key) != stated_hash:
            problems.append(
                Problem(seq, ident, "content does not match its hash: edited (or forged)", line)
            )
        expected, prev_hash, last = seq + 1, stated_hash, event
        if head is not None and seq == head.get("seq"):
            at_head = stated_hash
        if event.get("type") == CHECKPOINT_LOST:
            what = "the store found its checkpoint gone or overtaken here: events cut or forged"
            problems.append(Problem(seq, ident, what, line))
    if head is None and checkpointed and count:
        problems.append(Problem(None, "", "the head checkpoint is missing: deleted"))
    if head is not None:
        problems.extend(_check_head(head, last, at_head, key))
    return count, problems


def _check_head(head: dict, last: dict | None, at_head: str | None, key: bytes) -> list[Problem]:
    seq, head_hash = head.get("seq"), head.get("hash")
    if not isinstance(seq, int) or not isinstance(head_hash, str):
        return [Problem(None, "", "the head checkpoint is unreadable: edited")]
    if not hmac.compare_digest(checkpoint(seq, head_hash, key)["mac"], str(head.get("mac", ""))):
        return [Problem(seq, "", "the head checkpoint does not match its MAC: edited")]
    last_seq = last["seq"] if last else 0
    if last_seq < seq:
        return [
            Problem(
                last_seq + 1,
                "",
                f"the record ends at seq {last_seq} but its checkpoint says seq {seq}: "
                f"seq {last_seq + 1}{'' if seq == last_seq + 1 else f'-{seq}'} cut from the tail",
            )
        ]
    if at_head is not None and at_head != head_hash:
        return [Problem(seq, "", "the event at the checkpoint is not the one it names: replaced")]
    return []  # events after the checkpoint were appended while we read
