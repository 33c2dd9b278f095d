"""Office content that is in the file but was not scanned: Word document
variables, legacy VML drawings (text boxes, form-control labels, picture
titles, watermarks) and the values written into spreadsheet formulas."""

from __future__ import annotations

import io
import re
import time
import zipfile

import docx
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls
from openpyxl.comments import Comment

from rules.extract import Limits
from rules.findings import UNINSPECTABLE
from tests.rules.test_extract_hidden_office import make_pptx, saved, with_members
from tests.rules.test_extract_office_leftovers import (
    ID,
    LEFTOVERS,
    OTHER_ID,
    SPREADSHEET_NS,
    assert_no_content,
    found,
    plain_workbook,
    run,
)

# --- Word document variables ---------------------------------------------------


def with_variables(data: bytes, variables: dict[str, str]) -> bytes:
    """`data` (a docx) with w:docVars in its settings, where Word keeps them."""
    docvars = "".join(f'<w:docVar w:name="{n}" w:val="{v}"/>' for n, v in variables.items())
    settings = zipfile.ZipFile(io.BytesIO(data)).read("word/settings.xml").decode()
    settings = settings.replace("</w:settings>", f"<w:docVars>{docvars}</w:docVars></w:settings>")
    return with_members(data, {"word/settings.xml": settings})


def plain_docx() -> bytes:
    doc = docx.Document()
    doc.add_paragraph("会议纪要")
    return saved(doc)


def test_document_variable_is_scanned() -> None:
    data = with_variables(plain_docx(), {"模板": "合同", "客户证件": ID})
    assert found(data, "v.docx") == [("cn_resident_id", "v.docx › document variables › 客户证件")]
    parts, problems = run(data, "v.docx")
    assert problems == []
    variables = [p for p in parts if p.location == "v.docx › document variables"]
    assert [p.text for p in variables] == [f"模板: 合同\n客户证件: {ID}"]


def test_rest_of_the_settings_is_not_read() -> None:
    """Compatibility settings carry w:name/w:val pairs too: not user text."""
    parts, problems = run(plain_docx(), "s.docx")
    assert problems == []
    assert not [p for p in parts if "document variables" in p.location]
    assert not [p for p in parts if "compatibilityMode" in p.text]


def test_corrupt_settings_are_a_problem_and_hide_nothing_else() -> None:
    doc = docx.Document()
    doc.add_paragraph(f"证件 {OTHER_ID}")
    broken = '<w:settings xmlns:w="urn:w"><w:docVars><w:docVar w:name="a" w:val="1"/>'
    data = with_members(saved(doc), {"word/settings.xml": broken})
    _, problems = run(data, "c.docx")
    assert [(p.detector, p.location) for p in problems] == [
        (UNINSPECTABLE, "c.docx › word/settings.xml")
    ]
    assert_no_content(problems)
    assert ("cn_resident_id", "c.docx › word/document.xml") in found(data, "c.docx")


# --- VML ---------------------------------------------------------------------

VML_NS = (
    'xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
    'xmlns:x="urn:schemas-microsoft-com:office:excel"'
)


def form_control(label: str, anchor: str = "1, 0, 2, 0, 2, 64, 4, 0") -> str:
    """A button as Excel writes it in a sheet's legacy drawing: the label is HTML,
    split into <font> runs wherever its formatting changes."""
    return f"""<xml {VML_NS}>
 <o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="1"/></o:shapelayout>
 <v:shapetype id="_x0000_t201" coordsize="21600,21600" o:spt="201" path="m,l,21600r21600,l21600,xe">
  <v:stroke joinstyle="miter"/><v:path shadowok="f" o:extrusionok="f" o:connecttype="rect"/>
 </v:shapetype>
 <v:shape id="_x0000_s1025" type="#_x0000_t201" style='position:absolute;width:96pt;height:30pt'
  stroked="f" filled="f" o:insetmode="auto">
  <v:textbox style='mso-direction-alt:auto' o:singleclick="f">
   <div style='text-align:center'>{label}</div>
  </v:textbox>
  <x:ClientData ObjectType="Button">
   <x:Anchor>{anchor}</x:Anchor>
   <x:PrintObject>False</x:PrintObject>
   <x:AutoFill>False</x:AutoFill>
   <x:FmlaMacro>[0]!Macro1</x:FmlaMacro>
  </x:ClientData>
 </v:shape>
</xml>"""


SPLIT_LABEL = (
    f'<font face="宋体" size="220" color="auto">客户 {ID[:6]}</font>'
    f'<font face="宋体" size="220" color="#FF0000">{ID[6:]}</font>'
)


def test_xlsx_vml_text_box_is_scanned() -> None:
    data = with_members(
        saved(plain_workbook()), {"xl/drawings/vmlDrawing1.vml": form_control(SPLIT_LABEL)}
    )
    assert found(data, "b.xlsx") == [("cn_resident_id", "b.xlsx › xl/drawings/vmlDrawing1.vml")]
    parts, problems = run(data, "b.xlsx")
    assert problems == []
    assert parts[-1].location == f"b.xlsx › {LEFTOVERS}"
    assert f"客户 {ID}" in parts[-1].text.split("\t")  # the runs of one line are one value


def test_malformed_vml_is_read_and_hides_nothing_else() -> None:
    """Excel writes a line break in a label as an HTML <br> with no end tag."""
    label = f"<font>第一行<br>证件 {OTHER_ID}</font><font>&nbsp;"  # <br>, &nbsp;, no </font>
    wb = plain_workbook()
    wb.active["A3"] = ID
    data = with_members(saved(wb), {"xl/drawings/vmlDrawing1.vml": form_control(label)})
    parts, problems = run(data, "m.xlsx")
    assert problems == []
    assert sorted(found(data, "m.xlsx")) == [
        ("cn_resident_id", "m.xlsx › xl/drawings/vmlDrawing1.vml"),
        ("cn_resident_id", "m.xlsx › 汇总!A3"),
    ]
    assert f"第一行\n证件 {OTHER_ID}" in parts[-1].text


def test_vml_picture_title_is_scanned() -> None:
    header_picture = (
        f'<xml {VML_NS}><v:shape id="RH" o:spid="_x0000_s1025" type="#_x0000_t75">'
        f'<v:imagedata o:relid="rId1" o:title="张三身份证{OTHER_ID}"/></v:shape></xml>'
    )
    data = with_members(saved(plain_workbook()), {"xl/drawings/vmlDrawingHF1.vml": header_picture})
    assert found(data, "p.xlsx") == [("cn_resident_id", "p.xlsx › xl/drawings/vmlDrawingHF1.vml")]


def test_vml_values_are_not_glued_into_one() -> None:
    """Anchor cells and separate client data are values apart, not one number."""
    anchor = f"{ID[:6]}, {ID[6:]}"
    data_ = form_control("提交", anchor=anchor).replace(
        "<x:PrintObject>False</x:PrintObject>",
        f"<x:Row>{ID[:6]}</x:Row><x:Column>{ID[6:]}</x:Column>",
    )
    data = with_members(saved(plain_workbook()), {"xl/drawings/vmlDrawing1.vml": data_})
    assert found(data, "g.xlsx") == []


def test_docx_vml_part_text_box_is_scanned() -> None:
    textbox = (
        f'<xml {VML_NS} {nsdecls("w")}><v:shape id="t1"><v:textbox><w:txbxContent>'
        f"<w:p><w:r><w:t>证件 {ID[:6]}</w:t></w:r><w:r><w:rPr><w:b/></w:rPr>"
        f"<w:t>{ID[6:]}</w:t></w:r></w:p></w:txbxContent></v:textbox></v:shape></xml>"
    )
    data = with_members(plain_docx(), {"word/vmlDrawing1.vml": textbox})
    assert found(data, "t.docx") == [("cn_resident_id", "t.docx › word/vmlDrawing1.vml")]


def watermarked(text: str) -> bytes:
    """A Word watermark: WordArt (v:textpath) in the header, its text an attribute."""
    doc = docx.Document()
    doc.add_paragraph("正文")
    header = doc.sections[0].header.paragraphs[0]
    header.text = "内部资料"
    header._p.append(
        parse_xml(
            f'<w:r {nsdecls("w")} {VML_NS}><w:pict><v:shape id="PowerPlusWaterMarkObject1" '
            'type="#_x0000_t136" fillcolor="silver" stroked="f">'
            '<v:textpath style="font-family:&quot;宋体&quot;;font-size:1pt" '
            f'string="{text}"/></v:shape></w:pict></w:r>'
        )
    )
    return saved(doc)


def test_docx_watermark_text_is_scanned() -> None:
    data = watermarked(f"机密 {ID}")
    (finding,) = found(data, "w.docx")
    assert finding[0] == "cn_resident_id"
    assert re.fullmatch(r"w\.docx › word/header\d*\.xml", finding[1])
    parts, problems = run(data, "w.docx")
    assert problems == []
    (header,) = [p for p in parts if "header" in p.location]
    assert header.text == f"内部资料\t机密 {ID}\t\n"


def test_clean_documents_with_variables_and_vml_gain_nothing() -> None:
    data = with_variables(watermarked("内部资料 请勿外传"), {"模板版本": "2024.3", "部门": "法务"})
    _, problems = run(data, "clean.docx")
    assert problems == []
    assert found(data, "clean.docx") == []
    wb = plain_workbook()
    wb.active["A1"].comment = Comment("来源：财务部", "审核人")  # openpyxl writes a VML shape
    xlsx = with_members(
        saved(wb), {"xl/drawings/vmlDrawing2.vml": form_control("<font>提交</font>")}
    )
    _, problems = run(xlsx, "clean.xlsx")
    assert problems == []
    assert found(xlsx, "clean.xlsx") == []


def test_tag_soup_is_balanced_and_linear() -> None:
    from rules.extract.limits import Budget
    from rules.extract.xmlstream import parse_tag_soup

    events: list[str] = []
    soup = b"<?xml version='1.0'?><!-- c --><a x=1><b>t&amp;<br>u</a></c><![CDATA[<d>]]>"
    parse_tag_soup(
        soup,
        "soup",
        Budget(Limits()),
        lambda n, a: events.append(f"<{n} {sorted(a.items())}>"),
        lambda n: events.append(f"</{n}>"),
        events.append,
    )
    assert events == [
        "<a [('x', '1')]>",
        "<b []>",
        "t&",
        "<br []>",
        "</br>",
        "u",
        "</b>",
        "</a>",
        "<d>",
    ]
    hostile_inputs = (b"<a ", b'<a "', b"<!--", b"<!", b"<![CDATA[", b"<a>", b"</a>")
    for hostile in (h * 100_000 for h in hostile_inputs):  # each well under 0.5 s
        began = time.monotonic()
        parse_tag_soup(hostile, "h", Budget(Limits()), lambda *_: None, id, id)
        assert time.monotonic() - began < 2


# --- spreadsheet formulas ----------------------------------------------------


def formula_workbook(**cells: str) -> bytes:
    """openpyxl writes formulas without cached values: only the formula is there."""
    wb = plain_workbook()
    for ref, formula in cells.items():
        wb.active[ref] = formula
    return saved(wb)


def test_formula_string_literal_without_a_cached_value_is_scanned() -> None:
    data = formula_workbook(C2=f'=IF(B2>1000,"{ID}","")')
    assert found(data, "f.xlsx") == [("cn_resident_id", "f.xlsx › 汇总!C2")]


def test_concatenation_formulas_are_scanned() -> None:
    data = formula_workbook(
        C2=f'="{ID[:8]}" & "{ID[8:]}"',
        D2=f'=CONCATENATE("{OTHER_ID[:4]}","{OTHER_ID[4:10]}",{OTHER_ID[10:]})',
    )
    assert found(data, "j.xlsx") == [
        ("cn_resident_id", "j.xlsx › 汇总!C2"),
        ("cn_resident_id", "j.xlsx › 汇总!D2"),
    ]
    parts, problems = run(data, "j.xlsx")
    assert problems == []
    assert parts[0].text.startswith("地区\t金额\n华北\t1200\t")  # values after the cells'


def test_literals_the_formula_does_not_join_stay_apart() -> None:
    data = formula_workbook(C2=f'=IF(B2>1000,"{ID[:6]}","{ID[6:]}")', D2=f'="{ID[:6]}"&B2')
    assert found(data, "a.xlsx") == []


def sheet_with(cells: str) -> bytes:
    sheet = (
        f'<worksheet xmlns="{SPREADSHEET_NS}"><sheetData><row r="1">{cells}</row>'
        "</sheetData></worksheet>"
    )
    return with_members(saved(plain_workbook()), {"xl/worksheets/sheet1.xml": sheet})


def test_shared_and_array_formulas_are_scanned_once() -> None:
    data = sheet_with(
        f'<c r="A1"><f t="shared" ref="A1:A3" si="0">"{ID[:8]}"&amp;"{ID[8:]}"&amp;B1</f></c>'
        '<c r="A2"><f t="shared" si="0"/></c><c r="A3"><f t="shared" si="0"/></c>'
        f'<c r="C1" t="str"><f t="array" ref="C1:C2">_xlfn.CONCAT("{OTHER_ID[:9]}",'
        f'"{OTHER_ID[9:]}")</f><v>{OTHER_ID}</v></c>'
    )
    assert found(data, "s.xlsx") == [
        ("cn_resident_id", "s.xlsx › 汇总!A1"),
        ("cn_resident_id", "s.xlsx › 汇总!C1"),
    ]
    parts, _ = run(data, "s.xlsx")
    # C1: the joined value is the cached one, not repeated; the glued pieces
    # follow, as they do with no cached value
    assert parts[0].text.split("\t")[-3:] == [OTHER_ID, OTHER_ID[:9], OTHER_ID[9:]]
    assert parts[0].text.count(OTHER_ID) == 1


def test_clean_workbook_with_formulas_gains_nothing() -> None:
    data = formula_workbook(
        C2="=B2*0.13",
        D2="=SUM(B2:C2)",
        E2='=IF(D2>5000,"大额","普通")&"-"&A2',
        F2="=VLOOKUP(A2,'汇总'!A:B,2,FALSE)",
    )
    _, problems = run(data, "clean.xlsx")
    assert problems == []
    assert found(data, "clean.xlsx") == []


def test_vml_with_a_dtd_is_refused_not_read_as_tag_soup() -> None:
    """Only VML that is not XML falls back to tag soup: a DTD (never in Office
    XML) stays a Problem, as in every other part."""
    bomb = f'<!DOCTYPE xml [<!ENTITY a "{ID}">]><xml {VML_NS}><v:textbox>&a;</v:textbox></xml>'
    wb = plain_workbook()
    wb.active["A3"] = OTHER_ID
    data = with_members(saved(wb), {"xl/drawings/vmlDrawing1.vml": bomb})
    _, problems = run(data, "d.xlsx")
    assert [(p.detector, p.location) for p in problems] == [
        (UNINSPECTABLE, "d.xlsx › xl/drawings/vmlDrawing1.vml")
    ]
    assert "DTD" in problems[0].reason
    assert ("cn_resident_id", "d.xlsx › 汇总!A3") in found(data, "d.xlsx")


FORMULAS = {
    'IF(B2>1,"110105","19491231002X")': ["1", "110105", "19491231002X"],
    '"11010519" & "491231002X"': ["11010519491231002X", "11010519", "491231002X"],
    'A1&"身份证 "&"11010519491231002X"': ["身份证 11010519491231002X"],
    '_xlfn.TEXTJOIN("-",TRUE,"110105","19491231002X")': ["-", "110105-19491231002X"],
    '_xlfn.CONCAT("110105",A1,"19491231002X")': ["110105", "19491231002X"],
    '"1"&2+3': ["1", "2", "3"],  # "1"&(2+3): 2 is not joined to "1"
    "SUM(1:3)*1.05": ["1.05"],  # rows 1 to 3 are no values
    "'客户 2024'!A1&[1]Sheet1!B2": [],
    '"他说""好"""': ['他说"好"'],
}


def test_formula_values_join_what_the_formula_joins() -> None:
    from rules.extract.formulas import formula_values

    assert {f: formula_values(f) for f in FORMULAS} == FORMULAS


def test_both_readings_of_a_formula_agree() -> None:
    """A formula with no two literals side by side is read in one regex pass;
    following its structure must give the same values."""
    import random

    from rules.extract.formulas import _joined_values, formula_values

    pieces = ['"', "'", "A1", "$B$2", "1", "23", "0.5", "1E+3", ":", ",", ";", "(", ")"]
    pieces += ["{", "}", "+", "*", " ", "\n", "#REF!", "[1]", "x", "中", "!", '""', '"a"']
    pieces += ["&", " & ", "SUM(", "CONCATENATE(", "_xlfn.CONCAT(", "_xlfn.TEXTJOIN(", ID]
    rng = random.Random(7)
    for _ in range(20_000):
        formula = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        structured = list(dict.fromkeys(v for v in _joined_values(formula) if v.strip()))
        assert formula_values(formula) == structured, formula


# --- review findings: linear time, cached formula values, glossary variables ---


def test_tag_soup_unterminated_tag_and_attribute_run_cost_linear_time() -> None:
    """A tag with no ">" and a run of name characters with no "=" each took
    quadratic time (20,000 characters: 9 s and 5 s), past any time budget,
    which is only checked between tags."""
    from rules.extract.limits import Budget
    from rules.extract.xmlstream import parse_tag_soup

    hostile_inputs = (
        b"<xml><br><" + b"a" * 20_000,  # the malformed .vml of the review: 9 s before
        b"<a " + b"b" * 30_000 + b">",  # 10 s before
        (b"<" + b"a" * 20_000) * 5,
    )
    for hostile in hostile_inputs:
        began = time.monotonic()
        parse_tag_soup(hostile, "h", Budget(Limits()), lambda *_: None, id, id)
        assert time.monotonic() - began < 1  # milliseconds now


def test_tag_soup_attributes_are_read_as_before() -> None:
    from rules.extract.limits import Budget
    from rules.extract.xmlstream import parse_tag_soup

    starts: list[tuple[str, dict[str, str]]] = []
    soup = (
        b'<v:shape a="1"b=\'2\' c=3 d = "4" x:e="&lt;5&gt;" f/>'
        b'<img o:title="a > b" alt=\'c"d\'>'
        b"<p x/y=1 =z=2 q==3>"
    )
    parse_tag_soup(soup, "s", Budget(Limits()), lambda n, a: starts.append((n, a)), id, id)
    assert starts == [
        ("shape", {"a": "1", "b": "2", "c": "3", "d": "4", "x:e": "<5>"}),
        ("img", {"o:title": "a > b", "alt": 'c"d'}),
        ("p", {"y": "1", "z": "2", "q": "=3"}),
    ]


def test_formula_with_a_long_number_or_bracket_run_costs_linear_time() -> None:
    """A digit run before ":" was read again from each digit, and each "[" of a
    run of them scanned to the end: 40,000 digits took 6 s, 80,000 "[" 6 s."""
    from rules.extract.formulas import _joined_values, formula_values

    for formula in ("1" * 40_000 + ":1", "[" * 80_000, "SUM(" + "1" * 40_000 + " : 3)"):
        began = time.monotonic()
        formula_values(formula)
        _joined_values(formula)
        assert time.monotonic() - began < 1  # milliseconds now
    assert formula_values("1" * 40_000 + ":1") == []  # still a range of rows, no value
    assert formula_values('"1"&1.5.5+2') == ["1", "1.5", ".5", "2"]


def test_workbook_with_a_long_range_row_stays_within_its_budget() -> None:
    """The reviewer's workbook: one formula of 30,000 digits took 3.3 s past a 1 s budget."""
    data = formula_workbook(A1="=" + "1" * 30_000 + ":1")
    began = time.monotonic()
    _, problems = run(data, "r.xlsx")
    assert time.monotonic() - began < 1
    assert problems == []


def test_glued_formula_pieces_are_scanned_with_a_cached_value_too() -> None:
    """ "99"&ID caches "99…": the shown value holds the ID, but glued, so it is
    not found there; the pieces were dropped as substrings of the cached value."""
    glued = f'"99"&amp;"{ID}"'
    cached = sheet_with(f'<c r="A1" t="str"><f>{glued}</f><v>99{ID}</v></c>')
    uncached = sheet_with(f'<c r="A1"><f>{glued}</f></c>')
    for data in (cached, uncached):
        assert found(data, "g.xlsx") == [("cn_resident_id", "g.xlsx › 汇总!A1")]
        parts, problems = run(data, "g.xlsx")
        assert problems == []
        assert parts[0].text == f"99{ID}\t99\t{ID}"  # the cached value once


def test_formula_value_equal_to_the_cached_one_is_not_repeated() -> None:
    data = sheet_with(
        f'<c r="A1" t="str"><f>IF(B1&gt;1,"{ID}","无")</f><v>{ID}</v></c>'
        '<c r="B1" t="str"><f>IF(C1,"是","否")</f><v>是</v></c>'
    )
    parts, problems = run(data, "e.xlsx")
    assert problems == []
    # "1" is in the shown ID, yet kept: only a value equal to the shown one is left out
    assert parts[0].text == f"{ID}\t1\t无\t是\t否"


def test_glossary_document_variables_are_scanned() -> None:
    """The glossary document (building blocks) has settings, and variables, of its own."""
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    settings = (
        f'<w:settings {w}><w:docVars><w:docVar w:name="客户证件" w:val="{ID}"/>'
        '</w:docVars><w:compat><w:compatSetting w:name="compatibilityMode" w:val="15"/>'
        "</w:compat></w:settings>"
    )
    glossary = f"<w:glossaryDocument {w}><w:docParts/></w:glossaryDocument>"
    data = with_members(
        plain_docx(),
        {"word/glossary/settings.xml": settings, "word/glossary/document.xml": glossary},
    )
    assert found(data, "g.docx") == [
        ("cn_resident_id", "g.docx › glossary document variables › 客户证件")
    ]
    parts, problems = run(data, "g.docx")
    assert problems == []
    assert [p.text for p in parts if "variables" in p.location] == [f"客户证件: {ID}"]
    assert not [p for p in parts if "compatibilityMode" in p.text]


def test_corrupt_glossary_settings_are_one_problem() -> None:
    broken = '<w:settings xmlns:w="urn:w"><w:docVars><w:docVar w:name="a" w:val="1"/>'
    data = with_members(plain_docx(), {"word/glossary/settings.xml": broken})
    _, problems = run(data, "c.docx")
    assert [(p.detector, p.location) for p in problems] == [
        (UNINSPECTABLE, "c.docx › word/glossary/settings.xml")
    ]


# --- DrawingML alt text ----------------------------------------------------------------


def with_picture_alt(descr: str, title: str = "") -> bytes:
    """A docx whose body holds a picture's wp:docPr with alt text (descr) and a title."""
    doc = docx.Document()
    doc.add_paragraph("见下图")
    doc.paragraphs[0]._p.append(
        parse_xml(
            f"<w:r {nsdecls('w', 'wp')}><w:drawing><wp:inline>"
            f'<wp:docPr id="1" name="图片 1" descr="{descr}" title="{title}"/>'
            "</wp:inline></w:drawing></w:r>"
        )
    )
    return saved(doc)


def test_picture_alt_text_in_a_docx_is_scanned() -> None:
    data = with_picture_alt(f"身份证正面 {ID}", title="证件")
    locations = [location for _, location in found(data, "alt.docx")]
    assert len(locations) == 1 and locations[0].startswith("alt.docx")


def test_alt_text_in_sheet_drawings_and_slides_is_scanned() -> None:
    drawing = (
        "<xdr:wsDr xmlns:xdr='urn:xdr' xmlns:a='urn:a'><xdr:pic><xdr:nvPicPr>"
        f"<xdr:cNvPr id='2' name='Picture 1' descr='客户 {OTHER_ID}'/>"
        "</xdr:nvPicPr></xdr:pic></xdr:wsDr>"
    )
    data = with_members(saved(plain_workbook()), {"xl/drawings/drawing1.xml": drawing})
    assert found(data, "d.xlsx") == [("cn_resident_id", "d.xlsx › xl/drawings/drawing1.xml")]
    slide = (
        "<p:sld xmlns:p='urn:p' xmlns:a='urn:a'><p:cSld><p:spTree><p:pic><p:nvPicPr>"
        f"<p:cNvPr id='4' name='图片 3' title='证件 {ID}'/></p:nvPicPr></p:pic>"
        "<p:sp><p:txBody><a:p><a:r><a:t>议程</a:t></a:r></a:p></p:txBody></p:sp>"
        "</p:spTree></p:cSld></p:sld>"
    )
    data = make_pptx({"ppt/slides/slide2.xml": slide})
    assert [detector for detector, _ in found(data, "s.pptx")] == ["cn_resident_id"]


def test_alt_text_without_values_gains_nothing() -> None:
    data = with_picture_alt("公司标志", title="logo")
    assert found(data, "clean.docx") == []
    parts, problems = run(data, "clean.docx")
    assert problems == []
    assert any("公司标志" in p.text for p in parts)


# --- XML comments ----------------------------------------------------------------------


def with_comment(data: bytes, member: str, comment: str) -> bytes:
    """`data` with an XML comment put just inside the root element of `member`."""
    xml = zipfile.ZipFile(io.BytesIO(data)).read(member).decode()
    declaration = xml.find("?>")
    root_end = xml.index(">", xml.index("<", declaration + 2 if declaration >= 0 else 0)) + 1
    return with_members(data, {member: xml[:root_end] + f"<!--{comment}-->" + xml[root_end:]})


def test_xml_comments_in_the_parts_read_are_scanned() -> None:
    data = with_comment(plain_docx(), "word/document.xml", f" 客户 {ID} ")
    assert found(data, "c.docx") == [("cn_resident_id", "c.docx › word/document.xml")]
    sheet = with_comment(saved(plain_workbook()), "xl/worksheets/sheet1.xml", f"证件{OTHER_ID}")
    assert found(sheet, "c.xlsx") == [("cn_resident_id", "c.xlsx › xl/worksheets/sheet1.xml")]
    parts, problems = run(data, "c.docx")
    assert problems == []
    (comments,) = [p for p in parts if p.location == "c.docx › xml comments"]
    assert comments.text == f"客户 {ID}"


def test_comments_apart_are_values_apart_and_an_unclosed_one_ends_the_search() -> None:
    data = with_comment(plain_docx(), "word/document.xml", f"{ID[:9]}--><!--{ID[9:]}")
    assert found(data, "two.docx") == []
    # Past the last closed comment, "<!--" ends the search; the part is not XML then.
    data = with_comment(plain_docx(), "word/document.xml", "第一条")
    xml = zipfile.ZipFile(io.BytesIO(data)).read("word/document.xml") + b"<!--" * 50_000
    parts, problems = run(with_members(data, {"word/document.xml": xml}), "u.docx")
    assert [p.text for p in parts if p.location == "u.docx › xml comments"] == ["第一条"]
    assert [p.location for p in problems] == ["u.docx › word/document.xml"]
