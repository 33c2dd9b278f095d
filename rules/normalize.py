"""Undo the disguises people (and software) put on numbers, keeping offsets.

Two stages, each a list of `Layer`s applied only where its pattern matches:

1. decoding: quoted-printable soft breaks and 8-bit escapes, URL escapes
   (also double), JSON/JS escapes, HTML character references;
2. characters: NFKC for full-width and other compatibility forms of letters
   and digits, every Unicode decimal digit to ASCII, invisible format
   characters (zero-width, soft hyphen, bidi marks) removed, Chinese numerals
   written digit by digit (〇一二…, 零, 壹贰叁…) to ASCII digits.

Each layer's `pattern` doubles as its trigger, so the scan engine can tell
with one multi-pattern pass whether a text needs this work at all.
Separators inside numbers and base64 runs are handled by the engine itself.
"""

from __future__ import annotations

import functools
import html
import html.entities
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from re import Match

from rules.textmap import (
    BlockSpanMap,
    MapChain,
    SpanMap,
    substitute,
    substitute_blocks,
    substitute_chars,
    substitute_decoded,
)

# Chinese numerals, one character per digit; runs shorter than this are dates and
# counting words (二〇二四年, 第一百二十三号), not numbers spelled out.
CN_NUMERAL_RUN = 7
CN_DIGITS = {
    **dict.fromkeys("〇零", "0"),
    **dict.fromkeys("一壹幺", "1"),
    **dict.fromkeys("二贰貳", "2"),
    **dict.fromkeys("三叁參", "3"),
    **dict.fromkeys("四肆", "4"),
    **dict.fromkeys("五伍", "5"),
    **dict.fromkeys("六陆陸", "6"),
    **dict.fromkeys("七柒", "7"),
    **dict.fromkeys("八捌", "8"),
    **dict.fromkeys("九玖", "9"),
}

# Invisible characters that split a number without showing: zero-width space,
# joiners, word joiner, BOM, soft hyphen, bidi marks and isolates, Mongolian vowel separator.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
_INVISIBLE += "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"

_KEEP_AS_IS = frozenset("·")  # a separator the engine understands; NFKC would keep it anyway


def _char_table() -> dict[str, str]:
    """Non-ASCII characters that stand for an ASCII letter, digit or number punctuation."""
    table = dict.fromkeys(_INVISIBLE, "")
    # Dashes and dots that NFKC leaves alone but people type between digit groups.
    table.update(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-"))
    table.update(dict.fromkeys("\u30fb\u2027\u2219\u22c5", "·"))
    # Letters, digits, number punctuation and the space (U+3000 between full-width words).
    wanted = set("0123456789@.-_+ ") | {chr(c) for c in range(ord("A"), ord("z") + 1)}
    for code in range(0x80, sys.maxunicode + 1):
        ch = chr(code)
        if ch in table or ch in _KEEP_AS_IS or unicodedata.category(ch) == "Cs":
            continue
        digit = unicodedata.decimal(ch, None)
        if digit is not None:
            table[ch] = str(digit)
            continue
        folded = unicodedata.normalize("NFKC", ch)
        if folded != ch and len(folded) == 1 and folded in wanted:
            table[ch] = folded
    return table


CHAR_TABLE: dict[str, str] = _char_table()


def _char_class(chars: str | set[str]) -> str:
    """A regex class of `chars` as ranges (a class of single characters is slow in `re`)."""
    codes = sorted(map(ord, chars))
    parts = []
    i = 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        first, last = re.escape(chr(codes[i])), re.escape(chr(codes[j]))
        parts.append(first if i == j else f"{first}-{last}")
        i = j + 1
    return "[" + "".join(parts) + "]"


@dataclass(frozen=True)
class Layer:
    """One kind of rewrite: where it applies (`pattern`) and what a match becomes.

    `replace` gets the match and may answer one string per character (each maps
    back on its own); `decode` gets only the matched text and answers one string
    for the whole match, which lets `substitute_decoded` skip Python per match.
    A layer has exactly one of the two; None from either leaves the match as is.
    """

    name: str  # shown in a finding's reasons ("decoded HTML entities")
    pattern: re.Pattern[str]
    replace: Callable[[Match[str]], list[str] | None] | None = None
    trigger: str = ""  # a pattern matching exactly where the layer changes text, if not `pattern`
    decode: Callable[[str], str | None] | None = None
    # For texts dense with matches: `bulk` rewrites a whole block as `decode` would each
    # match in it (or answers None), and `outside` matches a character no match contains.
    bulk: Callable[[str], str | None] | None = None
    outside: str = ""
    # For a layer that rewrites each character of `table` on its own (its trigger matching
    # exactly those): where they are, if the caller knows, spares the search for them.
    table: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if (self.replace is None) == (self.decode is None):
            raise ValueError(f"layer {self.name!r}: give exactly one of replace and decode")
        if self.pattern.groups:
            raise ValueError(f"layer {self.name!r}: the pattern must not capture")

    @property
    def trigger_pattern(self) -> str:
        return self.trigger or self.pattern.pattern

    @functools.cached_property
    def splitter(self) -> re.Pattern[str]:
        return re.compile(f"({self.pattern.pattern})", self.pattern.flags)

    def apply(
        self, text: str, at: Sequence[int] | None = None
    ) -> tuple[str, SpanMap | BlockSpanMap] | None:
        """The rewritten text and its map back; `at`: the offsets of every character
        the trigger matches, for a layer with a `table` (else ignored)."""
        if at is not None and self.table is not None:
            return substitute_chars(text, at, self.table)
        if self.bulk is None:
            return self.apply_exactly(text)
        # Big blocks rewrite fast; a block a finding lies in is mapped through small ones.
        return substitute_blocks(text, self._outside, self.bulk, self._apply_small_blocks, 4096)

    def _apply_small_blocks(self, text: str) -> tuple[str, BlockSpanMap] | None:
        return substitute_blocks(text, self._outside, self.bulk, self.apply_exactly, 256)

    def apply_exactly(self, text: str) -> tuple[str, SpanMap] | None:
        """One match at a time: the reference `apply` must agree with."""
        if self.decode is not None:
            return substitute_decoded(text, self.splitter, self.decode)
        return substitute(text, self.pattern, self.replace)

    @functools.cached_property
    def _outside(self) -> re.Pattern[str]:
        return re.compile(self.outside)


def _decode_bytes(raw: bytes) -> str | None:
    for charset in ("utf-8", "gb18030"):
        try:
            return raw.decode(charset)
        except UnicodeDecodeError:
            continue
    return None


_QP_SOFT_BREAK = re.compile(r"=\r?\n")


# Decoders are memoised on the matched text: documents repeat their escaped
# words (names, cities, field labels) many times.
_memo = functools.lru_cache(maxsize=8192)


@_memo
def _qp_text(escaped: str) -> str | None:
    # Only 8-bit escapes and soft breaks: "=31" in "id=3101…" is data, not QP.
    raw = _QP_SOFT_BREAK.sub("", escaped)
    return _decode_bytes(bytes.fromhex(raw.replace("=", "")))


@_memo
def _url_text(escaped: str) -> str | None:
    return _decode_bytes(bytes.fromhex(escaped.replace("%", "")))


@_memo
def _js_text(escaped: str) -> str:
    # A run of whole escapes, each starting with a backslash, so a "\\/" in it is
    # an escaped slash; Python's unicode_escape codec reads all the others.
    # Pair UTF-16 surrogates; lone ones become U+FFFD.
    decoded = escaped.replace("\\/", "/").encode("ascii").decode("unicode_escape")
    if not _SURROGATE.search(decoded):
        return decoded
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


_SURROGATE = re.compile("[\ud800-\udfff]")
# A backslash before a character no escape starts with, or starting a UTF-16 surrogate
# (which _js_text pairs within a run, unicode_escape does not), unless it is escaped
# itself; a \u or \x without its hex digits makes unicode_escape fail, caught below.
_NOT_FOR_BULK = re.compile(r"\\(?:[^\\\"'/bfnrtux]|u[dD][89a-fA-F]|\Z)")
_STAND_IN = "\uf8ff"  # a private-use character stands for "\\" while "\/" is undone


def _js_bulk(text: str) -> str | None:
    """The text with every escape run decoded as _js_text decodes it, in a few C passes;
    None where that is not certain (an escape it does not read, a surrogate to pair)."""
    if "\\" not in text:
        return text
    pos = 0
    while m := _NOT_FOR_BULK.search(text, pos):
        first = m.start()
        while first > 0 and text[first - 1] == "\\":
            first -= 1
        if (m.start() - first) % 2 == 0:  # this backslash starts an escape
            return None
        pos = m.start() + 1  # the second of a pair ("\\d" is "\\" then "d"): fine
    if "\\/" in text:
        if _STAND_IN in text:
            return None
        text = text.replace("\\\\", _STAND_IN).replace("\\/", "/").replace(_STAND_IN, "\\\\")
    # Other characters travel through as escapes of themselves and come back unchanged.
    try:
        return text.encode("ascii", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:  # a \u or \x escape without its digits
        return None


def _useful_entities() -> list[str]:
    """Named entities that can spell part of a value (&commat; &period; &nbsp; …).

    &amp; &lt; &quot; and the like cannot, and are everywhere in HTML: leaving
    them alone keeps ordinary pages off the slow path. &amp; is decoded only
    where it escapes another reference (&amp;#52;).
    """
    names, spaces = [], []
    for name, value in html.entities.html5.items():
        if name.endswith(";") and len(value) == 1:
            folded = unicodedata.normalize("NFKC", value)
            if folded == " ":
                spaces.append(re.escape(name[:-1]))
            elif folded.isascii() and (folded.isalnum() or folded in "@.-_+/"):
                names.append(re.escape(name[:-1]))
    return sorted(names, key=len, reverse=True), sorted(spaces, key=len, reverse=True)


_USEFUL_ENTITIES, _SPACE_ENTITIES = _useful_entities()
_ENTITY = r"&(?:#[0-9]{1,7};?|#[xX][0-9A-Fa-f]{1,6};?|(?:" + "|".join(_USEFUL_ENTITIES) + ");)"
# &nbsp; is in every HTML page, but only separates digits of a value (6222&nbsp;0212).
_SPACES = "&(?:" + "|".join(_SPACE_ENTITIES) + ");"


@_memo
def _entity_text(escaped: str) -> str | None:
    decoded = html.unescape(escaped)
    return decoded if decoded != escaped else None


def _chars(m: Match[str]) -> list[str] | None:
    new = [CHAR_TABLE.get(c, c) for c in m.group()]  # per character: exact spans back
    return new if any(a != b for a, b in zip(new, m.group(), strict=True)) else None


def _cn_numerals(m: Match[str]) -> list[str]:
    return [CN_DIGITS.get(c, c) for c in m.group()]


# Each pattern starts with a literal so that `re` can skip ahead with a fast search.
DECODING_LAYERS: tuple[Layer, ...] = (
    Layer(
        "decoded quoted-printable",
        re.compile(r"=(?:[89A-Fa-f][0-9A-Fa-f]|\r?\n)(?:=[89A-Fa-f][0-9A-Fa-f]|=\r?\n)*"),
        decode=_qp_text,
    ),
    Layer(
        "decoded URL escapes", re.compile(r"%[0-9A-Fa-f]{2}(?:%[0-9A-Fa-f]{2})*"), decode=_url_text
    ),
    # Every escape of a JSON string (and JS's \xXX, \'): a value right after an
    # escaped line break ("\n11010519…") is only a token once the "n" is gone.
    Layer(
        "decoded JSON/JS escapes",
        re.compile(r"(?:\\(?:u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|[\"'\\/bfnrt]))+"),
        # Hyperscan 5.4 (python-hyperscan 0.9) misses the pattern's one-letter escapes in
        # the last two bytes of a 17-34 byte input ("…\\n"); this superset it does not
        # miss, and the layer answers None where nothing decodes.
        trigger=r"\\[ux\"'\\/bfnrt]",
        decode=_js_text,
        bulk=_js_bulk,
        outside=r"[^\\ux0-9A-Fa-f\"'/bfnrt]",
    ),
    Layer(
        "decoded HTML entities",
        # One literal '&' first, so that `re` can skip to the next '&' at C speed.
        re.compile(
            r"&(?:"
            + _ENTITY[1:]
            + r"|(?<=[0-9]&)"
            + _SPACES[1:]
            + r"(?=[0-9])|amp;(?=#|[A-Za-z]{2,31};))"
        ),
        decode=_entity_text,
        # Hyperscan has no look-around: the same condition, consuming.
        trigger=_ENTITY + r"|[0-9]" + _SPACES + r"[0-9]|&amp;#|&amp;[A-Za-z]{2,31};",
    ),
)

_NAME_CHARS = "normalised Unicode digits, full-width and invisible characters"
_BMP = {c for c in CHAR_TABLE if ord(c) < 0x10000}
_ASTRAL = set(CHAR_TABLE) - _BMP

CHARACTER_LAYERS: tuple[Layer, ...] = (
    Layer(_NAME_CHARS, re.compile(_char_class(_BMP) + "+"), _chars, table=CHAR_TABLE),
    # `re` is slow on a class of astral characters; a plain range is fast, and
    # the precise class is the trigger.
    Layer(
        _NAME_CHARS,
        re.compile("[\U00010000-\U0010ffff]+"),
        _chars,
        trigger=_char_class(_ASTRAL) + "+",
        table=CHAR_TABLE,
    ),
    Layer(
        "read Chinese numerals",
        # Spoken style groups digits: 幺三八 五五幺四 五三三幺.
        re.compile(
            "{0}(?:[ \\-]?{0}){{{1},}}".format(_char_class(set(CN_DIGITS)), CN_NUMERAL_RUN - 1)
        ),
        _cn_numerals,
    ),
)


@dataclass(frozen=True)
class Normalised:
    """A text after rewriting and the way back to the original."""

    text: str
    back: MapChain


ALL_LAYERS: tuple[Layer, ...] = DECODING_LAYERS + CHARACTER_LAYERS
MAX_ROUNDS = 6  # each round peels what the previous one uncovered (URL → entity → full-width)


def normalise(
    text: str,
    needed: Callable[[str], set[int]] | None = None,
    where: Callable[[str, int], Sequence[int] | None] | None = None,
) -> Normalised:
    """The text as the detectors should see it.

    `needed(text)` says which of ALL_LAYERS (by index) match a text; the
    engine answers it with its multi-pattern pass. Layers are applied in
    order, and again as long as a round's output needs more (an escape can
    hide another), at most MAX_ROUNDS rounds. `where(text, i)` may give the
    offsets of every character layer i's trigger matches in `text` (see Layer.table).
    """
    needed = needed or _layers_matching
    back = MapChain()
    wanted = needed(text)
    fruitless: set[int] = set()  # applied but changed nothing (e.g. an unknown entity)
    for _ in range(MAX_ROUNDS):
        wanted -= fruitless
        if not wanted:
            break
        changed = False
        # Per-character layers first: where their characters are is known for the text
        # the round starts with (see Layer.table), not for what the other layers make of it.
        for i in sorted(wanted, key=_ROUND_ORDER.__getitem__):
            layer = ALL_LAYERS[i]
            at = where(text, i) if where is not None and layer.table is not None else None
            result = layer.apply(text, at)
            if result is None:
                fruitless.add(i)
                continue
            text, spans = result
            back = back.then(layer.name, spans)
            changed = True
        if not changed:  # the same text would need the same layers, all fruitless now
            break
        wanted = needed(text)
    return Normalised(text, back)


_ROUND_ORDER = {
    i: (layer.table is None, i) for i, layer in enumerate(ALL_LAYERS)
}  # index → sort key: per-character layers first, then the order of ALL_LAYERS


def _layers_matching(text: str) -> set[int]:
    return {i for i, layer in enumerate(ALL_LAYERS) if layer.pattern.search(text)}
