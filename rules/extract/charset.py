"""Bytes to text in whatever charset the sender used, never failing.

Order: BOM, declared charset (parameter, then HTML meta / XML declaration) if it
decodes, strict UTF-8, then detection among the charsets our users meet
(GB18030 ⊃ GBK, Big5, UTF-16 without BOM, Windows-1252).
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

_BOMS = (  # UTF-32 first: its LE BOM starts with the UTF-16 LE BOM
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# GBK and GB2312 labels decode as GB18030: a strict superset, so text that
# uses a 4-byte character (e.g. 𠮷) is still read. Latin-1 and ASCII labels
# mean Windows-1252 in practice (as browsers treat them).
_ALIASES = {"gbk": "gb18030", "gb2312": "gb18030", "iso8859-1": "cp1252", "ascii": "cp1252"}
_CANDIDATES = ["gb18030", "big5", "utf_16_le", "utf_16_be", "cp1252"]
_DETECT_SAMPLE = 256 * 1024  # detection reads a prefix; the decode check covers all

_IN_DOCUMENT = re.compile(
    rb"""<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})"""
    rb"""|<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9._:-]{1,40})""",
    re.IGNORECASE,
)


def codec_for(label: str) -> str | None:
    """Python codec name for a charset label, or None if unknown."""
    label = label.strip().strip("\"'").lower()
    for candidate in (label, label.removeprefix("x-")):
        try:
            name = codecs.lookup(candidate).name
        except LookupError:
            continue
        return _ALIASES.get(name, name)
    return None


def declared_in_document(data: bytes) -> str:
    """Charset named by an XML declaration or HTML meta tag near the start."""
    m = _IN_DOCUMENT.search(data[:2048])
    if not m:
        return ""
    return (m.group(1) or m.group(2)).decode("ascii")


def _decodes(data: bytes, codec: str) -> bool:
    return _decoded(data, codec) is not None


def _decoded(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _utf16_by_zeros(data: bytes) -> str | None:
    """UTF-16 without BOM: mostly-ASCII text has a zero in every other byte."""
    sample = data[:4096]
    if len(sample) < 4 or len(sample) % 2:
        return None
    half = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd > half * 0.3 and even < half * 0.05:
        return "utf-16-le"
    if even > half * 0.3 and odd < half * 0.05:
        return "utf-16-be"
    return None


def _detect(data: bytes) -> str | None:
    guess = _utf16_by_zeros(data)
    if guess and _decodes(data, guess):
        return guess
    best = from_bytes(data[:_DETECT_SAMPLE], cp_isolation=_CANDIDATES).best()
    if best is None:
        return None
    return codec_for(best.encoding)


def choose_codec(data: bytes, declared: str = "") -> tuple[str, int]:
    """(codec, number of BOM bytes to skip) for `data`; see the module docstring."""
    codec, skip, _ = _choose(data, declared)
    return codec, skip


def _choose(data: bytes, declared: str) -> tuple[str, int, str | None]:
    """choose_codec, and the text when deciding decoded all of it already."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom), None
    for label in (declared, declared_in_document(data)):
        codec = codec_for(label) if label else None
        if codec and (text := _decoded(data, codec)) is not None:
            return codec, 0, text
    if (text := _decoded(data, "utf-8")) is not None:
        return "utf-8", 0, text
    return _detect(data) or "utf-8", 0, None


def decode_text(data: bytes, *, declared: str = "") -> str:
    """Bytes to str; never raises (undecodable bytes become U+FFFD)."""
    codec, skip, text = _choose(data, declared)
    return text if text is not None else data[skip:].decode(codec, errors="replace")


def decode_name(raw: bytes) -> str:
    """An archive member name stored without a charset: UTF-8, else GBK family, else CP437."""
    for codec in ("utf-8", "gb18030"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            pass
    return raw.decode("cp437")
