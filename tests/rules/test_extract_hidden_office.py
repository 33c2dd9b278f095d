"""Data a reader does not show: zip comments and Office document properties."""

from __future__ import annotations

import io
import zipfile

import docx
import openpyxl
from openpyxl.packaging.custom import StringProperty

from rules.engine import Engine
from rules.extract import extract
from rules.findings import UNINSPECTABLE, Part, Problem

ID = "11010519491231002X"
OTHER_ID = "110101199003074477"
SECRET = f"身份证号 {ID}"
ENGINE = Engine(hash_key=b"hidden-office-test-key".ljust(32, b"."))


def run(data: bytes, **kw) -> tuple[list[Part], list[Problem]]:
    items = list(extract(data, **kw))
    return [p for p in items if isinstance(p, Part)], [p for p in items if isinstance(p, Problem)]


def part_at(parts: list[Part], location: str) -> Part:
    (part,) = [p for p in parts if p.location == location]
    return part


def id_locations(data: bytes, name: str) -> list[str]:
    """Where the engine finds a resident ID, end to end from the raw bytes."""
    findings = ENGINE.scan_parts(extract(data, name=name))
    return [f.location for f in findings if f.detector == "cn_resident_id"]


def assert_no_content(problems: list[Problem]) -> None:
    for problem in problems:
        assert ID not in problem.reason and OTHER_ID not in problem.reason


# --- zip comments ----------------------------------------------------------------


def make_zip(
    members: dict[str, bytes], comment: bytes = b"", notes: dict[str, bytes] | None = None
) -> bytes:
    """`notes` maps a member name to its comment."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.comment = (notes or {}).get(name, b"")
            zf.writestr(info, data)
        zf.comment = comment
    return buf.getvalue()


def test_zip_archive_comment_is_scanned() -> None:
    data = make_zip({"readme.txt": b"nothing here"}, comment=SECRET.encode())
    parts, problems = run(data, name="a.zip")
    assert problems == []
    comments = part_at(parts, "a.zip › comments")
    assert comments.text == SECRET
    assert id_locations(data, "a.zip") == ["a.zip › archive comment"]


def test_zip_member_comment_is_scanned() -> None:
    data = make_zip(
        {"readme.txt": b"nothing here", "b.txt": b"x"}, notes={"b.txt": SECRET.encode()}
    )
    parts, problems = run(data, name="a.zip")
    assert problems == []
    assert part_at(parts, "a.zip › comments").text == SECRET
    assert id_locations(data, "a.zip") == ["a.zip › b.txt (comment)"]


def test_zip_archive_and_member_comments_point_at_their_places() -> None:
    data = make_zip(
        {"a.txt": b"x", "b.txt": b"y"},
        comment=f"归档 {ID}".encode(),
        notes={"b.txt": f"备注 {OTHER_ID}".encode()},
    )
    assert sorted(id_locations(data, "z.zip")) == [
        "z.zip › archive comment",
        "z.zip › b.txt (comment)",
    ]


def test_zip_comments_in_gbk_are_decoded() -> None:
    """Chinese Windows tools write comments in GBK, with no flag to say so."""
    data = make_zip(
        {"notes.txt": b"x"},
        comment=SECRET.encode("gbk"),
        notes={"notes.txt": "客户备注".encode("gbk")},
    )
    parts, problems = run(data, name="gbk.zip")
    assert problems == []
    assert part_at(parts, "gbk.zip › comments").text == f"{SECRET}\n客户备注"
    assert id_locations(data, "gbk.zip") == ["gbk.zip › archive comment"]


def test_zip_without_comments_has_no_comments_part() -> None:
    data = make_zip({"a.txt": b"x"}, comment=b"\x00\x00 ")
    parts, problems = run(data, name="a.zip")
    assert problems == []
    assert not [p for p in parts if "comment" in p.location]


# --- Office document properties -------------------------------------------------


def saved(document) -> bytes:
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def with_members(data: bytes, members: dict[str, str | bytes], comment: bytes = b"") -> bytes:
    """A copy of the zip `data` with `members` added or replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename not in members:
                dst.writestr(info, src.read(info))
        for name, content in members.items():
            dst.writestr(name, content)
        dst.comment = comment
    return out.getvalue()


def test_docx_core_title_is_scanned() -> None:
    doc = docx.Document()
    doc.add_paragraph("正文没有敏感信息")
    doc.core_properties.title = SECRET
    doc.core_properties.author = "张三"
    data = saved(doc)
    parts, problems = run(data, name="委托书.docx")
    assert problems == []
    props = part_at(parts, "委托书.docx › document properties")
    assert f"title: {SECRET}" in props.text.split("\n")
    assert "creator: 张三" in props.text.split("\n")
    assert id_locations(data, "委托书.docx") == ["委托书.docx › document properties › title"]


def test_xlsx_custom_property_is_scanned() -> None:
    wb = openpyxl.Workbook()
    wb.active["A1"] = "金额"
    wb.custom_doc_props.append(StringProperty(name="客户证件", value=OTHER_ID))
    data = saved(wb)
    parts, problems = run(data, name="debts.xlsx")
    assert problems == []
    assert f"客户证件: {OTHER_ID}" in part_at(parts, "debts.xlsx › document properties").text
    assert id_locations(data, "debts.xlsx") == ["debts.xlsx › document properties › 客户证件"]


def make_pptx(extra: dict[str, str | bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("ppt/presentation.xml", "<p:presentation xmlns:p='urn:p'/>")
        zf.writestr(
            "ppt/slides/slide1.xml",
            "<p:sld xmlns:p='urn:p' xmlns:a='urn:a'><a:p><a:r><a:t>议程</a:t></a:r></a:p></p:sld>",
        )
        for name, content in (extra or {}).items():
            zf.writestr(name, content)
    return buf.getvalue()


APP_XML = (
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"'
    ' xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
    "<Company>催收公司 {company}</Company><Manager>李四</Manager>"
    "<TitlesOfParts><vt:vector size='2' baseType='lpstr'>"
    "<vt:lpstr>封面</vt:lpstr><vt:lpstr>附录</vt:lpstr></vt:vector></TitlesOfParts>"
    "</Properties>"
)


def test_pptx_app_company_is_scanned() -> None:
    data = make_pptx({"docProps/app.xml": APP_XML.format(company=ID)})
    parts, problems = run(data, name="deck.pptx")
    assert problems == []
    props = part_at(parts, "deck.pptx › document properties")
    assert props.text.split("\n")[:2] == [f"Company: 催收公司 {ID}", "Manager: 李四"]
    assert id_locations(data, "deck.pptx") == ["deck.pptx › document properties › Company"]


def test_vector_items_are_kept_apart() -> None:
    """Items of a list property are separate values, not one glued string."""
    data = make_pptx({"docProps/app.xml": APP_XML.format(company="")})
    parts, _ = run(data, name="deck.pptx")
    assert "TitlesOfParts: 封面\n附录" in part_at(parts, "deck.pptx › document properties").text


def test_missing_properties_are_normal() -> None:
    parts, problems = run(make_pptx(), name="deck.pptx")
    assert problems == []
    assert [p.location for p in parts] == ["deck.pptx › slide 1"]


def test_clean_document_has_no_problem_and_no_finding() -> None:
    doc = docx.Document()
    doc.add_paragraph("会议纪要")
    data = saved(doc)
    parts, problems = run(data, name="clean.docx")
    assert problems == []
    assert "clean.docx › document properties" in [p.location for p in parts]
    assert ENGINE.scan_parts(extract(data, name="clean.docx")) == []


def test_corrupt_properties_part_hides_nothing_else() -> None:
    doc = docx.Document()
    doc.add_paragraph(f"正文 {ID}")
    doc.core_properties.subject = f"主题 {OTHER_ID}"
    data = with_members(saved(doc), {"docProps/app.xml": f"<Properties><Company>{ID}</Comp"})
    parts, problems = run(data, name="d.docx")
    assert [(p.detector, p.location) for p in problems] == [
        (UNINSPECTABLE, "d.docx › docProps/app.xml")
    ]
    assert_no_content(problems)
    assert f"正文 {ID}" in part_at(parts, "d.docx › word/document.xml").text
    assert f"subject: 主题 {OTHER_ID}" in part_at(parts, "d.docx › document properties").text


def test_properties_with_a_dtd_are_refused() -> None:
    bomb = (
        '<!DOCTYPE x [<!ENTITY a "aaaa">]>'
        '<cp:coreProperties xmlns:cp="urn:cp">&a;</cp:coreProperties>'
    )
    data = make_pptx({"docProps/core.xml": bomb, "docProps/custom.xml": "<Properties/>"})
    parts, problems = run(data, name="deck.pptx")
    assert [p.location for p in problems] == ["deck.pptx › docProps/core.xml"]
    assert "DTD" in problems[0].reason
    assert [p.location for p in parts] == ["deck.pptx › slide 1"]


def test_office_zip_comment_is_scanned() -> None:
    doc = docx.Document()
    doc.add_paragraph("会议纪要")
    data = with_members(saved(doc), {}, comment=SECRET.encode("gbk"))
    parts, problems = run(data, name="m.docx")
    assert problems == []
    assert part_at(parts, "m.docx › comments").text == SECRET
    assert id_locations(data, "m.docx") == ["m.docx › archive comment"]


def test_a_field_code_word_shows_only_the_result_of_is_scanned() -> None:
    doc = docx.Document()
    paragraph = doc.add_paragraph("详见")
    code = f' HYPERLINK "https://pan.example/s?id={ID}" '
    run_xml = (
        '<w:r xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f'<w:instrText xml:space="preserve">{code}</w:instrText></w:r>'
    )
    paragraph._p.append(docx.oxml.parse_xml(run_xml))
    paragraph.add_run("链接")
    data = saved(doc)
    assert id_locations(data, "f.docx") == ["f.docx › word/document.xml"]
