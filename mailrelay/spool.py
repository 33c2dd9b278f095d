"""The durable spool: nothing the relay answered 250 for is lost, whatever is killed when.

    <state>/spool/                 0700
        tmp/<id>/                  being written; discarded at start (never acknowledged)
        queue/<id>/                accepted, waiting for (more) delivery
            message.eml            the bytes as received
            meta.json              envelope, MAIL options, the Plan (bodies by file name)
            d<i>-message.eml       a group's transformed message (masked / encrypted)
            n<j>-message.eml       a notice the judge asked for (e.g. a zip password)
            state.json             delivery progress, when there is any
        queue/<id>.released/       a quarantined message the security team released …
        queue/<id>.rejected/       … or rejected (a DSN to the sender is still to go)
        quarantine/<id>/           the quarantined groups of a message, held for review
            decision.json          release/reject decided, being moved into queue/
        corrupt/                   entries that cannot be read, set aside (never deleted)
        flush.request              `leakguard mail flush`: retry everything now
        admin.lock                 serialises `leakguard mail` commands

An entry is written whole in tmp/ (every file fsync'ed, then the directory),
renamed into queue/ (atomic: an entry is there whole or not at all) and
queue/ is fsync'ed; only then does the handler answer 250. Progress is
state.json replaced atomically, so a restart never redelivers a finished
group. Removing an entry is a rename into tmp/ followed by deletion.

Quarantine decisions work on the spool directory, so they are safe while the
relay runs: decision.json is written into the entry first, then the entry is
renamed into queue/. A crash between the two is finished by the next command
or the relay's start (`finish_decisions`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailrelay.plan import Delivery, Envelope, Notice, Outcome, Plan

SPOOL_DIR = "spool"
TMP, QUEUE, QUARANTINE, CORRUPT = "tmp", "queue", "quarantine", "corrupt"
MESSAGE, META, STATE, DECISION = "message.eml", "meta.json", "state.json", "decision.json"
FLUSH_REQUEST = "flush.request"
ADMIN_LOCK = "admin.lock"
FORMAT = 1
RELEASE, REJECT = "release", "reject"
DECIDED_SUFFIX = {RELEASE: ".released", REJECT: ".rejected"}

_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]*(\.(released|rejected))?")


class SpoolError(Exception):
    """The spool cannot do what was asked; the message says why."""


def new_message_id(now: float | None = None) -> str:
    """'20261123T101502123-9f3a6c01': sortable by arrival, unique by its random tail."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}{int(now * 1000) % 1000:03d}-{secrets.token_hex(4)}"


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


@dataclass
class Entry:
    """One spooled message as the delivery side sees it."""

    name: str  # directory name in its area (the message id, maybe with .released/.rejected)
    area: str
    path: Path
    envelope: Envelope
    plan: Plan
    raw: bytes
    received: float  # when the relay accepted it (epoch seconds)
    mail_options: tuple[str, ...] = ()
    origin: str = "accepted"  # accepted | quarantined
    state: dict = field(default_factory=dict)
    decision: dict | None = None  # {"decision": release|reject, "by", "at", "note"}

    @property
    def message_id(self) -> str:
        return self.envelope.message_id or self.name


class Spool:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        for sub in ("", TMP, QUEUE, QUARANTINE, CORRUPT):
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)

    # -- accepting ----------------------------------------------------------------------

    def store(
        self,
        raw: bytes,
        envelope: Envelope,
        plan: Plan,
        *,
        mail_options: tuple[str, ...] = (),
        received: float | None = None,
    ) -> Entry:
        """Write the message durably into queue/; return only once it is on disk."""
        name = envelope.message_id
        if not valid_name(name):
            raise SpoolError(f"{name!r} is not a spool name")
        received = time.time() if received is None else received
        meta, files = _meta(envelope, plan, mail_options, received, origin="accepted")
        self._commit(name, QUEUE, {MESSAGE: raw, **files, META: _json(meta)})
        return Entry(
            name, QUEUE, self.root / QUEUE / name, envelope, plan, raw, received, mail_options
        )

    def _commit(self, name: str, area: str, files: dict[str, bytes | Path]) -> None:
        """tmp/<name>.<rand>/ written and fsync'ed, renamed to <area>/<name>, <area> fsync'ed.

        A Path value is hard-linked (the quarantine shares the accepted bytes).
        """
        staging = self.root / TMP / f"{name}.{secrets.token_hex(3)}"
        os.mkdir(staging, 0o700)
        try:
            for fname, data in files.items():
                if isinstance(data, Path):
                    try:
                        os.link(data, staging / fname)
                    except OSError:
                        _write_new(staging / fname, data.read_bytes())
                else:
                    _write_new(staging / fname, data)
            fsync_dir(staging)
            os.rename(staging, self.root / area / name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_dir(self.root / area)

    # -- reading ------------------------------------------------------------------------

    def names(self, area: str = QUEUE) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root / area) if valid_name(n))
        except FileNotFoundError:
            return []

    def load(self, name: str, area: str = QUEUE) -> Entry | None:
        """The entry, or None when it is gone (delivered, released, or never there)."""
        path = self.root / area / name
        try:
            meta = json.loads((path / META).read_bytes())
            raw = (path / MESSAGE).read_bytes()
            envelope, plan, options, received, origin = _from_meta(meta, path)
        except FileNotFoundError:
            if not path.exists():
                return None
            self.set_aside(name, area)
            return None
        except (ValueError, KeyError, TypeError):
            self.set_aside(name, area)
            return None
        return Entry(
            name,
            area,
            path,
            envelope,
            plan,
            raw,
            received,
            options,
            origin,
            read_json(path / STATE) or {},
            read_json(path / DECISION),
        )

    def read_meta(self, name: str, area: str = QUEUE) -> dict | None:
        """meta.json with state/decision/size beside it, without reading bodies (for listings)."""
        if not valid_name(name):
            return None
        path = self.root / area / name
        meta = read_json(path / META)
        if meta is None:
            return None
        meta["state"] = read_json(path / STATE) or {}
        meta["decision"] = read_json(path / DECISION)
        try:
            meta["size"] = (path / MESSAGE).stat().st_size
        except FileNotFoundError:
            meta["size"] = 0
        meta["path"] = str(path)
        return meta

    def set_aside(self, name: str, area: str) -> Path | None:
        """An unreadable entry goes to corrupt/, never deleted: someone must look at it."""
        target = self.root / CORRUPT / f"{area}-{name}-{secrets.token_hex(3)}"
        try:
            os.rename(self.root / area / name, target)
        except FileNotFoundError:
            return None
        return target

    # -- progress and removal -----------------------------------------------------------

    def save_state(self, entry: Entry, state: dict) -> None:
        replace_file(entry.path / STATE, _json(state))
        entry.state = state

    def remove(self, entry: Entry) -> None:
        """Done: rename out of the queue (atomic), then delete."""
        gone = self.root / TMP / f"{entry.name}.done-{secrets.token_hex(3)}"
        try:
            os.rename(entry.path, gone)
        except FileNotFoundError:
            return
        shutil.rmtree(gone, ignore_errors=True)

    # -- quarantine ---------------------------------------------------------------------

    def quarantine(self, entry: Entry, indexes: list[int], *, now: float | None = None) -> str:
        """Copy the groups at `indexes` into quarantine/<message id> (idempotent)."""
        name = entry.message_id
        if (self.root / QUARANTINE / name).exists():
            return name
        plan = Plan(deliveries=tuple(entry.plan.deliveries[i] for i in indexes))
        meta, files = _meta(
            entry.envelope, plan, entry.mail_options, entry.received, origin="quarantined"
        )
        meta["quarantined"] = time.time() if now is None else now
        try:
            self._commit(
                name, QUARANTINE, {MESSAGE: entry.path / MESSAGE, **files, META: _json(meta)}
            )
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
                return name
            raise
        return name

    def _same_owner(self, path: Path) -> None:
        """Files an admin command (maybe root) creates must stay readable by the relay's user."""
        if os.geteuid() != 0:
            return
        owner = self.root.stat()
        with contextlib.suppress(FileNotFoundError):
            os.chown(path, owner.st_uid, owner.st_gid)

    @contextlib.contextmanager
    def admin_lock(self) -> Iterator[None]:
        fd = os.open(self.root / ADMIN_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        self._same_owner(self.root / ADMIN_LOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def decide(self, name: str, decision: str, *, by: str, note: str = "") -> str:
        """Release or reject quarantine/<name>; returns its new name in queue/.

        KeyError when there is no such quarantined message (or it was decided already).
        """
        if decision not in DECIDED_SUFFIX:
            raise ValueError(f"decision must be {RELEASE!r} or {REJECT!r}")
        if not valid_name(name) or "." in name:
            raise KeyError(name)
        with self.admin_lock():
            path = self.root / QUARANTINE / name
            if not (path / META).exists():
                raise KeyError(name)
            if not (path / DECISION).exists():
                record = {"decision": decision, "by": by, "at": time.time(), "note": note}
                replace_file(path / DECISION, _json(record))
                self._same_owner(path / DECISION)
            return self._finish_decision(name)

    def finish_decisions(self) -> list[str]:
        """Move decided quarantine entries left behind by a crash into the queue."""
        done = []
        with self.admin_lock():
            for name in self.names(QUARANTINE):
                if (self.root / QUARANTINE / name / DECISION).exists():
                    with contextlib.suppress(FileNotFoundError, KeyError):
                        done.append(self._finish_decision(name))
        return done

    def _finish_decision(self, name: str) -> str:
        path = self.root / QUARANTINE / name
        record = read_json(path / DECISION)
        if not record or record.get("decision") not in DECIDED_SUFFIX:
            raise KeyError(name)
        target = name + DECIDED_SUFFIX[record["decision"]]
        os.rename(path, self.root / QUEUE / target)
        fsync_dir(self.root / QUEUE)
        fsync_dir(self.root / QUARANTINE)
        return target

    # -- start-up and flush -------------------------------------------------------------

    def recover(self) -> list[str]:
        """At start: discard half-written entries, finish decisions, list the queue."""
        for leftover in os.listdir(self.root / TMP):
            path = self.root / TMP / leftover
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        self.finish_decisions()
        for area in (QUEUE, QUARANTINE):
            for name in os.listdir(self.root / area):
                path = self.root / area / name
                if not valid_name(name) or not (path / META).exists():
                    self.set_aside(name, area)
                else:  # a crash while replacing state.json leaves its temp file behind
                    for junk in path.glob(".*.tmp-*"):
                        junk.unlink(missing_ok=True)
        return self.names(QUEUE)

    def request_flush(self) -> None:
        fd = os.open(self.root / FLUSH_REQUEST, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        self._same_owner(self.root / FLUSH_REQUEST)

    def flush_requested(self) -> bool:
        return (self.root / FLUSH_REQUEST).exists()

    def take_flush_request(self) -> bool:
        try:
            os.unlink(self.root / FLUSH_REQUEST)
        except FileNotFoundError:
            return False
        return True


# -- the Plan as files ---------------------------------------------------------------------


def plan_to_dict(plan: Plan) -> tuple[dict, dict[str, bytes]]:
    """The Plan as JSON-able data; message bytes become files named in it."""
    files: dict[str, bytes] = {}
    deliveries = [_dump(d, f"d{i}", files) for i, d in enumerate(plan.deliveries)]
    notices = [_dump(n, f"n{j}", files) for j, n in enumerate(plan.notices)]
    return {"deliveries": deliveries, "notices": notices}, files


def plan_from_dict(data: dict, read: Callable[[str], bytes]) -> Plan:
    return Plan(
        deliveries=tuple(_load(Delivery, d, read) for d in data["deliveries"]),
        notices=tuple(_load(Notice, n, read) for n in data.get("notices", ())),
    )


def _dump(obj, prefix: str, files: dict[str, bytes]) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bytes):
            fname = f"{prefix}-{f.name}.eml"
            files[fname] = value
            out[f.name] = {"$file": fname}
        else:
            out[f.name] = _jsonable(value)
    return out


def _load(cls, data: dict, read: Callable[[str], bytes]):
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, dict) and set(value) == {"$file"}:
            name = value["$file"]
            if "/" in name or name.startswith("."):
                raise ValueError(f"bad body file name {name!r}")
            value = read(name)
        elif isinstance(value, list):
            value = tuple(value)
        if f.name == "outcome":
            value = Outcome(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _jsonable(value):
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _meta(
    envelope: Envelope, plan: Plan, mail_options: tuple[str, ...], received: float, *, origin: str
) -> tuple[dict, dict[str, bytes]]:
    plan_data, files = plan_to_dict(plan)
    meta = {
        "format": FORMAT,
        "id": envelope.message_id,
        "received": received,
        "origin": origin,
        "envelope": _jsonable(dataclasses.asdict(envelope)),
        "mail_options": list(mail_options),
        "plan": plan_data,
    }
    return meta, files


def _from_meta(meta: dict, path: Path):
    if meta.get("format") != FORMAT:
        raise ValueError(f"unknown spool format {meta.get('format')!r}")
    env = meta["envelope"]
    names = {f.name for f in dataclasses.fields(Envelope)}
    envelope = Envelope(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in env.items() if k in names}
    )
    plan = plan_from_dict(meta["plan"], lambda name: (path / name).read_bytes())
    return (
        envelope,
        plan,
        tuple(meta.get("mail_options", ())),
        float(meta["received"]),
        meta.get("origin", "accepted"),
    )


# -- files ---------------------------------------------------------------------------------


def _json(data: dict) -> bytes:
    # ASCII escapes: SMTPUTF8 addresses may carry surrogate-escaped bytes, which UTF-8 refuses
    return json.dumps(data, ensure_ascii=True, indent=1).encode()


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        return None


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes) -> None:
    """Write beside `path`, fsync, rename over it, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(3)}")
    try:
        _write_new(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
