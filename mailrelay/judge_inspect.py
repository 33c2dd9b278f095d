"""One message, inspected: every finding the policy needs, and the parsed message.

    inspect_message(raw, envelope, engine, services) -> Inspection

The content is read by the engine's extraction (`rules.extract`, as
message/rfc822: headers, subject, text parts, attachments, nested messages,
archives) and scanned by the engine. Around it, the judge adds what only
mail has:

- oversized headers are refused before any parsing (Python's parser is
  quadratic in a structured field's size): one `uninspectable` finding and
  nothing parsed;
- malformed MIME (a multipart without its boundary, a missing header/body
  separator, broken base64, …) and text parts whose charset is unknown or
  does not match their bytes become `uninspectable` findings: what the
  relay read may not be what the recipient's mail program shows;
- the addresses the mail is sent between are not content: e-mail findings
  in the top-level From/To/Cc/Reply-To and any finding of the envelope's own
  addresses are dropped (otherwise every mail to Gmail would carry "contact
  data to personal webmail": its own To header).

Extraction never raises; the caller still treats any exception as a block.
"""

from __future__ import annotations

import codecs
import email.errors
import email.header
import email.policy
import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesParser

from mailrelay.plan import Envelope
from mailrelay.services import HeaderLimits, Services
from rules.engine import Engine
from rules.extract import extract
from rules.extract.charset import codec_for
from rules.extract.limits import size_text
from rules.extract.mime import ADDRESS_HEADERS, parse_mail
from rules.findings import UNINSPECTABLE, Finding, Part, Problem

# Parsing and writing back: CRLF, source headers kept exactly as they came.
MAIL_POLICY = email.policy.SMTP.clone(refold_source="none")

# The message's own address fields, lower-cased (a field's location keeps its spelling).
ADDRESS_LOCATIONS = frozenset(f"mail headers › {name}" for name in ADDRESS_HEADERS)

# Defects that mean the structure we read may differ from what a mail program shows.
_STRUCTURAL = (
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
    email.errors.InvalidMultipartContentTransferEncodingDefect,
    email.errors.MissingHeaderBodySeparatorDefect,
    email.errors.FirstHeaderLineIsContinuationDefect,
    email.errors.InvalidBase64PaddingDefect,
    email.errors.InvalidBase64CharactersDefect,
    email.errors.InvalidBase64LengthDefect,
)
_DEFECT_WORDS = {
    "NoBoundaryInMultipartDefect": "a multipart part without a boundary",
    "StartBoundaryNotFoundDefect": "a multipart part whose boundary never appears",
    "MultipartInvariantViolationDefect": "a multipart part without subparts",
    "InvalidMultipartContentTransferEncodingDefect": "a multipart part with a transfer encoding",
    "MissingHeaderBodySeparatorDefect": "a header section not ended by an empty line",
    "FirstHeaderLineIsContinuationDefect": "a header section starting with a continuation line",
    "InvalidBase64PaddingDefect": "broken base64 (padding)",
    "InvalidBase64CharactersDefect": "broken base64 (characters outside the alphabet)",
    "InvalidBase64LengthDefect": "broken base64 (length)",
}
_HEAD_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class Inspection:
    findings: tuple[Finding, ...]
    message: Message | None  # structure only (compat32); None: refused unparsed
    problems: tuple[str, ...] = ()  # what the judge itself found uninspectable, in words


def parse(raw: bytes) -> EmailMessage:
    """For rewriting: header objects, CRLF, source headers kept as they came."""
    return BytesParser(policy=MAIL_POLICY).parsebytes(raw)  # type: ignore[return-value]


def parse_structure(raw: bytes) -> Message:
    """For looking: parts, parameters, defects. The extraction that follows reads the same
    Message (rules.extract.mime.parse_mail keeps it for that next look): one parse."""
    return parse_mail(raw, keep=True)


def inspect_message(
    raw: bytes, envelope: Envelope, engine: Engine, services: Services
) -> Inspection:
    too_big = header_problem(raw, services.headers)
    if too_big:
        problem = Problem(UNINSPECTABLE, "mail headers", too_big)
        return Inspection(tuple(engine.scan_parts([problem])), None, (too_big,))
    message = parse_structure(raw)
    problems = [*structure_problems(message), *charset_problems(message)]
    items: list[Part | Problem] = list(
        extract(raw, content_type="message/rfc822", limits=services.limits)
    )
    items += [Problem(UNINSPECTABLE, where, why) for where, why in problems]
    findings = without_addressing(engine, engine.scan_parts(items), envelope)
    return Inspection(tuple(findings), message, tuple(why for _, why in problems))


def scan_message(
    raw: bytes, envelope: Envelope, engine: Engine, services: Services
) -> list[Finding]:
    """The findings of a message the relay wrote itself (masked, encrypted): to re-check it."""
    items = extract(raw, content_type="message/rfc822", limits=services.limits)
    return without_addressing(engine, engine.scan_parts(items), envelope)


def header_problem(raw: bytes, limits: HeaderLimits) -> str | None:
    """Why the headers are refused unparsed, or None. Linear in the message size."""
    if raw.startswith((b"\r\n", b"\n")):
        head = b""
    else:
        m = _HEAD_END.search(raw)
        head = raw[: m.start()] if m else raw
    if len(head) > limits.max_bytes:
        return (
            f"the header section ({size_text(len(head))}) is larger than "
            f"{size_text(limits.max_bytes)}"
        )
    fields = 0
    size = 0
    longest = 0
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            size += len(line) + 1
        else:
            fields += 1
            size = len(line) + 1
        longest = max(longest, size)
    if fields > limits.max_fields:
        return f"the message has {fields} header fields, more than {limits.max_fields}"
    if longest > limits.max_field_bytes:
        return (
            f"a header field of {size_text(longest)} is longer than "
            f"{size_text(limits.max_field_bytes)}"
        )
    total = 0
    for n in _content_fields(raw):
        total += n
        if n > limits.max_content_field_bytes:
            return (
                f"a Content-* header field of {size_text(n)} is longer than "
                f"{size_text(limits.max_content_field_bytes)}"
            )
        if total > limits.max_content_bytes:
            return (
                f"the Content-* header fields together are larger than "
                f"{size_text(limits.max_content_bytes)}"
            )
    return None


def _content_fields(raw: bytes) -> Iterator[int]:
    """The size of every line starting "Content-" anywhere, with its continuation lines.

    Nested parts' headers cannot be told from body text without parsing;
    a text line that merely looks like one is counted too (harmless: a
    body line is rarely 8 KiB of folded text).
    """
    low = raw.lower()
    pos = 0 if low.startswith(b"content-") else low.find(b"\ncontent-")
    while pos >= 0:
        start = pos + (low[pos] == 0x0A)
        end = low.find(b"\n", start)
        while end >= 0 and low[end + 1 : end + 2] in (b" ", b"\t"):
            end = low.find(b"\n", end + 1)
        if end < 0:
            yield len(raw) - start
            return
        yield end + 1 - start
        pos = low.find(b"\ncontent-", end)


def structure_problems(message: Message) -> list[tuple[str, str]]:
    """(location, reason) for each kind of malformed MIME, once per kind."""
    seen: dict[str, str] = {}
    for part in message.walk():
        if not part.is_multipart():
            try:
                part.get_payload(decode=True)  # base64 defects are found while decoding
            except Exception:
                seen.setdefault("undecodable", "a part whose transfer encoding cannot be decoded")
        for defect in part.defects:
            if isinstance(defect, _STRUCTURAL):
                name = type(defect).__name__
                seen.setdefault(name, _DEFECT_WORDS.get(name, name))
    return [("message structure", f"malformed MIME: {why}") for why in seen.values()]


def charset_problems(message: Message) -> list[tuple[str, str]]:
    """Text bodies whose declared charset is unknown or does not fit their bytes."""
    out = []
    for part in message.walk():
        if not is_body(part):
            continue
        declared = part.get_param("charset")
        if not isinstance(declared, str) or not declared.strip():
            continue  # no charset given: read as whatever it looks like
        where = f"mail body {part.get_content_type()}"
        label = declared.strip()[:40]
        codec = _strict_codec(label)
        if codec is None:
            out.append((where, f"a text part declares an unknown charset ({_printable(label)})"))
            continue
        try:
            payload(part).decode(codec)
        except UnicodeDecodeError:
            why = f"a text part is not valid {_printable(label)} text (broken charset)"
            out.append((where, why))
    return out


def without_addressing(
    engine: Engine, findings: list[Finding], envelope: Envelope
) -> list[Finding]:
    """Drop the addresses the message is sent between: they are not content."""
    own = "\n".join(a for a in (envelope.mail_from, *envelope.rcpt_tos) if a)
    own_hashes = {f.value_hash for f in engine.scan_text(own) if f.detector == "email"}
    return [
        f
        for f in findings
        if not (
            f.detector == "email"
            and (
                f.location.lower() in ADDRESS_LOCATIONS
                or (f.value_hash and f.value_hash in own_hashes)
            )
        )
    ]


def is_body(part: Message) -> bool:
    """A text part shown as the message (the same test as rules.extract.mime)."""
    return (
        not part.is_multipart()
        and part.get_content_type().startswith("text/")
        and not filename(part)
        and part.get_content_disposition() != "attachment"
    )


def filename(part: Message) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
        if isinstance(name, tuple):  # an RFC 2231 value left encoded
            name = email.utils.collapse_rfc2231_value(name)
    except Exception:  # a malformed RFC 2231 parameter
        return ""
    return name if isinstance(name, str) else ""


def header_text(message: Message, name: str) -> str:
    """A header's value as a person reads it (RFC 2047 decoded, unfolded); "" if unreadable."""
    try:
        raw = message.get(name)
        if raw is None:
            return ""
        if isinstance(raw, str):
            raw = str(email.header.make_header(email.header.decode_header(raw)))
        return " ".join(str(raw).split())
    except Exception:  # unknown charset, broken encoded word
        return ""


def payload(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _strict_codec(label: str) -> str | None:
    """The codec a charset label is read with; "us-ascii" means ASCII here, not Windows-1252.

    (rules.extract reads an ASCII label as Windows-1252, as browsers do; but
    8-bit text labelled ASCII is mislabelled, and a mail program may show
    it as something else than what was inspected.)
    """
    codec = codec_for(label)
    if codec is None:
        return None
    try:
        real = codecs.lookup(label.strip().strip("\"'").lower()).name
    except LookupError:
        return codec
    return "ascii" if real == "ascii" else codec


def _printable(label: str) -> str:
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in label)
