"""The policy in use, and its reload.

A reload builds the new policy completely (parse, validate, compile) before
one reference assignment swaps it in; a decision reads `holder.policy` once
and keeps that object, so it never sees half of one policy and half of
another. A reload that fails keeps the last good policy and says why
through `on_event` — never an exception into the gateway.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rules.policy.errors import PolicyError
from rules.policy.model import Policy
from rules.policy.wire import FILES, OPTIONAL_FILES, load_policy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    changed: bool
    fingerprint: str
    problems: tuple[str, ...] = ()

    def to_event(self, source: str) -> dict:
        return {
            "type": "policy.reload",
            "outcome": "loaded" if self.ok else "refused",
            "source": source,
            "fingerprint": self.fingerprint,
            "problems": list(self.problems),
        }


def fingerprint(directory: Path) -> str:
    """A digest of the policy files' contents: equal digests, equal policies."""
    digest = hashlib.sha256()
    for name in FILES + OPTIONAL_FILES:
        digest.update(name.encode() + b"\0")
        try:
            digest.update((directory / name).read_bytes())
        except OSError:
            digest.update(b"\0missing")
    for extra in sorted(
        p.name for p in directory.glob("*.y*ml") if p.name not in FILES + OPTIONAL_FILES
    ):
        digest.update(b"\0extra " + extra.encode())
    return digest.hexdigest()[:16]


class PolicyHolder:
    def __init__(
        self, directory: str | Path, on_event: Callable[[dict], None] | None = None
    ) -> None:
        """Load the first policy; a broken policy at start is a PolicyError (nothing to keep)."""
        self.directory = Path(directory)
        self.on_event = on_event or (lambda _event: None)
        self._lock = threading.Lock()  # one reload at a time; readers never wait
        self._fingerprint = fingerprint(self.directory)
        self._attempted = self._fingerprint  # last files tried, so a broken edit is told once
        self._policy = load_policy(self.directory)

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def reload(self, force: bool = True) -> ReloadResult:
        with self._lock:
            current = fingerprint(self.directory)
            if not force and current == self._attempted:
                return ReloadResult(current == self._fingerprint, False, current)
            self._attempted = current
            try:
                policy = load_policy(self.directory)
            except PolicyError as err:
                result = ReloadResult(False, False, current, tuple(str(i) for i in err.issues))
            except Exception as err:  # a bug must not take the gateway down with it
                log.exception("policy reload failed")
                result = ReloadResult(False, False, current, (f"internal error: {err!r}",))
            else:
                self._policy = policy  # the swap: one reference assignment
                self._fingerprint = current
                result = ReloadResult(True, True, current)
        if result.ok:
            log.info("policy reloaded from %s (%s)", self.directory, result.fingerprint)
        else:
            log.error(
                "policy reload refused, keeping the last good policy (%s):\n%s",
                self._fingerprint,
                "\n".join(result.problems),
            )
        self._emit(result)
        return result

    def reload_if_changed(self) -> ReloadResult:
        """For a file watcher: reload only when the files' contents changed."""
        return self.reload(force=False)

    def _emit(self, result: ReloadResult) -> None:
        try:
            self.on_event(result.to_event(str(self.directory)))
        except Exception:
            log.exception("policy reload event could not be recorded")
