"""Event parsing of XML parts with expat: names without prefixes, DTDs refused.

Office XML never carries a DTD, so refusing one costs nothing and closes the
door on entity-expansion bombs.

`parse_tag_soup` gives the same events for markup that is not XML (VML text
boxes hold HTML); `or_problem` turns a part that cannot be read into a Problem.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Protocol
from xml.parsers import expat

from rules.findings import UNINSPECTABLE, Problem

from .limits import Budget, BudgetExhausted, ExtractionError

_FEED = 1024 * 1024  # bytes parsed between time-budget checks

StartHandler = Callable[[str, dict[str, str]], None]
EndHandler = Callable[[str], None]
TextHandler = Callable[[str], None]


class Collector(Protocol):
    def start(self, name: str, attrs: dict[str, str]) -> None: ...
    def end(self, name: str) -> None: ...
    def text(self, chars: str) -> None: ...


class NotWellFormed(ExtractionError):
    """The part is not XML (a DTD is refused with a plain ExtractionError)."""


class _LocalNames(dict[str, str]):
    """'w:t' -> 't', memoised: a sheet has millions of elements and few distinct names."""

    def __missing__(self, name: str) -> str:
        self[name] = local = name.rpartition(":")[2]
        return local


def parse_xml(
    data: bytes,
    what: str,
    budget: Budget,
    start: StartHandler,
    end: EndHandler,
    text: TextHandler,
) -> None:
    """Call start(name, attrs), end(name) and text(chars) for each event of `data`.

    Attribute names keep their prefix (r:id) except that it is dropped from
    element names: the same part uses different prefixes in Strict OOXML.
    """
    parser = expat.ParserCreate()
    parser.buffer_text = True

    def refuse(*_args: object) -> None:
        raise ExtractionError(f"{what} declares a DTD, which office XML never does")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    local = _LocalNames()
    parser.StartElementHandler = lambda name, attrs: start(local[name], attrs)
    parser.EndElementHandler = lambda name: end(local[name])
    parser.CharacterDataHandler = text
    try:
        for offset in range(0, len(data), _FEED):
            budget.check()
            parser.Parse(data[offset : offset + _FEED], False)
        parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise NotWellFormed(f"{what} is not well-formed XML (line {exc.lineno})") from None


def attribute(attrs: dict[str, str], local: str) -> str:
    """An attribute by local name, whatever its prefix (r:id, w:val, o:title)."""
    for key, value in attrs.items():
        if key.rpartition(":")[2] == local:
            return value
    return ""


def parse_part(
    read: Callable[[str], bytes], name: str, what: str, budget: Budget, into: Collector
) -> None:
    """parse_xml of package member `name` into the collector `into`."""
    parse_xml(read(name), what, budget, into.start, into.end, into.text)


def or_problem[T](location: str, parse: Callable[..., T], *args: object) -> T | Problem:
    """parse(*args), or the Problem saying why the part at `location` cannot be
    read (reading included): one bad part hides nothing else, while an input over
    budget stops everything."""
    try:
        return parse(*args)
    except BudgetExhausted:
        raise
    except ExtractionError as exc:
        return Problem(UNINSPECTABLE, location, exc.reason)


# A tag; quoted attribute values stop at "<", so a failed match never scans past
# the next "<". Possessive quantifiers keep a failed match from handing the
# name's characters back one at a time to the attributes (each hand-back a scan
# to the next "<": quadratic time for "<aaaa…" with no ">"), and an attribute
# name starts only where a name can (not inside a longer one), so a run of name
# characters with no "=" after it is scanned once, not once from each of its
# characters: hostile input costs linear time.
_TAG = re.compile(r"""<(/?)([^\s<>/"'=]++)((?:[^<>"']|"[^"<]*+"|'[^'<]*+')*+)>""")
_SOUP_ATTR = re.compile(
    r"""(?<![^\s=/"'])([^\s=/"']++)\s*+=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))"""
)
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "wbr"})
_SOUP_CHECK = 4096  # markup items between time-budget checks


def _soup_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    return data.decode("utf-8-sig", "replace")


def parse_tag_soup(
    data: bytes,
    what: str,
    budget: Budget,
    start: StartHandler,
    end: EndHandler,
    text: TextHandler,
) -> None:
    """The events of `parse_xml` for markup that is not well-formed: unclosed
    (<br>) and stray end tags, unquoted attributes, undefined entities. Every end
    event matches an open start, as a collector written for XML expects. Comments
    and declarations are skipped, as expat skips them; entities are only HTML's
    own, never expanded from a DTD."""
    s = _soup_text(data)
    # Past its last terminator a "<!--", "<![CDATA[" or "<!" is not closed: knowing
    # that without a search keeps many unclosed ones from costing quadratic time.
    last = {"-->": s.rfind("-->"), "]]>": s.rfind("]]>"), ">": s.rfind(">")}
    local = _LocalNames()
    stack: list[str] = []
    depth: dict[str, int] = {}  # open elements by name: a stray end tag costs O(1)

    def close(name: str) -> None:
        stack.pop()
        depth[name] -= 1
        end(name)

    pos, count = 0, 0
    while pos < len(s):
        count += 1
        if not count % _SOUP_CHECK:
            budget.check()
        lt = s.find("<", pos)
        if lt < 0:
            text(html.unescape(s[pos:]))
            break
        if lt > pos:
            text(html.unescape(s[pos:lt]))
        pos = lt + 1  # unless something longer matches, "<" is text
        for opener, closer, is_text in (("<!--", "-->", False), ("<![CDATA[", "]]>", True)):
            if s.startswith(opener, lt) and last[closer] >= lt + len(opener):
                stop = s.find(closer, lt + len(opener))
                if is_text:
                    text(s[lt + len(opener) : stop])
                pos = stop + len(closer)
                break
        else:
            if s.startswith(("<!", "<?"), lt) and last[">"] > lt:
                pos = s.find(">", lt) + 1
            elif m := _TAG.match(s, lt):
                pos = m.end()
                name, raw = local[m[2]], m[3]
                if not m[1]:
                    attrs = {
                        a[1]: html.unescape(next(v for v in a.groups()[1:] if v is not None))
                        for a in _SOUP_ATTR.finditer(raw)
                    }
                    start(name, attrs)
                    stack.append(name)
                    depth[name] = depth.get(name, 0) + 1
                    if raw.endswith("/") or name.lower() in _VOID:
                        close(name)
                elif depth.get(name):
                    while stack[-1] != name:
                        close(stack[-1])
                    close(name)
            else:
                text("<")
    while stack:
        close(stack[-1])
