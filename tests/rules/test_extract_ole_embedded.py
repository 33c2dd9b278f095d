"""Files embedded in legacy Office documents: OLE Packages (\\x01Ole10Native), OOXML
documents (Package), servers' files (CONTENTS), legacy documents' own storages, and
PowerPoint's compressed object storages. Compound files are built here, storages and
mini stream included, as Office lays them out."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
import zlib

import olefile
import openpyxl
from fpdf import FPDF

from rules.engine import Engine
from rules.extract import Limits, extract
from rules.extract.legacy import _ppt_split
from rules.extract.walk import Walk
from rules.findings import UNINSPECTABLE, Part, Problem
from tests.rules import strategies as s
from tests.rules.test_extract_hidden_pdf_ole import ids_at, run, summary
from tests.rules.test_extract_office import make_ole, word_stream

ID = "11010519491231002X"
ID2 = "110101199003074477"
ENGINE = Engine(hash_key=s.KEY)
HOST_TEXT = f"委托书正文 手机13800138000 身份证{ID2}"

# --- compound files with storages ---------------------------------------------------

FREE, END, FAT_SECTOR, NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
STORAGE, STREAM, ROOT = 1, 2, 5


def make_cfb(tree: dict) -> bytes:
    """A compound file (version 3) of `tree`: {name: bytes (a stream) or dict (a storage)}.
    Streams under 4 KiB live in the mini stream; siblings form a balanced binary tree
    in the order the format prescribes (length, then upper-cased name)."""
    entries: list[list] = []  # [name, type, left, right, child, start, size, content]

    def add(name: str, content) -> int:
        kind = STORAGE if isinstance(content, dict) else STREAM
        entries.append([name, kind, NO_STREAM, NO_STREAM, NO_STREAM, END, 0, content])
        return len(entries) - 1

    def balanced(ids: list[int]) -> int:
        if not ids:
            return NO_STREAM
        mid = len(ids) // 2
        entries[ids[mid]][2] = balanced(ids[:mid])
        entries[ids[mid]][3] = balanced(ids[mid + 1 :])
        return ids[mid]

    def children(parent: int, content: dict) -> None:
        ordered = sorted(content, key=lambda n: (len(n), n.upper()))
        ids = [add(name, content[name]) for name in ordered]
        entries[parent][4] = balanced(ids)
        for i in ids:
            if entries[i][1] == STORAGE:
                children(i, entries[i][7])

    entries.append(["Root Entry", ROOT, NO_STREAM, NO_STREAM, NO_STREAM, END, 0, b""])
    children(0, tree)

    mini, mini_fat, big = bytearray(), [], []
    for entry in entries[1:]:
        data = entry[7]
        if entry[1] != STREAM or not data:
            continue
        entry[6] = len(data)
        if len(data) < 4096:
            entry[5] = len(mini) // 64
            count = -(-len(data) // 64)
            mini_fat += [*range(entry[5] + 1, entry[5] + count), END]
            mini += data.ljust(count * 64, b"\x00")
        else:
            big.append(entry)
    chains = [b"".join(_entry(e) for e in entries).ljust(-(-len(entries) // 4) * 512, b"\0")]
    chains.append(b"".join(struct.pack("<I", v) for v in mini_fat))
    chains.append(bytes(mini))
    chains += [e[7] for e in big]
    sizes = [-(-len(c) // 512) for c in chains]
    fat_sectors = 1
    while fat_sectors * 128 < fat_sectors + sum(sizes):
        fat_sectors += 1
    fat, starts = [FAT_SECTOR] * fat_sectors, []
    for n in sizes:
        starts.append(len(fat) if n else END)
        fat += [*range(len(fat) + 1, len(fat) + n)] + ([END] if n else [])
    entries[0][5], entries[0][6] = starts[2], len(mini)
    for entry, start in zip(big, starts[3:], strict=True):
        entry[5] = start
    chains[0] = b"".join(_entry(e) for e in entries).ljust(sizes[0] * 512, b"\0")
    assert fat_sectors <= 109
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\0" * 6
        + struct.pack("<IIIIIIIII", 0, fat_sectors, starts[0], 0, 4096, starts[1], sizes[1],
                      END, 0)
        + b"".join(struct.pack("<I", i) for i in range(fat_sectors))
        + struct.pack("<I", FREE) * (109 - fat_sectors)
    )  # fmt: skip
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    fat_bytes = fat_bytes.ljust(fat_sectors * 512, b"\xff")
    body = b"".join(c.ljust(n * 512, b"\0") for c, n in zip(chains, sizes, strict=True))
    return header + fat_bytes + body


def _entry(entry: list) -> bytes:
    name, kind, left, right, child, start, size, _ = entry
    encoded = name.encode("utf-16-le") + b"\0\0"
    return (
        encoded.ljust(64, b"\0") + struct.pack("<HBB", len(encoded), kind, 1)
        + struct.pack("<III", left, right, child) + b"\0" * 36
        + struct.pack("<IQ", start, size)
    )  # fmt: skip


def compobj(user_type: str, prog_id: str) -> bytes:
    """\\x01CompObj ([MS-OLEDS] 2.3.8): header, user type, no clipboard format, ProgID."""

    def ansi(text: str) -> bytes:
        return struct.pack("<I", len(text) + 1) + text.encode() + b"\0"

    header = struct.pack("<II", 0xFFFE0001, 0x0A03) + b"\xff" * 4 + b"\0" * 16
    return header + ansi(user_type) + struct.pack("<I", 0) + ansi(prog_id) + b"\0" * 12


OLE_STREAM = struct.pack("<IIII", 0x02000001, 0, 0, 0) + b"\0" * 4  # \x01Ole, embedded


def ole10native(
    data: bytes, label: str, path: str, temp: str = "", *, wide: bool = True, size: int = -1
) -> bytes:
    """An OLE Package's \\x01Ole10Native stream as the Windows packager writes it."""
    temp = temp or "C:\\Users\\li\\AppData\\Local\\Temp\\" + path.rsplit("\\", 1)[-1]
    ansi = [text.encode("gbk", "replace") + b"\0" for text in (label, path, temp)]
    body = (
        struct.pack("<H", 2) + ansi[0] + ansi[1] + struct.pack("<HH", 0, 3)
        + struct.pack("<I", len(ansi[2])) + ansi[2]
        + struct.pack("<I", len(data) if size < 0 else size) + data
    )  # fmt: skip
    if wide:
        body += b"".join(
            struct.pack("<I", len(text)) + text.encode("utf-16-le") for text in (temp, label, path)
        )
    return struct.pack("<I", len(body)) + body


def package_object(native: bytes) -> dict:
    return {
        "\x01CompObj": compobj("OLE Package", "Package"),
        "\x01Ole": OLE_STREAM,
        "\x01Ole10Native": native,
        "\x03ObjInfo": b"\x00\x00\x03\x00\x01\x00",
    }


def doc_with(*objects: dict) -> bytes:
    """A .doc whose ObjectPool holds `objects`."""
    pool = {f"_{1234567890 + i}": obj for i, obj in enumerate(objects)}
    return make_cfb(
        {"WordDocument": word_stream(HOST_TEXT), "1Table": b"\0" * 600, "ObjectPool": pool}
    )


def workbook_stream(text: str) -> bytes:
    """BIFF8 globals: BOF, a shared string table of one string, EOF."""
    string = struct.pack("<HB", len(text), 1) + text.encode("utf-16-le")
    sst = struct.pack("<II", 1, 1) + string
    return (
        struct.pack("<HH", 0x0809, 16) + b"\x00\x06\x05\x00" + b"\0" * 12
        + struct.pack("<HH", 0x00FC, len(sst)) + sst
        + struct.pack("<HH", 0x000A, 0)
    )  # fmt: skip


def make_xlsx(value: str) -> bytes:
    wb = openpyxl.Workbook()
    wb.active.title = "客户"
    wb.active.append(["姓名", "身份证号"])
    wb.active.append(["张三", value])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


HOST = "x.doc › legacy doc text"
TXT = f"客户名单\r\n张三 身份证号 {ID}\r\n".encode("gbk")
PATH = "C:\\Users\\li\\Desktop\\客户名单.txt"


# --- the builder ----------------------------------------------------------------------


def test_compound_file_built_here_reads_the_same_in_olefile() -> None:
    small, large = b"abc" * 10, bytes(range(256)) * 40
    data = make_cfb({"WordDocument": large, "S": {"T": {"x": small}, "y": b""}, "z": small})
    with olefile.OleFileIO(io.BytesIO(data), raise_defects=olefile.DEFECT_INCORRECT) as ole:
        assert sorted(ole.listdir()) == [["S", "T", "x"], ["S", "y"], ["WordDocument"], ["z"]]
        assert ole.openstream("S/T/x").read() == small  # from the mini stream
        assert ole.openstream("WordDocument").read() == large
        assert ole.get_type("S/T") == olefile.STGTY_STORAGE


# --- OLE Packages ---------------------------------------------------------------------


def test_text_file_packaged_in_a_doc_is_extracted() -> None:
    data = doc_with(package_object(ole10native(TXT, "客户名单.txt", PATH)))
    parts, problems, findings = run(data, "x.doc")
    assert problems == []
    by = {p.location: p.text for p in parts}
    assert by["x.doc › embedded › 客户名单.txt"] == TXT.decode("gbk")
    assert HOST_TEXT in by[HOST]
    assert ids_at(findings) == ["x.doc › embedded › 客户名单.txt", HOST]


def test_packaged_file_s_label_and_path_are_scanned_as_names() -> None:
    label, path = f"张三{ID}的资料", f"D:\\客户\\{ID2}\\list.txt"
    data = doc_with(package_object(ole10native(b"nothing here", label, path)))
    parts, problems, findings = run(data, "x.doc")
    assert problems == []
    at = "x.doc › embedded › 张三110105********002X的资料"  # masked in findings
    assert ids_at(findings) == [at, f"{at} (original path)", HOST]
    names = {p.location: p for p in parts}["x.doc › embedded names"]
    assert names.text == f"{label}\n{path}"  # the temp copy has the same name: left out
    located = ENGINE.redact(f"x.doc › embedded › {label}")
    assert located == at


def test_label_repeated_in_the_path_is_scanned_once() -> None:
    name = f"张三_{ID}.txt"
    data = doc_with(package_object(ole10native(b"-", name, f"C:\\docs\\{name}")))
    parts, _, findings = run(data, "x.doc")
    names = {p.location: p.text for p in parts}["x.doc › embedded names"]
    assert names == f"C:\\docs\\{name}"
    assert len(ids_at(findings)) == 2  # the host's and the path's, not the label again


def test_ansi_names_lost_to_the_codepage_are_read_from_the_utf16_copies() -> None:
    label = "김철수.txt"  # not in GBK: the ANSI copy holds "?"
    data = doc_with(package_object(ole10native(TXT, label, f"C:\\{label}")))
    parts, _, _ = run(data, "x.doc")
    assert f"x.doc › embedded › {label}" in [p.location for p in parts]


def test_zip_packaged_in_a_doc_is_opened() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner/客户.txt", TXT)
    data = doc_with(package_object(ole10native(buf.getvalue(), "a.zip", "C:\\a.zip")))
    _, problems, findings = run(data, "x.doc")
    assert problems == []
    assert ids_at(findings) == ["x.doc › embedded › a.zip › inner/客户.txt", HOST]


def test_truncated_package_is_a_problem_and_the_host_is_still_read() -> None:
    native = ole10native(TXT, "客户名单.txt", PATH, wide=False, size=2**20)
    parts, problems, findings = run(doc_with(package_object(native)), "x.doc")
    assert [(p.detector, p.location) for p in problems] == [
        (UNINSPECTABLE, "x.doc › embedded › 客户名单.txt")
    ]
    assert "truncated" in problems[0].reason and ID not in problems[0].reason
    assert ids_at(findings) == [HOST]
    assert HOST_TEXT in {p.location: p.text for p in parts}[HOST]


def test_every_cut_and_lying_length_of_a_package_is_survived() -> None:
    native = ole10native(TXT, "客户名单.txt", PATH)
    lying = [
        native[:4] + b"\x02\x00" + b"x" * 40,  # a label without its end
        native.replace(struct.pack("<I", len(TXT)), b"\xff\xff\xff\xff", 1),
        struct.pack("<I", 0xFFFFFFFF) + native[4:],
        b"",
        b"\x01",
    ]
    for stream in [native[:cut] for cut in range(0, len(native), 7)] + lying:
        parts, _, findings = run(doc_with(package_object(stream)), "x.doc")
        assert HOST in [p.location for p in parts]
        assert HOST in ids_at(findings)


def test_other_ole1_native_data_is_read_by_its_format() -> None:
    """Not a package (a Word 6 object): the native data is the file itself."""
    inner = make_ole({"WordDocument": word_stream(f"旧文档 {ID}")})
    native = struct.pack("<I", len(inner)) + inner
    obj = {"\x01CompObj": compobj("Microsoft Word 6.0 Document", "Word.Document.6"),
           "\x01Ole10Native": native}  # fmt: skip
    _, problems, findings = run(doc_with(obj), "x.doc")
    assert problems == []
    assert ids_at(findings) == ["x.doc › embedded › _1234567890 › legacy doc text", HOST]


# --- OOXML documents, servers' files, legacy storages ---------------------------------


def test_xlsx_embedded_in_an_xls_is_extracted() -> None:
    data = make_cfb(
        {
            "Workbook": workbook_stream("汇总表"),
            "MBD0012ABCD": {
                "\x01CompObj": compobj("Microsoft Excel Worksheet", "Excel.Sheet.12"),
                "\x01Ole": OLE_STREAM,
                "Package": make_xlsx(ID),
            },
        }
    )
    parts, problems, findings = run(data, "x.xls")
    assert problems == []
    assert "汇总表" in {p.location: p.text for p in parts}["x.xls › legacy doc text"]
    assert ids_at(findings) == ["x.xls › embedded › MBD0012ABCD › 客户!B2"]


def test_word_document_embedded_in_an_xls_is_read_in_its_storage() -> None:
    data = make_cfb(
        {
            "Workbook": workbook_stream("汇总表"),
            "MBD0012ABCD": {
                "\x01CompObj": compobj("Microsoft Word Document", "Word.Document.8"),
                "WordDocument": word_stream(f"嵌入的文档 {ID}"),
                "\x05SummaryInformation": summary(),
                "ObjectPool": {"_1": package_object(ole10native(TXT, "a.txt", "C:\\a.txt"))},
            },
        }
    )
    _, problems, findings = run(data, "x.xls")
    assert problems == []
    at = "x.xls › embedded › MBD0012ABCD"
    assert ids_at(findings) == [
        f"{at} › document properties › comments",
        f"{at} › document properties › title",
        f"{at} › embedded › a.txt",
        f"{at} › legacy doc text",
    ]


def test_pdf_in_an_objects_contents_is_extracted() -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.cell(0, 10, f"ID {ID}")
    obj = {"\x01CompObj": compobj("Adobe Acrobat Document", "AcroExch.Document.DC"),
           "\x01Ole": OLE_STREAM, "CONTENTS": bytes(pdf.output())}  # fmt: skip
    _, problems, findings = run(doc_with(obj), "x.doc")
    assert problems == []
    assert ids_at(findings) == ["x.doc › embedded › _1234567890 › page 1", HOST]


def test_ole_object_file_of_an_ooxml_document_is_read_as_its_package() -> None:
    """word/embeddings/oleObject1.bin: the object's storage is the whole file."""
    data = make_cfb(package_object(ole10native(TXT, "客户名单.txt", PATH)))
    parts, problems, findings = run(data, "oleObject1.bin")
    assert problems == []
    assert ids_at(findings) == ["oleObject1.bin › embedded › 客户名单.txt"]  # once
    assert "oleObject1.bin › embedded names" in [p.location for p in parts]


def test_unknown_server_data_is_read_as_runs_of_text() -> None:
    """A CONTENTS of no format we read (Publisher's text) is still read as runs of text,
    at its object's place (its stream is read only when its object is extracted)."""
    contents = b"CHNKINK \x04\x00\x07\x00" + b"\x00\x01\x02" * 30 + f"客户 {ID}".encode("utf-16-le")
    data = make_cfb(
        {"\x01CompObj": compobj("Microsoft Publisher", "Publisher.Document"),
         "Quill": {"QuillSub": {"\x01CompObj": compobj("MSQuill", "Quill"),
                                "CONTENTS": contents}}}
    )  # fmt: skip
    _, problems, findings = run(data, "x.pub")
    assert problems == []
    assert ids_at(findings) == ["x.pub › embedded › QuillSub"]


# --- PowerPoint -----------------------------------------------------------------------


def record(kind: int, body: bytes, instance: int = 0) -> bytes:
    return struct.pack("<HHI", instance << 4, kind, len(body)) + body


def test_objects_in_a_ppt_are_extracted_compressed_or_not() -> None:
    storage = make_cfb(package_object(ole10native(TXT, "客户名单.txt", PATH)))
    compressed = struct.pack("<I", len(storage)) + zlib.compress(storage)
    stream = (
        record(0x03E8, record(0x0FA0, "幻灯片标题".encode("utf-16-le")))  # a document container
        + record(0x1011, compressed, instance=1)
        + record(0x1011, storage)
        + record(0x1011, struct.pack("<I", 9) + zlib.compress(b"not an OLE"), instance=1)
    )
    parts, problems, findings = run(make_cfb({"PowerPoint Document": stream}), "x.ppt")
    assert problems == []
    assert "幻灯片标题" in {p.location: p.text for p in parts}["x.ppt › legacy doc text"]
    assert ids_at(findings) == [
        "x.ppt › embedded › object 1 › embedded › 客户名单.txt",
        "x.ppt › embedded › object 2 › embedded › 客户名单.txt",
    ]


def test_corrupt_compressed_ppt_object_is_a_problem_and_the_slides_are_still_read() -> None:
    stream = record(0x0FA0, f"标题 {ID}".encode("utf-16-le")) + record(
        0x1011, struct.pack("<I", 999) + b"\x78\x9c garbage", instance=1
    )
    _, problems, findings = run(make_cfb({"PowerPoint Document": stream}), "x.ppt")
    assert [(p.detector, p.location) for p in problems] == [
        (UNINSPECTABLE, "x.ppt › embedded › object 1")
    ]
    assert ids_at(findings) == ["x.ppt › legacy doc text"]


def test_ppt_object_records_holding_no_compound_file_are_still_read() -> None:
    """Not cut from the slides' text and lost: an uncompressed body stays with the text,
    a compressed one is read, decompressed, at its object's place."""
    stream = (
        record(0x0FA0, "幻灯片标题".encode("utf-16-le"))
        + record(0x1011, f"客户 张三 身份证 {ID}".encode("utf-16-le"))
        + record(
            0x1011, struct.pack("<I", 60) + zlib.compress(f"客户 {ID2}".encode("utf-16-le")), 1
        )
    )
    parts, problems, findings = run(make_cfb({"PowerPoint Document": stream}), "x.ppt")
    assert problems == []
    assert ids_at(findings) == ["x.ppt › embedded › object 1", "x.ppt › legacy doc text"]
    text = {p.location: p.text for p in parts}
    assert ID in text["x.ppt › legacy doc text"] and ID2 in text["x.ppt › embedded › object 1"]


def test_splitting_a_ppt_stream_keeps_no_copy_per_record() -> None:
    """A stream of empty records is a million of them: they were each kept as bytes."""
    empty = struct.pack("<HHI", 0, 0x0FA0, 0) * (2**19 // 16)
    body = struct.pack("<I", 10) + zlib.compress(b"0123456789")
    stream = empty + record(0x1011, body, instance=1) + empty
    tracemalloc.start()
    try:
        rest, records = _ppt_split(stream, Walk(Limits()))
        peak = tracemalloc.get_traced_memory()[1]
        assert bytes(rest) == empty * 2 and len(records) == 1
        del rest
        tracemalloc.reset_peak()
        assert _ppt_split(empty, Walk(Limits()))[0] is empty  # no object: no copy at all
        alone = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * len(stream)  # the stream without the object, and little more
    assert alone < len(empty) // 4


# --- objects of no known format, names, and many or overlapping objects ---------------


def test_objects_of_no_known_format_are_read_as_text() -> None:
    text = f"客户 张三 身份证 {ID}\r\n"
    for contents in (
        text.encode("utf-16-le"),
        text.encode("gbk"),
        b"\x00\x01\x02" * 30 + text.encode("utf-16-le") + b"\xff\x00" * 30,
    ):
        obj = {"\x01CompObj": compobj("Some Server", "Some.Server"), "CONTENTS": contents}
        _, problems, findings = run(doc_with(obj), "x.doc")
        assert problems == []
        assert ids_at(findings) == ["x.doc › embedded › _1234567890", HOST]


def test_an_object_s_payload_hides_no_object_below_it() -> None:
    obj = {
        "CONTENTS": b"\x00\x01\x02junk" * 10,
        "inner": package_object(ole10native(TXT, "客户名单.txt", PATH)),
    }
    _, problems, findings = run(doc_with(obj), "x.doc")
    assert problems == []
    assert ids_at(findings) == ["x.doc › embedded › 客户名单.txt", HOST]


def test_storage_names_that_office_did_not_generate_are_scanned_as_names() -> None:
    name = f"张三{ID}"
    data = make_cfb(
        {
            "WordDocument": word_stream(HOST_TEXT),
            "ObjectPool": {name: {"WordDocument": word_stream("嵌入的文档")}},
        }
    )
    parts, problems, findings = run(data, "x.doc")
    assert problems == []
    assert ids_at(findings) == ["x.doc › embedded › 张三110105********002X", HOST]
    assert {p.location: p.text for p in parts}["x.doc › embedded names"] == name


def test_thousands_of_objects_cost_linear_time() -> None:
    """Each object's storage was matched against every stream, and every embedded
    document listed the whole file again (and searched the ObjectPool by name)."""
    n = 4000
    pool = {f"_{i}": {"WordDocument": word_stream("")} for i in range(n)}
    pool["_4000"] = {"WordDocument": word_stream(f"最后一个 {ID}")}
    data = make_cfb({"WordDocument": word_stream(HOST_TEXT), "ObjectPool": pool})
    items = list(extract(data, name="x.doc", limits=Limits(max_seconds=4)))
    assert [p for p in items if isinstance(p, Problem)] == []
    findings = ENGINE.scan_parts([p for p in items if isinstance(p, Part)])
    assert ids_at(findings) == ["x.doc › embedded › _4000 › legacy doc text", HOST]


def _share_one_chain(data: bytes, size: int) -> bytes:
    """Points every Package entry at the sectors of the one of `size` bytes, as a
    hostile file may: directory entries sharing a sector chain."""
    out = bytearray(data)
    with olefile.OleFileIO(io.BytesIO(data)) as ole:
        big = next(e for e in ole.direntries if e and e.name == "Package" and e.size == size)
        for e in ole.direntries:
            if e and e.name == "Package" and e is not big:
                at = 512 + ole.first_dir_sector * 512 + e.sid * 128
                out[at + 116 : at + 128] = struct.pack("<IQ", big.isectStart, size)
    return bytes(out)


def test_objects_sharing_one_sector_chain_are_read_one_at_a_time_within_the_budget() -> None:
    """Every payload was read before the first was extracted: N entries of one chain
    held N times the stream; and their reads now count against the expansion budget."""
    size, n = 2**20, 20
    pool = {f"_{i}": {"Package": bytes([i]) * 4096} for i in range(n)}
    pool["_99"] = {"Package": b"PK\x03\x04".ljust(size, b"\0")}
    data = _share_one_chain(make_cfb({"WordDocument": word_stream(""), "ObjectPool": pool}), size)
    tracemalloc.start()
    try:
        items = list(extract(data, name="x.doc"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len([p for p in items if isinstance(p, Problem)]) == n + 1  # not zips
    assert peak < 8 * size
    items = list(extract(data, name="x.doc", limits=Limits(max_expanded_bytes=8 * size)))
    reasons = [p.reason for p in items if isinstance(p, Problem)]
    assert reasons[-1] == "input expands beyond 8 MiB in total"
