"""The spool on a real directory: whole entries or none, plans round-trip, decisions last."""

from __future__ import annotations

import json
import os
import stat

import pytest

from mailrelay.plan import Delivery, Envelope, Notice, Outcome, Plan
from mailrelay.spool import (
    CORRUPT,
    MAGIC,
    QUARANTINE,
    QUEUE,
    REJECT,
    RELEASE,
    STATE_SUFFIX,
    TMP,
    GroupSync,
    Spool,
    _pack,
    new_message_id,
    plan_from_dict,
    plan_to_dict,
)
from tests.support.smtp import FINDING

RAW = b"From: a@firm.example\r\nSubject: x\r\n\r\nbody\r\n"


def envelope(rcpts=("b@court.example",), mail_from="a@firm.example") -> Envelope:
    return Envelope(mail_from, tuple(rcpts), "127.0.0.1", "alice", new_message_id())


def plan_with_everything() -> Plan:
    return Plan(
        deliveries=(
            Delivery(("b@court.example",), Outcome.DELIVER, "mask", "mask-rule", "masked",
                     (FINDING,), "LG-1", b"masked message\r\n"),
            Delivery(("x@qq.com",), Outcome.BOUNCE, "block", "r2", "no", (FINDING,), "LG-2"),
            Delivery(("h@hold.example",), Outcome.QUARANTINE, "quarantine", "r3", "held"),
        ),
        notices=(Notice("a@firm.example", b"password: 123\r\n"),),
    )  # fmt: skip


@pytest.fixture
def spool(tmp_path) -> Spool:
    return Spool(tmp_path / "spool")


def test_plan_round_trip_keeps_bodies_as_files():
    plan = plan_with_everything()
    data, files = plan_to_dict(plan)
    assert json.loads(json.dumps(data)) == data
    assert set(files) == {"d0-message.eml", "n0-message.eml"}
    assert plan_from_dict(data, files.__getitem__) == plan


def test_plan_from_dict_ignores_fields_it_does_not_know():
    data, files = plan_to_dict(plan_with_everything())
    data["deliveries"][0]["added_later"] = 1
    assert plan_from_dict(data, files.__getitem__) == plan_with_everything()


def test_store_and_load(spool: Spool):
    env = envelope(("b@court.example", "x@qq.com", "h@hold.example"))
    plan = plan_with_everything()
    entry = spool.store(RAW, env, plan, mail_options=("BODY=8BITMIME",), received=1000.0)
    assert spool.names() == [env.message_id]
    loaded = spool.load(env.message_id)
    assert loaded is not None
    assert (loaded.raw, loaded.envelope, loaded.plan) == (RAW, env, plan)
    assert loaded.mail_options == ("BODY=8BITMIME",)
    assert loaded.received == 1000.0 and loaded.state == {} and loaded.decision is None
    assert os.listdir(spool.root / TMP) == []
    assert os.listdir(spool.root / QUEUE) == [env.message_id]  # one file per message
    assert entry.path.read_bytes().startswith(MAGIC)
    assert stat.S_IMODE(os.stat(entry.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(spool.root).st_mode) == 0o700
    meta = spool.read_meta(env.message_id)
    assert meta["size"] == len(RAW) and meta["envelope"]["rcpt_tos"] == list(env.rcpt_tos)


def test_addresses_that_are_not_utf8_survive(spool: Spool):
    odd = "b\udce9@court.example"  # aiosmtpd's surrogate escape for a stray byte
    env = envelope((odd,))
    spool.store(RAW, env, Plan((Delivery((odd,), Outcome.DELIVER, "allow", "", ""),)))
    assert spool.load(env.message_id).envelope.rcpt_tos == (odd,)


def test_state_is_replaced_atomically(spool: Spool):
    entry = spool.store(RAW, envelope(), plan_with_everything())
    spool.save_state(entry, {"attempts": 1, "done": ["x"]})
    spool.save_state(entry, {"attempts": 2, "done": ["x"]})
    assert spool.load(entry.name).state == {"attempts": 2, "done": ["x"]}
    assert sorted(os.listdir(spool.root / QUEUE)) == [entry.name, entry.name + STATE_SUFFIX]
    assert spool.names() == [entry.name]


def test_remove(spool: Spool):
    entry = spool.store(RAW, envelope(), plan_with_everything())
    spool.save_state(entry, {"done": []})
    spool.remove(entry)
    assert os.listdir(spool.root / QUEUE) == [] and spool.load(entry.name) is None
    spool.remove(entry)  # twice is harmless


def test_recover_discards_what_was_never_acknowledged(spool: Spool):
    kept = spool.store(RAW, envelope(), plan_with_everything())
    spool.save_state(kept, {"done": []})
    (spool.root / TMP / "20260101T000000000-deadbeef.1-1").write_bytes(b"half a mess")
    half_dir = spool.root / TMP / "old-layout"
    half_dir.mkdir()
    (half_dir / "x").write_bytes(b"")
    queue = spool.root / QUEUE
    (queue / f".{kept.name}.state.tmp-1-2").write_bytes(b"{")  # a state being replaced
    (queue / "20260101T000000000-gone.state").write_bytes(b"{}")  # its entry was removed
    assert spool.recover() == [kept.name]
    assert os.listdir(spool.root / TMP) == []
    assert sorted(os.listdir(queue)) == [kept.name, kept.name + STATE_SUFFIX]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"{not an entry", id="garbage"),
        pytest.param(lambda data: data[:-5], id="truncated"),
        pytest.param(lambda data: data.replace(b'"format": 1', b'"format": 9'), id="format"),
    ],
)
def test_unreadable_entries_are_set_aside_not_deleted(spool: Spool, damage):
    entry = spool.store(RAW, envelope(), plan_with_everything())
    broken = damage(entry.path.read_bytes())
    entry.path.write_bytes(broken)
    assert spool.load(entry.name) is None
    assert spool.names() == []
    (aside,) = os.listdir(spool.root / CORRUPT)
    assert (spool.root / CORRUPT / aside).read_bytes() == broken


def test_quarantine_copies_only_the_held_groups_and_is_idempotent(spool: Spool):
    env = envelope(("b@court.example", "x@qq.com", "h@hold.example"))
    entry = spool.store(RAW, env, plan_with_everything())
    name = spool.quarantine(entry, [2])
    assert name == env.message_id
    assert spool.quarantine(entry, [2]) == name
    held = spool.load(name, QUARANTINE)
    assert held.raw == RAW and held.origin == "quarantined"
    assert [d.recipients for d in held.plan.deliveries] == [("h@hold.example",)]
    assert held.plan.notices == ()
    assert spool.read_message(name) == RAW
    assert spool.read_meta(name, QUARANTINE)["quarantined"] > 0


@pytest.mark.parametrize("decision,suffix", [(RELEASE, ".released"), (REJECT, ".rejected")])
def test_decide_moves_the_entry_into_the_queue(spool: Spool, decision, suffix):
    entry = spool.store(RAW, envelope(), plan_with_everything())
    name = spool.quarantine(entry, [2])
    spool.remove(entry)
    target = spool.decide(name, decision, by="sec", note="checked")
    assert target == name + suffix
    assert spool.names(QUARANTINE) == [] and spool.names(QUEUE) == [target]
    moved = spool.load(target)
    assert moved.decision["decision"] == decision and moved.decision["by"] == "sec"
    assert moved.raw == RAW and moved.envelope.message_id == name
    with pytest.raises(KeyError):
        spool.decide(name, decision, by="sec")


def test_decide_refuses_names_that_are_not_spool_names(spool: Spool):
    for bad in ("../queue/x", "", ".", "a/b", "x.released"):
        with pytest.raises(KeyError):
            spool.decide(bad, RELEASE, by="sec")


def test_a_decision_interrupted_by_a_crash_is_finished_at_start(spool: Spool):
    entry = spool.store(RAW, envelope(), plan_with_everything())
    name = spool.quarantine(entry, [2])
    spool.remove(entry)
    spool.decide(name, RELEASE, by="sec")
    # as if the command died after writing the queue copy, before unlinking the held one
    held = spool.root / QUARANTINE / name
    held.write_bytes(b"".join(_pack({"format": 1}, RAW, {})))
    assert spool.recover() == [name + ".released"]
    assert spool.names(QUARANTINE) == []
    # and the relay drops it too, should it still be there when it delivers
    held.write_bytes(b"x")
    spool.drop_quarantined(spool.load(name + ".released"))
    assert not held.exists()


def test_group_sync_shares_one_fsync_among_concurrent_callers(tmp_path, monkeypatch):
    import threading
    import time

    calls = []

    def slow_fsync(path):
        calls.append(path)
        time.sleep(0.05)

    monkeypatch.setattr("mailrelay.spool.fsync_dir", slow_fsync)
    sync = GroupSync(tmp_path)
    threads = [threading.Thread(target=sync.sync) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= len(calls) <= 3  # not 20


def test_flush_request(spool: Spool):
    assert not spool.take_flush_request()
    spool.request_flush()
    assert spool.flush_requested()
    assert spool.take_flush_request()
    assert not spool.flush_requested()


def test_message_ids_sort_by_arrival_and_are_unique():
    ids = [new_message_id(1_800_000_000 + i / 1000) for i in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50


def test_a_batch_is_committed_together_and_a_bad_item_fails_alone(spool: Spool):
    plan = plan_with_everything()
    good = [envelope(), envelope(), envelope()]
    bad = Envelope("a@firm.example", ("b@court.example",), message_id="../escape")
    items = [(RAW + b"0", good[0], plan, ("BODY=8BITMIME",)), (RAW, bad, plan, ())]
    items += [(RAW + b"%d" % i, env, plan, ()) for i, env in enumerate(good[1:], 1)]
    results = spool.store_batch(items)
    assert isinstance(results[1], Exception) and "not a spool name" in str(results[1])
    entries = [results[0], *results[2:]]
    assert [e.name for e in entries] == [env.message_id for env in good]
    assert spool.names() == sorted(env.message_id for env in good)
    for i, entry in enumerate(entries):
        loaded = spool.load(entry.name)
        assert loaded.raw == RAW + b"%d" % i and loaded.plan == plan
        assert loaded.envelope == good[i]
    assert spool.load(good[0].message_id).mail_options == ("BODY=8BITMIME",)
    assert os.listdir(spool.root / TMP) == []


def test_a_batch_that_cannot_be_written_reports_every_message(spool: Spool):
    os.chmod(spool.root / TMP, 0o500)  # (root ignores modes: then a missing tmp/ does it)
    if os.geteuid() == 0:
        os.chmod(spool.root / TMP, 0o700)
        os.rmdir(spool.root / TMP)
    results = spool.store_batch([(RAW, envelope(), plan_with_everything(), ())] * 2)
    assert all(isinstance(r, OSError) for r in results)
    assert spool.names() == []
