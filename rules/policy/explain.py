"""The effective policy in words, for review by people who did not write it."""

from __future__ import annotations

from datetime import date

from rules.policy.model import EXTERNAL, Conditions, Mode, Party, Policy, Reach


def explain(policy: Policy, today: date | None = None) -> str:
    out = [
        f"Policy from {policy.source or '(memory)'}: mode {policy.mode}, "
        f"time zone {policy.timezone}",
        "",
    ]
    out += [*_zones(policy), "", *_reach(policy), "", *_destinations(policy), ""]
    out += [*_classes(policy), "", *_parties(policy, today), "", *_rules(policy)]
    if policy.warnings:
        out += ["", "Warnings"] + [f"  {w}" for w in policy.warnings]
    return "\n".join(out) + "\n"


def _zones(policy: Policy) -> list[str]:
    out = ["Zones (an address belongs to the zone of its longest matching network)"]
    for z in policy.zones:
        line = f"  {z.name}: " + ", ".join(str(n) for n in z.cidrs)
        if z.domains:
            line += "; hosts under " + ", ".join(z.domains)
        if z.mail_domains:
            line += "; mail to " + ", ".join("@" + d for d in z.mail_domains)
        out.append(line + (f" — {z.description}" if z.description else ""))
    out.append(f"  {EXTERNAL}: every other address")
    return out


def _reach(policy: Policy) -> list[str]:
    out = ["Who may reach whom (anything not listed is refused)"]
    for r in policy.reach:
        out.append(f"  {r.source} → {r.destination}: {_reach_terms(r)}")
    names = [z.name for z in policy.zones] + [EXTERNAL]
    allowed = {(r.source, r.destination) for r in policy.reach}
    refused = [f"{a} → {b}" for a in names for b in names if (a, b) not in allowed]
    if refused:
        out.append("  refused: " + ", ".join(refused))
    return out


def _reach_terms(r: Reach) -> str:
    parts = [("ports " + ",".join(str(p) for p in sorted(r.ports))) if r.ports else "any port"]
    if r.channels:
        parts.append("over " + "/".join(sorted(r.channels)))
    parts.append("through inspection" if r.inspect else "not inspected")
    if r.mode is Mode.REPORT:
        parts.append("(report mode: refusals are only recorded)")
    return ", ".join(parts)


def _destinations(policy: Policy) -> list[str]:
    out = ["Destination categories"]
    for c in policy.categories:
        items = [
            *c.domains,
            *c.hosts,
            *(str(n) for n in c.cidrs),
            *("@" + d for d in c.mail_domains),
        ]
        shown = ", ".join(items[:8]) + (f", … ({len(items)} in all)" if len(items) > 8 else "")
        out.append(f"  {c.name}: {shown}")
    if policy.tls_passthrough:
        out.append(
            "  passed through uninspected (pinned clients): " + ", ".join(policy.tls_passthrough)
        )
    return out


def _classes(policy: Policy) -> list[str]:
    out = ["Data classes"]
    for c in policy.classes:
        line = f"  {c.name} ({c.level}): " + ", ".join(c.detectors)
        if c.bulk:
            line += f"; {c.bulk} distinct values in one transfer are a bulk record set"
        out.append(line)
    for d in policy.custom_detectors:
        kind = (
            f"{len(d.words)} keywords"
            if d.words
            else f"regex {d.pattern!r}" + (f" checked by {d.validator}" if d.validator else "")
        )
        out.append(f"  detector {d.id}: {kind}")
    return out


def _parties(policy: Policy, today: date | None) -> list[str]:
    out = ["Approved parties (only while the agreement is in force)"]
    if not policy.parties:
        out.append("  none")
    for p in policy.parties:
        out.append(f"  {p.id} — {p.name}: {_party_terms(p, today)}")
    return out


def _party_terms(p: Party, today: date | None) -> str:
    where = [*p.domains, *("@" + d for d in p.mail_domains), *p.addresses]
    parts = ["at " + ", ".join(where), "receives " + (", ".join(sorted(p.receives)) or "nothing")]
    if p.mask:
        parts.append("masked for it: " + ", ".join(sorted(p.mask)))
    parts.append(
        "mail always encrypted"
        if p.encrypt_mail == "always"
        else "mail encrypted when a rule says so"
    )
    parts.append(f"encryption covers the {p.encrypt_scope}")
    span = f"{p.valid_from or '…'} to {p.valid_until or '…'}"
    parts.append(f"agreement {p.agreement + ' ' if p.agreement else ''}{span}")
    if today is not None:
        parts.append(p.standing(today) or "in force today")
    return "; ".join(parts)


def _rules(policy: Policy) -> list[str]:
    out = ["Rules (top to bottom; the first enforce-mode rule that matches decides)"]
    for i, r in enumerate(policy.rules, 1):
        mode = " [report only: recorded, not enforced]" if r.mode is Mode.REPORT else ""
        head = f"  {i}. {r.id} (line {r.line})" if r.line else f"  {i}. {r.id}"
        out.append(f"{head}: {describe(r.when)} → {r.action}{mode}")
        if r.description:
            out.append(f"       {r.description}")
    out.append(f"  otherwise → {policy.default_action}")
    return out


def describe(w: Conditions) -> str:
    """A rule's conditions as one sentence."""
    parts = []

    def some(label: str, values) -> None:
        if values:
            parts.append(f"{label} {' or '.join(sorted(str(v) for v in values))}")

    some("from zone", w.source_zone)
    some("from network", [str(n) for n in w.source])
    some("user", w.user)
    some("group", w.group)
    some("over", w.channel)
    some("to zone", w.destination_zone)
    some("to category", w.category)
    some("to host", w.host)
    if w.party == "any":
        parts.append("to an approved party (for every class sent)")
    elif w.party == "none":
        parts.append("not to an approved party")
    elif w.party:
        some("to party", w.party)
    data = []
    if w.data_class:
        data.append("class " + " or ".join(sorted(w.data_class)))
    if w.level:
        data.append("level " + " or ".join(sorted(str(lv) for lv in w.level)))
    if w.detector:
        data.append("detector " + " or ".join(sorted(w.detector)))
    if data or w.min_distinct:
        count = f"at least {w.min_distinct} distinct values" if w.min_distinct > 1 else "content"
        parts.append(f"{count} of " + ", ".join(data) if data else count)
    if w.bulk is not None:
        parts.append("a bulk record set" if w.bulk else "not a bulk record set")
    if w.uninspectable is not None:
        parts.append(
            "content that cannot be inspected" if w.uninspectable else "content that was inspected"
        )
    return "when " + " and ".join(parts) if parts else "always"
