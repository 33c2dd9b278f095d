"""What a request carries, as text Parts: host, URL path and query, the decoded body.

    request_parts(request, body, limits) -> list[Part | Problem]
    joined_fields(parts)                 -> Part | None

The body goes through `rules.extract.extract` (forms, multipart files, JSON,
archives, office files …) after its Content-Encoding is undone; a body that
cannot be decoded raises InspectionError, which the addon turns into a block.
Locations built from client-supplied names (form fields, file names) are
redacted by the engine when it reports them.
"""

from __future__ import annotations

from urllib.parse import unquote

from mitmproxy import http

from rules.extract import ExtractionError, Limits, decode_content_encoding, extract
from rules.extract.compress import Decoded
from rules.extract.framing import Hidden
from rules.extract.item import SEPARATOR
from rules.findings import Part, Problem

BODY = "request body"
QUERY = "url query"
JOINED = "form fields joined"
# Only short values are joined: an ID is split across a few small fields; joining
# long free text would make values out of unrelated words' edges.
MAX_JOINED_VALUE = 64


class InspectionError(Exception):
    """The request cannot be inspected; `reason` is in words and names no content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def request_parts(
    request: http.Request,
    body: bytes | None = None,
    limits: Limits = Limits(),  # noqa: B008
) -> list[Part | Problem]:
    """Parts for the URL and the body (`body` overrides the request's own, e.g. when streamed)."""
    raw = request.raw_content if body is None else body
    return url_parts(request.pretty_host, request.path, limits) + (
        body_parts(raw, request.headers, limits) if raw else []
    )


def url_parts(host: str, path: str, limits: Limits) -> list[Part | Problem]:
    """The host (subdomains can carry data too), the decoded path and the query's fields."""
    parts: list[Part | Problem] = [Part("url host", host)]
    path, _, query = path.partition("?")
    if path := unquote(path, errors="replace"):
        parts.append(Part("url path", path))
    if query:
        parts.extend(
            extract(
                query.encode("utf-8", "surrogateescape"),
                content_type="application/x-www-form-urlencoded",
                location=QUERY,
                limits=limits,
            )
        )
    return parts


def body_parts(raw: bytes, headers: http.Headers, limits: Limits) -> list[Part | Problem]:
    decoded = decoded_body(raw, headers, limits)
    parts = extract(
        decoded.content,
        name=upload_filename(headers),
        content_type=headers.get("content-type", ""),
        location=BODY,
        limits=limits,
    )
    return [*parts, *hidden_parts(decoded.hidden, limits)]


def hidden_parts(hidden: tuple[Hidden, ...], limits: Limits) -> list[Part | Problem]:
    """What the Content-Encoding carried beside the body (a gzip file name or comment, a
    zstd skippable frame): the origin receives it too."""
    return [
        part
        for h in hidden
        for part in extract(h.data, location=f"{BODY}{SEPARATOR}{h.place}", limits=limits)
    ]


def decoded_body(raw: bytes, headers: http.Headers, limits: Limits) -> Decoded:
    """The body with its Content-Encoding undone; InspectionError if that fails."""
    encoding = headers.get("content-encoding", "").strip()
    if not encoding or encoding.lower() == "identity":
        return Decoded(raw)
    try:
        return decode_content_encoding(raw, encoding, limits)
    except ExtractionError as err:
        raise InspectionError(f"the request body could not be decoded: {err.reason}") from err


def joined_fields(parts: list[Part | Problem]) -> Part | None:
    """Short form-field values (query, urlencoded or multipart) joined by nothing, in order.

    A value split across fields (id1=110105194912, id2=31002X) is whole here.
    One Part per request: fields of the query and of the body are joined together.
    """
    values = [
        p.text
        for p in parts
        if isinstance(p, Part) and _is_form_field(p.location) and len(p.text) <= MAX_JOINED_VALUE
    ]
    return Part(JOINED, "".join(values)) if len(values) > 1 else None


def _is_form_field(location: str) -> bool:
    last = location.rsplit(SEPARATOR, 1)[-1]
    return last.startswith("form field ") and location.startswith((BODY, QUERY))


def upload_filename(headers: http.Headers) -> str:
    """A raw upload's file name, if the client declared one (Content-Disposition)."""
    disposition = headers.get("content-disposition", "")
    if "filename=" not in disposition:
        return ""
    return disposition.split("filename=", 1)[1].split(";", 1)[0].strip().strip('"')
