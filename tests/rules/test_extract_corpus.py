"""The labelled corpus: every expected value comes out of some Part (or the right Problem)."""

from __future__ import annotations

import html
import json
import re
import time
import tracemalloc
from pathlib import Path

import pytest

from rules.extract import extract
from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Part, Problem

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
LABELS = [json.loads(line) for line in (CORPUS / "files.jsonl").read_text("utf-8").splitlines()]


def run(path: Path) -> tuple[list[Part], list[Problem]]:
    """Content Parts (lists of member and attachment names left out) and Problems."""
    items = list(extract(path.read_bytes(), name=path.name))
    parts = [p for p in items if isinstance(p, Part) and not p.location.endswith(" names")]
    return parts, [p for p in items if isinstance(p, Problem)]


def readable(text: str) -> str:
    """What the scan engine will see after its own decoding: entities undone,
    separators (spaces, dashes) dropped, case folded."""
    return re.sub(r"[\s\-]", "", html.unescape(text)).lower()


@pytest.mark.parametrize("label", LABELS, ids=[label["file"] for label in LABELS])
def test_expected_values_are_extracted(label: dict) -> None:
    parts, problems = run(CORPUS / "files" / label["file"])
    values = [e["value"] for e in label["expect"] if e["type"] != ENCRYPTED_ARCHIVE]
    texts = [readable(p.text) for p in parts]
    for value in values:
        assert any(readable(value) in t for t in texts), f"{value} not extracted"
    if any(e["type"] == ENCRYPTED_ARCHIVE for e in label["expect"]):
        assert [p.detector for p in problems] and all(
            p.detector == ENCRYPTED_ARCHIVE for p in problems
        )
    elif label["file"] != "zeros_50MiB.zip":
        assert problems == []
        assert parts, "every readable corpus file yields text"


def test_encrypted_zips_are_not_read() -> None:
    for name in ("encrypted_aes.zip", "encrypted_zipcrypto.zip"):
        parts, problems = run(CORPUS / "files" / name)
        assert parts == []
        assert problems[0].detector == ENCRYPTED_ARCHIVE
        assert problems[0].location == name
        assert problems[0].reason.startswith("encrypted zip member ")


def test_docx_id_split_over_runs_is_contiguous() -> None:
    parts, _ = run(CORPUS / "files" / "id_split_runs.docx")
    text = "".join(p.text for p in parts)
    assert "110102197303162492" in text
    assert "15809148496" in text
    assert parts[0].location == "id_split_runs.docx › word/document.xml"


def test_xlsx_float_stored_ids_are_not_long_digit_runs() -> None:
    parts, _ = run(CORPUS / "files" / "debtors.xlsx")
    text = "\n".join(p.text for p in parts)
    runs = re.findall(r"\d+", text)
    lost = ("310107196608182923", "6222029301908244927")
    for value in lost:
        assert not any(len(r) >= 15 and value.startswith(r[:10]) for r in runs), value
    assert "3.10107196608183e+17" in text
    assert "13340492349" in text  # a mobile stored as a number is exact, and kept whole


def test_xlsx_cells_have_segments() -> None:
    parts, _ = run(CORPUS / "files" / "debtors.xlsx")
    sheet = parts[0]
    by_location = {s.location: s.offset for s in sheet.segments}
    offset = by_location[f"{sheet.location}!B2"]
    assert sheet.text[offset:].startswith("120104200407137661")
    assert sheet.text[by_location[f"{sheet.location}!C2"] :].startswith("13340492349")


def test_gbk_csv_has_row_segments() -> None:
    parts, _ = run(CORPUS / "files" / "debtors_gbk.csv")
    (part,) = parts
    assert part.text.startswith("姓名,身份证号")
    row3 = next(s for s in part.segments if s.location == "debtors_gbk.csv › row 3")
    assert part.text[row3.offset :].startswith("朱海燕,310104197505196834")


def test_mail_locations() -> None:
    parts, _ = run(CORPUS / "files" / "collection_notice.eml")
    locations = [p.location for p in parts]
    assert locations == [
        "collection_notice.eml › mail headers",
        "collection_notice.eml › mail body text/plain",
        "collection_notice.eml › attachment 债务清单.csv",
    ]
    headers = parts[0]
    assert "Subject: 债务清单及催收通知" in headers.text
    to = next(s for s in headers.segments if s.location.endswith(" › To"))
    assert headers.text[to.offset :].startswith("To: hutao17@outlook.com")


def test_zip_bomb_is_refused_with_bounded_memory_and_time() -> None:
    data = (CORPUS / "files" / "zeros_50MiB.zip").read_bytes()
    tracemalloc.start()
    started = time.monotonic()
    try:
        items = [i for i in extract(data, name="zeros_50MiB.zip") if isinstance(i, Problem)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5
    assert peak < 64 * 2**20
    assert [i.detector for i in items] == [UNINSPECTABLE]
    assert "200:1" in items[0].reason
