"""One contract, three backends: MemoryStore (the reference), SQLiteStore, RedisStore.

Every test here runs once per backend (the `store` fixture in conftest.py);
times are injected, never read from the clock.
"""

from __future__ import annotations

import pytest

from audit.chain import GENESIS, verify
from audit.store import AuditStore, Hold
from tests.audit.conftest import KEY


def test_every_backend_implements_the_protocol(store):
    assert isinstance(store, AuditStore)
    assert store.chain_key == KEY


# -- the record -------------------------------------------------------------------------------


def test_append_chains_seq_prev_and_hash(store):
    first = store.append({"id": "a1", "type": "http.request", "time": "2026-11-23T10:00Z"})
    second = store.append({"id": "a2", "type": "smtp.message", "categories": ("id_number",)})
    assert (first["seq"], first["prev"]) == (1, GENESIS)
    assert (second["seq"], second["prev"]) == (2, first["hash"])
    assert first["hash"] != second["hash"] and len(first["hash"]) == 64
    stored = list(store.events())
    assert stored == [first, second]
    assert stored[1]["categories"] == ["id_number"]  # as JSON gives it back, and hashed so
    assert store.head()["seq"] == 2 and store.head()["hash"] == second["hash"]
    assert verify(store.events(), KEY, head=store.head()) == (2, [])


def test_append_many_is_one_ordered_batch_and_events_pages_from_after_seq(store):
    assert store.head() is None
    assert store.append_many([]) == []
    out = store.append_many([{"id": f"e{i}", "type": "t"} for i in range(1200)])
    assert [e["seq"] for e in out] == list(range(1, 1201))
    assert [e["id"] for e in store.events(after_seq=1195)] == [f"e{i}" for i in range(1195, 1200)]
    assert sum(1 for _ in store.events()) == 1200  # more than one page
    assert verify(store.events(), KEY, head=store.head())[1] == []


def test_chain_fields_given_by_the_caller_are_replaced(store):
    stored = store.append({"id": "x", "seq": 99, "prev": "forged", "hash": "forged"})
    assert stored["seq"] == 1 and stored["prev"] == GENESIS and stored["hash"] != "forged"


def test_events_in_a_period(store):
    for hour in (9, 10, 11):
        store.append({"id": f"h{hour}", "time": f"2026-11-23T{hour:02}:30:00.000+00:00"})
    ten = 1795428000.0  # 2026-11-23T10:00:00Z
    assert [e["id"] for e in store.events(since=ten)] == ["h10", "h11"]
    assert [e["id"] for e in store.events(until=ten)] == ["h9"]
    assert [e["id"] for e in store.events(since=ten, until=ten + 3600)] == ["h10"]


def test_chain_keys_differ_so_do_hashes(store, tmp_path):
    from audit.memory_store import MemoryStore

    other = MemoryStore(b"another key")
    event = {"id": "same", "type": "t"}
    assert store.append(event)["hash"] != other.append(event)["hash"]


# -- counters ---------------------------------------------------------------------------------


def test_add_sums_within_the_window(store):
    assert store.add("fail:alice", 1000.0, 60) == 1
    assert store.add("fail:alice", 1030.0, 60) == 2
    assert store.add("fail:alice", 1060.0, 60) == 2  # 1000 is exactly 60 s old: out
    assert store.add("fail:alice", 1200.0, 60) == 1
    assert store.add("fail:bob", 1200.0, 60) == 1  # keys are independent


def test_add_amounts_are_floats(store):
    assert store.add("bytes:alice", 10.0, 3600, 1500) == 1500
    assert store.add("bytes:alice", 11.0, 3600, 0.25) == pytest.approx(1500.25)
    assert store.add("bytes:alice", 12.5, 3600, 2**40) == pytest.approx(2**40 + 1500.25)


def test_distinct_counts_members_seen_within_the_window(store):
    assert store.distinct("pii:alice", "h1", 100.0, 50) == 1
    assert store.distinct("pii:alice", "h1", 110.0, 50) == 1  # the same value again
    assert store.distinct("pii:alice", "h2", 120.0, 50) == 2
    assert store.distinct("pii:alice", "h3", 155.0, 50) == 3
    # h1 last seen at 110: still in at 159, out at 160
    assert store.distinct("pii:alice", "h3", 160.0, 50) == 2


def test_first_seen_and_members(store):
    assert store.first_seen("dest:alice", "mail.qq.com") is True
    assert store.first_seen("dest:alice", "mail.qq.com") is False
    assert store.first_seen("dest:alice", "网盘.example") is True
    assert store.first_seen("dest:bob", "mail.qq.com") is True
    assert store.members("dest:alice") == {"mail.qq.com", "网盘.example"}
    assert store.members("never") == set()


def test_reset_forgets_counters_distinct_and_seen_under_one_key(store):
    store.add("k", 1.0, 100)
    store.distinct("k", "m", 1.0, 100)
    store.first_seen("k", "m")
    store.add("other", 1.0, 100)
    store.reset("k")
    assert store.add("k", 2.0, 100) == 1
    assert store.distinct("k", "n", 2.0, 100) == 1
    assert store.first_seen("k", "m") is True
    assert store.add("other", 2.0, 100) == 2
    store.reset("nothing there")  # no error


# -- holds ------------------------------------------------------------------------------------


def test_holds_put_get_replace_drop(store):
    frozen = Hold("account", "alice", "5 failed logins in 10 min", since=1000.0)
    store.put_hold(frozen)
    assert store.get_hold("account", "alice") == frozen
    assert store.get_hold("address", "alice") is None
    longer = Hold("account", "alice", "again", since=2000.0, until=9000.0, by="admin", level=2)
    store.put_hold(longer)
    assert store.get_hold("account", "alice") == longer
    assert store.drop_hold("account", "alice") == longer
    assert store.get_hold("account", "alice") is None
    assert store.drop_hold("account", "alice") is None


def test_holds_listed_by_kind_and_name_expired_ones_included(store):
    store.put_hold(Hold("sender", "zed", "volume", since=1.0))
    store.put_hold(Hold("address", "10.0.0.9", "spraying", since=1.0, until=100.0))
    store.put_hold(Hold("account", "bob", "brute force", since=1.0))
    store.put_hold(Hold("account", "alice", "brute force", since=1.0))
    assert [(h.kind, h.name) for h in store.holds()] == [
        ("account", "alice"),
        ("account", "bob"),
        ("address", "10.0.0.9"),
        ("sender", "zed"),
    ]
    assert [h.name for h in store.holds("account")] == ["alice", "bob"]
    blocked = store.holds("address")[0]
    assert blocked.active(99.0) and not blocked.active(100.0)  # expired, still listed
    assert store.get_hold("address", "10.0.0.9") == blocked


# -- persistence and sharing (the durable backends) -------------------------------------------


def _reopen(store):
    from audit.redis_store import RedisStore
    from audit.sqlite_store import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path, KEY)
    if isinstance(store, RedisStore):
        return RedisStore(store.url, KEY, prefix=store.prefix)
    pytest.skip("the memory store lives in one process")


def test_a_second_handle_sees_the_same_state_and_extends_the_chain(store):
    store.append({"id": "one"})
    store.add("k", 1.0, 100)
    store.put_hold(Hold("account", "alice", "why", since=1.0))
    other = _reopen(store)
    try:
        assert other.add("k", 2.0, 100) == 2
        assert other.get_hold("account", "alice") is not None
        assert other.append({"id": "two"})["seq"] == 2
        assert store.append({"id": "three"})["seq"] == 3
        assert verify(other.events(), KEY, head=other.head()) == (3, [])
    finally:
        other.close()


def test_a_store_written_with_another_key_is_refused(store):
    from audit.redis_store import RedisStore
    from audit.sqlite_store import SQLiteStore
    from audit.store import StoreError

    store.append({"id": "one"})
    with pytest.raises(StoreError, match="another installation key"):
        if isinstance(store, SQLiteStore):
            SQLiteStore(store.path, b"x" * 32)
        elif isinstance(store, RedisStore):
            RedisStore(store.url, b"x" * 32, prefix=store.prefix)
        else:
            pytest.skip("the memory store has no other handle")
