"""What a rule is matched against: the Place plus the findings, classified once.

`matches(rule, facts)` is the definition of a rule matching. The index in
`index.py` only skips rules that cannot match; it never decides.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Finding
from rules.policy.decision import Context, Place
from rules.policy.model import Conditions, Level, Policy, Rule
from rules.policy.places import covered, normal_host, plain_ip

PROBLEMS = frozenset((UNINSPECTABLE, ENCRYPTED_ARCHIVE))
UNCLASSIFIED = "unclassified"


@dataclass(frozen=True, slots=True)
class Facts:
    ctx: Context
    place: Place
    findings: tuple[Finding, ...]  # classified: data_class and level set
    data: tuple[Finding, ...]  # without the container problems
    classes: frozenset[str]
    levels: frozenset[Level]
    detectors: frozenset[str]
    uninspectable: bool
    host: str  # the destination's name, or the recipient's mail domain; "" if none


def destination_host(ctx: Context) -> str:
    if ctx.channel == "smtp" and ctx.recipient:  # mail goes to the recipient's domain
        return normal_host(ctx.recipient.rpartition("@")[2])
    return normal_host(ctx.host)


def classify(policy: Policy, findings, ctx: Context, place: Place) -> Facts:
    owner = policy.compiled.owner  # built once per policy, not per decision
    out = []
    for f in findings:
        if f.detector in PROBLEMS:
            out.append(f)
            continue
        cls = owner.get(f.detector)
        name, level = (cls.name, cls.level.value) if cls else (UNCLASSIFIED, Level.BASIC.value)
        out.append(replace(f, data_class=name, level=level))
    data = tuple(f for f in out if f.detector not in PROBLEMS)
    return Facts(
        ctx,
        place,
        tuple(out),
        data,
        frozenset(f.data_class for f in data),
        frozenset(Level(f.level) for f in data),
        frozenset(f.detector for f in out),
        any(f.detector in PROBLEMS for f in out),
        destination_host(ctx),
    )


def select(when: Conditions, facts: Facts) -> tuple[Finding, ...]:
    """The findings a rule's data conditions are about."""
    if not (when.data_class or when.level or when.detector):
        return facts.data if when.on_data else facts.findings
    pool = facts.findings if when.detector & PROBLEMS else facts.data
    return tuple(
        f
        for f in pool
        if (not when.data_class or f.data_class in when.data_class)
        and (not when.level or (f.level and Level(f.level) in when.level))
        and (not when.detector or f.detector in when.detector)
    )


def distinct(findings) -> int:
    return len({(f.detector, f.value_hash or f.location) for f in findings})


def _bulk(policy: Policy, selected) -> bool:
    for cls in policy.classes:
        if cls.bulk and distinct([f for f in selected if f.data_class == cls.name]) >= cls.bulk:
            return True
    return False


def party_excess(policy: Policy, party_id: str | None, findings) -> frozenset[str]:
    """Classes in `findings` the party may not receive (what is masked for it does not count)."""
    party = policy.party(party_id) if party_id else None
    if party is None:
        return frozenset()
    return frozenset(
        f.data_class
        for f in findings
        if f.data_class
        and f.data_class not in party.receives
        and f.data_class not in party.mask
        and f.detector not in party.mask
    )


def matches(policy: Policy, rule: Rule, facts: Facts) -> tuple[Finding, ...] | None:
    """The selected findings when `rule` matches, else None."""
    w, ctx, place = rule.when, facts.ctx, facts.place
    if w.channel and ctx.channel not in w.channel:
        return None
    if w.source_zone and place.source_zone not in w.source_zone:
        return None
    if w.destination_zone and place.destination_zone not in w.destination_zone:
        return None
    if w.category and w.category.isdisjoint(place.categories):
        return None
    if w.user and ctx.user not in w.user:
        return None
    if w.group and w.group.isdisjoint(ctx.groups):
        return None
    if w.source and (
        ctx.source_ip is None or not any(plain_ip(ctx.source_ip) in n for n in w.source)
    ):
        return None
    if w.host and not covered(facts.host, w.host):
        return None
    if w.uninspectable is not None and w.uninspectable != facts.uninspectable:
        return None
    selected = select(w, facts)
    if w.on_data and distinct(selected) < max(w.min_distinct, 1):
        return None
    if w.bulk is not None and w.bulk != _bulk(policy, selected):
        return None
    if w.party:
        if w.party == "none":
            if place.party is not None:
                return None
        elif place.party is None or (w.party != "any" and place.party not in w.party):
            return None
        elif party_excess(policy, place.party, facts.data):  # all of it, not just these
            return None  # the party is not approved for all of this data
    return selected
