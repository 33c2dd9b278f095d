"""The limits on one extraction and their enforcement.

Hostile input (zip bombs, deep nesting, millions of members) must cost bounded
memory and time. Every limit breach becomes an `ExtractionError` whose reason
names the limit and the figures, never the content.

    ExtractionError          one item cannot be inspected; siblings go on
     └── BudgetExhausted     the whole input is over budget; everything stops
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# Sub-locations per Part: beyond this, one trailing Segment covers the rest, so a
# million-row sheet does not cost a million objects.
MAX_SEGMENTS = 100_000


@dataclass(frozen=True)
class Limits:
    max_input_bytes: int = 256 * 2**20  # one input (or member) larger than this is refused
    max_expanded_bytes: int = 512 * 2**20  # all decompressed output of one input together
    max_member_bytes: int = 128 * 2**20  # one archive member / one decompressed stream
    max_ratio: int = 200  # expanded/compressed for one member or stream (zip bombs)
    max_depth: int = 6  # nesting of containers (zip in zip in eml…)
    max_files: int = 10_000  # members across the whole input
    max_seconds: float = 30.0  # wall-clock budget of one extract() call
    # The ratio is judged only past this size: small, very repetitive files
    # (a sheet of blanks) legitimately compress far better than 200:1.
    ratio_floor_bytes: int = 2**20


class ExtractionError(Exception):
    """Content that cannot be inspected; `reason` is for humans and never contains content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BudgetExhausted(ExtractionError):
    """A limit on the whole input was reached (time, total expansion, file count)."""


def size_text(n: float) -> str:
    """1536 -> '1.5 KiB'; whole numbers of a unit lose the decimals ('128 MiB')."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            if unit == "bytes":
                return f"{int(n)} bytes"
            return f"{n:.0f} {unit}" if n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Budget:
    """What one extract() call has spent so far: time, expanded bytes, members."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds
        self.expanded = 0
        self.files = 0
        self.exhausted = False  # once set, every further step stops
        self.reported = False  # the exhaustion Problem was already yielded

    def _stop(self, reason: str) -> BudgetExhausted:
        self.exhausted = True
        return BudgetExhausted(reason)

    def check(self) -> None:
        if self.exhausted:
            raise BudgetExhausted("extraction stopped: input over budget")
        if time.monotonic() > self.deadline:
            raise self._stop(f"time budget of {self.limits.max_seconds:g} s exhausted")

    def spend_expanded(self, n: int) -> None:
        self.expanded += n
        if self.expanded > self.limits.max_expanded_bytes:
            raise self._stop(
                f"input expands beyond {size_text(self.limits.max_expanded_bytes)} in total"
            )
        self.check()

    def expect_files(self, n: int) -> None:
        """Refuse up front a container that announces more members than remain."""
        if self.files + n > self.limits.max_files:
            raise self._stop(f"more than {self.limits.max_files} files in the input")

    def count_file(self) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise self._stop(f"more than {self.limits.max_files} files in the input")
        self.check()


class Sink:
    """Collects the output of one decompression, enforcing the limits as it grows.

    Header sizes are not trusted: the checks run on the bytes actually produced,
    so a lying header or a bomb stops at the limit with bounded memory.
    """

    def __init__(self, what: str, compressed_size: int, budget: Budget, keep: bool = True) -> None:
        self.what = what
        self.compressed_size = max(compressed_size, 1)
        self.budget = budget
        self.limits = budget.limits
        self.size = 0
        self._keep = keep  # False: only meter, the caller keeps the bytes
        self._chunks: list[bytes] = []

    def write(self, chunk: bytes) -> int:
        n = len(chunk)
        self.size += n
        limits = self.limits
        if self.size > limits.max_member_bytes:
            raise ExtractionError(
                f"{self.what} expands beyond {size_text(limits.max_member_bytes)}"
            )
        if (
            self.size > limits.ratio_floor_bytes
            and self.size > limits.max_ratio * self.compressed_size
        ):
            raise ExtractionError(
                f"{self.what} expands beyond {limits.max_ratio}:1 "
                f"(over {size_text(self.size)} from {size_text(self.compressed_size)})"
            )
        self.budget.spend_expanded(n)
        if n and self._keep:
            self._chunks.append(bytes(chunk))
        return n

    def value(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks = [data]
        return data
