"""What can be wrong with a policy, said so the security team can fix it.

    PolicyError            the policy cannot be used; carries every Issue found
      └─ issues: [Issue]   file, line, key, what is wrong, and the fix

Loading collects all issues rather than stopping at the first, so one
`leakguard rules check` run lists everything to fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Issue:
    file: str
    line: int  # 1-based; 0 when the problem is the file as a whole
    key: str  # dotted path to the offending key, "" for the whole file
    message: str
    fix: str = ""
    warning: bool = False  # a warning does not stop the policy from loading

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" `{self.key}`:" if self.key else ""
        fix = f"; {self.fix}" if self.fix else ""
        kind = "warning: " if self.warning else ""
        return f"{where}:{key} {kind}{self.message}{fix}"


class PolicyError(Exception):
    """The policy did not load. `issues` lists every problem found, in file order."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid policy")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'did you mean `action`?' for a near miss, else the list of what is allowed."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    return "expected one of: " + ", ".join(f"`{c}`" for c in choices) if choices else ""
