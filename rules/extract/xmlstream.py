"""Event parsing of XML parts with expat: names without prefixes, DTDs refused.

Office XML never carries a DTD, so refusing one costs nothing and closes the
door on entity-expansion bombs.
"""

from __future__ import annotations

from collections.abc import Callable
from xml.parsers import expat

from .limits import Budget, ExtractionError

_FEED = 1024 * 1024  # bytes parsed between time-budget checks

StartHandler = Callable[[str, dict[str, str]], None]
EndHandler = Callable[[str], None]
TextHandler = Callable[[str], None]


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
        raise ExtractionError(f"{what} is not well-formed XML (line {exc.lineno})") from None
