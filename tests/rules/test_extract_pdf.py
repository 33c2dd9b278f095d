"""PDFs made with fpdf2: text layer per page, encryption, embedded files, damage."""

from __future__ import annotations

import pytest
from fpdf import FPDF
from fpdf.enums import EncryptionMethod

from rules.extract import extract
from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Part, Problem

ID = "11010519491231002X"
CARD = "6222021234567890123"


def run(data: bytes, **kw) -> tuple[list[Part], list[Problem]]:
    items = list(extract(data, **kw))
    return [p for p in items if isinstance(p, Part)], [p for p in items if isinstance(p, Problem)]


def make_pdf(*pages: str, password: str | None = None, attach: bytes | None = None) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    if attach is not None:
        pdf.embed_file(bytes=attach, basename="debtors.csv")
    if password is not None:
        pdf.set_encryption(
            owner_password="owner",
            user_password=password,
            encryption_method=EncryptionMethod.AES_128,
        )
    return bytes(pdf.output())


def test_part_per_page() -> None:
    data = make_pdf(f"Debtor ID {ID}", f"Card {CARD}")
    parts, problems = run(data, name="statement.pdf", location="attachment statement.pdf")
    assert problems == []
    assert [p.location for p in parts] == [
        "attachment statement.pdf › page 1",
        "attachment statement.pdf › page 2",
        "attachment statement.pdf › document properties",  # fpdf's Producer, CreationDate
    ]
    assert ID in parts[0].text
    assert CARD in parts[1].text


def test_pdf_sniffed_without_a_name() -> None:
    parts, _ = run(make_pdf(f"Debtor ID {ID}"))
    assert parts[0].location == "page 1"


def test_pdf_with_a_user_password_is_encrypted_archive() -> None:
    parts, problems = run(make_pdf(f"Debtor ID {ID}", password="secret"), name="locked.pdf")
    assert parts == []
    assert [(p.detector, p.location) for p in problems] == [(ENCRYPTED_ARCHIVE, "locked.pdf")]


def test_pdf_with_only_an_owner_password_is_read() -> None:
    parts, problems = run(make_pdf(f"Debtor ID {ID}", password=""), name="owner-only.pdf")
    assert problems == []
    assert ID in parts[0].text


def test_embedded_file_is_extracted() -> None:
    data = make_pdf("cover letter", attach=f"name,id\nZhang San,{ID}\n".encode())
    parts, _ = run(data, name="p.pdf")
    by = {p.location: p.text for p in parts}
    assert ID in by["p.pdf › attachment debtors.csv"]


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_truncated_pdf_does_not_raise(cut: float) -> None:
    data = make_pdf(f"Debtor ID {ID}", f"Card {CARD}")
    items = list(extract(data[: int(len(data) * cut)], name="cut.pdf"))
    assert all(isinstance(i, Part | Problem) for i in items)
    for item in items:
        if isinstance(item, Problem):
            assert ID not in item.reason and CARD not in item.reason


def test_garbage_with_a_pdf_name() -> None:
    parts, problems = run(b"%PDF-1.7\n" + b"\x00garbage" * 50, name="bad.pdf")
    assert parts == []
    assert problems and problems[0].detector == UNINSPECTABLE
