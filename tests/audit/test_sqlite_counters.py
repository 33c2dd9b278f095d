"""SQLite's windowed counters do not grow for ever: rows out of every window are swept."""

from __future__ import annotations

import sqlite3

from audit.sqlite_store import SWEEP_EVERY, SQLiteStore

KEY = b"k" * 32
DAY = 86400.0


def _rows(path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        return {
            table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("adds", "distinct_members")
        }
    finally:
        db.close()


def test_counters_nobody_adds_to_again_are_swept(tmp_path):
    """A source address's failures, one day's total: keys that are never added to again
    would keep their last rows, since each add prunes only its own key."""
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    try:
        for i in range(50):
            store.add(f"fail:10.0.0.{i}", 1000.0, 600)
            store.distinct(f"spray:10.0.0.{i}", "alice", 1000.0, 600)
        store.add("day:alice:2026-11-01", 1000.0, 30 * DAY, 4096)
        assert _rows(store.path) == {"adds": 51, "distinct_members": 50}
        # The sweep keeps what the longest window in use (30 days) may still count.
        store.add("fail:10.9.9.9", 1000.0 + SWEEP_EVERY + 1, 600)
        assert _rows(store.path) == {"adds": 52, "distinct_members": 50}
        # Past it, every row of those keys goes, though none of them was added to again.
        later = 1000.0 + 31 * DAY
        store.add("fail:10.9.9.9", later, 600)
        assert _rows(store.path) == {"adds": 1, "distinct_members": 0}
        assert store.add("day:alice:2026-11-01", later, 30 * DAY, 0) == 0
    finally:
        store.close()


def test_the_longest_window_survives_a_restart(tmp_path):
    """After a restart the first adds may use short windows only: rows of a long window
    must not be swept as if it were the longest."""
    path = tmp_path / "audit.db"
    store = SQLiteStore(path, KEY)
    store.add("baseline:alice", 0.0, 30 * DAY, 7)
    store.close()
    store = SQLiteStore(path, KEY)
    try:
        store.add("fail:alice", 2 * DAY, 600)  # sweeps: the cut-off is 30 days back, not 600 s
        assert store.add("baseline:alice", 2 * DAY, 30 * DAY, 0) == 7
    finally:
        store.close()


def test_counting_within_the_window_is_unchanged_by_sweeps(tmp_path):
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    try:
        t = 0.0
        for _ in range(5):
            t += SWEEP_EVERY  # every add sweeps
            store.add("bytes:bob", t, 3 * SWEEP_EVERY, 10)
        # the last three adds are within the window (the one at exactly now - window is out)
        assert store.add("bytes:bob", t, 3 * SWEEP_EVERY, 0) == 30
    finally:
        store.close()
