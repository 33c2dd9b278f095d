"""A message with some values masked, in the parts where rewriting is safe.

    mask_message(raw, find) -> bytes          (raises CannotTransform)
    replace_spans(text, findings) -> str
    flatten(message) -> bytes

`find(text)` returns the findings to mask in one piece of text (the judge
scans with the engine and keeps the values the Verdict names). Rewritten:
the Subject, text/plain and text/html parts (bodies or attachments), CSV,
TSV and plain-text attachments, also inside forwarded messages (whose
Subject, From, To, Cc and Reply-To are masked too). Each changed
part is re-encoded in its own charset (BOM kept) and its own transfer
encoding (base64, quoted-printable, 7bit/8bit); every other byte of the
message goes out as it came. Binary formats (xlsx, pdf, zip, …) are left
alone: the judge scans the result again and refuses it if a value to mask
survived anywhere.
"""

from __future__ import annotations

import base64
import email.quoprimime
import io
from collections.abc import Callable, Sequence
from email.generator import BytesGenerator
from email.message import Message

from mailrelay.judge_inspect import MAIL_POLICY, filename, parse, payload
from rules.extract.charset import choose_codec
from rules.extract.sniff import looks_binary
from rules.findings import Finding
from rules.masking import CannotMask, replace_spans

Find = Callable[[str], Sequence[Finding]]

TEXT_TYPES = frozenset(
    (
        "text/plain",
        "text/html",
        "text/csv",
        "text/x-csv",
        "text/comma-separated-values",
        "text/tab-separated-values",
        "application/csv",
        "application/x-csv",
    )
)
TEXT_EXTENSIONS = (".csv", ".tsv", ".txt")
# Rewritten in forwarded messages; the message's own From/To/Cc stay as they are
# (their addresses are not findings, and a value in a display name bounces).
CannotTransform = CannotMask  # the message cannot be rewritten safely (mask or encrypt)
NESTED_HEADERS = ("subject", "from", "to", "cc", "reply-to")


def mask_message(raw: bytes, find: Find) -> bytes:
    """`raw` with the values `find` names masked where the format allows (else unchanged)."""
    message = parse(raw)
    changed = _mask_headers(message, ("subject",), find)
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            for inner in part.get_payload():
                changed |= _mask_headers(inner, NESTED_HEADERS, find)
        elif not part.is_multipart() and _rewritable(part):
            changed |= _mask_part(part, find)
    return flatten(message) if changed else raw


def flatten(message: Message) -> bytes:
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=MAIL_POLICY).flatten(message)
    return out.getvalue()


def _mask_headers(message: Message, names: tuple[str, ...], find: Find) -> bool:
    changed = False
    for name in names:
        values = [str(v) for v in message.get_all(name, [])]
        masked = [replace_spans(v, find(v)) for v in values]
        if masked == values:
            continue
        del message[name]
        for value in masked:
            message[name] = value
        changed = True
    return changed


def _rewritable(part: Message) -> bool:
    if part.get_content_type() in TEXT_TYPES:
        return True
    name = filename(part).lower()
    return name.endswith(TEXT_EXTENSIONS) and not looks_binary(payload(part)[:65536])


def _mask_part(part: Message, find: Find) -> bool:
    data = payload(part)
    if not data:
        return False
    where = f"the {part.get_content_type()} part"
    declared = part.get_param("charset")
    codec, skip = choose_codec(data, declared if isinstance(declared, str) else "")
    try:
        text = data[skip:].decode(codec)
        exact = text.encode(codec) == data[skip:]
    except (UnicodeError, LookupError) as err:
        raise CannotTransform(f"{where} is not text in {codec}") from err
    if not exact:
        raise CannotTransform(f"{where} cannot be written back exactly in {codec}")
    masked = replace_spans(text, find(text))
    if masked == text:
        return False
    try:
        new = data[:skip] + masked.encode(codec)
    except UnicodeError as err:
        raise CannotTransform(f"the masked text of {where} cannot be written in {codec}") from err
    cte = str(part.get("content-transfer-encoding", "7bit")).strip().lower()
    if cte == "base64":
        body = base64.encodebytes(new).decode("ascii")
    elif cte == "quoted-printable":
        body = email.quoprimime.body_encode(new.decode("latin-1"), maxlinelen=76, eol="\n")
    elif cte in ("7bit", "8bit", "binary", ""):
        if cte == "7bit" and not new.isascii():
            raise CannotTransform(f"the masked text of {where} is not 7-bit")
        # the parser's own representation of raw bytes: the generator writes them back as bytes
        body = new.decode("ascii", "surrogateescape")
    else:
        raise CannotTransform(f"{where} has an unknown transfer encoding")
    part.set_payload(body)
    return True
