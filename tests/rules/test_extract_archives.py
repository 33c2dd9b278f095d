"""Archives built in the test: zip (GBK names, nesting, encryption), tar.gz, 7z, limits."""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
import zipfile

import py7zr
import pytest
import pyzipper

from rules.extract import Limits, extract
from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Part, Problem

ID = "11010519491231002X"
MOBILE = "13800138000"
SECRET = f"身份证号 {ID} 手机 {MOBILE}\n"


NAMES_LABEL = "member names"


def run(data: bytes, **kw) -> tuple[list[Part], list[Problem]]:
    """Content Parts (the lists of member names left out) and Problems."""
    items = list(extract(data, **kw))
    parts = [p for p in items if isinstance(p, Part) and not p.location.endswith(NAMES_LABEL)]
    return parts, [p for p in items if isinstance(p, Problem)]


def member_names(data: bytes, **kw) -> list[Part]:
    return [p for p in extract(data, **kw) if p.location.endswith(NAMES_LABEL)]


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def assert_no_content(problems: list[Problem]) -> None:
    for problem in problems:
        assert ID not in problem.reason and MOBILE not in problem.reason


def test_zip_members_are_extracted_with_locations() -> None:
    data = make_zip({"a/债务.txt": SECRET.encode(), "b.csv": b"x,y\n1,2\n", "dir/": b""})
    parts, problems = run(data, name="cases.zip", location="attachment cases.zip")
    assert problems == []
    assert [(p.location, p.text) for p in parts] == [
        ("attachment cases.zip › a/债务.txt", SECRET),
        ("attachment cases.zip › b.csv", "x,y\n1,2\n"),
    ]


def test_member_names_are_a_part_of_their_own() -> None:
    """A name can disclose what the content does not (an image named after a debtor)."""
    data = make_zip({f"张三_{ID}.jpg": b"\xff\xd8\xff\xe0binary", "dir/": b""})
    (names,) = member_names(data, name="a.zip")
    assert names.location == "a.zip › member names"
    assert names.text == f"张三_{ID}.jpg\ndir/"
    assert [s.location for s in names.segments] == [f"a.zip › 张三_{ID}.jpg", "a.zip › dir/"]
    assert names.segments[1].offset == names.text.index("dir/")


def test_zip_member_names_in_gbk() -> None:
    """Chinese Windows writes GBK names without the UTF-8 flag; zipfile reads them as CP437."""
    gbk_name = "债务清单.txt".encode("gbk")
    placeholder = b"x" * len(gbk_name)
    data = make_zip({placeholder.decode(): SECRET.encode("gbk")}).replace(placeholder, gbk_name)
    parts, problems = run(data, name="gbk.zip")
    assert problems == []
    assert parts[0].location == "gbk.zip › 债务清单.txt"
    assert parts[0].text == SECRET


def test_zip_member_names_in_cp437_stay_cp437() -> None:
    name = "résumé.txt".encode("cp437")
    placeholder = b"y" * len(name)
    data = make_zip({placeholder.decode(): b"hello"}).replace(placeholder, name)
    parts, _ = run(data, name="a.zip")
    assert parts[0].location == "a.zip › résumé.txt"


def nest(levels: int) -> bytes:
    data = SECRET.encode()
    name = "secret.txt"
    for level in range(levels):
        data = make_zip({name: data})
        name = f"level{level}.zip"
    return data


def test_nested_zips_within_the_depth_limit() -> None:
    parts, problems = run(nest(6), name="outer.zip")
    assert problems == []
    assert parts[0].text == SECRET
    assert parts[0].location.count(" › ") == 6


def test_nested_zips_beyond_the_depth_limit() -> None:
    parts, problems = run(nest(9), name="outer.zip")
    assert parts == []
    (problem,) = problems
    assert problem.detector == UNINSPECTABLE
    assert problem.reason == "nested deeper than 6 containers"
    assert problem.location.count(" › ") == 7


def test_depth_limit_is_configurable() -> None:
    _, problems = run(nest(3), name="outer.zip", limits=Limits(max_depth=2))
    assert problems[0].reason == "nested deeper than 2 containers"


def test_too_many_files() -> None:
    data = make_zip({f"f{i}.txt": b"hello" for i in range(20)})
    parts, problems = run(data, name="many.zip", limits=Limits(max_files=5))
    assert parts == []  # refused from the central directory count, before reading
    assert [p.reason for p in problems] == ["more than 5 files in the input"]


def test_too_many_files_across_nested_archives() -> None:
    inner = make_zip({f"f{i}.txt": b"hello" for i in range(4)})
    data = make_zip({f"inner{i}.zip": inner for i in range(4)})
    parts, problems = run(data, name="many.zip", limits=Limits(max_files=10))
    assert len(problems) == 1 and "more than 10 files" in problems[0].reason
    assert 0 < len(parts) < 16


def test_truncated_zip() -> None:
    data = make_zip({"a.txt": SECRET.encode() * 50})
    parts, problems = run(data[: len(data) // 2], name="cut.zip")
    assert parts == []
    assert problems[0].detector == UNINSPECTABLE
    assert problems[0].reason.startswith("corrupt zip archive")


def test_corrupt_member_does_not_stop_the_others() -> None:
    data = bytearray(make_zip({"a.txt": SECRET.encode() * 50, "b.txt": b"still here"}))
    start = data.index(b"a.txt") + len(b"a.txt")
    data[start + 10 : start + 20] = b"\xff" * 10  # inside a.txt's deflate stream
    parts, problems = run(bytes(data), name="bad.zip")
    assert [p.text for p in parts] == ["still here"]
    assert problems[0].location == "bad.zip › a.txt"
    assert_no_content(problems)


def test_zip_bomb_refused_from_declared_sizes() -> None:
    data = make_zip({"zeros.bin": b"\0" * (3 * 2**20)})
    _, problems = run(data, name="z.zip")
    assert problems[0].reason.startswith("member zeros.bin expands beyond 200:1 (3 MiB from ")
    _, problems = run(data, name="z.zip", limits=Limits(max_member_bytes=2**20))
    assert problems[0].reason == "member zeros.bin declares 3 MiB, over the 1 MiB limit"


def test_zip_bomb_with_lying_compressed_size() -> None:
    """A central directory that claims a huge compressed size does not lift the ratio."""
    data = bytearray(make_zip({"zeros.bin": b"\0" * (3 * 2**20)}))
    entry = data.index(b"PK\x01\x02")
    data[entry + 20 : entry + 24] = (2**31).to_bytes(4, "little")
    parts, problems = run(bytes(data), name="z.zip")
    assert parts == []
    assert problems[0].detector == UNINSPECTABLE


def test_zip_member_declaring_less_than_it_holds() -> None:
    """zipfile stops at the declared size; the CRC then fails: refused, not read on."""
    data = bytearray(make_zip({"zeros.bin": b"\0" * (3 * 2**20)}))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature) + offset
        data[at : at + 4] = (1000).to_bytes(4, "little")
    parts, problems = run(bytes(data), name="z.zip")
    assert parts == []
    assert problems[0].reason.startswith("member zeros.bin is corrupt")


def test_total_expansion_limit() -> None:
    member = bytes(range(256)) * 4096  # 1 MiB that barely compresses
    data = make_zip({f"m{i}.bin": member for i in range(5)})
    _, problems = run(data, name="big.zip", limits=Limits(max_expanded_bytes=3 * 2**20))
    assert [p.reason for p in problems] == ["input expands beyond 3 MiB in total"]


def test_aes_zip_is_encrypted_archive() -> None:
    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"pw")
        zf.writestr("secret.txt", SECRET)
    parts, problems = run(buf.getvalue(), name="aes.zip")
    assert parts == []
    assert [(p.detector, p.location, p.reason) for p in problems] == [
        (ENCRYPTED_ARCHIVE, "aes.zip", "encrypted zip member secret.txt")
    ]


@pytest.mark.parametrize("mode", ["gz", "bz2", "xz"])
def test_compressed_tar(mode: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{mode}") as tf:
        info = tarfile.TarInfo("a.txt")
        info.size = len(SECRET.encode())
        tf.addfile(info, io.BytesIO(SECRET.encode()))
    for name in (f"a.tar.{mode}", ""):
        parts, problems = run(buf.getvalue(), name=name)
        assert problems == []
        assert [(p.location, p.text) for p in parts] == [(f"{name} › a.txt".lstrip(" ›"), SECRET)]


def test_tar_gz() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("batch/债务.txt", SECRET.encode()), ("batch/b.json", b'{"a": 1}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    parts, problems = run(buf.getvalue(), name="batch.tar.gz")
    assert problems == []
    assert (
        member_names(buf.getvalue(), name="batch.tar.gz")[0].text == "batch/债务.txt\nbatch/b.json"
    )
    assert [(p.location, p.text) for p in parts] == [
        ("batch.tar.gz › batch/债务.txt", SECRET),
        ("batch.tar.gz › batch/b.json", '{"a": 1}'),
    ]


def test_gz_of_text_keeps_the_location() -> None:
    parts, _ = run(gzip.compress(SECRET.encode("gbk")), name="records.txt.gz")
    assert [(p.location, p.text) for p in parts] == [("records.txt.gz", SECRET)]


def test_gzip_bomb_streams_with_bounded_memory() -> None:
    bomb = gzip.compress(b"\0" * (64 * 2**20), compresslevel=9)
    tracemalloc.start()
    try:
        parts, problems = run(bomb, name="z.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parts == []
    assert "200:1" in problems[0].reason
    assert peak < 64 * 2**20


def make_7z(members: dict[str, bytes], **kw) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", **kw) as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return buf.getvalue()


def test_7z() -> None:
    data = make_7z({"a.txt": SECRET.encode(), "sub/b.csv": b"x,y\n"})
    parts, problems = run(data, name="a.7z")
    assert problems == []
    assert member_names(data, name="a.7z")[0].text.split("\n") == ["a.txt", "sub/b.csv"]
    assert sorted((p.location, p.text) for p in parts) == [
        ("a.7z › a.txt", SECRET),
        ("a.7z › sub/b.csv", "x,y\n"),
    ]


@pytest.mark.parametrize("header_encryption", [False, True])
def test_encrypted_7z(header_encryption: bool) -> None:
    data = make_7z({"a.txt": SECRET.encode()}, password="pw", header_encryption=header_encryption)
    parts, problems = run(data, name="secret.7z")
    assert parts == []
    assert [(p.detector, p.location) for p in problems] == [(ENCRYPTED_ARCHIVE, "secret.7z")]


def test_7z_bomb_is_refused() -> None:
    data = make_7z({"zeros.bin": b"\0" * (8 * 2**20)})
    parts, problems = run(data, name="z.7z")
    assert parts == []
    assert problems[0].detector == UNINSPECTABLE
    assert "200:1" in problems[0].reason


def test_truncated_7z() -> None:
    data = make_7z({"a.txt": SECRET.encode() * 20})
    parts, problems = run(data[:40], name="cut.7z")
    assert parts == []
    assert problems[0].detector == UNINSPECTABLE
    assert_no_content(problems)
