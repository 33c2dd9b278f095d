"""Text a later incremental save removed from a PDF is still in the file, and is scanned."""

from __future__ import annotations

import io

from fpdf import FPDF
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, NameObject

from rules.engine import Engine
from rules.extract import extract
from rules.extract.pdf_revisions import MAX_EARLIER, revision_ends
from rules.findings import Part, Problem

ID = "11010519491231002X"  # a valid resident ID (checksum X), generated
ENGINE = Engine(hash_key=b"k" * 32)


def make_pdf(*pages: str, compress: bool = True) -> bytes:
    pdf = FPDF()
    pdf.set_compression(compress)
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def saved_over(original: bytes, page_text: str | None = None, title: str = "") -> bytes:
    """`original` saved incrementally: page 1 rewritten to `page_text`, or a title set."""
    writer = PdfWriter(io.BytesIO(original), incremental=True)
    if page_text is not None:
        content = PdfReader(io.BytesIO(make_pdf(page_text))).pages[0].get_contents()
        stream = DecodedStreamObject()
        stream.set_data(content.get_data())
        writer.pages[0][NameObject("/Contents")] = writer._add_object(stream)
    if title:
        writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def located(data: bytes, name: str) -> tuple[list[str], list[Problem]]:
    items = list(extract(data, name=name))
    return [p.location for p in items if isinstance(p, Part)], [
        p for p in items if isinstance(p, Problem)
    ]


def test_an_id_removed_by_a_later_save_is_found_in_the_earlier_revision():
    data = saved_over(make_pdf(f"Debtor ID {ID}", "page two"), "Debtor ID removed")
    assert ID not in PdfReader(io.BytesIO(data)).pages[0].extract_text()  # what a reader shows
    findings = ENGINE.scan_parts(extract(data, name="r.pdf"))
    assert [(f.detector, f.location) for f in findings] == [
        ("cn_resident_id", "r.pdf › earlier revision 1 › page 1")
    ]


def test_an_earlier_revision_with_the_same_text_adds_nothing():
    data = saved_over(make_pdf("nothing personal", "page two"), title="Quarterly")
    parts, problems = located(data, "q.pdf")
    assert problems == []
    assert not any("earlier revision" in p for p in parts)
    assert "q.pdf › page 1" in parts


def test_an_early_eof_that_ends_no_revision_is_skipped_quietly():
    data = make_pdf("the text says %%EOF here", compress=False)
    assert len(revision_ends(data)) == 1  # the one inside the page content
    parts, problems = located(data, "e.pdf")
    assert problems == []
    assert "e.pdf › page 1" in parts
    assert not any("earlier revision" in p for p in parts)


def test_the_oldest_and_newest_earlier_revisions_are_opened_when_there_are_many():
    data = b"".join(b"x" * 10 + b"%%EOF\n" for _ in range(20))
    ends = revision_ends(data)
    every = [16 * (i + 1) - 1 for i in range(19)]  # each revision but the newest
    assert len(ends) == MAX_EARLIER
    assert ends == every[: MAX_EARLIER // 2] + every[-MAX_EARLIER // 2 :]
