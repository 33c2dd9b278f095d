"""Office package parts beyond the main text: pivot and chart caches, comments,
external links, drawings, custom XML, masters, hyperlink targets, defined
names and sheet headers all reach the scan, each finding naming its part."""

from __future__ import annotations

import io
import zipfile

import docx
import openpyxl
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from openpyxl.chart import BarChart, Reference
from openpyxl.chart.data_source import AxDataSource, StrData, StrRef, StrVal
from openpyxl.comments import Comment
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation

from rules.engine import Engine
from rules.extract import Limits, extract
from rules.findings import UNINSPECTABLE, Part, Problem
from tests.rules.test_extract_hidden_office import saved, with_members

ID = "11010519491231002X"
OTHER_ID = "110101199003074477"
MOBILE = "13912345678"
ENGINE = Engine(hash_key=b"k" * 32)
LEFTOVERS = "other document parts"


def run(data: bytes, name: str, **kw) -> tuple[list[Part], list[Problem]]:
    items = list(extract(data, name=name, **kw))
    return [p for p in items if isinstance(p, Part)], [p for p in items if isinstance(p, Problem)]


def found(data: bytes, name: str) -> list[tuple[str, str]]:
    """(detector, location) of every finding, end to end from the raw bytes."""
    return [(f.detector, f.location) for f in ENGINE.scan_parts(extract(data, name=name))]


def plain_workbook() -> openpyxl.Workbook:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "汇总"
    ws.append(["地区", "金额"])
    ws.append(["华北", 1200])
    return wb


def assert_no_content(problems: list[Problem]) -> None:
    for problem in problems:
        for value in (ID, OTHER_ID, MOBILE):
            assert value not in problem.reason and value not in problem.location


# --- xlsx --------------------------------------------------------------------

SPREADSHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
PIVOT_DEFINITION = (
    f'<pivotCacheDefinition xmlns="{SPREADSHEET_NS}" recordCount="2"><cacheSource type="worksheet">'
    '<worksheetSource ref="A1:C3" sheet="已删除"/></cacheSource><cacheFields count="3">'
    '<cacheField name="姓名"><sharedItems count="2"><s v="张三"/><s v="李四"/></sharedItems>'
    "</cacheField>"
    f'<cacheField name="证件号"><sharedItems count="1"><s v="{ID}"/></sharedItems></cacheField>'
    '<cacheField name="手机"><sharedItems containsNumber="1"/></cacheField>'
    "</cacheFields></pivotCacheDefinition>"
)
PIVOT_RECORDS = (
    f'<pivotCacheRecords xmlns="{SPREADSHEET_NS}" count="2">'
    f'<r><x v="0"/><s v="{OTHER_ID}"/><n v="{MOBILE}"/></r>'
    '<r><x v="1"/><m/><n v="1200.5"/></r>'
    "</pivotCacheRecords>"
)


def test_pivot_cache_of_a_deleted_sheet_is_scanned() -> None:
    data = with_members(
        saved(plain_workbook()),
        {
            "xl/pivotCache/pivotCacheDefinition1.xml": PIVOT_DEFINITION,
            "xl/pivotCache/pivotCacheRecords1.xml": PIVOT_RECORDS,
        },
    )
    assert sorted(found(data, "p.xlsx")) == [
        ("cn_mobile", "p.xlsx › xl/pivotCache/pivotCacheRecords1.xml"),
        ("cn_resident_id", "p.xlsx › xl/pivotCache/pivotCacheDefinition1.xml"),
        ("cn_resident_id", "p.xlsx › xl/pivotCache/pivotCacheRecords1.xml"),
    ]
    parts, problems = run(data, "p.xlsx")
    assert problems == []
    assert [p.location for p in parts] == [
        "p.xlsx › 汇总",
        "p.xlsx › document properties",
        f"p.xlsx › {LEFTOVERS}",
    ]
    assert parts[0].text == "地区\t金额\n华北\t1200"  # the sheet's Part is as before
    records = parts[-1].text.split("\t\n")[-1]
    assert records.split("\t") == [OTHER_ID, MOBILE, "1200.5"]  # index items <x> left out


def chart_workbook(category: str) -> bytes:
    """A workbook whose chart caches `category` as its only category label."""
    wb = plain_workbook()
    ws = wb.active
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=2))
    cache = StrData(ptCount=1, pt=[StrVal(idx=0, v=category)])
    chart.series[0].cat = AxDataSource(strRef=StrRef(f="'汇总'!$A$2", strCache=cache))
    ws.add_chart(chart, "D2")
    return saved(wb)


def test_chart_cache_is_scanned() -> None:
    assert found(chart_workbook(ID), "c.xlsx") == [
        ("cn_resident_id", "c.xlsx › xl/charts/chart1.xml")
    ]


def test_cell_comment_and_threaded_comment_are_scanned() -> None:
    wb = plain_workbook()
    wb.active["B2"].comment = Comment(f"客户身份证 {ID}", "审核人")
    threaded = (
        '<ThreadedComments xmlns="http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments">'
        f'<threadedComment ref="A2" id="{{00000000-0000-0000-0000-000000000001}}">'
        f"<text>回电 {MOBILE}</text></threadedComment></ThreadedComments>"
    )
    data = with_members(saved(wb), {"xl/threadedComments/threadedComment1.xml": threaded})
    assert sorted(found(data, "n.xlsx")) == [
        ("cn_mobile", "n.xlsx › xl/threadedComments/threadedComment1.xml"),
        ("cn_resident_id", "n.xlsx › xl/comments/comment1.xml"),
    ]


def test_external_link_cache_and_its_target_are_scanned() -> None:
    link = (
        f'<externalLink xmlns="{SPREADSHEET_NS}"><externalBook xmlns:r="urn:r" r:id="rId1">'
        '<sheetNames><sheetName val="客户"/></sheetNames><sheetDataSet><sheetData sheetId="0">'
        f'<row r="1"><cell r="A1" t="str"><v>{ID}</v></cell></row>'
        "</sheetData></sheetDataSet></externalBook></externalLink>"
    )
    rels = (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/externalLinkPath" TargetMode="External" '
        f'Target="file:///C:/客户/{OTHER_ID}.xlsx"/></Relationships>'
    )
    data = with_members(
        saved(plain_workbook()),
        {
            "xl/externalLinks/externalLink1.xml": link,
            "xl/externalLinks/_rels/externalLink1.xml.rels": rels,
        },
    )
    assert sorted(found(data, "e.xlsx")) == [
        ("cn_resident_id", "e.xlsx › xl/externalLinks/_rels/externalLink1.xml.rels"),
        ("cn_resident_id", "e.xlsx › xl/externalLinks/externalLink1.xml"),
    ]


def test_defined_name_header_footer_and_validation_list_are_scanned() -> None:
    wb = plain_workbook()
    ws = wb.active
    wb.defined_names["客户"] = DefinedName("客户", attr_text=f'"{ID}"')
    ws.oddHeader.right.text = OTHER_ID  # "&R110101…": the code must not glue to the value
    ws.oddFooter.left.text = f"联系 {MOBILE}"
    validation = DataValidation(type="list", formula1=f'"{ID},未知"')
    ws.add_data_validation(validation)
    validation.add("C2")
    data = saved(wb)
    assert sorted(found(data, "h.xlsx")) == [
        ("cn_mobile", "h.xlsx › 汇总 › oddFooter"),
        ("cn_resident_id", "h.xlsx › xl/workbook.xml"),
        ("cn_resident_id", "h.xlsx › 汇总 › formula1"),
        ("cn_resident_id", "h.xlsx › 汇总 › oddHeader"),
    ]
    parts, _ = run(data, "h.xlsx")
    assert parts[0].text == "地区\t金额\n华北\t1200"  # nothing outside cells in the sheet's Part


def test_drawing_text_box_is_scanned_once() -> None:
    """mc:Fallback repeats the mc:Choice content for old readers: one finding, not two."""
    shape = f"<xdr:sp><xdr:txBody><a:p><a:r><a:t>客户 {ID}</a:t></a:r></a:p></xdr:txBody></xdr:sp>"
    drawing = (
        '<xdr:wsDr xmlns:xdr="urn:xdr" xmlns:a="urn:a" xmlns:mc="urn:mc"><xdr:twoCellAnchor>'
        f"<mc:AlternateContent><mc:Choice Requires='a14'>{shape}</mc:Choice>"
        f"<mc:Fallback>{shape}</mc:Fallback></mc:AlternateContent>"
        "</xdr:twoCellAnchor></xdr:wsDr>"
    )
    data = with_members(saved(plain_workbook()), {"xl/drawings/drawing1.xml": drawing})
    assert found(data, "t.xlsx") == [("cn_resident_id", "t.xlsx › xl/drawings/drawing1.xml")]


def test_sheet_file_the_workbook_does_not_list_is_scanned() -> None:
    hidden = (
        f'<worksheet xmlns="{SPREADSHEET_NS}"><sheetData>'
        f'<row r="1"><c r="A1" t="inlineStr"><is><t>{ID}</t></is></c></row>'
        "</sheetData></worksheet>"
    )
    data = with_members(saved(plain_workbook()), {"xl/worksheets/sheet9.xml": hidden})
    assert found(data, "u.xlsx") == [("cn_resident_id", "u.xlsx › xl/worksheets/sheet9.xml")]


def test_separate_values_are_not_glued_into_one() -> None:
    """Cached chart points "110105" and "19491231002X" are two values, not one ID."""
    points = (MOBILE, ID[:6], ID[6:])
    chart = (
        '<c:chartSpace xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart">'
        "<c:chart><c:plotArea><c:barChart><c:ser><c:cat><c:strRef><c:strCache>"
        + "".join(f'<c:pt idx="{i}"><c:v>{v}</c:v></c:pt>' for i, v in enumerate(points))
        + "</c:strCache></c:strRef></c:cat></c:ser></c:barChart></c:plotArea></c:chart>"
        "</c:chartSpace>"
    )
    data = with_members(saved(plain_workbook()), {"xl/charts/chart1.xml": chart})
    assert found(data, "g.xlsx") == [("cn_mobile", "g.xlsx › xl/charts/chart1.xml")]


def test_corrupt_leftover_part_hides_nothing_else() -> None:
    wb = plain_workbook()
    wb.active["A3"] = ID
    data = with_members(
        saved(wb),
        {
            "xl/comments/comment1.xml": f"<comments><comment><text>{OTHER_ID}</text></comm",
            "xl/pivotCache/pivotCacheRecords1.xml": PIVOT_RECORDS,
        },
    )
    _, problems = run(data, "k.xlsx")
    assert [(p.detector, p.location) for p in problems] == [
        (UNINSPECTABLE, "k.xlsx › xl/comments/comment1.xml")
    ]
    assert "not well-formed" in problems[0].reason
    assert_no_content(problems)
    assert sorted(d for d in found(data, "k.xlsx") if d[0] != UNINSPECTABLE) == [
        ("cn_mobile", "k.xlsx › xl/pivotCache/pivotCacheRecords1.xml"),
        ("cn_resident_id", "k.xlsx › xl/pivotCache/pivotCacheRecords1.xml"),
        ("cn_resident_id", "k.xlsx › 汇总!A3"),
    ]


def test_styling_parts_are_not_read() -> None:
    """Styles and themes hold no user text: a broken one costs nothing and says nothing."""
    wb = plain_workbook()
    wb.active["A1"].comment = Comment(f"身份证 {ID}", "审核人")
    styles = f"<styleSheet xmlns='{SPREADSHEET_NS}'><x>{OTHER_ID}</x></styleSheet>"
    data = with_members(saved(wb), {"xl/theme/theme1.xml": "<broken", "xl/styles.xml": styles})
    _, problems = run(data, "s.xlsx")
    assert problems == []
    assert found(data, "s.xlsx") == [("cn_resident_id", "s.xlsx › xl/comments/comment1.xml")]


def test_leftovers_over_the_budget_stop_the_extraction() -> None:
    records = "".join(f'<r><n v="{i}"/></r>' for i in range(60_000))
    big = f"<pivotCacheRecords>{records}</pivotCacheRecords>"  # 1.2 MB
    data = with_members(saved(plain_workbook()), {"xl/pivotCache/pivotCacheRecords1.xml": big})
    parts, problems = run(data, "b.xlsx", limits=Limits(max_expanded_bytes=256 * 1024))
    assert [p.location for p in problems] == ["b.xlsx"]
    assert "in total" in problems[0].reason
    assert f"b.xlsx › {LEFTOVERS}" not in [p.location for p in parts]


# --- docx --------------------------------------------------------------------


def add_hyperlink(paragraph, url: str, text: str) -> None:
    r_id = paragraph.part.relate_to(url, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), r_id)
    run_element = OxmlElement("w:r")
    text_element = OxmlElement("w:t")
    text_element.text = text
    run_element.append(text_element)
    link.append(run_element)
    paragraph._p.append(link)


def test_docx_hyperlink_target_is_scanned() -> None:
    doc = docx.Document()
    add_hyperlink(doc.add_paragraph("详见"), f"https://crm.example.com/view?id={ID}", "客户档案")
    data = saved(doc)
    assert found(data, "l.docx") == [("cn_resident_id", "l.docx › word/_rels/document.xml.rels")]
    parts, problems = run(data, "l.docx")
    assert problems == []
    assert parts[0].text == "详见客户档案\n"  # the body's Part is as before


def test_docx_custom_xml_glossary_and_chart_are_scanned() -> None:
    custom = f"<客户><姓名>张三</姓名><证件号>{OTHER_ID}</证件号></客户>"
    # Word splits a value over runs; the runs of one paragraph are one text.
    glossary = (
        '<w:glossaryDocument xmlns:w="urn:w"><w:docParts><w:docPart><w:docPartBody><w:p>'
        f"<w:r><w:t>证件 {ID[:6]}</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>{ID[6:]}</w:t></w:r>"
        "</w:p></w:docPartBody></w:docPart></w:docParts></w:glossaryDocument>"
    )
    chart = (
        '<c:chartSpace xmlns:c="urn:c"><c:chart><c:plotArea><c:barChart><c:ser><c:val>'
        f'<c:numRef><c:numCache><c:pt idx="0"><c:v>{MOBILE}</c:v></c:pt></c:numCache>'
        "</c:numRef></c:val></c:ser></c:barChart></c:plotArea></c:chart></c:chartSpace>"
    )
    doc = docx.Document()
    doc.add_paragraph("正文")
    data = with_members(
        saved(doc),
        {
            "customXml/item2.xml": custom,
            "word/glossary/document.xml": glossary,
            "word/charts/chart1.xml": chart,
        },
    )
    assert sorted(found(data, "x.docx")) == [
        ("cn_mobile", "x.docx › word/charts/chart1.xml"),
        ("cn_resident_id", "x.docx › customXml/item2.xml"),
        ("cn_resident_id", "x.docx › word/glossary/document.xml"),
    ]


def clean_docx() -> bytes:
    doc = docx.Document()
    doc.core_properties.title = "会议纪要"
    p = doc.add_paragraph("会议纪要 2024年3月")
    add_hyperlink(p, "https://www.example.com/policy?page=2", "制度")
    doc.sections[0].header.paragraphs[0].text = "内部资料"
    table = doc.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "议题"
    table.cell(0, 1).text = "预算"
    doc.add_comment(p.runs[0], text="请核对", author="审核人")
    return saved(doc)


def test_clean_docx_gains_nothing() -> None:
    data = clean_docx()
    parts, problems = run(data, "clean.docx")
    assert problems == []
    assert found(data, "clean.docx") == []
    leftovers = [p for p in parts if p.location == f"clean.docx › {LEFTOVERS}"]
    assert [p.text for p in leftovers] == ["https://www.example.com/policy?page=2"]


def test_clean_xlsx_gains_nothing() -> None:
    wb = plain_workbook()
    ws = wb.active
    ws["A1"].comment = Comment("来源：财务部", "审核人")
    wb.defined_names["区域"] = DefinedName("区域", attr_text="'汇总'!$A$1:$B$2")
    ws.oddHeader.center.text = "第 &P 页"
    data = saved(wb)
    parts, problems = run(data, "clean.xlsx")
    assert problems == []
    assert found(data, "clean.xlsx") == []
    assert [p.location for p in parts][-1] == f"clean.xlsx › {LEFTOVERS}"
    assert found(chart_workbook("华北"), "chart.xlsx") == []


# --- pptx --------------------------------------------------------------------

PML = 'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
DML = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'


def shapes(*texts: str) -> str:
    body = "".join(
        f"<p:sp><p:txBody><a:p><a:r><a:t>{t}</a:t></a:r></a:p></p:txBody></p:sp>" for t in texts
    )
    return f"<p:cSld><p:spTree>{body}</p:spTree></p:cSld>"


def make_pptx(extra: dict[str, str]) -> bytes:
    """A presentation as PowerPoint lays it out: master, layout, theme, properties."""
    members = {
        "[Content_Types].xml": "<Types/>",
        "_rels/.rels": (
            "<Relationships><Relationship Id='rId1' Type='officeDocument' "
            "Target='ppt/presentation.xml'/></Relationships>"
        ),
        "ppt/presentation.xml": f"<p:presentation {PML}><p:sldIdLst/></p:presentation>",
        "ppt/_rels/presentation.xml.rels": (
            "<Relationships><Relationship Id='rId1' Type='slide' Target='slides/slide1.xml'/>"
            "</Relationships>"
        ),
        "ppt/slides/slide1.xml": f"<p:sld {PML} {DML}>{shapes('季度汇报')}</p:sld>",
        "ppt/slideMasters/slideMaster1.xml": (
            f"<p:sldMaster {PML} {DML}>{shapes('单击此处编辑母版标题样式', '第二级')}</p:sldMaster>"
        ),
        "ppt/slideLayouts/slideLayout1.xml": (
            f"<p:sldLayout {PML} {DML}>{shapes('单击此处编辑母版副标题样式')}</p:sldLayout>"
        ),
        "ppt/theme/theme1.xml": f"<a:theme {DML} name='Office 主题'/>",
        "ppt/presProps.xml": f"<p:presentationPr {PML}/>",
        "ppt/viewProps.xml": f"<p:viewPr {PML}/>",
        "ppt/tableStyles.xml": f"<a:tblStyleLst {DML} def='{{5C22544A}}'/>",
        "ppt/commentAuthors.xml": (
            f"<p:cmAuthorLst {PML}><p:cmAuthor id='0' name='审核人' initials='S'/></p:cmAuthorLst>"
        ),
    }
    members.update(extra)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def test_pptx_comments_master_and_chart_are_scanned() -> None:
    legacy_comment = (
        f"<p:cmLst {PML}><p:cm authorId='0'><p:text>身份证 {ID}</p:text></p:cm></p:cmLst>"
    )
    modern_comment = (
        f"<p188:cmLst xmlns:p188='urn:p188' {DML}><p188:cm><p188:txBody><a:p>"
        f"<a:r><a:t>手机 {MOBILE[:3]}</a:t></a:r><a:r><a:t>{MOBILE[3:]}</a:t></a:r>"
        "</a:p></p188:txBody></p188:cm></p188:cmLst>"
    )
    master = f"<p:sldMaster {PML} {DML}>{shapes('页脚 ' + OTHER_ID)}</p:sldMaster>"
    chart = (
        "<c:chartSpace xmlns:c='urn:c'><c:chart><c:plotArea><c:barChart><c:ser><c:tx>"
        f"<c:strRef><c:strCache><c:pt idx='0'><c:v>{ID}</c:v></c:pt></c:strCache></c:strRef>"
        "</c:tx></c:ser></c:barChart></c:plotArea></c:chart></c:chartSpace>"
    )
    data = make_pptx(
        {
            "ppt/comments/comment1.xml": legacy_comment,
            "ppt/comments/modernComment_1A2B.xml": modern_comment,
            "ppt/slideMasters/slideMaster1.xml": master,
            "ppt/charts/chart1.xml": chart,
        }
    )
    assert sorted(found(data, "d.pptx")) == [
        ("cn_mobile", "d.pptx › ppt/comments/modernComment_1A2B.xml"),
        ("cn_resident_id", "d.pptx › ppt/charts/chart1.xml"),
        ("cn_resident_id", "d.pptx › ppt/comments/comment1.xml"),
        ("cn_resident_id", "d.pptx › ppt/slideMasters/slideMaster1.xml"),
    ]


def test_clean_pptx_gains_nothing() -> None:
    data = make_pptx({})
    parts, problems = run(data, "clean.pptx")
    assert problems == []
    assert found(data, "clean.pptx") == []
    assert [p.location for p in parts] == ["clean.pptx › slide 1", f"clean.pptx › {LEFTOVERS}"]
    assert parts[1].text == "单击此处编辑母版标题样式\t第二级\t\n单击此处编辑母版副标题样式"
    assert [s.location for s in parts[1].segments] == [
        "clean.pptx › ppt/slideMasters/slideMaster1.xml",
        "clean.pptx › ppt/slideLayouts/slideLayout1.xml",
    ]
