"""Tampering with the stored record — with the sqlite3 module and a Redis client, as someone
with the files but not the installation key would — is detected and located."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
import redis

from audit.chain import EVERY_SEQ, GENESIS, canonical, chain_key, checkpoint, verify
from audit.sqlite_store import SQLiteStore
from tests.audit.conftest import KEY


@pytest.fixture
def db(tmp_path):
    """Ten events in a real audit.db, and a raw connection to tamper with it."""
    store = SQLiteStore(tmp_path / "audit.db", KEY)
    store.append_many(
        [
            {"id": f"e{i}", "type": "http.request", "user": "alice", "action": "block"}
            for i in range(1, 11)
        ]
    )
    store.close()
    raw = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    yield tmp_path / "audit.db", raw
    raw.close()


def _problems(path):
    store = SQLiteStore(path, KEY)
    try:
        head = store.head()
        events = store.events(after_seq=EVERY_SEQ)
        count, problems = verify(events, KEY, head=head, checkpointed=True)
        return count, [(p.seq, p.id, p.what) for p in problems]
    finally:
        store.close()


def test_an_untouched_record_verifies(db):
    assert _problems(db[0]) == (10, [])


def test_an_edited_field_is_found_at_its_event(db):
    path, raw = db
    raw.execute("UPDATE events SET body = json_set(body, '$.action', 'allow') WHERE seq = 4")
    assert _problems(path) == (
        10,
        [(4, "e4", "content does not match its hash: edited (or forged)")],
    )


def test_an_edit_with_the_chain_recomputed_without_the_key_is_found(db):
    """The attacker edits seq 4 and rebuilds every hash after it as a plain SHA-256 chain
    (or with any key but ours): the first rebuilt event is where verification stops agreeing."""
    path, raw = db
    rows = raw.execute("SELECT seq, prev, body FROM events WHERE seq >= 4 ORDER BY seq").fetchall()
    prev = raw.execute("SELECT hash FROM events WHERE seq = 3").fetchone()[0]
    for seq, _, body in rows:
        event = json.loads(body)
        if seq == 4:
            event["action"] = "allow"
        digest = hashlib.sha256(canonical({**event, "seq": seq, "prev": prev})).hexdigest()
        raw.execute(
            "UPDATE events SET prev = ?, hash = ?, body = ? WHERE seq = ?",
            (prev, digest, json.dumps(event), seq),
        )
        prev = digest
    # and the checkpoint, MAC'd with a guessed key
    mark = checkpoint(10, prev, chain_key(b"guessed installation key"))
    raw.execute("UPDATE meta SET value = ? WHERE name = 'head'", (json.dumps(mark),))
    _, problems = _problems(path)
    assert problems[0] == (4, "e4", "content does not match its hash: edited (or forged)")
    assert {p[0] for p in problems} >= set(range(4, 11))
    assert any("checkpoint does not match its MAC" in p[2] for p in problems)


def test_a_deleted_event_is_found_where_it_was(db):
    path, raw = db
    raw.execute("DELETE FROM events WHERE seq = 6")
    assert _problems(path) == (9, [(6, "", "missing: deleted")])


def test_deleted_events_at_the_start_are_found(db):
    path, raw = db
    raw.execute("DELETE FROM events WHERE seq <= 2")
    assert _problems(path) == (8, [(1, "", "missing (through seq 2): deleted")])


def test_an_inserted_event_is_found(db):
    path, raw = db
    forged = {"id": "forged", "type": "http.request", "user": "bob", "action": "allow"}
    raw.execute("INSERT INTO events VALUES (0, ?, ?, ?)", (GENESIS, "0" * 64, json.dumps(forged)))
    _, problems = _problems(path)
    assert problems == [(0, "forged", "seq 0 where seq 1 belongs: inserted")]


def test_an_event_added_after_the_head_without_the_key_is_found(db):
    path, raw = db
    last = raw.execute("SELECT hash FROM events WHERE seq = 10").fetchone()[0]
    forged = {"id": "forged", "type": "account.unfrozen", "user": "bob"}
    digest = hashlib.sha256(canonical({**forged, "seq": 11, "prev": last})).hexdigest()
    raw.execute("INSERT INTO events VALUES (11, ?, ?, ?)", (last, digest, json.dumps(forged)))
    assert _problems(path)[1] == [
        (11, "forged", "content does not match its hash: edited (or forged)")
    ]


def test_the_gateway_goes_on_after_a_forged_row_past_the_checkpoint(db):
    path, raw = db
    raw.execute("INSERT INTO events VALUES (11, 'x', 'y', '{\"id\": \"forged\"}')")
    store = SQLiteStore(path, KEY)
    assert store.append({"id": "later"})["seq"] == 13  # 12: the store's notice
    store.close()
    _, problems = _problems(path)
    assert [p[:2] for p in problems[:2]] == [(11, "forged"), (11, "forged")]
    assert problems[2][0] == 12
    assert "prev does not match" in problems[0][2] and "overtaken" in problems[2][2]


def test_an_unreadable_checkpoint_is_found_and_appends_go_on(db):
    path, raw = db
    raw.execute("UPDATE meta SET value = 'garbage' WHERE name = 'head'")
    assert _problems(path)[1] == [(None, "", "the head checkpoint is unreadable: edited")]
    store = SQLiteStore(path, KEY)
    assert store.append({"id": "later"})["seq"] == 12
    store.close()
    assert [p[0] for p in _problems(path)[1]] == [11]


def test_a_cut_tail_is_found_by_the_checkpoint(db):
    path, raw = db
    raw.execute("DELETE FROM events WHERE seq >= 8")
    count, problems = _problems(path)
    assert count == 7
    assert problems == [
        (
            8,
            "",
            "the record ends at seq 7 but its checkpoint says seq 10: seq 8-10 cut from the tail",
        )
    ]


def test_a_cut_tail_with_the_checkpoint_moved_back_is_found(db):
    path, raw = db
    raw.execute("DELETE FROM events WHERE seq >= 8")
    last = raw.execute("SELECT hash FROM events WHERE seq = 7").fetchone()[0]
    fake = {"seq": 7, "hash": last, "mac": hashlib.sha256(last.encode()).hexdigest()}
    raw.execute("UPDATE meta SET value = ? WHERE name = 'head'", (json.dumps(fake),))
    assert _problems(path)[1] == [(7, "", "the head checkpoint does not match its MAC: edited")]


def test_swapped_events_are_found(db):
    path, raw = db
    (b3,) = raw.execute("SELECT body FROM events WHERE seq = 3").fetchone()
    (b4,) = raw.execute("SELECT body FROM events WHERE seq = 4").fetchone()
    raw.execute("UPDATE events SET body = ? WHERE seq = 3", (b4,))
    raw.execute("UPDATE events SET body = ? WHERE seq = 4", (b3,))
    assert [p[:2] for p in _problems(path)[1]] == [(3, "e4"), (4, "e3")]


def test_a_body_that_is_no_longer_json_is_found(db):
    path, raw = db
    raw.execute("UPDATE events SET body = 'gone' WHERE seq = 2")
    assert _problems(path)[1] == [(2, "", "content does not match its hash: edited (or forged)")]


def test_appends_after_a_cut_keep_showing_the_gap(db):
    """The gateway carries on after someone cut the tail: new events chain on the checkpoint,
    so the hole stays visible instead of being papered over."""
    path, raw = db
    raw.execute("DELETE FROM events WHERE seq >= 9")
    store = SQLiteStore(path, KEY)
    assert store.append({"id": "later"})["seq"] == 11
    store.close()
    assert _problems(path)[1] == [(9, "", "missing (through seq 10): deleted")]


def test_a_deleted_checkpoint_is_found_and_the_next_append_says_so(db):
    path, raw = db
    raw.execute("DELETE FROM events WHERE seq >= 9")  # the tail cut
    raw.execute("DELETE FROM meta WHERE name = 'head'")  # and the checkpoint that showed it
    assert _problems(path) == (8, [(None, "", "the head checkpoint is missing: deleted")])
    store = SQLiteStore(path, KEY)
    later = store.append({"id": "later", "type": "http.request"})
    store.close()
    assert later["seq"] == 10 and later["id"] == "later"  # after the store's own notice
    count, problems = _problems(path)
    assert count == 10
    assert [p[:1] + p[2:] for p in problems] == [
        (9, "the store found its checkpoint gone or overtaken here: events cut or forged")
    ]


# -- the same on Redis ------------------------------------------------------------------------


def test_tampering_with_redis_is_found(redis_server, redis_prefix):
    from audit.redis_store import RedisStore

    store = RedisStore(redis_server.url, KEY, prefix=redis_prefix)
    store.append_many([{"id": f"e{i}", "type": "t", "action": "block"} for i in range(1, 8)])
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    key = redis_prefix + "events"
    edited = json.loads(raw.lindex(key, 2))
    edited["action"] = "allow"
    raw.lset(key, 2, json.dumps(edited))  # seq 3 edited
    raw.lrem(key, 1, raw.lindex(key, 4))  # seq 5 deleted
    raw.rpop(key)  # seq 7 cut from the tail
    _, problems = verify(store.events(after_seq=EVERY_SEQ), KEY, head=store.head())
    assert [(p.seq, p.what) for p in problems] == [
        (3, "content does not match its hash: edited (or forged)"),
        (5, "missing: deleted"),
        (7, "the record ends at seq 6 but its checkpoint says seq 7: seq 7 cut from the tail"),
    ]
    raw.delete(redis_prefix + "head")
    assert store.append({"id": "later"})["seq"] == 8  # seq 7: the store's notice
    _, problems = verify(store.events(after_seq=EVERY_SEQ), KEY, head=store.head())
    assert (7, "the store found its checkpoint gone or overtaken here: events cut or forged") in [
        (p.seq, p.what) for p in problems
    ]
    raw.set(redis_prefix + "head", "garbage")  # an unreadable checkpoint: appends go on
    assert store.append({"id": "again"})["seq"] == 10
    raw.close()
    store.close()
