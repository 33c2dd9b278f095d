"""Mail messages (.eml, message/rfc822): headers, text bodies, attachments, nested messages.

Bodies are transfer-decoded (base64, quoted-printable) and charset-decoded;
attachments are extracted in turn under "attachment FILENAME" with RFC 2231 /
RFC 2047 names decoded. The fields a person or script wrote in a body part's
own header (Content-Description, X-…) are scanned under "part 1.2 › headers",
numbered as IMAP numbers parts.
"""

from __future__ import annotations

import email.errors
import email.header
import email.policy
import email.utils
import re
import threading
from collections.abc import Iterator
from email.message import Message
from email.parser import BytesParser
from typing import TYPE_CHECKING

from rules.findings import UNINSPECTABLE, Part, Problem

from .charset import decode_text
from .names import labelled_part, names_part

if TYPE_CHECKING:
    from .item import Item
    from .walk import Walk

_HEADERS = ("Subject", "From", "To", "Cc", "Reply-To")  # first, in this order; then the rest
# Fields that carry the addresses a message travels between (what the relay does not
# count as content when they are the message's own) …
ADDRESS_HEADERS = frozenset(
    ("from", "to", "cc", "bcc", "reply-to", "sender", "resent-from", "resent-to", "resent-cc",
     "resent-bcc", "resent-sender", "disposition-notification-to", "return-receipt-to",
     "errors-to", "mail-followup-to", "mail-reply-to")
)  # fmt: skip
# … and fields that mail software writes, not people: routing, signatures, ids, spam
# verdicts, MIME structure (names in Content-* are scanned as file names). Their digits
# and ids-that-look-like-addresses would be findings no person put there; every other
# field (X-anything, Comments, Keywords, Organization, Thread-Topic …) is content.
_MACHINE_HEADERS = frozenset(
    ("received", "x-received", "return-path", "delivered-to", "message-id", "in-reply-to",
     "references", "date", "mime-version", "content-type", "content-transfer-encoding",
     "content-disposition", "content-id", "dkim-signature", "x-google-dkim-signature",
     "domainkey-signature", "authentication-results", "received-spf", "thread-index",
     "x-originating-ip", "list-unsubscribe", "list-id", "feedback-id", "content-length",
     "content-md5", "x-attachment-id")
)  # fmt: skip
_MACHINE_PREFIXES = ("arc-", "x-ms-", "x-microsoft-", "x-forefront-", "x-google-", "x-gm-", "x-qq-")
_MAX_MULTIPART_NESTING = 32  # multipart in multipart; real mail uses three or four
# Parameters of Content-Type and Content-Disposition that mail software sets (the
# names are read as file names); any other one (x-debtor="…") is someone's text.
_STRUCTURAL_PARAMS = frozenset(
    ("charset", "boundary", "name", "filename", "format", "delsp", "type", "start",
     "start-info", "size", "creation-date", "modification-date", "read-date", "method",
     "report-type", "protocol", "micalg", "smime-type", "access-type", "reply-type",
     "differences", "id", "number", "total", "x-unix-mode", "x-mac-type", "x-mac-creator",
     "x-apple-part-url")
)  # fmt: skip
_PARAMETER_FIELDS = ("Content-Type", "Content-Disposition")
_PARAMETER_NAME = re.compile(r";\s*([^\s;=*]+)")  # RFC 2231 pieces (name*0*) share the name
_RFC2231_MARK = re.compile(r"\*(?:\d+\*?)?$")


def _header_text(raw: str) -> str:
    """RFC 2047 decoding of a raw header value, keeping every character of it.

    Deliberately not the policy's structured parsing: it rewrites malformed
    address headers and can drop text that a human would still read.
    """
    if not raw.isascii():  # raw 8-bit bytes (often UTF-8 or GBK), kept as surrogates
        raw = decode_text(raw.encode("utf-8", "surrogateescape"))
    try:
        return str(email.header.make_header(email.header.decode_header(raw)))
    except Exception:  # unknown charsets, broken encoded words: keep the raw text
        return raw


def _header_values(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [_header_text(str(v)) for k, v in msg.raw_items() if k.lower() == wanted]


def _headers(msg: Message, item: Item) -> Iterator[Part]:
    """One Part "mail headers" with a Segment per header line: the usual ones first,
    then every other field a person or their script may have written."""
    location = item.at("mail headers")
    fields = [(name, value) for name in _HEADERS for value in _header_values(msg, name)]
    usual = {name.lower() for name in _HEADERS}
    fields += [
        (name, _header_text(str(value)))
        for name, value in msg.raw_items()
        if (lower := name.lower()) not in usual and _is_content(lower)
    ]
    fields += _written_parameters(msg)
    if part := labelled_part(location, ((name, " ".join(v.split())) for name, v in fields)):
        yield part


def _written_parameters(part: Message) -> list[tuple[str, str]]:
    """("Content-Type; x-debtor", value) for each parameter no mail software sets; a
    regex on the raw field first, so the usual part costs no parameter parsing."""
    found = []
    for field in _PARAMETER_FIELDS:
        raw = part.get(field)
        names = _PARAMETER_NAME.findall(str(raw)) if raw else ()
        if all(name.lower() in _STRUCTURAL_PARAMS for name in names):
            continue
        try:
            params = part.get_params(header=field) or []
        except Exception:  # a malformed field: scan it whole
            params = [("", ""), ("parameters", str(raw))]
        for raw_key, value in params[1:]:  # the first is the type or disposition itself
            key = _RFC2231_MARK.sub("", raw_key)  # filename*, name*0*: filename, name
            if key.lower() in _STRUCTURAL_PARAMS:
                continue
            if isinstance(value, tuple):  # RFC 2231 value the policy left undecoded
                value = email.utils.collapse_rfc2231_value(value)
            if text := _header_text(str(value)).strip():
                found.append((f"{field}; {key}", text))
    return found


def _is_content(name: str) -> bool:
    return name not in _MACHINE_HEADERS and not name.startswith(_MACHINE_PREFIXES)


def _file_names(part: Message) -> list[str]:
    """Content-Disposition's filename, then Content-Type's name if it differs: clients
    show one, but both travel, so a second name is scanned as well."""
    names: list[str] = []
    for read in (part.get_filename, lambda: part.get_param("name")):
        try:
            name = read() or ""
        except Exception:  # a malformed RFC 2231 parameter
            name = ""
        if isinstance(name, tuple):  # RFC 2231 value the policy left undecoded
            name = email.utils.collapse_rfc2231_value(name)
        name = str(name)
        name = _header_text(name) if "=?" in name else name
        if name and name not in names:
            names.append(name)
    return names


def _payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _part_headers(part: Message, number: str, filename: str, item: Item) -> Part | None:
    """The written fields of body part `number`'s own header, or None (the usual part has
    only structural ones: nothing to build). A field that repeats the file name, as
    Outlook's Content-Description does, is left to the attachment names."""
    parameters = _written_parameters(part)
    if not parameters and _MACHINE_HEADERS.issuperset(map(str.lower, part.keys())):
        return None  # only structural fields: their values are not even decoded
    location = item.at(f"part {number} › headers")
    filename = " ".join(filename.split())
    fields = [(n, _header_text(str(v))) for n, v in part.raw_items() if _is_content(n.lower())]
    written = [(name, " ".join(value.split())) for name, value in fields + parameters]
    return labelled_part(location, [(n, t) for n, t in written if t and t != filename])


def _entity(
    part: Message,
    item: Item,
    walk: Walk,
    nesting: int,
    named: list[tuple[str, str]],
    number: str = "",
) -> Iterator[Part | Problem]:
    """Bodies and attachments of `part`, body part `number` ("" for the message itself,
    whose header _headers reads); attachment names are added to `named`."""
    ctype = part.get_content_type()
    names = _file_names(part) if not part.is_multipart() or ctype == "message/rfc822" else []
    filename = names[0] if names else ""
    if number and (headers := _part_headers(part, number, filename, item)):
        yield headers
    if ctype == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            label = f"attachment {filename or 'message'}"
            # a forwarded message's file name is the sender's words too
            named += [(name, item.at(label)) for name in names]
            yield from walk.nested_parsed(
                item, item.at(label), lambda it: _message(inner[0], it, walk)
            )
        return
    if part.is_multipart():
        if nesting >= _MAX_MULTIPART_NESTING:
            reason = f"multipart nested deeper than {_MAX_MULTIPART_NESTING} levels"
            yield Problem(UNINSPECTABLE, item.location, reason)
            return
        for i, sub in enumerate(part.get_payload(), start=1):
            sub_number = f"{number}.{i}" if number else str(i)
            yield from _entity(sub, item, walk, nesting + 1, named, sub_number)
        return
    walk.budget.count_file()
    charset = part.get_content_charset() or ""
    is_body = (
        ctype.startswith("text/")
        and not filename
        and part.get_content_disposition() != "attachment"
    )
    if is_body:
        text = decode_text(_payload(part), declared=charset)
        if text:
            yield Part(item.at(f"mail body {ctype}"), text)
        return
    content_type = f"{ctype}; charset={charset}" if charset else ctype
    location = item.at(f"attachment {filename or f'unnamed {ctype}'}")
    named += [(name, location) for name in names]
    yield from walk.nested(item, _payload(part), filename, content_type, location)


def _message(msg: Message, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    yield from _headers(msg, item)
    named: list[tuple[str, str]] = []
    yield from _entity(msg, item, walk, 0, named)
    if names := names_part(item.at("attachment names"), named):
        yield names


def extract_mail(data: bytes, item: Item, walk: Walk) -> Iterator[Part | Problem]:
    yield from _message(parse_mail(data), item, walk)


# The first empty line: where the header section of a message ends.
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_BARE_CR = re.compile(rb"\r(?!\n)")  # the feed parser ends a line there too
_kept = threading.local()  # (bytes, Message) kept on this thread for its next look


def parse_mail(data: bytes, *, keep: bool = False) -> Message:
    """`data` parsed with compat32.

    keep=True keeps the Message for the next call with the same bytes object on this
    thread, which gets it (and drops it unless it keeps it too): the relay's judge looks at
    a message's structure, then extracts it, one parse. The entry holds a reference to
    `data`, so the identity test cannot meet another message.

    compat32: the structure and raw header values are all extraction reads (header text is
    decoded by _header_text); the default policy's header objects, built for every
    Content-Type lookup, were half the cost of reading a 10 KiB mail. A message that is not
    multipart gets its body whole: the feed parser would otherwise walk it line by line only
    to join the lines again.
    """
    kept = getattr(_kept, "parsed", None)
    if kept is not None and kept[0] is data:
        if not keep:
            _kept.parsed = None
        return kept[1]
    msg = _single_part(data) or BytesParser(policy=email.policy.compat32).parsebytes(data)
    if keep:
        _kept.parsed = (data, msg)
    return msg


def forget_parse() -> None:
    """Drop what parse_mail(keep=True) kept on this thread."""
    _kept.parsed = None


def _single_part(data: bytes) -> Message | None:
    end = _HEAD_END.search(data)
    if end is None or _BARE_CR.search(data, 0, end.start()):
        return None  # no blank line, or one the feed parser may see earlier (a bare CR)
    head = BytesParser(policy=email.policy.compat32).parsebytes(data[: end.end()], True)
    if head.defects or head.get_content_maintype() in ("multipart", "message"):
        return None  # the feed parser's own reading, defects and all
    head.set_payload(data[end.end() :].decode("ascii", "surrogateescape"))
    return head


def all_text(msg: Message) -> bool:
    """Every leaf of `msg` is a text body: text/*, no file name, not an attachment, no
    nested message — nothing extraction would open as a file (an archive expands)."""
    try:
        for part in msg.walk():
            ctype = part.get_content_type()
            if ctype.startswith("message/"):
                return False
            if part.is_multipart():
                continue
            if not ctype.startswith("text/") or part.get_content_disposition() == "attachment":
                return False
            if part.get_filename() or part.get_param("name"):
                return False
    except Exception:  # a malformed parameter: not plain text, then
        return False
    return True
