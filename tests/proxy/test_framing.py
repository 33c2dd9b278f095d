"""Bytes a decompressor skips travel to the origin: the proxy judges them, buffered or streamed.

Buffered bodies go through the addon as in test_inspect; streamed ones are driven
chunk by chunk as in test_streaming (every byte that would go upstream visible).
"""

from __future__ import annotations

import json
import zlib

import pytest

from audit.events import MemoryLog
from proxy.services import Services
from tests.proxy.test_inspect import FORM, assert_blocked, flow_to, form, run
from tests.proxy.test_streaming import (
    MiB,
    drive,
    filler,
    make_services,
    pieces,
    upload,
)
from tests.rules.test_extract_framing import gzip_member, skippable, zstd

ID = "11010519491231002X"  # a valid resident ID (checksum X), generated
PHONE = "13912345678"
PERSONAL = "identifying-to-personal-channels"
GZIP = {"content-encoding": "gzip"}


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog()


@pytest.fixture
def services(log: MemoryLog) -> Services:
    return make_services(log)


async def test_an_id_in_a_gzip_comment_to_webmail_is_blocked(services, log):
    body = gzip_member(form(note="hello"), comment=f"身份证 {ID}".encode())
    f = await run(services, flow_to("mail.qq.com", body, ctype=FORM, headers=GZIP))
    assert_blocked(f, log, PERSONAL, ID)
    assert "gzip comment" in json.dumps(log.events[-1]["findings"], ensure_ascii=False)


async def test_an_id_in_a_zstd_skippable_frame_to_webmail_is_blocked(services, log):
    body = skippable(ID.encode()) + zstd(form(note="hello"))
    headers = {"content-encoding": "zstd"}
    f = await run(services, flow_to("mail.qq.com", body, ctype=FORM, headers=headers))
    assert_blocked(f, log, PERSONAL, ID)


async def test_the_same_body_with_a_clean_header_passes(services, log):
    body = gzip_member(form(note="hello"), name=b"form.txt", comment=b"office scanner")
    f = await run(services, flow_to("mail.qq.com", body, ctype=FORM, headers=GZIP))
    assert f.response is None and f.request.raw_content == body


async def test_a_value_to_mask_in_a_gzip_header_blocks_instead(services, log):
    body = gzip_member(json.dumps({"note": "hi"}).encode(), name=f"{PHONE}.json".encode())
    f = flow_to(
        "portal.lawfirm.example", body, ctype="application/json", scheme=b"https", headers=GZIP
    )
    await run(services, f)
    assert_blocked(f, log, log.events[-1]["rule"], PHONE)
    assert log.events[-1]["action"] == "block"
    assert "a compression header" in log.events[-1]["reason"]


async def test_bytes_after_a_deflate_stream_fail_closed(services, log):
    c = zlib.compressobj()
    body = c.compress(form(note="hello")) + c.flush() + f"&id={ID}".encode()
    headers = {"content-encoding": "deflate"}
    f = await run(services, flow_to("example.com", body, ctype=FORM, headers=headers))
    assert_blocked(f, log, "fail-closed", ID)
    assert "data after the end of the deflate stream" in log.events[-1]["reason"]


def test_a_streamed_gzip_member_comment_stops_the_body_before_it_goes(services, log):
    clean = gzip_member(filler(2 * MiB))
    raw = clean + gzip_member(filler(MiB, seed=1), comment=f"身份证 {ID}".encode()) + clean
    f = upload("mail.qq.com", size=len(raw), headers=GZIP)
    sent, d = drive(services, f, pieces(raw, 16 * 1024))
    assert d.killed
    assert log.events[-1]["rule"] == PERSONAL
    assert raw.startswith(sent) and len(sent) < raw.index(ID.encode())  # the value never went


def test_a_streamed_zstd_skippable_frame_stops_the_body_before_it_goes(services, log):
    raw = zstd(filler(2 * MiB)) + skippable(f"证件 {ID}".encode()) + zstd(filler(MiB, seed=2))
    f = upload("mail.qq.com", size=None, headers={"content-encoding": "zstd"})
    sent, d = drive(services, f, pieces(raw, 8 * 1024))
    assert d.killed
    assert log.events[-1]["rule"] == PERSONAL
    assert raw.startswith(sent) and len(sent) < raw.index(ID.encode())


def test_a_streamed_gzip_body_with_clean_headers_passes_identical(services, log):
    raw = gzip_member(filler(3 * MiB), name=b"notes.txt", comment=b"nightly export")
    f = upload("mail.qq.com", size=len(raw), headers=GZIP)
    sent, d = drive(services, f, pieces(raw, 16 * 1024))
    assert sent == raw and not d.killed, log.events
    assert log.events[-1]["action"] in ("allow", "report")
