"""PDF text outside the page layer that readers show elsewhere or run: the outline
(bookmarks), scripts, and what actions open — URIs, launched and remote files."""

from __future__ import annotations

import io
import itertools
import time

from fpdf import FPDF
from pypdf import PdfWriter
from pypdf.actions import JavaScript, PageTrigger
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from rules.extract import pdf as pdf_module
from tests.rules.test_extract_hidden_pdf_ole import ID, ID2, blank_pdf, ids_at, run, saved


def text_pdf(text: str) -> PdfWriter:
    """A one-page PDF with `text` in its text layer, open for pypdf to add to."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.cell(0, 10, text)
    return PdfWriter(clone_from=io.BytesIO(bytes(pdf.output())))


def action(kind: str, **entries: object) -> DictionaryObject:
    """An action dictionary: /S kind, and string entries as text strings."""
    made = DictionaryObject({NameObject("/S"): NameObject(f"/{kind}")})
    for key, value in entries.items():
        text = isinstance(value, str)
        made[NameObject(f"/{key}")] = TextStringObject(value) if text else value
    return made


def script_stream(writer: PdfWriter, code: str) -> IndirectObject:
    """A Flate-compressed script stream (long scripts are stored as streams)."""
    stream = DecodedStreamObject()
    stream.set_data(code.encode())
    return writer._add_object(stream.flate_encode())


def link(target: DictionaryObject) -> DictionaryObject:
    return DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (0, 0, 10, 10)]),
            NameObject("/A"): target,
        }
    )


def script_names(writer: PdfWriter) -> list[str]:
    """The names pypdf gave the document-level scripts (random UUIDs)."""
    return [str(n) for n in writer.root_object["/Names"]["/JavaScript"]["/Names"][::2]]


# --- the outline ----------------------------------------------------------------


def test_outline_title_is_scanned() -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.start_section(f"张三 {ID}")  # in the outline only: no title style is set
    pdf.cell(0, 10, "Statement")
    parts, problems, findings = run(bytes(pdf.output()), "o.pdf")
    assert problems == []
    assert not any(ID in p.text for p in parts if p.location == "o.pdf › page 1")
    assert ids_at(findings) == ["o.pdf › outline"]


def test_nested_outline_title_is_scanned() -> None:
    writer = blank_pdf()
    top = writer.add_outline_item(title="债务人", page_number=0)
    middle = writer.add_outline_item(title="张三", page_number=0, parent=top)
    writer.add_outline_item(title="李四", page_number=0, parent=top)
    writer.add_outline_item(title=f"身份证 {ID}", page_number=0, parent=middle)
    writer.add_outline_item(title="附件", page_number=0)
    _, problems, findings = run(saved(writer), "n.pdf")
    assert problems == []
    assert ids_at(findings) == ["n.pdf › outline"]


def test_outline_uri_action_is_scanned() -> None:
    writer = blank_pdf()
    item = writer.add_outline_item(title="CRM", page_number=0).get_object()
    item[NameObject("/A")] = action("URI", URI=f"https://crm.example/?id={ID}")
    _, problems, findings = run(saved(writer), "u.pdf")
    assert problems == []
    assert ids_at(findings) == ["u.pdf › outline"]


def test_outline_loop_ends() -> None:
    writer = blank_pdf()
    first = writer.add_outline_item(title="一", page_number=0)
    second = writer.add_outline_item(title=f"二 {ID}", page_number=0)
    child = writer.add_outline_item(title="三", page_number=0, parent=second)
    second.get_object()[NameObject("/Next")] = first  # siblings in a ring
    child.get_object()[NameObject("/First")] = second  # and a child holding its parent
    started = time.monotonic()
    _, problems, findings = run(saved(writer), "loop.pdf")
    assert time.monotonic() - started < 5
    assert problems == []
    assert ids_at(findings) == ["loop.pdf › outline"]


# The limits are lowered here so that the files stay small; the code path is the same.
LOWERED = 1_000


def test_outline_past_the_limit_is_a_problem_and_the_start_is_read(monkeypatch) -> None:
    monkeypatch.setattr(pdf_module, "MAX_OBJECTS", LOWERED)
    writer = blank_pdf()
    items = [
        writer._add_object(DictionaryObject({NameObject("/Title"): TextStringObject(f"{n}")}))
        for n in range(LOWERED + 5)
    ]
    items[0].get_object()[NameObject("/Title")] = TextStringObject(f"甲 {ID}")
    items[-1].get_object()[NameObject("/Title")] = TextStringObject(f"乙 {ID2}")
    for ref, after in itertools.pairwise(items):
        ref.get_object()[NameObject("/Next")] = after
    writer._root_object[NameObject("/Outlines")] = DictionaryObject(
        {NameObject("/First"): items[0], NameObject("/Last"): items[-1]}
    )
    _, problems, findings = run(saved(writer), "big.pdf")
    assert [(p.location, p.reason) for p in problems] == [
        ("big.pdf › outline", f"outline: more than {LOWERED} objects, the rest not read")
    ]
    assert ids_at(findings) == ["big.pdf › outline"]  # the first item's; the last is reported


def test_a_long_outline_of_links_is_read_whole() -> None:
    """6,000 bookmarks with GoTo actions, as LaTeX's hyperref writes them, are no Problem."""
    writer = blank_pdf()
    page = writer.pages[0].indirect_reference
    items = []
    for n in range(6_000):
        goto = writer._add_object(action("GoTo", D=ArrayObject([page, NameObject("/Fit")])))
        title = TextStringObject(f"{n}" if n < 5_999 else f"乙 {ID2}")
        items.append(
            writer._add_object(
                DictionaryObject({NameObject("/Title"): title, NameObject("/A"): goto})
            )
        )
    for ref, after in itertools.pairwise(items):
        ref.get_object()[NameObject("/Next")] = after
    writer._root_object[NameObject("/Outlines")] = DictionaryObject(
        {NameObject("/First"): items[0], NameObject("/Last"): items[-1]}
    )
    _, problems, findings = run(saved(writer), "thesis.pdf")
    assert problems == []
    assert ids_at(findings) == ["thesis.pdf › outline"]


def test_titles_are_not_read_as_one_value() -> None:
    """Two bookmarks holding the two halves of an ID make no ID."""
    writer = blank_pdf()
    writer.add_outline_item(title=ID[:12], page_number=0)
    writer.add_outline_item(title=ID[12:], page_number=0)
    _, problems, findings = run(saved(writer), "halves.pdf")
    assert problems == []
    assert findings == []


# --- scripts and actions ------------------------------------------------------------


def test_document_script_is_scanned() -> None:
    writer = blank_pdf()
    writer.add_open_action(JavaScript("app.alert('hello');"))  # the /JavaScript name tree
    writer.add_open_action(JavaScript(f"var debtor = '{ID}';"))
    _, problems, findings = run(saved(writer), "j.pdf")
    assert problems == []
    assert ids_at(findings) == [f"j.pdf › javascript › {script_names(writer)[1]}"]


def test_open_action_script_as_string_and_as_stream_is_scanned() -> None:
    writer = blank_pdf()
    stream = script_stream(writer, f"var other = '{ID2}';")
    first = action("JavaScript", JS=f"var debtor = '{ID}';", Next=action("JavaScript", JS=stream))
    writer._root_object[NameObject("/OpenAction")] = first
    _, problems, findings = run(saved(writer), "open.pdf")
    assert problems == []
    assert ids_at(findings) == ["open.pdf › javascript › open action"] * 2


def test_page_and_document_additional_actions_are_scanned() -> None:
    writer = blank_pdf()
    writer.add_blank_page(595, 842)
    writer.pages[1].add_action(PageTrigger.OPEN, JavaScript("app.alert(1);"))
    writer.pages[1].add_action(PageTrigger.OPEN, JavaScript(f"var id = '{ID}';"))  # by /Next
    writer._root_object[NameObject("/AA")] = DictionaryObject(
        {NameObject("/WC"): action("JavaScript", JS=f"var id2 = '{ID2}';")}  # on close
    )
    _, problems, findings = run(saved(writer), "aa.pdf")
    assert problems == []
    assert ids_at(findings) == [
        "aa.pdf › javascript › document actions",
        "aa.pdf › javascript › page 2",
    ]


def test_annotation_action_script_is_scanned() -> None:
    writer = blank_pdf()
    note = link(action("JavaScript", JS=f"app.launchURL('https://crm.example/{ID}');"))
    note[NameObject("/AA")] = DictionaryObject(
        {NameObject("/E"): action("JavaScript", JS=f"var id = '{ID2}';")}  # cursor enters
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(note)])
    _, problems, findings = run(saved(writer), "l.pdf")
    assert problems == []
    assert ids_at(findings) == ["l.pdf › page 1 annotations › Link 1"] * 2


def test_form_field_scripts_are_scanned() -> None:
    writer = blank_pdf()
    widget = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (50, 700, 250, 720)]),
            NameObject("/AA"): DictionaryObject(
                {NameObject("/K"): action("JavaScript", JS=f"event.value = '{ID}';")}
            ),
        }
    )
    widget_ref = writer._add_object(widget)
    field = DictionaryObject(
        {
            NameObject("/FT"): NameObject("/Tx"),
            NameObject("/T"): TextStringObject("debtor"),
            NameObject("/Kids"): ArrayObject([widget_ref]),
            NameObject("/AA"): DictionaryObject(
                {NameObject("/V"): action("JavaScript", JS=f"check('{ID2}');")}  # validate
            ),
        }
    )
    field_ref = writer._add_object(field)
    widget[NameObject("/Parent")] = field_ref
    writer.pages[0][NameObject("/Annots")] = ArrayObject([widget_ref])
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject(
        {NameObject("/Fields"): ArrayObject([field_ref])}
    )
    _, problems, findings = run(saved(writer), "f.pdf")
    assert problems == []
    assert ids_at(findings) == [
        "f.pdf › javascript › field debtor",
        "f.pdf › page 1 annotations › Widget 1",  # read there once, not again with the form
    ]


def test_launched_and_remote_file_names_are_scanned() -> None:
    writer = blank_pdf()
    launch = action(
        "Launch",
        Win=DictionaryObject(
            {
                NameObject("/F"): TextStringObject("notepad.exe"),
                NameObject("/P"): TextStringObject(f"C:\\debtors\\{ID}.txt"),
            }
        ),
    )
    remote = action(
        "GoToR",
        F=DictionaryObject({NameObject("/UF"): TextStringObject(f"张三_{ID2}.pdf")}),
        D=ArrayObject([NumberObject(0), NameObject("/Fit")]),
    )
    writer._root_object[NameObject("/OpenAction")] = launch
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(link(remote))])
    _, problems, findings = run(saved(writer), "f.pdf")
    assert problems == []
    assert ids_at(findings) == [
        "f.pdf › javascript › open action",
        "f.pdf › page 1 annotations › Link 1",
    ]


def test_action_loop_ends() -> None:
    writer = blank_pdf()
    first = writer._add_object(action("JavaScript", JS="step(1);"))
    second = writer._add_object(
        action("JavaScript", JS=f"step('{ID}');", Next=ArrayObject([first]))
    )
    first.get_object()[NameObject("/Next")] = second
    writer._root_object[NameObject("/OpenAction")] = first
    writer.pages[0][NameObject("/AA")] = DictionaryObject({NameObject("/C"): second})  # again
    started = time.monotonic()
    _, problems, findings = run(saved(writer), "loop.pdf")
    assert time.monotonic() - started < 5
    assert problems == []
    assert ids_at(findings) == ["loop.pdf › javascript › open action"]  # each action read once


def test_actions_sharing_one_long_next_array_cost_bounded_time(monkeypatch) -> None:
    monkeypatch.setattr(pdf_module, "MAX_OBJECTS", LOWERED)
    writer = blank_pdf()
    actions = [writer._add_object(action("JavaScript", JS=f"f({n});")) for n in range(12_000)]
    actions[1].get_object()[NameObject("/JS")] = TextStringObject(f"f('{ID}');")
    chained = writer._add_object(ArrayObject(actions))
    for ref in actions:  # each chains all of them: walked naively, 10⁸ entries
        ref.get_object()[NameObject("/Next")] = chained
    writer._root_object[NameObject("/OpenAction")] = actions[0]
    started = time.monotonic()
    _, problems, findings = run(saved(writer), "wide.pdf")
    assert time.monotonic() - started < 10
    assert [(p.location, p.reason) for p in problems] == [
        ("wide.pdf › javascript", f"javascript: more than {LOWERED} objects, the rest not read")
    ]
    assert ids_at(findings) == ["wide.pdf › javascript › open action"]


def test_object_both_bookmark_and_open_action_is_read_as_both() -> None:
    writer = blank_pdf()
    both = writer._add_object(action("JavaScript", JS=f"var id = '{ID}';", Title=f"书签 {ID2}"))
    writer._root_object[NameObject("/Outlines")] = DictionaryObject(
        {NameObject("/First"): both, NameObject("/Last"): both}
    )
    writer._root_object[NameObject("/OpenAction")] = both
    _, problems, findings = run(saved(writer), "both.pdf")
    assert problems == []
    assert ids_at(findings) == ["both.pdf › javascript › open action", "both.pdf › outline"]


def test_clean_pdf_with_outline_and_scripts_yields_nothing() -> None:
    writer = text_pdf("Nothing to see")
    top = writer.add_outline_item(title="报告", page_number=0)
    item = writer.add_outline_item(title="附录 2024-01-05", page_number=0, parent=top)
    item.get_object()[NameObject("/A")] = action("URI", URI="https://example.com/report?page=3")
    writer.add_open_action(JavaScript("this.print({bUI: true});"))
    writer.pages[0].add_action(PageTrigger.OPEN, JavaScript("app.alert('第 1 页');"))
    writer._root_object[NameObject("/OpenAction")] = action(
        "JavaScript", JS=script_stream(writer, "var total = 12345.67;")
    )
    _, problems, findings = run(saved(writer), "clean.pdf")
    assert problems == []
    assert findings == []


def test_malformed_outline_and_actions_are_skipped_and_the_rest_read() -> None:
    writer = text_pdf(f"ID {ID}")
    writer._root_object[NameObject("/Outlines")] = NumberObject(7)
    writer._root_object[NameObject("/OpenAction")] = action("JavaScript", JS=NumberObject(1))
    writer._root_object[NameObject("/AA")] = ArrayObject([NumberObject(1)])
    writer.pages[0][NameObject("/AA")] = DictionaryObject(
        {
            NameObject("/O"): TextStringObject("not an action"),
            NameObject("/C"): action("JavaScript", JS="x();", Next=NumberObject(3)),
        }
    )
    good = action("JavaScript", JS=f"var id = '{ID2}';")
    writer._root_object[NameObject("/Names")] = DictionaryObject(
        {
            NameObject("/JavaScript"): DictionaryObject(
                {  # an odd-length array, a value that is no action, then a good one
                    NameObject("/Names"): ArrayObject(
                        [
                            TextStringObject("a"),
                            NumberObject(1),
                            TextStringObject("b"),
                            writer._add_object(good),
                            TextStringObject("dangling"),
                        ]
                    ),
                    NameObject("/Kids"): NumberObject(4),
                }
            )
        }
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject(
        [writer._add_object(link(NumberObject(5)))]  # /A is no action
    )
    _, problems, findings = run(saved(writer), "m.pdf")
    assert problems == []
    assert ids_at(findings) == ["m.pdf › javascript › b", "m.pdf › page 1"]


def test_undecodable_script_is_a_problem_and_the_others_read() -> None:
    writer = text_pdf(f"ID {ID}")
    broken = DecodedStreamObject()
    broken.set_data(b"opaque")
    broken[NameObject("/Filter")] = NameObject("/NoSuchDecode")  # pypdf cannot decode it
    writer._root_object[NameObject("/OpenAction")] = action(
        "JavaScript", JS=writer._add_object(broken), Next=action("JavaScript", JS=f"'{ID2}'")
    )
    _, problems, findings = run(saved(writer), "s.pdf")
    assert [(p.location, p.reason.split(" (")[0]) for p in problems] == [
        ("s.pdf › javascript", "javascript: script unreadable")
    ]
    assert ids_at(findings) == ["s.pdf › javascript › open action", "s.pdf › page 1"]


def embedded_spec(writer: PdfWriter, name: str, content: bytes) -> DictionaryObject:
    """A file specification with the file itself embedded (/EF), listed in no name tree."""
    stream = DecodedStreamObject()
    stream.set_data(content)
    stream[NameObject("/Type")] = NameObject("/EmbeddedFile")
    return DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Filespec"),
            NameObject("/UF"): TextStringObject(name),
            NameObject("/EF"): DictionaryObject({NameObject("/F"): writer._add_object(stream)}),
        }
    )


def test_files_embedded_in_action_file_specifications_are_extracted() -> None:
    """The bytes travel inside the PDF though no name tree lists them: a launched file
    (the open action) and a remote file a bookmark opens."""
    writer = blank_pdf()
    launched = embedded_spec(writer, "清单.txt", f"客户 张三 身份证 {ID}\n".encode())
    writer._root_object[NameObject("/OpenAction")] = action("Launch", F=launched)
    remote = embedded_spec(writer, "附件.txt", f"证件号码 {ID2}\n".encode("gbk"))
    writer.add_outline_item(title="附件", page_number=0)
    first = writer._root_object["/Outlines"]["/First"].get_object()
    first[NameObject("/A")] = action("GoToR", F=remote, D=ArrayObject([NumberObject(0)]))
    _, problems, findings = run(saved(writer), "e.pdf")
    assert problems == []
    assert ids_at(findings) == [
        "e.pdf › action file 清单.txt",
        "e.pdf › outline file 附件.txt",
    ]
