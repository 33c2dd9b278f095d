"""Judging a request body that mitmproxy streams, without holding it whole.

    StreamedBody(facts, engine, limits, outcome, hold=…)   the `flow.request.stream` callable

mitmproxy calls it with each chunk of the body as it arrives and once with
b"" at the end; what it returns goes upstream. The caller (through
`outcome.stop`) records one event and acts on a block: with
`proxy.held_stream` driving the layer, the request head is not upstream before
the first bytes returned here, and a block is answered with the block page
where the client's request can still be answered; otherwise the flow is killed
and the upstream connection cut.

Phases:

1. *Hold* — up to `hold` bytes (the buffering limit: mitmproxy's
   `stream_large_bodies`) nothing is forwarded. A body that ends there is judged
   whole by `outcome.whole`, exactly as a buffered body is (extraction, joined
   form fields, masking). A body declared larger skips this phase.
2. *Sniff* — the Content-Encoding is undone incrementally
   (`rules.stream.ContentDecoder`, with the expansion ratio limit) and the
   first SNIFF bytes of the decoded body say what it is.
3. *Stream* — text, JSON, forms, CSV, multipart and unknown binary (read as
   UTF-8 with errors replaced, as the engine reads bytes) are scanned by a
   `BytesStream`. After every chunk the findings so far are judged
   (`outcome.evaluate`); a verdict that holds stops the body mid-stream,
   otherwise the bytes known to be clean go upstream and the rest stays held.
   Multipart parts that are containers (zip/office/7z/pdf/compressed/mail, by
   magic, name or type) are collected to a temporary file, extracted with
   `rules.extract` when the part ends and judged before anything from the part
   start on is forwarded.
4. *Container* — a body that is itself a container cannot be scanned as a
   stream: it is held whole (spilling to a temporary file) and judged by
   `outcome.whole` at the end. Past `limits.max_input_bytes` it cannot be
   opened for inspection and is refused at once (fail closed).

Which raw bytes may go upstream (the held-back tail). The scanner reports,
through `safe_offset`, the character offset before which every finding has
been reported. Two maps carry that back to raw bytes:

- decoded bytes → characters: a *mark* is recorded each time decoded bytes
  are consumed, with the characters they must wait for. Text marks wait for
  the characters decoded so far plus BytesStream.PENDING_CHARS (a character
  split across chunks is still inside the charset decoder); a container part's
  mark is recorded only once the part has been judged. Decoded bytes still
  held by the multipart splitter or the sniffer have no mark yet.
- raw bytes → decoded bytes: a *checkpoint* (raw end, decoded end) is recorded
  after each raw piece is fed. A compressed stream may swallow input before
  producing its output (a Huffman code cut in two, a zstd block not yet whole;
  `ContentDecoder.pending` bounds it), so raw bytes up to checkpoint k go
  upstream only when the checkpoint at least `pending` raw bytes later has
  all its decoded output judged. For identity encoding `pending` is 0 and the
  map is exact.

So no byte of a value that is later found has gone upstream before the
findings were judged; what is held is about one scan step of text (plus one
chunk and `pending`), whatever the body's size.

Masking cannot happen mid-stream: values to mask may lie in bytes already
forwarded under an earlier verdict, and a masked form need not have the
value's length in the encoded body. A mask verdict on a streamed body
therefore blocks, saying why. (Bodies that end within the hold phase are
masked as buffered ones are.)

What is not done: form fields are not joined across fields (the buffered
path's split-value check), and container parts and container bodies are
extracted on the event loop (mitmproxy calls the stream callable
synchronously and sends the body right after it returns), within the
extraction's own time budget.
"""

from __future__ import annotations

import codecs
import logging
import re
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import IO, Protocol

from proxy.request_content import BODY, hidden_parts
from rules.engine import Engine
from rules.extract import extract
from rules.extract.charset import choose_codec
from rules.extract.framing import Hidden
from rules.extract.item import SEPARATOR
from rules.extract.limits import ExtractionError, Limits, size_text
from rules.extract.sniff import (
    BINARY,
    BROTLI,
    BZIP2,
    GZIP,
    MIME,
    MULTIPART,
    OLE,
    PDF,
    SEVENZIP,
    TAR,
    XZ,
    ZIP,
    ZSTD,
    sniff,
)
from rules.extract.text import charset_param
from rules.findings import Finding
from rules.policy import Action, Policy, Verdict
from rules.stream import STEP, WINDOW, BytesStream, ContentDecoder

log = logging.getLogger(__name__)

SNIFF = 8 * 1024  # decoded bytes looked at before deciding what a body or part is
PIECE = 64 * 1024  # raw bytes fed to the decoder between two checkpoints
SPILL = 8 * 2**20  # raw bytes held in memory beyond this go to a temporary file
MAX_PART_HEADERS = 16 * 1024
# Findings kept per detector: beyond the policy's largest count condition,
# more distinct values cannot change a verdict.
MIN_KEPT = 100

KINDS = {
    ZIP: "zip archive",
    TAR: "tar archive",
    SEVENZIP: "7z archive",
    PDF: "PDF document",
    OLE: "legacy Office document",
    GZIP: "gzip file",
    BZIP2: "bzip2 file",
    XZ: "xz file",
    ZSTD: "zstd file",
    BROTLI: "brotli file",
    MIME: "mail message",
}
CONTAINERS = frozenset(KINDS)
HOLDS = (Action.BLOCK, Action.QUARANTINE)

_BOUNDARY = re.compile(r"""boundary\s*=\s*(?:"([^"]{1,200})"|([^;\s]{1,200}))""", re.IGNORECASE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_DISPOSITION_PARAM = re.compile(r"""\b(name|filename)\s*=\s*(?:"([^"]*)"|([^;\s]*))""", re.I)
_CONTENT_TYPE = re.compile(r"^content-type:[ \t]*(.*?)[ \t]*$", re.I | re.M)
_DISPOSITION = re.compile(r"^content-disposition:[ \t]*(.*?)[ \t]*$", re.I | re.M)


@dataclass(frozen=True)
class BodyFacts:
    """What the request headers say about the body."""

    encoding: str = ""  # Content-Encoding
    content_type: str = ""
    filename: str = ""  # from Content-Disposition, if the client named the upload
    declared: int | None = None  # Content-Length; None when unknown (chunked, HTTP/2)


class Outcome(Protocol):
    """What the addon does with the judgements (it knows the flow, the policy, the record)."""

    def evaluate(self, findings: tuple[Finding, ...]) -> Verdict: ...

    def whole(self, raw: bytes, detail: str) -> bytes | None:
        """Judge the whole body as a buffered one; the bytes to send, or None (stopped)."""

    def stop(self, verdict: Verdict, findings: tuple[Finding, ...], detail: str) -> None:
        """Record the verdict that stops the body and kill the flow."""

    def finish(self, verdict: Verdict, findings: tuple[Finding, ...], detail: str) -> None:
        """Record the verdict on a body that was let through (if it matters)."""


class Stopped(Exception):
    def __init__(self, verdict: Verdict, detail: str) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict
        self.detail = detail


class StreamedBody:
    HOLD, SNIFF, STREAM, CONTAINER, DONE = "hold", "sniff", "stream", "container", "done"

    def __init__(
        self,
        facts: BodyFacts,
        engine: Engine,
        limits: Limits,
        outcome: Outcome,
        *,
        hold: int,
        seed: Iterable[Finding] = (),
        kept: int = MIN_KEPT,
        spill: int = SPILL,
        step: int = STEP,
        window: int = WINDOW,
    ) -> None:
        self.facts = facts
        self._engine = engine
        self._limits = limits
        self._outcome = outcome
        self._hold = hold
        self._sizes = {"step": step, "window": window}
        self._raw = RawHold(spill)
        self._found = FindingSet(kept, seed)
        self.received = 0  # raw bytes received
        self.sent = 0  # raw bytes forwarded
        self._fed = 0  # raw bytes fed to the decoder
        self._checkpoints: deque[tuple[int, int]] = deque()  # (raw end, decoded end)
        self._marks: deque[tuple[int, int]] = deque()  # (decoded end, characters to wait for)
        self._last_wait = 0
        self._judged = 0  # decoded bytes whose findings have all been judged
        self._consumed = 0  # decoded bytes handed to the scanner or a container part
        self._decoder: ContentDecoder | None = None
        self._head: bytearray | None = bytearray()
        self._text: BytesStream | None = None
        self._parts: MultipartSplitter | None = None
        self._file: FilePart | None = None
        self.kind = ""
        self.phase = self.HOLD
        if facts.declared is not None and facts.declared > hold:
            self._start()

    # -- what mitmproxy calls --------------------------------------------------------------

    def __call__(self, chunk: bytes) -> list[bytes]:
        """The bytes to send upstream now, as a list: mitmproxy writes an empty bytes
        object as an empty chunk, which in a chunked body is its end."""
        if self.phase == self.DONE:
            return []
        try:
            out = self._chunk(chunk) if chunk else self._end()
        except Stopped as stop:
            out = self._stop(stop.verdict, stop.detail)
        except ExtractionError as err:
            why = f"the streamed request body cannot be inspected: {err.reason}"
            out = self._stop(Verdict().failed(why), self._where())
        except Exception as err:  # fail closed; the log names the error type, not content
            log.exception("streamed inspection failed")
            why = f"inspection failed ({type(err).__name__})"
            out = self._stop(Verdict().failed(why), self._where())
        return [out] if out else []

    @property
    def held(self) -> int:
        """Raw bytes received and not (yet) forwarded."""
        return self._raw.size

    @property
    def buffered(self) -> int:
        """Everything held in memory: raw bytes, decoded bytes not yet scanned, text."""
        return (
            self._raw.in_memory
            + (len(self._head) if self._head else 0)
            + (self._parts.buffered if self._parts else 0)
            + (self._text.buffered * 4 if self._text else 0)  # a str costs up to 4 bytes/char
        )

    # -- phases ----------------------------------------------------------------------------

    def _chunk(self, chunk: bytes) -> bytes:
        self.received += len(chunk)
        self._raw.append(chunk)
        if self.phase == self.HOLD:
            if self.received <= self._hold:
                return b""
            self._start()
        elif self.phase == self.CONTAINER:
            self._check_container()
            return b""
        else:
            self._feed(chunk)
        if self.phase != self.CONTAINER:
            self._judge(final=False)
        return self._release()

    def _start(self) -> None:
        """Leave the hold phase: decode what is held, then whatever comes."""
        self.phase = self.SNIFF
        self._decoder = ContentDecoder(self.facts.encoding, self._limits, aside=self._aside)
        for piece in self._raw.pieces():
            self._feed(piece)
            if self.phase == self.CONTAINER:
                break

    def _end(self) -> bytes:
        if self.phase == self.HOLD:
            return self._whole("streamed body held back until judged whole")
        if self.phase != self.CONTAINER:
            assert self._decoder is not None
            self._decoder.close(self._decoded)
            if self.phase == self.SNIFF:
                self._sniffed()
        if self.phase == self.CONTAINER:
            self._check_container()
            return self._whole(f"streamed {KINDS[self.kind]} held back until judged whole")
        if self._parts is not None:
            self._parts.close()
        assert self._text is not None
        self._found.add(self._text.close())
        verdict = self._judge(final=True)
        self.phase = self.DONE
        self._outcome.finish(
            verdict,
            self._found.items(),
            f"streamed body of {_bytes(self.received)} judged as a stream",
        )
        out = self._raw.take_all()
        self.sent += len(out)
        return out

    def _whole(self, detail: str) -> bytes:
        self.phase = self.DONE
        raw = self._raw.take_all()
        out = self._outcome.whole(raw, detail)
        if out:
            self.sent += len(out)
        return out or b""

    def _stop(self, verdict: Verdict, detail: str) -> bytes:
        self.phase = self.DONE
        self._raw.close()
        if self._file is not None:
            self._file.close()
        self._outcome.stop(verdict, self._found.items(), detail)
        return b""

    def _where(self) -> str:
        return (
            f"stopped after {_bytes(self.received)} of the request body; "
            f"{_bytes(self.sent)} had gone upstream, judged clean"
        )

    # -- decoding and routing --------------------------------------------------------------

    def _feed(self, raw: bytes) -> None:
        assert self._decoder is not None
        for i in range(0, len(raw), PIECE):
            piece = raw[i : i + PIECE]
            self._decoder.feed(piece, self._decoded)
            self._fed += len(piece)
            self._checkpoints.append((self._fed, self._decoder.produced))
            if self.phase == self.CONTAINER:
                return  # no need to decode: the whole body is judged at its end

    def _decoded(self, data: bytes) -> None:
        if self.phase == self.CONTAINER:
            return
        if self._head is not None:
            self._head += data
            if len(self._head) >= SNIFF:
                self._sniffed()
            return
        self._route(data)

    def _sniffed(self) -> None:
        head = bytes(self._head or b"")
        self._head = None
        facts = self.facts
        self.kind = sniff(head, facts.filename, facts.content_type)
        if self.kind in CONTAINERS:
            self.phase = self.CONTAINER
            self._checkpoints.clear()
            self._check_container()
            return
        self.phase = self.STREAM
        codec = "utf-8" if self.kind == BINARY else _codec(head, facts.content_type)
        self._text = BytesStream(self._engine, BODY, codec, **self._sizes)
        boundary = _BOUNDARY.search(facts.content_type) if self.kind == MULTIPART else None
        if boundary:
            delimiter = b"--" + (boundary.group(1) or boundary.group(2)).encode("latin-1")
            self._parts = MultipartSplitter(delimiter, self)
        self._route(head)

    def _route(self, data: bytes) -> None:
        if self._parts is not None:
            self._parts.feed(data)
        else:
            self.text(data)

    def _check_container(self) -> None:
        limit = self._limits.max_input_bytes
        size = self.facts.declared if self.facts.declared is not None else self.received
        if size > limit:
            what = KINDS[self.kind]
            why = (
                f"a {size_text(size)} {what} is larger than the {size_text(limit)} "
                "that can be opened for inspection"
                if self.facts.declared is not None
                else f"a {what} of more than {size_text(limit)} is larger than can be "
                "opened for inspection"
            )
            raise Stopped(Verdict().failed(why), self._where())

    # -- what the splitter hands on (also used for bodies that are text) -------------------

    def text(self, data: bytes) -> None:
        assert self._text is not None
        self._found.add(self._text.feed(data))
        self._consumed += len(data)
        self._mark(self._text.chars + BytesStream.PENDING_CHARS)

    def file_start(self, name: str, field: str, content_type: str, kind: str) -> None:
        self._file = FilePart(name, field, content_type, kind)

    def file_data(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)
        self._consumed += len(data)
        limit = self._limits.max_input_bytes
        if self._file.size > limit:
            what = f"{KINDS[self._file.kind]} {self._engine.redact(self._file.name)!r}"
            why = (
                f"the uploaded {what} is larger than the {size_text(limit)} "
                "that can be opened for inspection"
            )
            raise Stopped(Verdict().failed(why), self._where())

    def file_end(self) -> None:
        assert self._file is not None
        part, self._file = self._file, None
        location = f"{BODY}{SEPARATOR}form field {part.field}{SEPARATOR}file {part.name}"
        data = part.read()
        parts = extract(
            data, name=part.name, content_type=part.content_type, location=location,
            limits=self._limits,
        )  # fmt: skip
        self._found.add(self._engine.scan_parts(parts))
        self._mark(self._last_wait)  # judged with the next evaluation, before any release

    def _aside(self, hidden: Hidden) -> None:
        """What the Content-Encoding carries beside the body (a gzip header's name or
        comment, a zstd skippable frame): found before the bytes that hold it are fed
        on, so judged before they can be released."""
        self._found.add(self._engine.scan_parts(hidden_parts((hidden,), self._limits)))

    # -- judging and releasing -------------------------------------------------------------

    def _mark(self, wait: int) -> None:
        self._last_wait = max(self._last_wait, wait)
        self._marks.append((self._consumed, self._last_wait))

    def _judge(self, final: bool) -> Verdict:
        if not (final or self._found.changed):
            return Verdict(action=Action.ALLOW)
        verdict = self._outcome.evaluate(self._found.items())
        self._found.changed = False
        when = (
            f"blocked at the end of a streamed body of {_bytes(self.received)}; "
            f"{_bytes(self.sent)} had gone upstream, judged clean"
            if final
            else f"blocked mid-stream after {_bytes(self.received)} of the request body; "
            f"{_bytes(self.sent)} had gone upstream, judged clean"
        )
        if verdict.action in HOLDS:
            raise Stopped(verdict, when)
        if verdict.action is Action.MASK:
            why = "values to mask were found in a streamed body, which cannot be rewritten"
            blocked = replace(
                verdict,
                action=Action.BLOCK,
                reason=f"{verdict.reason}; blocked because {why}",
                findings=verdict.findings or verdict.mask,
            )
            raise Stopped(blocked, f"{when}; {why}")
        return verdict

    def _release(self) -> bytes:
        safe = self._text.safe_offset if self._text is not None else 0
        while self._marks and self._marks[0][1] <= safe:
            self._judged = self._marks.popleft()[0]
        pending = self._decoder.pending if self._decoder is not None else 0
        upto = self.sent
        checkpoints = self._checkpoints
        while checkpoints:
            raw_end = checkpoints[0][0]
            later = next((d for r, d in checkpoints if r >= raw_end + pending), None)
            if later is None or later > self._judged:
                break
            upto = raw_end
            checkpoints.popleft()
        out = self._raw.release(upto - self.sent)
        self.sent = upto
        return out


class FindingSet:
    """The findings so far, one per distinct value, at most `kept` per detector.

    The policy counts distinct values (detector, hash or location); with more
    kept than its largest count condition, dropping the rest changes no verdict.
    """

    def __init__(self, kept: int, seed: Iterable[Finding] = ()) -> None:
        self._kept = kept
        self._items: dict[tuple[str, str], Finding] = {}
        self._per_detector: dict[str, int] = {}
        self.changed = False
        self.add(seed)

    def add(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            key = (f.detector, f.value_hash or f.location)
            if key in self._items or self._per_detector.get(f.detector, 0) >= self._kept:
                continue
            self._items[key] = f
            self._per_detector[f.detector] = self._per_detector.get(f.detector, 0) + 1
            self.changed = True

    def items(self) -> tuple[Finding, ...]:
        return tuple(self._items.values())


def kept_for(policy: Policy) -> int:
    """Distinct values per detector worth keeping for `policy` (see FindingSet)."""
    counts = [MIN_KEPT]
    counts += [getattr(r.when, "min_distinct", 0) or 0 for r in policy.rules]
    counts += [getattr(c, "bulk", 0) or 0 for c in policy.classes]
    return max(counts) + 1


class RawHold:
    """Raw bytes not yet forwarded, in order; in memory, or a temporary file past `spill`."""

    def __init__(self, spill: int) -> None:
        self._spill = spill
        self._chunks: deque[bytes] = deque()
        self._memory = 0
        self._file: IO[bytes] | None = None
        self._start = 0  # file offset of the first held byte
        self._end = 0

    @property
    def size(self) -> int:
        return self._memory + self._end - self._start

    @property
    def in_memory(self) -> int:
        return self._memory

    def append(self, data: bytes) -> None:
        if self._file is not None:
            self._file.seek(self._end)
            self._file.write(data)
            self._end += len(data)
            return
        self._chunks.append(bytes(data))
        self._memory += len(data)
        if self._memory > self._spill:
            self._file = tempfile.TemporaryFile(prefix="leakguard-body-")  # noqa: SIM115 - closed by release/close
            while self._chunks:
                self._file.write(self._chunks.popleft())
            self._start, self._end, self._memory = 0, self._memory, 0

    def pieces(self, size: int = PIECE) -> Iterator[bytes]:
        """The held bytes, in order, without releasing them."""
        if self._file is None:
            yield from list(self._chunks)
            return
        pos = self._start
        while pos < self._end:
            self._file.seek(pos)
            piece = self._file.read(min(size, self._end - pos))
            pos += len(piece)
            yield piece

    def release(self, n: int) -> bytes:
        if n <= 0:
            return b""
        if self._file is not None:
            self._file.seek(self._start)
            out = self._file.read(n)
            self._start += len(out)
            if self.size <= self._spill // 2:  # back to memory once little is held
                self._file.seek(self._start)
                rest = self._file.read()
                self._file.close()
                self._file, self._start, self._end = None, 0, 0
                if rest:
                    self._chunks.append(rest)
                    self._memory = len(rest)
            return out
        out = []
        while n > 0 and self._chunks:
            head = self._chunks.popleft()
            if len(head) > n:
                self._chunks.appendleft(head[n:])
                head = head[:n]
            out.append(head)
            n -= len(head)
            self._memory -= len(head)
        return b"".join(out)

    def take_all(self) -> bytes:
        return self.release(self.size)

    def close(self) -> None:
        self._chunks.clear()
        self._memory = 0
        if self._file is not None:
            self._file.close()
            self._file, self._start, self._end = None, 0, 0


class FilePart:
    """A multipart file that is a container: collected (to a temporary file), then extracted."""

    def __init__(self, name: str, field: str, content_type: str, kind: str) -> None:
        self.name, self.field, self.content_type, self.kind = name, field, content_type, kind
        self._spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by read/close
            max_size=SPILL, prefix="leakguard-part-"
        )
        self.size = 0

    def write(self, data: bytes) -> None:
        self._spool.write(data)
        self.size += len(data)

    def read(self) -> bytes:
        self._spool.seek(0)
        data = self._spool.read()
        self._spool.close()
        return data

    def close(self) -> None:
        self._spool.close()


class Sink(Protocol):
    def text(self, data: bytes) -> None: ...
    def file_start(self, name: str, field: str, content_type: str, kind: str) -> None: ...
    def file_data(self, data: bytes) -> None: ...
    def file_end(self) -> None: ...


class MultipartSplitter:
    """multipart/form-data as it arrives: delimiters, part headers and text parts go to
    `sink.text` (they are scanned too: names and file names carry data), parts that are
    containers to `sink.file_*`. Holds back only what could be the start of a delimiter,
    an unfinished part header, or the first SNIFF bytes of a part."""

    PREAMBLE, DELIMITER, HEADERS, SNIFF, TEXT, FILE, EPILOGUE = range(7)

    def __init__(self, delimiter: bytes, sink: Sink) -> None:
        self._delimiter = delimiter
        self._sink = sink
        self._buf = bytearray()
        self._state = self.PREAMBLE
        self._at_start = True  # the body may open with the delimiter, without a line break
        self._part = ("", "", "")  # field name, file name, content type

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data
        self._run(final=False)

    def close(self) -> None:
        self._run(final=True)
        if self._state == self.FILE:
            self._sink.file_end()
        self._state = self.EPILOGUE

    def _run(self, final: bool) -> None:
        while self._buf:
            state = self._state
            if state == self.EPILOGUE:
                self._text(len(self._buf))
            elif state == self.DELIMITER:
                if not self._delimiter_line(final):
                    return
            elif state == self.HEADERS:
                if not self._headers(final):
                    return
            elif not self._content(final):
                return

    def _content(self, final: bool) -> bool:
        """Preamble or part content up to the next delimiter; False: wait for more."""
        delimiter = self._delimiter
        if self._at_start:
            if len(self._buf) < len(delimiter) and not final:
                return False
            self._at_start = False
            if self._buf.startswith(delimiter):
                self._state = self.DELIMITER
                return True
        found = self._buf.find(b"\n" + delimiter)
        if found < 0:
            if self._state == self.SNIFF:
                if len(self._buf) < SNIFF and not final:
                    return False
                self._decide(bytes(self._buf[:SNIFF]))
            keep = 0 if final else len(delimiter) + 2  # CR LF and the delimiter, all but a byte
            if len(self._buf) > keep:
                self._hand_on(len(self._buf) - keep)
            return final and bool(self._buf)
        end = found - 1 if found and self._buf[found - 1] == 0x0D else found
        if self._state == self.SNIFF:
            self._decide(bytes(self._buf[:end]))
        self._hand_on(end)
        if self._state == self.FILE:
            self._sink.file_end()
        self._state = self.DELIMITER
        return True

    def _delimiter_line(self, final: bool) -> bool:
        """At a (line break and) delimiter: '--' after it ends the body, else headers follow."""
        length = self._buf.find(self._delimiter) + len(self._delimiter)
        if len(self._buf) < length + 2 and not final:
            return False
        closing = self._buf[length : length + 2] == b"--"
        self._text(length)
        self._state = self.EPILOGUE if closing else self.HEADERS
        return True

    def _headers(self, final: bool) -> bool:
        m = _HEAD_END.search(self._buf)
        if m is None:
            if len(self._buf) > MAX_PART_HEADERS or final:
                self._state = self.TEXT  # not headers after all: scanned as text
                return True
            return False
        head = self._buf[: m.end()].decode("utf-8", "replace")
        self._text(m.end())
        disposition = _DISPOSITION.search(head)
        params = {
            k.lower(): quoted or bare
            for k, quoted, bare in _DISPOSITION_PARAM.findall(
                disposition.group(1) if disposition else ""
            )
        }
        ctype = _CONTENT_TYPE.search(head)
        self._part = (
            params.get("name", ""),
            params.get("filename", ""),
            ctype.group(1) if ctype else "",
        )
        self._state = self.SNIFF
        return True

    def _decide(self, head: bytes) -> None:
        field, name, ctype = self._part
        kind = sniff(head, name, ctype)
        if kind in CONTAINERS:
            self._sink.file_start(name or field, field, ctype, kind)
            self._state = self.FILE
        else:
            self._state = self.TEXT

    def _hand_on(self, n: int) -> None:
        if n <= 0:
            return
        if self._state == self.FILE:
            self._sink.file_data(self._take(n))
        else:
            self._sink.text(self._take(n))

    def _text(self, n: int) -> None:
        if n:
            self._sink.text(self._take(n))

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


def _bytes(n: int) -> str:
    """3145728 -> '3,145,728 bytes (3 MiB)'."""
    return f"{n:,} bytes" + (f" ({size_text(n)})" if n >= 1024 else "")


def _codec(head: bytes, content_type: str) -> str:
    """The charset of a text body, judged on its first bytes (less a character cut short)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head)
        unfinished = len(decoder.getstate()[0])
    except UnicodeDecodeError:
        unfinished = 0  # not UTF-8: the detection looks at it whole
    codec, _ = choose_codec(head[: len(head) - unfinished], charset_param(content_type))
    return codec
