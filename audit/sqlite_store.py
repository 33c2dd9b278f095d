"""AuditStore in SQLite (WAL): the default, embedded in <state>/audit.db.

The gateway and admin commands (`leakguard accounts freeze`, `audit verify`)
open the same file at once: WAL lets readers go on while one writer
commits, every write is one short `BEGIN IMMEDIATE` transaction (the write
lock is taken up front, so two writers queue instead of deadlocking on an
upgrade), and a busy writer is waited for (busy_timeout) rather than failed.
Within a process, writes share one connection under a lock; reads (a hold
checked per request, say) use a connection per thread, so WAL lets them go
on while the audit writer's batch commits.
The chain's head is read inside the appending transaction, so appends from
several processes make one chain. synchronous=NORMAL: a committed event
survives the process dying; only a power cut may lose the last commits.

Each event is stored as its JSON body plus seq/prev/hash; nothing about an
event is kept outside what the hash covers (filters read the body).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from audit.chain import CHAIN_FIELDS, checkpoint, iso, key_id, link, resume
from audit.store import Hold, StoreError

BUSY_TIMEOUT_MS = 10_000
SWEEP_EVERY = 3600.0  # seconds of event time between sweeps of counter rows out of every window
PAGE = 500  # events read per query, so a long walk never holds a read snapshot for long

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, prev TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS adds (key TEXT NOT NULL, t REAL NOT NULL, amount REAL NOT NULL);
CREATE INDEX IF NOT EXISTS adds_by_key ON adds (key, t);
CREATE TABLE IF NOT EXISTS distinct_members (
    key TEXT NOT NULL, member TEXT NOT NULL, t REAL NOT NULL, PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (
    key TEXT NOT NULL, member TEXT NOT NULL, PRIMARY KEY (key, member)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holds (
    kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, name)
) WITHOUT ROWID;
"""


class SQLiteStore:
    def __init__(self, path: str | os.PathLike, chain_key: bytes) -> None:
        self.path = Path(path)
        self.chain_key = chain_key
        self._lock = threading.Lock()
        try:
            if not self.path.exists():  # 0600 from the start; SQLite gives -wal/-shm the same
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._readers: list[sqlite3.Connection] = []
            self._local = threading.local()
            self._db = self._connect()  # for writes, serialised by self._lock
            self._db.execute("PRAGMA journal_mode = WAL")
            with self._write() as db:
                _create(db)
                self._check_key(db)
                row = db.execute("SELECT value FROM meta WHERE name = 'longest_window'").fetchone()
            self._longest = float(row[0]) if row else 0.0
            self._swept = float("-inf")
        except sqlite3.Error as err:
            raise StoreError(f"audit store {self.path}: {err}") from err

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we say where transactions begin and end
            check_same_thread=False,  # close() may run on another thread
        )
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def _reader(self) -> sqlite3.Connection:
        """This thread's connection for reads (autocommit: each query its own snapshot)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
            with self._lock:
                self._readers.append(db)
        return db

    def _check_key(self, db: sqlite3.Connection) -> None:
        ours = key_id(self.chain_key)
        row = db.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('key_id', ?)", (ours,))
        elif row[0] != ours:
            raise StoreError(
                f"audit store {self.path} was written with another installation key "
                f"(key id {row[0]}, ours {ours}): use the state directory it belongs to"
            )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- the record ------------------------------------------------------------------------

    def append(self, event: dict) -> dict:
        return self.append_many([event])[0]

    def append_many(self, events: list[dict]) -> list[dict]:
        out = []
        with self._write() as db:
            head, notice = _resume(db)
            if notice is not None:  # recorded before them, in the same transaction
                events = [notice, *events]
            for event in events:
                stored = link(event, head, self.chain_key)
                body = {k: v for k, v in stored.items() if k not in CHAIN_FIELDS}
                db.execute(
                    "INSERT INTO events (seq, prev, hash, body) VALUES (?, ?, ?, ?)",
                    (stored["seq"], stored["prev"], stored["hash"], _json(body)),
                )
                head = stored
                out.append(stored)
            if out:
                mark = checkpoint(head["seq"], head["hash"], self.chain_key)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (_json(mark),))
        return out[1:] if notice is not None else out

    def events(
        self, *, after_seq: int = 0, since: float | None = None, until: float | None = None
    ) -> Iterator[dict]:
        where, args = ["seq > ?"], []
        if since is not None:
            where.append("json_extract(body, '$.time') >= ?")
            args.append(iso(since))
        if until is not None:
            where.append("json_extract(body, '$.time') < ?")
            args.append(iso(until))
        sql = (
            f"SELECT seq, prev, hash, body FROM events WHERE {' AND '.join(where)} "
            f"ORDER BY seq LIMIT {PAGE}"
        )
        last = after_seq
        while True:
            rows = self._reader().execute(sql, (last, *args)).fetchall()
            for seq, prev, digest, body in rows:
                yield {**_body(body), "seq": seq, "prev": prev, "hash": digest}
            if len(rows) < PAGE:
                return
            last = rows[-1][0]

    def head(self) -> dict | None:
        row = self._reader().execute("SELECT value FROM meta WHERE name = 'head'").fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return {"unreadable": row[0]}  # verify reports it as an edited checkpoint

    # -- counters --------------------------------------------------------------------------

    def add(self, key: str, now: float, window: float, amount: float = 1.0) -> float:
        with self._write() as db:
            self._sweep(db, now, window)
            db.execute("DELETE FROM adds WHERE key = ? AND t <= ?", (key, now - window))
            db.execute("INSERT INTO adds VALUES (?, ?, ?)", (key, now, amount))
            (total,) = db.execute("SELECT SUM(amount) FROM adds WHERE key = ?", (key,)).fetchone()
        return float(total)

    def distinct(self, key: str, member: str, now: float, window: float) -> int:
        with self._write() as db:
            self._sweep(db, now, window)
            db.execute("DELETE FROM distinct_members WHERE key = ? AND t <= ?", (key, now - window))
            db.execute(
                "INSERT OR REPLACE INTO distinct_members VALUES (?, ?, ?)", (key, member, now)
            )
            (count,) = db.execute(
                "SELECT COUNT(*) FROM distinct_members WHERE key = ?", (key,)
            ).fetchone()
        return count

    def _sweep(self, db: sqlite3.Connection, now: float, window: float) -> None:
        """Counter rows older than the longest window any counter has used go, whatever
        their key. Each add prunes its own key only, and a key nobody adds to again (one
        day's total, a source address, a departed user) would keep its rows for ever; so a
        row lives at most the longest window. That window is kept in meta, so a restart
        does not shorten it."""
        if window > self._longest:
            self._longest = window
            db.execute("INSERT OR REPLACE INTO meta VALUES ('longest_window', ?)", (repr(window),))
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        cutoff = now - self._longest
        db.execute("DELETE FROM adds WHERE t <= ?", (cutoff,))
        db.execute("DELETE FROM distinct_members WHERE t <= ?", (cutoff,))

    def first_seen(self, key: str, member: str) -> bool:
        with self._write() as db:
            cur = db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (key, member))
            return cur.rowcount == 1

    def members(self, key: str) -> set[str]:
        rows = self._reader().execute("SELECT member FROM seen WHERE key = ?", (key,)).fetchall()
        return {m for (m,) in rows}

    def reset(self, key: str) -> None:
        with self._write() as db:
            for table in ("adds", "distinct_members", "seen"):
                db.execute(f"DELETE FROM {table} WHERE key = ?", (key,))

    # -- holds -----------------------------------------------------------------------------

    def put_hold(self, hold: Hold) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO holds VALUES (?, ?, ?)",
                (hold.kind, hold.name, _json(hold.to_dict())),
            )

    def get_hold(self, kind: str, name: str) -> Hold | None:
        row = (
            self._reader()
            .execute("SELECT body FROM holds WHERE kind = ? AND name = ?", (kind, name))
            .fetchone()
        )
        return Hold(**json.loads(row[0])) if row else None

    def drop_hold(self, kind: str, name: str) -> Hold | None:
        with self._write() as db:
            row = db.execute(
                "SELECT body FROM holds WHERE kind = ? AND name = ?", (kind, name)
            ).fetchone()
            db.execute("DELETE FROM holds WHERE kind = ? AND name = ?", (kind, name))
        return Hold(**json.loads(row[0])) if row else None

    def holds(self, kind: str | None = None) -> list[Hold]:
        rows = (
            self._reader()
            .execute(
                "SELECT body FROM holds WHERE ? IS NULL OR kind = ? ORDER BY kind, name",
                (kind, kind),
            )
            .fetchall()
        )
        return [Hold(**json.loads(body)) for (body,) in rows]

    def close(self) -> None:
        with self._lock:
            for db in (*self._readers, self._db):
                db.close()
            self._readers.clear()


def _create(db: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _resume(db: sqlite3.Connection) -> tuple[dict | None, dict | None]:
    row = db.execute("SELECT value FROM meta WHERE name = 'head'").fetchone()
    last = db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return resume(_body(row[0]) if row else None, last)


def _json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _body(text: str) -> dict:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    # an edited row that is no longer an object still shows up, and fails its hash
    return body if isinstance(body, dict) else {"unreadable": text}
