"""Two OS processes on one store — a gateway and an admin command on one audit.db, or two
gateways on one Redis — append one valid chain and count on one counter."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import pytest

from audit.chain import EVERY_SEQ, verify
from audit.sqlite_store import SQLiteStore
from tests.audit.conftest import KEY
from tests.support.gateway import ROOT

N = 300

WORKER = """
import pathlib, sys, time
from audit.store import Hold
from tests.audit.conftest import KEY
kind, where, prefix, name, n, go = sys.argv[1:]
if kind == "sqlite":
    from audit.sqlite_store import SQLiteStore
    store = SQLiteStore(where, KEY)
else:
    from audit.redis_store import RedisStore
    store = RedisStore(where, KEY, prefix=prefix)
while not pathlib.Path(go).exists():  # both start appending at the same moment
    time.sleep(0.001)
for i in range(int(n)):
    store.append({"id": f"{name}-{i}", "type": "login.failure", "user": "alice"})
    store.add("fail:alice", 1000.0 + i, 3600)
    store.distinct("pii:alice", f"{name}-{i % 7}", 1000.0 + i, 3600)
    time.sleep(0.001)  # events arrive over time, as at a gateway
store.put_hold(Hold("account", "frozen-by-" + name, "test", since=1.0))
store.close()
"""


def _run_two(kind: str, where: str, prefix: str, tmp_path) -> None:
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, kind, where, prefix, name, str(N), str(go)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    time.sleep(1.0)  # both have imported and opened the store
    go.touch()
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err


def _check(store) -> None:
    events = list(store.events(after_seq=EVERY_SEQ))
    assert verify(events, KEY, head=store.head()) == (2 * N, [])
    assert [e["seq"] for e in events] == list(range(1, 2 * N + 1))
    for name in ("a", "b"):  # each process's events, in its order, all there
        assert [e["id"] for e in events if e["id"].startswith(name)] == [
            f"{name}-{i}" for i in range(N)
        ]
    ids = [e["id"] for e in events]
    interleaved = sum(1 for x, y in itertools.pairwise(ids) if x[0] != y[0])
    assert interleaved > 1, "the two processes did not run at the same time"
    assert store.add("fail:alice", 1000.0 + N, 3600, 0) == 2 * N  # one counter for both
    assert store.distinct("pii:alice", "a-0", 1000.0 + N, 3600) == 14
    assert [h.name for h in store.holds("account")] == ["frozen-by-a", "frozen-by-b"]


def test_two_processes_on_one_sqlite_file_keep_one_chain_and_one_counter(tmp_path):
    path = tmp_path / "audit.db"
    SQLiteStore(path, KEY).close()  # created before they race
    _run_two("sqlite", str(path), "", tmp_path)
    store = SQLiteStore(path, KEY)
    try:
        _check(store)
    finally:
        store.close()


@pytest.mark.usefixtures("redis_server")
def test_two_processes_on_one_redis_keep_one_chain_and_one_counter(
    tmp_path, redis_server, redis_prefix
):
    from audit.redis_store import RedisStore

    _run_two("redis", redis_server.url, redis_prefix, tmp_path)
    store = RedisStore(redis_server.url, KEY, prefix=redis_prefix)
    try:
        _check(store)
    finally:
        store.close()
