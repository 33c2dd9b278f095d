"""The Verdict value: the zero value blocks, it prints as JSON, and evaluation fails closed."""

from __future__ import annotations

import json

import pytest

from rules.findings import Finding
from rules.policy import Action, Context, Mode, Reported, Verdict, evaluate
from tests.rules.policy.common import ID, ID_TEXT, WHEN, ip, scan, web


def test_zero_verdict_blocks():
    v = Verdict()
    assert (v.action, v.rule, v.mode) == (Action.BLOCK, "fail-closed", Mode.ENFORCE)
    assert v.action.holds
    assert v.reason == "no decision was reached, so the transfer is blocked"
    assert v.message == "This transfer was blocked by the data-protection gateway."
    assert (v.findings, v.mask, v.reported, v.party) == ((), (), (), None)
    assert not v.would_block and v.would_action is None


def test_verdict_prints_as_json():
    d = json.loads(str(Verdict()))
    assert d == {
        "action": "block",
        "rule": "fail-closed",
        "reason": "no decision was reached, so the transfer is blocked",
        "mode": "enforce",
        "would_block": False,
        "reported": [],
        "message": "This transfer was blocked by the data-protection gateway.",
        "source_zone": "external",
        "destination_zone": "external",
        "destination": "",
        "categories": [],
        "party": None,
        "encrypt_scope": None,
        "findings": [],
        "mask": [],
    }


def test_failed_keeps_nothing_that_allows():
    v = Verdict(action=Action.ALLOW, rule="x").failed("broken")
    assert (v.action, v.rule, v.reason) == (Action.BLOCK, "fail-closed", "broken")


def test_would_action_is_the_strictest_reported():
    v = Verdict(
        action=Action.ALLOW,
        reported=(
            Reported("a", Action.REPORT, ""),
            Reported("b", Action.QUARANTINE, ""),
            Reported("c", Action.MASK, ""),
        ),
    )
    assert v.would_action is Action.QUARANTINE
    assert v.would_block
    assert not Verdict(reported=(Reported("a", Action.ENCRYPT, ""),)).would_block


@pytest.mark.parametrize("action", list(Action), ids=[a.value for a in Action])
def test_only_block_and_quarantine_hold(action):
    assert action.holds is (action in (Action.BLOCK, Action.QUARANTINE))


class _Exploding:
    """Stands where a Finding should: reading it raises an error that quotes a raw value."""

    @property
    def detector(self):
        raise RuntimeError(f"cannot classify {ID}")


BROKEN = {
    "source-ip-is-a-string": (
        [],
        Context("https", ID, host="www.example.com", port=443, when=WHEN),  # type: ignore[arg-type]
        "AttributeError",
    ),
    "dest-ip-is-a-string": (
        [],
        Context("https", ip("10.1.2.3"), host="x.example", dest_ip=ID, when=WHEN),  # type: ignore[arg-type]
        "AttributeError",
    ),
    "finding-without-attributes": (
        [object()],
        web("10.1.2.3", "www.example.com"),
        "AttributeError",
    ),
    "finding-that-raises": ([_Exploding()], web("10.1.2.3", "www.example.com"), "RuntimeError"),
    "findings-not-iterable": (42, web("10.1.2.3", "www.example.com"), "TypeError"),
    "when-is-a-string": (
        [],
        Context("smtp", ip("10.1.2.3"), recipient="x@lawfirm.example", port=25, when=ID),  # type: ignore[arg-type]
        "AttributeError",
    ),
}


@pytest.mark.parametrize(("findings", "ctx", "error"), BROKEN.values(), ids=BROKEN.keys())
def test_evaluate_fails_closed(default, findings, ctx, error, caplog):
    v = evaluate(default, findings, ctx)
    assert (v.action, v.rule) == (Action.BLOCK, "fail-closed")
    assert v.reason == (
        f"policy evaluation failed ({error}); blocked because no decision could be reached"
    )
    assert ID not in str(v)
    assert "policy evaluation failed" in caplog.text


def test_evaluate_fails_closed_without_a_compiled_policy(default):
    from dataclasses import replace

    v = evaluate(replace(default, compiled=None), scan(default, ID_TEXT), web("10.1.2.3", "a.b"))
    assert (v.action, v.rule) == (Action.BLOCK, "fail-closed")
    assert "(AttributeError)" in v.reason


def test_verdict_findings_are_classified_and_masked(default):
    v = evaluate(default, scan(default, ID_TEXT), web("10.1.2.3", "www.example.com"))
    [f] = v.findings
    assert isinstance(f, Finding)
    assert (f.detector, f.data_class, f.level, f.masked) == (
        "cn_resident_id",
        "identity",
        "important",
        "110101********1233",
    )
    [d] = json.loads(str(v))["findings"]
    assert (d["type"], d["class"], d["level"], d["masked"]) == (
        "cn_resident_id",
        "identity",
        "important",
        "110101********1233",
    )
