"""The durable spool: nothing the relay answered 250 for is lost, whatever is killed when.

    <state>/spool/                 0700
        tmp/                       files being written; emptied at start (never acknowledged)
        queue/<id>                 an accepted message waiting for (more) delivery
        queue/<id>.state           its delivery progress, once there is any
        queue/<id>.released        a quarantined message the security team released …
        queue/<id>.rejected        … or rejected (a DSN to the sender is still to go)
        quarantine/<id>            the quarantined groups of a message, held for review
        corrupt/                   entries that cannot be read, set aside (never deleted)
        flush.request              `leakguard mail flush`: retry everything now
        admin.lock                 serialises `leakguard mail` commands

An entry is ONE file: a header line, the metadata as JSON (envelope, MAIL
options, the Plan with its message bodies named), then the bytes — the
message as received and each transformed body or notice. It is written in
tmp/, fsync'ed, renamed into queue/ (atomic: whole or absent) and queue/
is fsync'ed; only then does the handler answer 250. One file, not a
directory of files, because on this kind of disk every mkdir/rmdir and
extra create costs more than the whole rest of a message; the directory
fsync is shared by messages committed at the same moment (group commit).

Progress is `<id>.state`, replaced atomically, so a restart never redelivers
a finished group. Removing an entry unlinks the entry first, then its state
(a stray state without its entry is swept at start).

Quarantine decisions work on the spool directory, so they are safe beside
the running relay: the decided entry is written to queue/<id>.released (or
.rejected) with the decision inside, then quarantine/<id> is unlinked. A
crash between the two leaves both; the queue copy wins (the relay and the
next command remove the stale quarantine file), so a message is never both
held and released.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import fcntl
import io
import itertools
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from certs.files import fsync_dir, replace_file
from mailrelay.plan import Delivery, Envelope, Notice, Outcome, Plan

SPOOL_DIR = "spool"
TMP, QUEUE, QUARANTINE, CORRUPT = "tmp", "queue", "quarantine", "corrupt"
STATE_SUFFIX = ".state"
FLUSH_REQUEST = "flush.request"
ADMIN_LOCK = "admin.lock"
MAGIC = b"LGSPOOL1\n"
MESSAGE = "message"  # the part holding the bytes as received
FORMAT = 1
RELEASE, REJECT = "release", "reject"
DECIDED_SUFFIX = {RELEASE: ".released", REJECT: ".rejected"}
MAX_META = 64 * 2**20

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

    name: str  # file name in its area (the message id, maybe with .released/.rejected)
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
    meta: dict = field(default_factory=dict, repr=False)

    @property
    def message_id(self) -> str:
        return self.envelope.message_id or self.name


class GroupSync:
    """fsync of one directory, shared: a caller returns once a sync that began after its
    call has finished, and callers arriving while one runs share the next one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._requested = 0
        self._done = 0
        self._running = False

    def sync(self) -> None:
        with self._cond:
            self._requested += 1
            mine = self._requested
            while self._done < mine:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                target = self._requested
                self._cond.release()
                try:
                    fsync_dir(self.path)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
                self._done = max(self._done, target)


class Spool:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        for sub in ("", TMP, QUEUE, QUARANTINE, CORRUPT):
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        self._sync = {area: GroupSync(self.root / area) for area in (QUEUE, QUARANTINE)}

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
        if not valid_name(name) or "." in name:
            raise SpoolError(f"{name!r} is not a spool name")
        received = time.time() if received is None else received
        meta, files = _meta(envelope, plan, mail_options, received, origin="accepted")
        self._commit(name, QUEUE, meta, raw, files)
        return Entry(
            name,
            QUEUE,
            self.root / QUEUE / name,
            envelope,
            plan,
            raw,
            received,
            mail_options,
            meta=meta,
        )

    def store_batch(
        self, items: list[tuple[bytes, Envelope, Plan, tuple[str, ...]]]
    ) -> list[Entry | Exception]:
        """Group commit of several messages: an Entry (on disk) or the error, for each.

        Every file is written before the first fsync, so that one journal commit
        carries them all and the other fsyncs find little left to do; the queue
        directory is fsync'ed once, after all the renames. Much cheaper per message
        than `store` one by one, and as durable: an Entry is returned only for a
        message whose file and directory entry are both on disk.
        """
        received = time.time()
        results: list[Entry | Exception | None] = [None] * len(items)
        staged: list[tuple[int, int, Path, dict]] = []  # (index, fd, staging path, meta)
        for i, (raw, envelope, plan, options) in enumerate(items):
            name = envelope.message_id
            try:
                if not valid_name(name) or "." in name:
                    raise SpoolError(f"{name!r} is not a spool name")
                meta, files = _meta(envelope, plan, options, received, origin="accepted")
                staging = self.root / TMP / f"{name}.{_tag()}"
                staged.append((i, _create(staging, _pack(meta, raw, files)), staging, meta))
            except Exception as err:  # this message fails; the others go on
                results[i] = err
        renamed: list[tuple[int, dict]] = []
        for i, fd, staging, meta in staged:
            try:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(staging, self.root / QUEUE / items[i][1].message_id)
                renamed.append((i, meta))
            except OSError as err:
                results[i] = err
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(staging)
        if renamed:
            try:
                self._sync[QUEUE].sync()
            except OSError as err:  # not known to be on disk: not accepted (maybe sent twice)
                for i, _ in renamed:
                    results[i] = err
                renamed = []
        for i, meta in renamed:
            raw, envelope, plan, options = items[i]
            name = envelope.message_id
            path = self.root / QUEUE / name
            results[i] = Entry(name, QUEUE, path, envelope, plan, raw, received, options, meta=meta)
        return results  # type: ignore[return-value]

    def _commit(self, name: str, area: str, meta: dict, raw: bytes, files: dict) -> None:
        """tmp/ file written and fsync'ed, renamed to <area>/<name>, <area> fsync'ed."""
        staging = self.root / TMP / f"{name}.{_tag()}"
        try:
            _write_new(staging, _pack(meta, raw, files))
            os.rename(staging, self.root / area / name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staging)
            raise
        self._sync[area].sync()

    # -- reading ------------------------------------------------------------------------

    def names(self, area: str = QUEUE) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root / area) if valid_name(n))
        except FileNotFoundError:
            return []

    def load(self, name: str, area: str = QUEUE) -> Entry | None:
        """The entry, or None when it is gone (delivered, released, or never there)."""
        if not valid_name(name):
            return None
        path = self.root / area / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            meta, raw, files = _unpack(data)
            envelope, plan, options, received, origin = _from_meta(meta, files)
        except (ValueError, KeyError, TypeError):
            self.set_aside(name, area)
            return None
        state = read_json(path.with_name(name + STATE_SUFFIX)) if area == QUEUE else None
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
            state or {},
            meta.get("decision"),
            meta,
        )

    def read_meta(self, name: str, area: str = QUEUE) -> dict | None:
        """The metadata with `state`, `size` (of the message) beside it, for listings."""
        if not valid_name(name):
            return None
        path = self.root / area / name
        try:
            with open(path, "rb") as f:
                meta = _read_header(f)
        except (FileNotFoundError, ValueError):
            return None
        meta["state"] = (
            (read_json(path.with_name(name + STATE_SUFFIX)) or {}) if area == QUEUE else {}
        )
        meta.setdefault("decision", None)
        meta["size"] = dict(meta.get("parts", ())).get(MESSAGE, 0)
        return meta

    def read_message(self, name: str, area: str = QUARANTINE) -> bytes | None:
        """The message as received (for review), or None."""
        entry = self.load(name, area) if valid_name(name) else None
        return entry.raw if entry else None

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
        replace_file(entry.path.with_name(entry.name + STATE_SUFFIX), _json(state), 0o600)
        entry.state = state

    def remove(self, entry: Entry) -> None:
        """Done: the entry first, then its progress if it had any (a stray state, say
        one written while its entry was loaded without it, is swept at start)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
        if entry.state:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path.with_name(entry.name + STATE_SUFFIX))

    # -- quarantine ---------------------------------------------------------------------

    def quarantine(self, entry: Entry, indexes: list[int], *, now: float | None = None) -> str:
        """Write the groups at `indexes` into quarantine/<message id> (idempotent)."""
        name = entry.message_id
        if (self.root / QUARANTINE / name).exists():
            return name
        plan = Plan(deliveries=tuple(entry.plan.deliveries[i] for i in indexes))
        meta, files = _meta(
            entry.envelope, plan, entry.mail_options, entry.received, origin="quarantined"
        )
        meta["quarantined"] = time.time() if now is None else now
        self._commit(name, QUARANTINE, meta, entry.raw, files)
        return name

    def drop_quarantined(self, entry: Entry) -> None:
        """A decided entry is in the queue: its quarantine copy, if a crash left one, goes."""
        if entry.decision:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / QUARANTINE / entry.message_id)

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
            self.finish_decisions(locked=True)
            path = self.root / QUARANTINE / name
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise KeyError(name) from None
            meta, raw, files = _unpack(data)
            meta["decision"] = {"decision": decision, "by": by, "at": time.time(), "note": note}
            target = name + DECIDED_SUFFIX[decision]
            self._commit(target, QUEUE, meta, raw, files)
            self._same_owner(self.root / QUEUE / target)
            os.unlink(path)
            self._sync[QUARANTINE].sync()
            return target

    def finish_decisions(self, *, locked: bool = False) -> list[str]:
        """Quarantine files whose decided copy is already in the queue (a crash between
        the two steps) are removed; returns their names."""
        lock = contextlib.nullcontext() if locked else self.admin_lock()
        done = []
        with lock:
            queued = set(self.names(QUEUE))
            for name in self.names(QUARANTINE):
                if any(name + suffix in queued for suffix in DECIDED_SUFFIX.values()):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.root / QUARANTINE / name)
                    done.append(name)
        return done

    # -- start-up and flush -------------------------------------------------------------

    def recover(self) -> list[str]:
        """At start: discard half-written files, finish decisions, sweep strays, list the queue."""
        for leftover in os.listdir(self.root / TMP):
            path = self.root / TMP / leftover
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                path.unlink()
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        self.finish_decisions()
        queued = set(self.names(QUEUE))
        for name in os.listdir(self.root / QUEUE):
            path = self.root / QUEUE / name
            if name.endswith(STATE_SUFFIX) and name[: -len(STATE_SUFFIX)] in queued:
                continue
            if valid_name(name) and path.is_file():
                continue
            if name.startswith(".") or name.endswith(STATE_SUFFIX):
                path.unlink(missing_ok=True)  # a half-replaced state, or one without entry
            else:
                self.set_aside(name, QUEUE)
        for name in os.listdir(self.root / QUARANTINE):
            if not valid_name(name) or not (self.root / QUARANTINE / name).is_file():
                self.set_aside(name, QUARANTINE)
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


def _from_meta(meta: dict, files: dict[str, bytes]):
    if meta.get("format") != FORMAT:
        raise ValueError(f"unknown spool format {meta.get('format')!r}")
    env = meta["envelope"]
    names = {f.name for f in dataclasses.fields(Envelope)}
    envelope = Envelope(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in env.items() if k in names}
    )
    plan = plan_from_dict(meta["plan"], files.__getitem__)
    return (
        envelope,
        plan,
        tuple(meta.get("mail_options", ())),
        float(meta["received"]),
        meta.get("origin", "accepted"),
    )


# -- the entry file ------------------------------------------------------------------------


def _pack(meta: dict, raw: bytes, files: dict[str, bytes]) -> list[bytes]:
    """MAGIC, the metadata's length, the metadata (naming each part's length), the parts."""
    parts = [(MESSAGE, raw), *files.items()]
    meta = {**meta, "parts": [[name, len(data)] for name, data in parts]}
    header = _json(meta)
    return [MAGIC, b"%d\n" % len(header), header, *(data for _, data in parts)]


def _read_header(f) -> dict:
    if f.read(len(MAGIC)) != MAGIC:
        raise ValueError("not a spool entry")
    size = f.readline(24)
    if not size.endswith(b"\n") or not size[:-1].isdigit() or int(size) > MAX_META:
        raise ValueError("bad header length")
    meta = json.loads(f.read(int(size)))
    if not isinstance(meta, dict):
        raise ValueError("bad metadata")
    return meta


def _unpack(data: bytes) -> tuple[dict, bytes, dict[str, bytes]]:
    f = io.BytesIO(data)
    meta = _read_header(f)
    offset = f.tell()
    files: dict[str, bytes] = {}
    for name, length in meta["parts"]:
        if offset + length > len(data):
            raise ValueError("truncated entry")
        files[name] = data[offset : offset + length]
        offset += length
    raw = files.pop(MESSAGE)
    return meta, raw, files


# -- files ---------------------------------------------------------------------------------

_tags = itertools.count()


def _tag() -> str:
    """A name part unique within this process (temp names need no randomness)."""
    return f"{os.getpid()}-{next(_tags)}"


def _json(data: dict) -> bytes:
    # ASCII escapes: SMTPUTF8 addresses may carry surrogate-escaped bytes, which UTF-8 refuses
    return json.dumps(data, ensure_ascii=True).encode()


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        return None


def _create(path: Path, chunks: list[bytes]) -> int:
    """Create `path` (0600) and write all of `chunks`; the open fd, not yet fsync'ed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        written = os.writev(fd, chunks)
        total = sum(map(len, chunks))
        if written < total:  # rare (signals, huge writes): finish chunk by chunk
            rest = memoryview(b"".join(chunks))[written:]
            while rest:
                rest = rest[os.write(fd, rest) :]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return fd


def _write_new(path: Path, data: bytes | list[bytes]) -> None:
    """Create `path` (0600), write all of `data`, fsync."""
    fd = _create(path, [data] if isinstance(data, bytes) else data)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
