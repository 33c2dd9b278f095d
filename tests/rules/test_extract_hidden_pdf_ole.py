"""Data a reader does not show, or shows outside the page text layer: PDF document
properties, XMP, form fields, annotations; legacy OLE property set streams."""

from __future__ import annotations

import io
import random
import struct
import time
import uuid

import olefile
from fpdf import FPDF
from pypdf import PdfWriter
from pypdf.annotations import FreeText, Text
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from rules.engine import Engine
from rules.extract import extract
from rules.extract.legacy import property_strings
from rules.findings import Finding, Part, Problem
from tests.rules import strategies as s
from tests.rules.test_extract_office import make_ole, word_stream

ID = "11010519491231002X"
ID2 = "110101199003074477"
ENGINE = Engine(hash_key=s.KEY)


def run(data: bytes, name: str) -> tuple[list[Part], list[Problem], list[Finding]]:
    items = list(extract(data, name=name))
    parts = [p for p in items if isinstance(p, Part)]
    problems = [p for p in items if isinstance(p, Problem)]
    return parts, problems, ENGINE.scan_parts(parts)


def ids_at(findings: list[Finding]) -> list[str]:
    """Locations of the resident-ID findings (locations never hold a raw ID: masked)."""
    return sorted(f.location for f in findings if f.detector == "cn_resident_id")


# --- PDF -------------------------------------------------------------------------


def blank_pdf() -> PdfWriter:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    return writer


def saved(writer: PdfWriter) -> bytes:
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def add_text_field(writer: PdfWriter, name: str, value: str) -> None:
    """A filled-in text field: in the AcroForm, with no appearance, so no page text."""
    field = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Tx"),
            NameObject("/T"): TextStringObject(name),
            NameObject("/V"): TextStringObject(value),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (50, 700, 250, 720)]),
        }
    )
    ref = writer._add_object(field)
    writer.pages[0][NameObject("/Annots")] = ArrayObject([ref])
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject(
        {NameObject("/Fields"): ArrayObject([ref])}
    )


def test_pdf_title_is_scanned() -> None:
    writer = blank_pdf()
    writer.add_metadata({"/Title": f"委托书 {ID}", "/Author": "催收部"})
    _, problems, findings = run(saved(writer), "t.pdf")
    assert problems == []
    assert ids_at(findings) == ["t.pdf › document properties › Title"]


def test_pdf_keywords_and_custom_key_are_scanned() -> None:
    writer = blank_pdf()
    writer.add_metadata({"/Keywords": f"债务 {ID}", "/DebtorRef": f"身份证 {ID2}"})
    _, problems, findings = run(saved(writer), "k.pdf")
    assert problems == []
    assert ids_at(findings) == [
        "k.pdf › document properties › DebtorRef",
        "k.pdf › document properties › Keywords",
    ]


def test_pdf_xmp_metadata_is_scanned() -> None:
    writer = blank_pdf()
    writer.xmp_metadata = (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:crm="http://example.com/crm/">'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{ID}</rdf:li></rdf:Alt>'
        f"</dc:description><crm:debtor>{ID2}</crm:debtor>"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()
    _, problems, findings = run(saved(writer), "x.pdf")
    assert problems == []
    assert ids_at(findings) == ["x.pdf › XMP metadata"] * 2


def test_pdf_text_form_field_value_is_scanned() -> None:
    writer = blank_pdf()
    add_text_field(writer, "身份证号", ID)
    parts, problems, findings = run(saved(writer), "form.pdf")
    assert problems == []
    assert not any(ID in p.text for p in parts if p.location == "form.pdf › page 1")
    assert ids_at(findings) == ["form.pdf › form fields › 身份证号"]


def test_pdf_form_field_name_is_scanned() -> None:
    writer = blank_pdf()
    add_text_field(writer, f"张三_{ID}", "")
    _, problems, findings = run(saved(writer), "n.pdf")
    assert problems == []
    assert len(ids_at(findings)) == 1
    assert ids_at(findings)[0].startswith("n.pdf › form fields › 张三_")
    assert ID not in ids_at(findings)[0]  # the location names the field, masked


def test_pdf_annotation_contents_and_author_are_scanned() -> None:
    writer = blank_pdf()
    writer.add_annotation(0, FreeText(text=f"核对 {ID}", rect=(50, 600, 300, 640)))
    note = Text(text="便签：请核对", rect=(50, 500, 70, 520))
    note[NameObject("/T")] = TextStringObject(f"经办人 {ID2}")
    writer.add_annotation(0, note)
    _, problems, findings = run(saved(writer), "a.pdf")
    assert problems == []
    assert ids_at(findings) == [
        "a.pdf › page 1 annotations › FreeText 1",
        "a.pdf › page 1 annotations › Text 2",  # the author (/T) of a sticky note
    ]


def test_pdf_link_target_is_scanned() -> None:
    writer = blank_pdf()
    link = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (0, 0, 10, 10)]),
            NameObject("/A"): DictionaryObject(
                {
                    NameObject("/S"): NameObject("/URI"),
                    NameObject("/URI"): TextStringObject(f"https://crm.example/?id={ID}"),
                }
            ),
        }
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(link)])
    _, _, findings = run(saved(writer), "l.pdf")
    assert ids_at(findings) == ["l.pdf › page 1 annotations › Link 1"]


def test_pdf_file_attachment_annotation_is_extracted() -> None:
    writer = blank_pdf()
    content = DecodedStreamObject()
    content.set_data(f"姓名,身份证号\n张三,{ID}\n".encode())
    spec = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Filespec"),
            NameObject("/F"): TextStringObject("debtors.csv"),
            NameObject("/EF"): DictionaryObject({NameObject("/F"): writer._add_object(content)}),
        }
    )
    clip = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/FileAttachment"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (0, 0, 10, 10)]),
            NameObject("/FS"): spec,
        }
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(clip)])
    _, problems, findings = run(saved(writer), "c.pdf")
    assert problems == []
    assert ids_at(findings) == ["c.pdf › page 1 attachment debtors.csv › row 2"]


def test_pdf_attachment_name_is_scanned() -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.embed_file(bytes=b"nothing here", basename=f"张三_{ID}.txt")
    _, problems, findings = run(bytes(pdf.output()), "e.pdf")
    assert problems == []
    assert [at.startswith("e.pdf › attachment 张三_") for at in ids_at(findings)] == [True]


def test_clean_pdfs_yield_no_problem() -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.cell(0, 10, "Nothing to see")
    writer = blank_pdf()
    writer.add_metadata({"/Title": "报告"})
    writer.add_annotation(0, Text(text="ok", rect=(0, 0, 10, 10)))
    add_text_field(writer, "name", "")
    for data in (bytes(pdf.output()), saved(blank_pdf()), saved(writer)):
        _, problems, findings = run(data, "clean.pdf")
        assert problems == []
        assert findings == []


def test_broken_field_tree_is_a_problem_and_pages_still_read() -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.cell(0, 10, f"ID {ID}")
    writer = PdfWriter(clone_from=io.BytesIO(bytes(pdf.output())))
    writer.add_metadata({"/Title": f"{ID2}"})
    # A radio button whose kid has no appearance: pypdf refuses the field tree.
    kid = writer._add_object(DictionaryObject({NameObject("/T"): TextStringObject("a")}))
    radio = DictionaryObject(
        {
            NameObject("/FT"): NameObject("/Btn"),
            NameObject("/Ff"): NumberObject(1 << 15),
            NameObject("/T"): TextStringObject("r"),
            NameObject("/Kids"): ArrayObject([kid]),
        }
    )
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject(
        {NameObject("/Fields"): ArrayObject([writer._add_object(radio)])}
    )
    _, problems, findings = run(saved(writer), "b.pdf")
    assert [(p.location, p.reason.split(" (")[0]) for p in problems] == [
        ("b.pdf › form fields", "form fields unreadable")
    ]
    assert ID not in problems[0].reason and ID2 not in problems[0].reason
    assert ids_at(findings) == ["b.pdf › document properties › Title", "b.pdf › page 1"]


def test_odd_annotation_entries_are_skipped_and_other_pages_read() -> None:
    writer = blank_pdf()
    writer.add_blank_page(595, 842)
    writer.add_metadata({"/Subject": ID})
    writer.pages[0][NameObject("/Annots")] = ArrayObject([NumberObject(3)])  # not an annotation
    writer.pages[1][NameObject("/Annots")] = ArrayObject(
        [writer._add_object(FreeText(text=ID2, rect=(0, 0, 10, 10)))]
    )
    _, problems, findings = run(saved(writer), "p.pdf")
    assert problems == []
    assert ids_at(findings) == [
        "p.pdf › document properties › Subject",
        "p.pdf › page 2 annotations › FreeText 1",
    ]


def test_unreadable_attached_file_is_a_problem_and_its_note_still_read() -> None:
    writer = blank_pdf()
    content = DecodedStreamObject()
    content.set_data(b"opaque")
    content[NameObject("/Filter")] = NameObject("/NoSuchDecode")  # pypdf cannot decode it
    spec = DictionaryObject(
        {
            NameObject("/F"): TextStringObject("debtors.csv"),
            NameObject("/EF"): DictionaryObject({NameObject("/F"): writer._add_object(content)}),
        }
    )
    clip = DictionaryObject(
        {
            NameObject("/Subtype"): NameObject("/FileAttachment"),
            NameObject("/Contents"): TextStringObject(f"名单 {ID}"),
            NameObject("/FS"): spec,
        }
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(clip)])
    _, problems, findings = run(saved(writer), "u.pdf")
    assert [(p.detector, p.location) for p in problems] == [
        ("uninspectable", "u.pdf › page 1 attachment debtors.csv")
    ]
    assert ids_at(findings) == ["u.pdf › page 1 annotations › FileAttachment 1"]


# --- legacy OLE property set streams ----------------------------------------------

SUMMARY = uuid.UUID("f29f85e0-4ff9-1068-ab91-08002b27b3d9")
DOC_SUMMARY = uuid.UUID("d5cdd502-2e9c-101b-9397-08002b2cf9ae")
USER_DEFINED = uuid.UUID("d5cdd505-2e9c-101b-9397-08002b2cf9ae")
VT_I2, VT_I4, VT_LPSTR, VT_LPWSTR, VT_VARIANT, VT_VECTOR = 2, 3, 30, 31, 12, 0x1000


def pad4(raw: bytes) -> bytes:
    return raw.ljust(-(-len(raw) // 4) * 4, b"\0")


def lpstr(text: str, codec: str) -> bytes:
    raw = text.encode(codec) + b"\0"
    return struct.pack("<I", len(raw)) + pad4(raw)


def unaligned(text: str, codec: str) -> bytes:
    """An 8-bit string as Office writes it in vectors: no padding ([MS-OSHARED])."""
    raw = text.encode(codec) + b"\0"
    return struct.pack("<I", len(raw)) + raw


def lpwstr(text: str) -> bytes:
    return struct.pack("<I", len(text) + 1) + pad4((text + "\0").encode("utf-16-le"))


def typed(kind: int, payload: bytes) -> bytes:
    return struct.pack("<HH", kind, 0) + payload


def section(props: dict[int, bytes], codepage: int) -> bytes:
    """[MS-OLEPS] PropertySet: size, count, (id, offset) pairs, then the values."""
    props = {1: typed(VT_I2, struct.pack("<hxx", codepage)), **props}
    header = 8 + 8 * len(props)
    table, values = b"", b""
    for pid, value in props.items():
        table += struct.pack("<II", pid, header + len(values))
        values += value
    return struct.pack("<II", header + len(values), len(props)) + table + values


def dictionary(names: dict[int, str], codec: str) -> bytes:
    body = b"".join(
        struct.pack("<II", pid, len(raw)) + raw
        for pid, name in names.items()
        for raw in [name.encode(codec) + b"\0"]
    )
    return pad4(struct.pack("<I", len(names)) + body)


def property_stream(*sections: tuple[uuid.UUID, bytes]) -> bytes:
    head = struct.pack("<HHI", 0xFFFE, 0, 0x00020006) + bytes(16) + struct.pack("<I", len(sections))
    offset = len(head) + 20 * len(sections)
    table, body = b"", b""
    for fmtid, data in sections:
        table += fmtid.bytes_le + struct.pack("<I", offset + len(body))
        body += data
    return head + table + body


def summary(codepage: int = 936) -> bytes:
    return property_stream(
        (
            SUMMARY,
            section(
                {
                    2: typed(VT_LPSTR, lpstr(f"委托书 身份证号{ID}", "gbk")),
                    4: typed(VT_LPSTR, lpstr("张三", "gbk")),
                    6: typed(VT_LPWSTR, lpwstr(f"备注 {ID2}")),
                },
                codepage,
            ),
        )
    )


def doc_summary() -> bytes:
    standard = section(
        {
            15: typed(VT_LPSTR, lpstr("某某催收公司", "gbk")),
            12: typed(  # heading pairs: (string, count) variants
                VT_VECTOR | VT_VARIANT,
                struct.pack("<I", 2)
                + typed(VT_LPSTR, unaligned("标题", "gbk"))
                + typed(VT_I4, struct.pack("<i", 2)),
            ),
            13: typed(  # titles of parts
                VT_VECTOR | VT_LPSTR,
                struct.pack("<I", 2) + unaligned("封面", "gbk") + unaligned(f"客户{ID}", "gbk"),
            ),
        },
        936,
    )
    custom = section(
        {
            0: dictionary({2: "客户身份证"}, "gbk"),
            2: typed(VT_LPSTR, lpstr(ID2, "gbk")),
        },
        936,
    )
    return property_stream((DOC_SUMMARY, standard), (USER_DEFINED, custom))


def test_property_stream_built_here_reads_the_same_in_olefile() -> None:
    data = make_ole({"WordDocument": word_stream("正文"), "\x05SummaryInformation": summary()})
    with olefile.OleFileIO(io.BytesIO(data)) as ole:
        meta = ole.get_metadata()
    assert meta.codepage == 936
    assert meta.title.decode("gbk") == f"委托书 身份证号{ID}"
    assert meta.author.decode("gbk") == "张三"


def test_legacy_doc_properties_are_scanned() -> None:
    data = make_ole(
        {
            "WordDocument": word_stream("正文没有号码"),
            "\x05SummaryInformation": summary(),
            "\x05DocumentSummaryInformation": doc_summary(),
        }
    )
    parts, problems, findings = run(data, "old.doc")
    assert problems == []
    props = {p.location: p.text for p in parts}["old.doc › document properties"]
    assert f"title: 委托书 身份证号{ID}" in props  # GBK decoded by the codepage
    assert "author: 张三" in props
    assert "company: 某某催收公司" in props
    assert "heading_pairs: 标题" in props
    assert f"titles_of_parts: 封面\n客户{ID}" in props  # unpadded strings in a vector
    assert f"客户身份证: {ID2}" in props  # a custom property, by its name
    assert ids_at(findings) == [
        "old.doc › document properties › comments",
        "old.doc › document properties › title",
        "old.doc › document properties › titles_of_parts",
        "old.doc › document properties › 客户身份证",
    ]


def test_legacy_properties_of_a_textless_ole_file_are_read_once() -> None:
    data = make_ole({"Contents": b"\x00" * 16, "\x05SummaryInformation": summary()})
    parts, problems, findings = run(data, "x.ole")
    assert problems == []
    assert [p.location for p in parts] == ["x.ole › document properties"]
    assert ids_at(findings) == [
        "x.ole › document properties › comments",
        "x.ole › document properties › title",
    ]


def test_legacy_properties_in_unicode_codepage() -> None:
    stream = property_stream(
        (
            SUMMARY,
            section(
                {
                    0: pad4(struct.pack("<III", 1, 5, 3) + "编号\0".encode("utf-16-le") + b"\0\0"),
                    3: typed(VT_LPSTR, struct.pack("<I", 38) + f"{ID}\0".encode("utf-16-le")),
                },
                1200,
            ),
        )
    )
    assert property_strings(stream) == [("subject", ID)]


def test_hostile_property_streams_are_bounded_and_never_raise() -> None:
    # Thousands of properties all pointing at one vector that claims 2**32-1 elements.
    count = 8000
    table = b"".join(struct.pack("<II", 100 + i, 8 + 8 * count) for i in range(count))
    vector = typed(VT_VECTOR | VT_LPSTR, struct.pack("<I", 0xFFFFFFFF)) + b"\0" * 4096
    body = table + vector
    stream = property_stream((USER_DEFINED, struct.pack("<II", 8 + len(body), count) + body))
    started = time.monotonic()
    assert property_strings(stream) == []
    assert time.monotonic() - started < 2
    rng = random.Random(7)
    good = summary() + doc_summary()
    for _ in range(300):
        noisy = bytearray(good)
        for _ in range(rng.randint(1, 20)):
            noisy[rng.randrange(len(noisy))] = rng.randrange(256)
        property_strings(bytes(noisy[: rng.randint(0, len(noisy))]))
