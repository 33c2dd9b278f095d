"""evaluate(policy, findings, context) → Verdict: the one place decisions are made.

Evaluation order (README "How the policy decides" says the same):

1. Where: the source zone from the client address (longest prefix wins;
   no zone → `external`); the destination zone from the address actually
   connected to (or, for mail and when no address is known, from the zone's
   domains); destination categories; the approved party, if its agreement
   is in force today (in the policy's time zone) — otherwise the party is
   treated as unapproved and the verdict says why, with the date.
2. Reach (zones.yaml): source zone → destination zone must be listed for
   this port and channel, else `block` (rule `reach:<from>-><to>`).
3. Rules (rules.yaml), top to bottom; the first enforce-mode rule that
   matches decides. A report-mode rule that matches is recorded (what
   enforce would have done) and evaluation goes on.
4. No rule decided: the policy's `default_action` (allow unless set).
5. Need to know: when the destination is an approved party and the action
   lets content leave, values of the classes/detectors the party's `mask`
   names are masked (allow → mask); mail to a party with
   `encrypt_mail: always` is encrypted.
6. Anything that goes wrong on the way returns the zero Verdict: block.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from rules.findings import Finding
from rules.policy.decision import Context, Place, Reported, Verdict
from rules.policy.facts import Facts, classify, distinct, matches, party_excess
from rules.policy.model import Action, Mode, Policy, Reach, Rule

log = logging.getLogger(__name__)

LEAVES = (Action.ALLOW, Action.REPORT, Action.MASK, Action.ENCRYPT)

DEFAULT_MESSAGES = {
    Action.BLOCK: "Blocked by the data-protection policy (rule {rule}): {reason}",
    Action.QUARANTINE: "Held for review by the security team (rule {rule}).",
    Action.MASK: "Sensitive values were masked before sending (rule {rule}).",
    Action.ENCRYPT: "Sent encrypted to the recipient (rule {rule}).",
    Action.REPORT: "Sent and recorded (rule {rule}).",
    Action.ALLOW: "",
}


def evaluate(policy: Policy, findings: Iterable[Finding], ctx: Context) -> Verdict:
    try:
        return _evaluate(policy, tuple(findings), ctx, linear=False)
    except Exception as err:  # fail closed; the message names no content
        log.exception("policy evaluation failed")
        return Verdict().failed(
            f"policy evaluation failed ({type(err).__name__}); "
            "blocked because no decision could be reached"
        )


def evaluate_linear(policy: Policy, findings: Iterable[Finding], ctx: Context) -> Verdict:
    """The same decision without the index: the reference the index is tested against."""
    return _evaluate(policy, tuple(findings), ctx, linear=True)


def _evaluate(policy: Policy, findings: tuple[Finding, ...], ctx: Context, linear: bool) -> Verdict:
    compiled = policy.compiled
    place = compiled.places.resolve(ctx)
    facts = classify(policy, findings, ctx, place)
    reported: list[Reported] = []

    reach_verdict = _reach(policy, facts)
    if reach_verdict is not None:
        if reach_verdict.mode is Mode.ENFORCE:
            return reach_verdict
        reported.append(Reported(reach_verdict.rule, Action.BLOCK, reach_verdict.reason))

    candidates = policy.rules if linear else compiled.rules.candidates(facts)
    for rule in candidates:
        selected = matches(policy, rule, facts)
        if selected is None:
            continue
        reason = _reason(policy, rule, selected, facts)
        if rule.mode is Mode.REPORT:
            reported.append(Reported(rule.id, rule.action, reason))
            continue
        return _need_to_know(
            policy,
            _verdict(rule.id, rule.action, reason, selected, facts, rule.message, tuple(reported)),
            facts,
        )

    action = policy.default_action
    reason = f"no rule matched; the policy's default action is {action}"
    if facts.place.party_note:
        reason += f" ({facts.place.party_note})"
    verdict = _verdict("default", action, reason, facts.findings, facts, "", tuple(reported))
    return _need_to_know(policy, verdict, facts)


def _reach(policy: Policy, facts: Facts) -> Verdict | None:
    place, ctx = facts.place, facts.ctx
    paths = [
        r
        for r in policy.reach
        if r.source == place.source_zone and r.destination == place.destination_zone
    ]
    if any(r.allows(ctx.port, ctx.channel) for r in paths):
        return None
    if paths:
        how = f" on port {ctx.port}" if ctx.port else ""
        why = (
            f"zone {place.source_zone} may reach zone {place.destination_zone} only "
            f"{_reach_terms(paths)}, not{how} over {ctx.channel}"
        )
    else:
        why = f"zone {place.source_zone} may not reach zone {place.destination_zone}"
    # a dry run (`mode: report` for the whole policy) covers reach too
    mode = min((r.mode for r in paths), default=policy.mode, key=lambda m: m is Mode.REPORT)
    rule = f"reach:{place.source_zone}->{place.destination_zone}"
    v = _verdict(rule, Action.BLOCK, f"{why} ({place.destination})", facts.findings, facts, "", ())
    return replace(v, mode=mode)


def _reach_terms(paths: list[Reach]) -> str:
    terms = []
    for r in paths:
        parts = []
        if r.ports:
            parts.append("ports " + ",".join(str(p) for p in sorted(r.ports)))
        if r.channels:
            parts.append("over " + "/".join(sorted(r.channels)))
        terms.append(" ".join(parts) or "freely")
    return "; or ".join(terms)


def _reason(policy: Policy, rule: Rule, selected: tuple[Finding, ...], facts: Facts) -> str:
    head = rule.description or f"rule {rule.id}"
    data = facts.data if not rule.when.on_data else selected
    what = summarize(data) if data else "no sensitive values"
    if facts.uninspectable and rule.when.uninspectable:
        what = "content that could not be inspected"
    text = f"{head}: {what} to {facts.place.describe()}"
    excess = party_excess(policy, facts.place.party, facts.data)
    if excess:
        text += f" (party {facts.place.party} may not receive {', '.join(sorted(excess))})"
    if facts.place.party_note:
        text += f" ({facts.place.party_note})"
    return text


def summarize(findings: Iterable[Finding]) -> str:
    """'3 distinct values: cn_resident_id ×2 (identity, important), cn_mobile ×1 (…)'"""
    findings = list(findings)
    per = Counter()
    label = {}
    seen = set()
    for f in findings:
        key = (f.detector, f.value_hash or f.location)
        if key in seen:
            continue
        seen.add(key)
        per[f.detector] += 1
        label[f.detector] = f" ({f.data_class}, {f.level})" if f.data_class else ""
    n = distinct(findings)
    items = ", ".join(f"{d} ×{c}{label[d]}" for d, c in sorted(per.items()))
    return f"{n} distinct value{'s' if n != 1 else ''}: {items}"


def _verdict(
    rule_id: str,
    action: Action,
    reason: str,
    selected,
    facts: Facts,
    message: str,
    reported: tuple[Reported, ...],
) -> Verdict:
    text = _message(message or DEFAULT_MESSAGES[action], rule_id, reason, facts.place, action)
    return Verdict(
        action=action,
        rule=rule_id,
        reason=reason,
        findings=tuple(selected),
        mask=tuple(selected) if action is Action.MASK else (),
        reported=reported,
        message=text,
        place=facts.place,
        mode=_mode(action, reported),
    )


def _message(template: str, rule_id: str, reason: str, place: Place, action: Action) -> str:
    """The user's message: the rule's template (placeholders checked at load) filled in."""
    shown = place.destination or "this destination"
    return template.format(rule=rule_id, reason=reason, destination=shown, action=action.value)


def _mode(action: Action, reported: tuple[Reported, ...]) -> Mode:
    """`report` when a report-mode rule would have been stricter than what was decided."""
    order = list(Action)
    stricter = any(order.index(r.action) > order.index(action) for r in reported)
    return Mode.REPORT if stricter else Mode.ENFORCE


def _need_to_know(policy: Policy, verdict: Verdict, facts: Facts) -> Verdict:
    party = policy.party(facts.place.party) if facts.place.party else None
    if party is None or verdict.action not in LEAVES:
        return verdict
    excess = party_excess(policy, party.id, facts.data)
    if excess:  # whatever a rule said: a party receives only the classes it is approved for
        rule = f"party:{party.id}"
        kept = tuple(f for f in facts.data if f.data_class in excess)
        reason = (
            f"party {party.id} may not receive {', '.join(sorted(excess))}: "
            f"{summarize(kept)} to {facts.place.describe()}"
        )
        message = _message(DEFAULT_MESSAGES[Action.BLOCK], rule, reason, facts.place, Action.BLOCK)
        return replace(
            verdict,
            action=Action.BLOCK,
            rule=rule,
            reason=reason,
            findings=kept,
            mask=(),
            party=party.id,
            encrypt_scope="",
            message=message,
            mode=_mode(Action.BLOCK, verdict.reported),
        )
    masked = tuple(f for f in facts.data if f.data_class in party.mask or f.detector in party.mask)
    action = verdict.action
    if masked and action in (Action.ALLOW, Action.REPORT):
        action = Action.MASK
    if facts.ctx.channel == "smtp" and party.encrypt_mail == "always":
        action = Action.ENCRYPT
    mask = tuple(dict.fromkeys(verdict.mask + masked))
    scope = party.encrypt_scope if action is Action.ENCRYPT else ""
    return replace(verdict, action=action, mask=mask, party=party.id, encrypt_scope=scope)


__all__ = ["Context", "Place", "Verdict", "evaluate", "evaluate_linear", "summarize"]
