"""AuditLog: the `record(event)` every component calls, in front of the audit store.

    log = AuditLog(store, state_dir / "events.jsonl")
    log.record(event)          # hot path: mirrors the line, queues the event for the store
    log.add_watcher(fn)        # fn(stored_event) on a thread of its own, after it is stored
    log.flush()                # wait until everything recorded so far is stored and mirrored
    log.reopen()               # after logrotate: the mirror by its name again (SIGHUP)
    log.close()                # drain: every recorded event is stored, mirrored and watched

The proxy and the relay record one event per request, from the event loop
and from worker threads. `record` writes the event's line to the JSON-lines
mirror (events.jsonl, what a SIEM tails and what tests read right after a
request: one O_APPEND write, so the line is on disk before the caller
answers its client, exactly as before the store existed) and puts the event
on a queue. One writer thread takes what has queued (one event, or hundreds
under load) and appends it to the store in one transaction, where it gets
seq/prev/hash; after the first event it waits GATHER (50 ms) for others to
join, so a trickle of events costs a transaction per 50 ms, not one each
(a backlog is written without pauses; a flush waits at most that much
more). The mirror's lines carry the event's own fields, not the chain's:
the chain is decided inside the store's transaction (other processes append
too), and `leakguard audit export` gives the verifiable JSON lines.
Watchers (the detectors) get each stored event on another thread, so a slow
detector never delays the record; what a watcher raises is logged with its
traceback and counted in `watcher_errors`.

Nothing is dropped: when the store fails (Redis unreachable, disk full) the
writer keeps the events and retries with backoff; if it still fails at
close, the error names how many events reached only the mirror.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from audit.appendfile import AppendFile
from audit.events import Event
from audit.store import AuditStore

log = logging.getLogger("leakguard.audit")

BATCH = 64  # events per transaction at most: a few ms, so other writers wait little
GATHER = 0.05  # seconds the writer waits after an event for others to share its transaction
RETRY_FIRST, RETRY_MAX = 0.05, 2.0  # seconds between attempts when the store fails
CLOSE_ATTEMPTS = 5  # at close, a failing store gets this many tries (about 1.5 s)

Watcher = Callable[[dict], None]


class _Stop:
    """Queued by close(): the writer drains what came before it, then ends."""


class AuditLog:
    def __init__(self, store: AuditStore, mirror: str | os.PathLike | None = None) -> None:
        self.store = store
        self.mirror_path = Path(mirror) if mirror is not None else None
        self._mirror = AppendFile(self.mirror_path) if self.mirror_path is not None else None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._watchers: list[Watcher] = []
        self._watch_queue: queue.SimpleQueue = queue.SimpleQueue()
        self.watcher_errors = 0
        self.stored = 0
        self._closed = False
        self._given_up = False  # the store failed through close: the rest goes to the log only
        self._writer = threading.Thread(target=self._write_loop, name="audit-writer", daemon=True)
        self._watching = threading.Thread(target=self._watch_loop, name="audit-watch", daemon=True)
        self._writer.start()
        self._watching.start()

    # -- the hot path -----------------------------------------------------------------------

    def record(self, event: Event | dict) -> None:
        """Queue one event (an Event is immutable; a dict is copied, the caller may reuse it)."""
        data = event.to_dict() if isinstance(event, Event) else dict(event)
        mirror = self._mirror
        if mirror is not None:
            line = json.dumps(data, ensure_ascii=False).encode() + b"\n"
            try:
                mirror.write(line)  # O_APPEND: whole lines, whichever thread
            except OSError as err:  # the store still gets it
                log.error("events mirror %s: %s", self.mirror_path, err)
        if self._closed:  # a straggler during shutdown: it reached the mirror only
            log.error("event %s recorded after the audit log closed", data.get("id"))
            return
        self._queue.put(data)

    # -- for detectors and the runtime ------------------------------------------------------

    def add_watcher(self, watcher: Watcher) -> None:
        """Call `watcher(stored_event)` for every event stored from now on (not for earlier)."""
        self._watchers = [*self._watchers, watcher]  # replaced whole: the watch loop reads it

    def reopen(self) -> None:
        """Open the mirror by its name again (logrotate has moved the old file away): lines
        from now on go to the new file, none is lost in between. Raises OSError."""
        if self._mirror is not None and not self._closed:
            self._mirror.reopen()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was recorded before this call is stored, mirrored and watched."""
        if threading.current_thread() in (self._writer, self._watching):
            raise RuntimeError("flush() from a watcher would wait for itself")
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_Stop())
        self._writer.join()
        self._watch_queue.put(_Stop())
        self._watching.join()
        mirror, self._mirror = self._mirror, None
        if mirror is not None:
            mirror.close()

    # -- the writer --------------------------------------------------------------------------

    def _write_loop(self) -> None:
        stopping = backlog = False
        while True:
            items = [] if stopping else [self._queue.get()]
            if items and isinstance(items[0], dict) and not backlog and not self._closed:
                # group commit: a transaction costs ~1 ms of CPU (BEGIN, the chain's head,
                # COMMIT) whether it holds one event or sixty; under a steady trickle a
                # transaction per event was a quarter of a core at 200 requests/s
                time.sleep(GATHER)
            while len(items) < BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not items:  # stopping, and everything queued before (and during) close is kept
                return
            backlog = len(items) == BATCH  # more is waiting: no pause before the next batch
            events, markers = [], []
            for item in items:
                if isinstance(item, _Stop):
                    stopping = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    events.append(item)
            if events:
                self._store(events)
            if markers:  # a flush waits for the watchers too: its marker follows their events
                self._watch_queue.put(markers)

    def _store(self, events: list[dict]) -> None:
        delay, attempts = RETRY_FIRST, 0
        while not self._given_up:
            try:
                stored = self.store.append_many(events)
                break
            except Exception as err:  # the record must outlive any one failure
                attempts += 1
                if attempts == 1 or attempts % 20 == 0:
                    log.error(
                        "audit store append failed (%d events waiting, attempt %d): %s",
                        len(events), attempts, err,
                    )  # fmt: skip
                if self._closed and attempts >= CLOSE_ATTEMPTS:
                    self._given_up = True
                    break
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
        if self._given_up:
            log.critical(
                "audit store unusable at shutdown: %d events (ids %s … %s) are only in %s",
                len(events), events[0].get("id"), events[-1].get("id"), self.mirror_path,
            )  # fmt: skip
            return
        self.stored += len(stored)
        self._watch_queue.put(stored)

    # -- the watchers -------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        while True:
            item = self._watch_queue.get()
            if isinstance(item, _Stop):
                return
            for entry in item:
                if isinstance(entry, threading.Event):
                    entry.set()
                    continue
                for watcher in self._watchers:
                    try:
                        watcher(dict(entry))
                    except Exception:
                        self.watcher_errors += 1
                        log.exception(
                            "audit watcher %r failed on event seq %s (%s)",
                            watcher, entry.get("seq"), entry.get("type"),
                        )  # fmt: skip


def _as_dict(item: Event | dict) -> dict:
    return item.to_dict() if isinstance(item, Event) else item


def record_now(store: AuditStore, mirror: str | os.PathLike | None, event: Event | dict) -> dict:
    """For admin commands (one event, no writer thread): mirror its line, append it."""
    data = _as_dict(event)
    if mirror is not None and Path(mirror).parent.is_dir():
        out = AppendFile(mirror)
        try:
            out.write(json.dumps(data, ensure_ascii=False).encode() + b"\n")
        finally:
            out.close()
    return store.append(data)
