"""Office documents made in the test: docx, xlsx (openpyxl), pptx (by hand), legacy OLE."""

from __future__ import annotations

import io
import zipfile

import docx
import openpyxl
import pytest
from docx.enum.text import WD_BREAK

from rules.extract import extract
from rules.extract.legacy import text_runs
from rules.extract.spreadsheet import column_index, column_letters, number_text
from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Part, Problem

ID = "11010519491231002X"
MOBILE = "13800138000"


def run(data: bytes, **kw) -> tuple[list[Part], list[Problem]]:
    items = list(extract(data, **kw))
    return [p for p in items if isinstance(p, Part)], [p for p in items if isinstance(p, Problem)]


def saved(document) -> bytes:
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


# --- docx --------------------------------------------------------------------


def make_docx() -> bytes:
    doc = docx.Document()
    p = doc.add_paragraph("身份证号：")
    p.add_run("110105")
    p.add_run("19491231").bold = True
    p.add_run("002X").italic = True
    tabbed = doc.add_paragraph("姓名")
    tabbed.runs[0].add_tab()
    tabbed.add_run("张三")
    broken = doc.add_paragraph("第一行")
    broken.runs[0].add_break(WD_BREAK.LINE)
    broken.add_run("第二行")
    table = doc.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "手机"
    table.cell(0, 1).text = MOBILE
    doc.sections[0].header.paragraphs[0].text = "页眉 6222021234567890123"
    doc.sections[0].footer.paragraphs[0].text = "页脚 footer text"
    doc.add_comment(p.runs[1], text="批注 13900139000", author="tester")
    return saved(doc)


def test_docx_text_parts() -> None:
    parts, problems = run(make_docx(), name="委托书.docx", location="attachment 委托书.docx")
    assert problems == []
    by_location = {p.location: p.text for p in parts}
    body = by_location["attachment 委托书.docx › word/document.xml"]
    assert f"身份证号：{ID}\n" in body  # runs joined without separators
    assert "姓名\t张三\n" in body
    assert "第一行\n第二行\n" in body
    assert f"手机\n{MOBILE}\n" in body  # table cells are paragraphs
    assert "页眉 6222021234567890123" in by_location["attachment 委托书.docx › word/header1.xml"]
    assert "页脚 footer text" in by_location["attachment 委托书.docx › word/footer1.xml"]
    assert "批注 13900139000" in by_location["attachment 委托书.docx › word/comments.xml"]


def test_docx_tab_stops_are_not_text() -> None:
    doc = docx.Document()
    para = doc.add_paragraph("a")
    para.paragraph_format.tab_stops.add_tab_stop(docx.shared.Inches(1))
    parts, _ = run(saved(doc), name="t.docx")
    assert parts[0].text == "a\n"


def test_docx_sniffed_without_name() -> None:
    parts, _ = run(make_docx())
    assert parts[0].location == "word/document.xml"
    assert ID in parts[0].text


def test_docx_with_dtd_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(
            "word/document.xml",
            '<!DOCTYPE d [<!ENTITY a "aaaa">]><w:document xmlns:w="x">&a;</w:document>',
        )
    parts, problems = run(buf.getvalue(), name="bomb.docx")
    assert parts == []
    assert problems[0].detector == UNINSPECTABLE
    assert "DTD" in problems[0].reason


def test_embedded_workbook_in_docx_is_extracted() -> None:
    raw = io.BytesIO(make_docx())
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("word/embeddings/Sheet1.xlsx", make_xlsx())
    parts, _ = run(out.getvalue(), name="d.docx")
    assert "d.docx › word/embeddings/Sheet1.xlsx › 债务人" in [p.location for p in parts]


# --- xlsx --------------------------------------------------------------------


def make_xlsx() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "债务人"
    ws.append(["姓名", "身份证号", "手机", "金额"])
    ws.append(["张三", ID, 13340492349, 1234.5])
    ws.append(["李四", 3.10107196608183e17, 13972926727.0, -7])
    ws["C7"] = "孤立单元格"
    other = wb.create_sheet("Cards")
    other["A1"] = "6222021234567890123"
    other["B1"] = True
    return saved(wb)


def test_xlsx_part_per_sheet_with_cell_segments() -> None:
    parts, problems = run(make_xlsx(), name="debtors.xlsx", location="attachment debtors.xlsx")
    assert problems == []
    sheet, cards, properties = parts
    assert properties.location == "attachment debtors.xlsx › document properties"  # openpyxl's
    assert sheet.location == "attachment debtors.xlsx › 债务人"
    lines = sheet.text.split("\n")
    assert lines[0] == "姓名\t身份证号\t手机\t金额"
    assert lines[1] == f"张三\t{ID}\t13340492349\t1234.5"
    assert lines[2] == "李四\t3.10107196608183e+17\t13972926727\t-7"
    assert lines[3] == "孤立单元格"
    segment = {s.location: s.offset for s in sheet.segments}
    assert sheet.text[segment["attachment debtors.xlsx › 债务人!C7"] :] == "孤立单元格"
    assert sheet.text[segment["attachment debtors.xlsx › 债务人!B2"] :].startswith(ID)
    assert cards.location == "attachment debtors.xlsx › Cards"
    assert cards.text == "6222021234567890123\tTRUE"


def test_xlsx_inline_strings_by_hand() -> None:
    parts, _ = run(minimal_xlsx(), name="inline.xlsx")
    assert parts[0].text == f"{ID}\t42\n{MOBILE}\tFALSE"
    assert [s.location for s in parts[0].segments] == [
        "inline.xlsx › Data!A1",
        "inline.xlsx › Data!B1",
        "inline.xlsx › Data!A3",
        "inline.xlsx › Data!C3",  # B3 is an out-of-range shared string: empty
    ]


def minimal_xlsx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(
            "xl/workbook.xml",
            '<workbook xmlns:r="urn:r"><sheets><sheet name="Data" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>",
        )
        zf.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships><Relationship Id="rId1" Target="worksheets/sheet1.xml" '
            'Type="urn:worksheet"/></Relationships>',
        )
        zf.writestr(
            "xl/worksheets/sheet1.xml",
            "<worksheet><sheetData>"
            f'<row r="1"><c r="A1" t="inlineStr"><is><t>{ID}</t><rPh><t>ふりがな</t></rPh></is></c>'
            '<c r="B1"><v>4.2E1</v></c></row>'
            f'<row r="3"><c t="inlineStr"><is><r><t>{MOBILE[:5]}</t></r><r><t>{MOBILE[5:]}</t>'
            '</r></is></c><c t="s"><v>9</v></c><c t="b"><v>0</v></c></row>'
            "</sheetData></worksheet>",
        )
    return buf.getvalue()


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("13340492349", "13340492349"),
        ("1.3340492349E10", "13340492349"),
        ("13340492349.0", "13340492349"),
        ("3.10107196608183E+17", "3.10107196608183e+17"),
        ("6.22202930190824E+18", "6.22202930190824e+18"),
        ("0.1", "0.1"),
        ("-2.5", "-2.5"),
        ("not a number", "not a number"),
    ],
)
def test_number_text(stored: str, shown: str) -> None:
    assert number_text(stored) == shown


def test_column_names_round_trip() -> None:
    for index in (0, 25, 26, 701, 702, 16383):
        assert column_index(column_letters(index)) == index
    assert column_letters(27) == "AB"


# --- pptx --------------------------------------------------------------------


def slide_xml(*paragraphs: list[str]) -> str:
    body = "".join(
        "<a:p>" + "".join(f"<a:r><a:t>{run}</a:t></a:r>" for run in runs) + "</a:p>"
        for runs in paragraphs
    )
    return (
        '<p:sld xmlns:p="urn:p" xmlns:a="urn:a"><p:cSld><p:spTree><p:sp><p:txBody>'
        f"{body}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"
    )


def make_pptx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("ppt/presentation.xml", "<p:presentation xmlns:p='urn:p'/>")
        zf.writestr(
            "ppt/slides/slide1.xml", slide_xml(["标题"], ["身份证 ", "110105", "19491231002X"])
        )
        zf.writestr("ppt/slides/slide2.xml", slide_xml(["手机 ", MOBILE[:3], MOBILE[3:]]))
        zf.writestr("ppt/slides/slide10.xml", slide_xml(["last"]))
        zf.writestr("ppt/notesSlides/notesSlide1.xml", slide_xml(["备注 speaker notes"]))
    return buf.getvalue()


def test_pptx_part_per_slide() -> None:
    parts, problems = run(make_pptx(), name="deck.pptx")
    assert problems == []
    assert [(p.location, p.text) for p in parts] == [
        ("deck.pptx › slide 1", f"标题\n身份证 {ID}\n"),
        ("deck.pptx › slide 2", f"手机 {MOBILE}\n"),
        ("deck.pptx › slide 10", "last\n"),
        ("deck.pptx › notes 1", "备注 speaker notes\n"),
    ]


# --- legacy OLE (.doc/.xls) -------------------------------------------------------

FREE, END, FAT_SECTOR, NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def make_ole(streams: dict[str, bytes]) -> bytes:
    """A minimal compound file (512-byte sectors, one FAT sector, one directory
    sector); streams are padded to 4 KiB so that none lives in the mini stream."""
    streams = {name: data.ljust(4096, b"\x00") for name, data in streams.items()}
    fat = [FAT_SECTOR, END]
    data_sectors = b""
    entries = []
    for index, (name, data) in enumerate(streams.items(), start=1):
        start = len(fat)
        count = -(-len(data) // 512)
        fat += [*range(start + 1, start + count), END]
        data_sectors += data.ljust(count * 512, b"\x00")
        right = index + 1 if index < len(streams) else NO_STREAM
        entries.append((name, 2, NO_STREAM, right, NO_STREAM, start, len(data)))
    root = ("Root Entry", 5, NO_STREAM, NO_STREAM, 1, END, 0)
    directory = b""
    for name, kind, left, right, child, start, size in [root, *entries]:
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        directory += (
            encoded.ljust(64, b"\x00")
            + len(encoded).to_bytes(2, "little")
            + bytes([kind, 1])
            + b"".join(v.to_bytes(4, "little") for v in (left, right, child))
            + b"\x00" * 36
            + start.to_bytes(4, "little")
            + size.to_bytes(8, "little")
        )
    directory = directory.ljust(512, b"\x00")
    assert len(fat) <= 128
    fat_sector = b"".join(v.to_bytes(4, "little") for v in fat + [FREE] * (128 - len(fat)))
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16
        + (0x3E).to_bytes(2, "little") + (3).to_bytes(2, "little") + b"\xfe\xff"
        + (9).to_bytes(2, "little") + (6).to_bytes(2, "little") + b"\x00" * 6
        + (0).to_bytes(4, "little") + (1).to_bytes(4, "little")  # directory sectors, FAT sectors
        + (1).to_bytes(4, "little") + (0).to_bytes(4, "little")  # first directory sector
        + (4096).to_bytes(4, "little") + END.to_bytes(4, "little") + (0).to_bytes(4, "little")
        + END.to_bytes(4, "little") + (0).to_bytes(4, "little")  # no DIFAT sectors
        + (0).to_bytes(4, "little") + FREE.to_bytes(4, "little") * 108
    )  # fmt: skip
    assert len(header) == 512
    return header + fat_sector + directory + data_sectors


def word_stream(text: str, flags: int = 0) -> bytes:
    fib = b"\xec\xa5" + b"\x00" * 8 + flags.to_bytes(2, "little")
    return fib.ljust(64, b"\x00") + text.encode("utf-16-le")


def test_legacy_doc_text() -> None:
    data = make_ole({"WordDocument": word_stream(f"委托书 身份证号{ID} 手机{MOBILE}")})
    parts, problems = run(data, name="old.doc", location="attachment old.doc")
    assert problems == []
    assert parts[0].location == "attachment old.doc › legacy doc text"
    assert f"委托书 身份证号{ID} 手机{MOBILE}" in parts[0].text


def test_legacy_doc_sniffed_by_magic() -> None:
    data = make_ole({"WordDocument": word_stream(f"身份证号{ID}")})
    parts, _ = run(data, name="renamed.bin")
    assert ID in parts[0].text


def test_legacy_encrypted_doc_is_flagged() -> None:
    data = make_ole({"WordDocument": word_stream(f"身份证号{ID}", flags=0x0100)})
    parts, problems = run(data, name="secret.doc")
    assert parts == []
    assert [p.detector for p in problems] == [ENCRYPTED_ARCHIVE]


def test_legacy_encrypted_xls_is_flagged() -> None:
    records = (0x0809).to_bytes(2, "little") + (4).to_bytes(2, "little") + b"\x00" * 4
    records += (0x002F).to_bytes(2, "little") + (2).to_bytes(2, "little") + b"\x01\x00"
    parts, problems = run(make_ole({"Workbook": records}), name="secret.xls")
    assert parts == []
    assert [p.detector for p in problems] == [ENCRYPTED_ARCHIVE]


def test_password_protected_ooxml_is_flagged() -> None:
    data = make_ole({"EncryptionInfo": b"\x04\x00\x04\x00", "EncryptedPackage": b"\x99" * 64})
    parts, problems = run(data, name="secret.xlsx")
    assert parts == []
    assert [(p.detector, p.location) for p in problems] == [(ENCRYPTED_ARCHIVE, "secret.xlsx")]


def test_legacy_text_runs_utf16_and_gbk() -> None:
    stream = (
        b"\x00\x01\x02" + f"身份证号{ID}".encode("utf-16-le") + b"\x01\x02\x13"
        + "客户 张三 13800138000".encode("gbk") + b"\x00\x00"
    )  # fmt: skip
    runs = text_runs(stream)
    assert f"身份证号{ID}" in runs
    assert "客户 张三 13800138000" in runs


def test_legacy_garbage_with_doc_name_is_uninspectable() -> None:
    parts, problems = run(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, name="x.doc")
    assert parts == []
    assert problems[0].detector == UNINSPECTABLE
