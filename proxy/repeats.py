"""Answers that repeat: a URL that scanned clean, the verdict for a finding-less request.

Most requests are GETs to URLs seen before, carrying nothing. Their URL scan
and policy evaluation give the same answer every time for one policy, so they
are remembered — only for the policy in force (a reload starts afresh), only
when nothing was found (no PII is ever kept here: a remembered URL is one the
engine found nothing in), and bounded (a full table is simply emptied).

A verdict depends on the time only through the date in the policy's time zone
(agreements in force); every time zone's midnight falls on a quarter hour of
UTC, so verdicts are remembered per quarter hour.
"""

from __future__ import annotations

from dataclasses import fields

from rules.policy import Context, Policy, Verdict

MAX_ENTRIES = 4096
QUARTER_HOUR = 900


class Repeats:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._policy: Policy | None = None
        self._clean_urls: set[tuple[str, str]] = set()
        self._verdicts: dict[tuple, Verdict] = {}

    def _for(self, policy: Policy) -> None:
        if policy is not self._policy:  # a reload: nothing remembered still holds
            self._clean_urls = set()
            self._verdicts = {}
            self._policy = policy

    def url_is_clean(self, policy: Policy, host: str, path: str) -> bool:
        self._for(policy)
        return (host, path) in self._clean_urls

    def remember_clean_url(self, policy: Policy, host: str, path: str) -> None:
        self._for(policy)
        if len(self._clean_urls) >= self.max_entries:
            self._clean_urls = set()
        self._clean_urls.add((host, path))

    def verdict(self, policy: Policy, ctx: Context) -> Verdict | None:
        self._for(policy)
        return self._verdicts.get(_key(ctx))

    def remember_verdict(self, policy: Policy, ctx: Context, verdict: Verdict) -> None:
        self._for(policy)
        if len(self._verdicts) >= self.max_entries:
            self._verdicts = {}
        self._verdicts[_key(ctx)] = verdict


# every field a verdict can depend on (a field added to Context is included by itself)
_KEY_FIELDS = tuple(f.name for f in fields(Context) if f.name != "when")


def _key(ctx: Context) -> tuple:
    quarter = int(ctx.when.timestamp()) // QUARTER_HOUR  # the time only to the quarter hour
    return (*(getattr(ctx, name) for name in _KEY_FIELDS), quarter)
