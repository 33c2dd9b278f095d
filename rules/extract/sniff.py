"""Which format is this? Magic bytes first, then the name's extension, then the content type.

Magic wins because names and content types are chosen by the sender, who may
be the one hiding something.
"""

from __future__ import annotations

import re

from .compress import BROTLI, BZIP2, GZIP, XZ, ZSTD

# Kinds of content, one extractor each; single compressed streams are named as
# their decompression method (GZIP, BZIP2, XZ, ZSTD, BROTLI).
ZIP, TAR, SEVENZIP, PDF, OLE = "zip", "tar", "7z", "pdf", "ole"
MIME, MULTIPART, URLENCODED = "mime", "multipart", "urlencoded"
CSV, TSV, TEXT, BINARY = "csv", "tsv", "text", "binary"

_MAGIC = (
    (0, b"PK\x03\x04", ZIP),
    (0, b"PK\x05\x06", ZIP),  # empty zip
    (0, b"PK\x07\x08", ZIP),  # spanned-archive marker
    (0, b"7z\xbc\xaf\x27\x1c", SEVENZIP),
    (0, b"\x1f\x8b", GZIP),
    (0, b"BZh", BZIP2),
    (0, b"\xfd7zXZ\x00", XZ),
    (0, b"\x28\xb5\x2f\xfd", ZSTD),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", OLE),
    (257, b"ustar", TAR),
)

_EXTENSIONS = {
    "zip": ZIP, "docx": ZIP, "xlsx": ZIP, "pptx": ZIP, "docm": ZIP, "xlsm": ZIP, "jar": ZIP,
    "tar": TAR, "7z": SEVENZIP, "pdf": PDF, "doc": OLE, "xls": OLE, "ppt": OLE, "msg": OLE,
    "gz": GZIP, "tgz": GZIP, "bz2": BZIP2, "tbz2": BZIP2, "xz": XZ, "txz": XZ,
    "zst": ZSTD, "br": BROTLI, "eml": MIME, "csv": CSV, "tsv": TSV,
    "txt": TEXT, "text": TEXT, "log": TEXT, "md": TEXT, "json": TEXT, "xml": TEXT,
    "html": TEXT, "htm": TEXT, "js": TEXT,
}  # fmt: skip

_CONTENT_TYPES = {
    "application/zip": ZIP, "application/x-zip-compressed": ZIP, "application/x-tar": TAR,
    "application/x-7z-compressed": SEVENZIP, "application/pdf": PDF,
    "application/msword": OLE, "application/vnd.ms-excel": OLE,
    "application/gzip": GZIP, "application/x-gzip": GZIP, "application/x-bzip2": BZIP2,
    "application/x-xz": XZ, "application/zstd": ZSTD, "application/x-brotli": BROTLI,
    "message/rfc822": MIME, "multipart/form-data": MULTIPART,
    "application/x-www-form-urlencoded": URLENCODED, "text/csv": CSV,
    "text/tab-separated-values": TSV,
}  # fmt: skip
_OOXML_TYPE = "application/vnd.openxmlformats-officedocument."

# A mail message opens with a header such mail software writes.
_MAIL_START = re.compile(
    rb"(?:return-path|received|from|to|subject|date|message-id|mime-version|delivered-to"
    rb"|reply-to|x-[a-z0-9-]+|dkim-signature|arc-[a-z-]+|authentication-results):[ \t]",
    re.IGNORECASE,
)
_MAIL_HEADERS = re.compile(rb"^(?:from|date|subject|mime-version|received):", re.I | re.M)
_FORM_DATA_START = re.compile(rb"--([^\r\n]{1,200})\r?\nContent-Disposition:[ \t]*form-data;", re.I)


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def base_name(path: str) -> str:
    """The last part of a path written with "/" or "\\"."""
    return path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]


def extension(name: str) -> str:
    base = base_name(name)
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def _by_magic(data: bytes) -> str | None:
    for offset, magic, kind in _MAGIC:
        if data.startswith(magic, offset):
            return kind
    if data.lstrip()[:5] == b"%PDF-":  # junk before it is allowed, but then the name must say
        return PDF
    return None


def _looks_like_mail(data: bytes) -> bool:
    head = data[:4096]
    if not _MAIL_START.match(head):
        return False
    headers = head.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return len(_MAIL_HEADERS.findall(headers)) >= 2


def _by_content(data: bytes) -> str | None:
    if _FORM_DATA_START.match(data):
        return MULTIPART
    if _looks_like_mail(data):
        return MIME
    return None


def _by_type(content_type: str) -> str | None:
    mt = media_type(content_type)
    if mt.startswith(_OOXML_TYPE):
        return ZIP
    if mt in _CONTENT_TYPES:
        return _CONTENT_TYPES[mt]
    if mt.startswith("text/") or mt.endswith(("/json", "+json", "/xml", "+xml", "/javascript")):
        return TEXT
    return None


def _control_share(text: str) -> float:
    bad = sum(1 for c in text if (c < " " and c not in "\t\n\r\f\v\x1b") or c == "\ufffd")
    return bad / max(len(text), 1)


# Characters that make up text in the scripts we meet: decoding binary as
# UTF-16 gives mostly characters outside these ranges.
_TEXT_RANGES = re.compile(
    "[\t\n\r\f\x20-\x7e\u00a0-\u024f\u0370-\u04ff\u2000-\u22ff\u3000-\u30ff"
    "\u3400-\u9fff\uac00-\ud7a3\ufeff\uff00-\uffef]"
)


def _text_share(text: str) -> float:
    return len(_TEXT_RANGES.findall(text)) / max(len(text), 1)


def looks_binary(data: bytes) -> bool:
    """Control characters that text does not contain, in any of the encodings we read."""
    sample = data[:8192]
    if b"\x00" not in sample:
        return _control_share(sample.decode("latin-1")) > 0.05
    # Zeros are normal in UTF-16/32 text; decoded right, such text reads as text.
    whole = sample[: len(sample) - len(sample) % 4]
    return all(
        _text_share(whole.decode(codec, errors="replace")) < 0.9
        for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
    )


def sniff(data: bytes, name: str = "", content_type: str = "") -> str:
    """The kind of `data` (one of the constants above)."""
    return (
        _by_magic(data)
        or _EXTENSIONS.get(extension(name))
        or _by_type(content_type)
        or _by_content(data)
        or (BINARY if looks_binary(data) else TEXT)
    )
