"""The spool on a real directory: whole entries or none, plans round-trip, decisions last."""

from __future__ import annotations

import json
import os
import stat

import pytest

from mailrelay.plan import Delivery, Envelope, Notice, Outcome, Plan
from mailrelay.spool import (
    CORRUPT,
    DECISION,
    MESSAGE,
    META,
    QUARANTINE,
    QUEUE,
    REJECT,
    RELEASE,
    STATE,
    TMP,
    Spool,
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
    for name in os.listdir(entry.path):
        assert stat.S_IMODE(os.stat(entry.path / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(spool.root).st_mode) == 0o700


def test_addresses_that_are_not_utf8_survive(spool: Spool):
    odd = "b\udce9@court.example"  # aiosmtpd's surrogate escape for a stray byte
    env = envelope((odd,))
    spool.store(RAW, env, Plan((Delivery((odd,), Outcome.DELIVER, "allow", "", ""),)))
    assert spool.load(env.message_id).envelope.rcpt_tos == (odd,)


def test_state_is_replaced_atomically(spool: Spool):
    entry = spool.store(RAW, envelope(), plan_with_everything())
    spool.save_state(entry, {"attempts": 1, "done": ["x"]})
    assert spool.load(entry.name).state == {"attempts": 1, "done": ["x"]}
    assert [p.name for p in entry.path.iterdir() if p.name.startswith(".")] == []


def test_remove(spool: Spool):
    entry = spool.store(RAW, envelope(), plan_with_everything())
    spool.remove(entry)
    assert spool.names() == [] and spool.load(entry.name) is None
    spool.remove(entry)  # twice is harmless


def test_recover_discards_what_was_never_acknowledged(spool: Spool):
    kept = spool.store(RAW, envelope(), plan_with_everything())
    half = spool.root / TMP / "20260101T000000000-deadbeef.abc123"
    half.mkdir()
    (half / MESSAGE).write_bytes(b"half a mess")
    (spool.root / TMP / "stray").write_bytes(b"")
    (kept.path / ".state.json.tmp-abc").write_bytes(b"{")
    assert spool.recover() == [kept.name]
    assert os.listdir(spool.root / TMP) == []
    assert not (kept.path / ".state.json.tmp-abc").exists()


def test_unreadable_entries_are_set_aside_not_deleted(spool: Spool):
    entry = spool.store(RAW, envelope(), plan_with_everything())
    (entry.path / META).write_bytes(b"{not json")
    assert spool.load(entry.name) is None
    assert spool.names() == []
    (aside,) = os.listdir(spool.root / CORRUPT)
    assert (spool.root / CORRUPT / aside / MESSAGE).read_bytes() == RAW


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
    # the bytes are shared, not copied
    assert os.stat(held.path / MESSAGE).st_ino == os.stat(entry.path / MESSAGE).st_ino


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
    # the command wrote its decision and died before the rename
    (spool.root / QUARANTINE / name / DECISION).write_text(
        json.dumps({"decision": "release", "by": "sec", "at": 1.0, "note": ""})
    )
    assert spool.recover() == [name + ".released"]
    assert spool.names(QUARANTINE) == []


def test_flush_request(spool: Spool):
    assert not spool.take_flush_request()
    spool.request_flush()
    assert spool.flush_requested()
    assert spool.take_flush_request()
    assert not spool.flush_requested()


def test_message_ids_sort_by_arrival_and_are_unique():
    ids = [new_message_id(1_800_000_000 + i / 1000) for i in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50


def test_state_file_is_the_only_thing_written_for_progress(spool: Spool):
    entry = spool.store(RAW, envelope(), plan_with_everything())
    before = set(os.listdir(entry.path))
    spool.save_state(entry, {"done": []})
    assert set(os.listdir(entry.path)) == before | {STATE}
