"""A held sender at the proxy's inspection addon (real Inspect, the shipped policy, a real
SQLite store): HTTP and WebSocket sending out refused, internal traffic untouched, and
every decision event carries the size of what was sent."""

from __future__ import annotations

import json
import time

import pytest
from mitmproxy import websocket
from mitmproxy.test import taddons
from wsproto.frame_protocol import Opcode

from audit.events import MemoryLog
from audit.sqlite_store import SQLiteStore
from audit.store import Hold
from audit.transfers import hold_lookup
from proxy.inspect import Inspect
from proxy.services import Services
from rules.policy.holder import PolicyHolder
from tests.audit.conftest import KEY
from tests.proxy.test_inspect import OFFICE_CLIENT, flow_to, run, websocket_flow

REASON = "192.168.1.5 sent 6 distinct sensitive values to external destinations within 1 h"


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "audit.db", KEY)
    yield s
    s.close()


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def services(store, log) -> Services:
    return Services(
        policy=PolicyHolder("rules/default"),
        hash_key=b"k" * 32,
        record=log.record,
        sender_hold=hold_lookup(store),
    )


def _hold(store) -> None:
    store.put_hold(Hold("sender", OFFICE_CLIENT[0], REASON, since=time.time()))


async def test_an_upload_carries_its_size_and_a_held_sender_is_refused(services, store, log):
    body = b"tel=13912345678"
    f = await run(services, flow_to("example.com", body, ctype="application/x-www-form-urlencoded"))
    assert f.response is None  # basic data out: recorded, allowed
    assert log.events[-1]["action"] == "report" and log.events[-1]["size"] == len(body)

    _hold(store)
    f = await run(services, flow_to("example.com", b"q=weather", ctype="text/plain"))
    assert f.response is not None and f.response.status_code == 403
    page = f.response.text
    assert "held for review: 192.168.1.5 sent 6 distinct" in page
    event = log.events[-1]
    assert event["rule"] == "sender-held" and event["action"] == "block" and event["incident"]
    assert event["size"] == len(b"q=weather")

    store.drop_hold("sender", OFFICE_CLIENT[0])
    f = await run(services, flow_to("example.com", b"q=weather", ctype="text/plain"))
    assert f.response is None


async def test_a_held_sender_still_reaches_internal_servers(services, store, log):
    _hold(store)
    f = flow_to("intranet.firm.example", b"q=weather", ctype="text/plain")
    f.metadata["leakguard.dest_ip"] = "10.1.0.7"  # the office zone in the shipped policy
    await run(services, f)
    assert f.response is None
    assert [(e["action"], e["destination_zone"]) for e in log.events] == [("allow", "office")]


async def test_a_held_senders_websocket_message_is_dropped(services, store, log):
    _hold(store)
    f = websocket_flow("chat.example.com")
    addon = Inspect(services)
    with taddons.context(addon):
        msg = websocket.WebSocketMessage(Opcode.TEXT, True, b'{"msg": "hello"}')
        f.websocket.messages.append(msg)
        await addon.websocket_message(f)
    assert msg.dropped and f.websocket.close_code == 1008
    event = log.events[-1]
    assert event["type"] == "websocket.message" and event["rule"] == "sender-held"
    assert event["size"] == len(b'{"msg": "hello"}')
    assert "held for review" in json.dumps(event)
