"""Archives of members: zip (unless it is an Office document) and tar."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from rules.findings import UNINSPECTABLE, Part, Problem

from . import ooxml
from .charset import decode_name
from .limits import ExtractionError, size_text
from .names import names_part
from .zipfiles import comments_part, is_encrypted, member_name, open_zip, walk_member

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk


def extract_zip(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    with open_zip(data, walk.budget) as zf:
        infos = zf.infolist()
        if comments := comments_part(zf, item):  # an Office document's too: it is a zip
            yield comments
        kind = ooxml.document_kind(zf)
        if kind and not any(is_encrypted(info) for info in infos):
            yield from ooxml.extract_document(zf, kind, item, walk)
            return
        named = [(n, item.at(n)) for n in map(member_name, infos)]
        if names := names_part(item.at("member names"), named):
            yield names
        for info in infos:
            walk.budget.count_file()
            if info.is_dir():
                continue
            name = member_name(info)
            yield from walk_member(zf, info, name, item, walk, what="zip member", short="member")


def _tar_name(name: str) -> str:
    """tarfile decoded the name as UTF-8 with surrogates; GBK names need a second look."""
    return decode_name(name.encode("utf-8", "surrogateescape"))


def extract_tar(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    limits = walk.limits
    try:
        tf = tarfile.open(  # noqa: SIM115 - closed by the `with` below, once opened
            fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape"
        )
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise ExtractionError(f"corrupt tar archive ({type(exc).__name__})") from None
    names: list[str] = []
    with tf:
        while True:
            try:
                member = tf.next()
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                raise ExtractionError(f"corrupt tar archive ({type(exc).__name__})") from None
            if member is None:
                break
            walk.budget.count_file()
            name = _tar_name(member.name)
            names.append(name)
            if not member.isfile():
                continue
            if member.size > limits.max_member_bytes:
                reason = (
                    f"member {name} is {size_text(member.size)}, "
                    f"over the {size_text(limits.max_member_bytes)} limit"
                )
                yield Problem(UNINSPECTABLE, item.at(name), reason)
                continue
            try:
                stream = tf.extractfile(member)
                content = stream.read(member.size) if stream else b""
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                reason = f"member {name} is corrupt ({type(exc).__name__})"
                yield Problem(UNINSPECTABLE, item.at(name), reason)
                continue
            yield from walk.nested(item, content, name)
    if part := names_part(item.at("member names"), [(n, item.at(n)) for n in names]):
        yield part
