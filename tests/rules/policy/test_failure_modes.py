"""One directory per failure mode under tests/data/policies/: base + the files that break it.

Each row names the directory and the one issue it must produce: file, line, key, and
text expected in the message and in the fix. A row whose directory does not exist (only
`missing-file`) starts from base and removes files instead.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from rules.policy import PolicyError, load_policy
from rules.policy.errors import Issue
from tests.rules.policy.common import POLICIES, write_policy


class Expect(NamedTuple):
    file: str
    line: int
    key: str
    message: str
    fix: str = ""
    remove: tuple[str, ...] = ()


FAILURES: dict[str, Expect] = {
    "misspelt-key": Expect(
        "rules.yaml", 6, "rules[].actoin", "unknown key", "did you mean `action`?"
    ),
    "unknown-top-level-key": Expect(
        "zones.yaml", 2, "owner", "unknown key", "did you mean `zones`?"
    ),
    "missing-version": Expect(
        "classes.yaml", 1, "version", "missing", "start the file with `version: 1`"
    ),
    "wrong-version": Expect(
        "parties.yaml", 1, "version", "version 2 is not supported", "reads `version: 1`"
    ),
    "duplicate-key": Expect("rules.yaml", 7, "action", "duplicate key (first on line 6)", "merge"),
    "duplicate-rule-id": Expect(
        "rules.yaml", 7, "rules.no-identity-out", "duplicate rule id (first on line 3)", "unique"
    ),
    "unknown-zone-in-reach": Expect(
        "zones.yaml", 7, "reach.to", "unknown zone 'ofice'", "did you mean `office`?"
    ),
    "unknown-zone-in-rule": Expect(
        "rules.yaml",
        5,
        "rules.no-identity-out.when.destination_zone",
        "unknown zone 'externel'",
        "did you mean `external`?",
    ),
    "unknown-class-in-rule": Expect(
        "rules.yaml",
        5,
        "rules.no-identity-out.when.class",
        "unknown class 'identiy'",
        "did you mean `identity`?",
    ),
    "unknown-detector-in-rule": Expect(
        "rules.yaml",
        5,
        "rules.no-identity-out.when.detector",
        "unknown detector 'cn_resident'",
        "did you mean `cn_resident_id`?",
    ),
    "unknown-category-in-rule": Expect(
        "rules.yaml",
        5,
        "rules.no-webmail.when.category",
        "unknown category 'web-mail'",
        "did you mean `webmail`?",
    ),
    "unknown-party-in-rule": Expect(
        "rules.yaml", 5, "rules.to-acme.when.party", "unknown party 'acm'", "did you mean `acme`?"
    ),
    "invalid-cidr": Expect(
        "zones.yaml", 4, "zones.office.cidrs", "'10.0.0.0/33' is not a network", "like 10.1.0.0/16"
    ),
    "cidr-host-bits": Expect(
        "zones.yaml", 4, "zones.office.cidrs", "host bits set", "did you mean 10.1.0.0/16?"
    ),
    "cidr-in-two-zones": Expect(
        "zones.yaml", 6, "zones.lab.cidrs", "10.0.0.0/8 is also in zone office", "one zone"
    ),
    "reach-empty-ports": Expect(
        "zones.yaml", 8, "reach.ports", "empty list", "leave `ports` out to allow any"
    ),
    "zone-named-external": Expect(
        "zones.yaml", 6, "zones.external", "cannot be declared", "give the zone another name"
    ),
    "url-instead-of-host": Expect(
        "destinations.yaml",
        6,
        "categories.webmail.domains",
        "is a URL, not a host",
        "write the host alone: mail.example.com",
    ),
    "wildcard-host": Expect(
        "destinations.yaml",
        4,
        "categories.webmail.domains",
        "no wildcards",
        "write `example.net`: a domain covers all its subdomains",
    ),
    "invalid-date": Expect(
        "parties.yaml",
        7,
        "parties.acme.valid_until",
        "expected a date, got 'end of next year'",
        "YYYY-MM-DD",
    ),
    "until-before-from": Expect(
        "parties.yaml",
        8,
        "parties.acme.valid_until",
        "ends (2026-12-31) before it starts (2027-01-01)",
    ),
    "encrypt-without-smtp": Expect(
        "rules.yaml",
        6,
        "rules.encrypt-identity.action",
        "`encrypt` applies only to mail",
        "add `channel: [smtp]` under `when`",
    ),
    "quarantine-not-only-smtp": Expect(
        "rules.yaml",
        7,
        "rules.hold-identity.action",
        "`quarantine` applies only to mail",
        "add `channel: [smtp]`",
    ),
    "unknown-placeholder": Expect(
        "rules.yaml",
        7,
        "rules.no-identity-out.message",
        "unknown placeholder {user}",
        "{rule}, {reason}, {destination}, {action}",
    ),
    "invalid-regex": Expect("classes.yaml", 12, "detectors.ticket.regex", "invalid regex"),
    "regex-matches-empty": Expect(
        "classes.yaml",
        12,
        "detectors.ticket.regex",
        "matches the empty string",
        "at least one character",
    ),
    "unknown-validator": Expect(
        "classes.yaml", 13, "detectors.ticket.validator", "unknown validator 'luhnn'", ""
    ),
    "detector-in-two-classes": Expect(
        "classes.yaml",
        12,
        "classes.identity-again.detectors",
        "detector cn_resident_id is already in class identity",
        "a detector feeds one class",
    ),
    "custom-named-like-builtin": Expect(
        "classes.yaml", 12, "detectors.cn_mobile", "cn_mobile is a built-in detector", "another"
    ),
    "empty-condition-list": Expect(
        "rules.yaml",
        6,
        "rules.no-identity-out.when.channel",
        "empty list: the rule could never match",
        "remove `channel`",
    ),
    "extra-file": Expect("rule.yaml", 0, "", "not a policy file", "did you mean `rules.yaml`?"),
    "missing-file": Expect(
        "parties.yaml", 0, "", "missing", "create parties.yaml", remove=("parties.yaml",)
    ),
    "invalid-yaml-syntax": Expect("rules.yaml", 5, "", "not valid YAML"),
    "second-document": Expect(
        "destinations.yaml", 6, "", "a second YAML document", "keep one document per file"
    ),
    "non-utf8": Expect("destinations.yaml", 0, "", "not UTF-8 text", "save the file as UTF-8"),
    "unknown-timezone": Expect(
        "rules.yaml", 2, "timezone", "unknown time zone 'Asia/Beijing'", "IANA name"
    ),
}

# Failure modes the loader gets wrong today: each row says what it should do.
BUGS: dict[str, tuple[Expect, str]] = {
    "message-lone-brace": (
        Expect("rules.yaml", 7, "rules.no-identity-out.message", "", ""),
        "was a bug: a message with an unmatched '{' raises ValueError from string.Formatter "
        "out of load_policy instead of a PolicyError issue",
    ),
    "impossible-date": (
        Expect("parties.yaml", 7, "parties.acme.valid_until", "", "YYYY-MM-DD"),
        "was a bug: valid_until: 2027-02-30 raises ValueError from PyYAML's timestamp "
        "constructor (yamlsrc catches only ConstructorError)",
    ),
    "tagged-value": (
        Expect("zones.yaml", 8, "", "cannot read value", ""),
        "was a bug: `!!int https` raises ValueError out of yamlsrc._convert",
    ),
    "detectors-not-a-list": (
        Expect("classes.yaml", 5, "classes.identity.detectors", "expected a list", ""),
        "was a bug: `detectors: cn_resident_id` (a scalar) raises AttributeError: wire.classes "
        "iterates the string's characters as Nodes",
    ),
    "reach-zone-as-list": (
        Expect("zones.yaml", 6, "reach.from", "", ""),
        "was a bug: `from: [office]` raises TypeError (unhashable list) in _zone_ref",
    ),
    "bad-merge-key": (
        Expect("zones.yaml", 4, "", "", ""),
        "was a bug: `<<: 5` raises yaml ConstructorError from flatten_mapping, outside the try",
    ),
    "recursive-alias": (
        Expect("destinations.yaml", 4, "", "", ""),
        "was a bug: a recursive alias (&loop [*loop]) recurses until RecursionError",
    ),
    "version-true": (
        Expect("zones.yaml", 1, "version", "not supported", "reads `version: 1`"),
        "was a bug: `version: true` is accepted because True == 1 in Python",
    ),
    "default-action-mail-only": (
        Expect("rules.yaml", 2, "default_action", "only to mail", ""),
        "was a bug: default_action: encrypt is accepted; it then applies to web uploads, "
        "which rules may not do (MAIL_ONLY_ACTIONS)",
    ),
    "cidr-line-after-duplicate": (
        Expect("zones.yaml", 9, "zones.lab.cidrs", "10.0.0.0/8 is also in zone office", ""),
        "was a bug: the issue points at line 8 (the duplicate 192.168.0.0/16): wire.zones zips "
        "the de-duplicated networks with the raw items, so lines shift after a duplicate",
    ),
    "domain-in-two-parties": (
        Expect(
            "parties.yaml",
            10,
            "parties.acme-legal.domains",
            "domain acme.example belongs to several parties: acme, acme-legal",
            "a destination belongs to one party",
        ),
        "was a bug: the issue has line 0 and key `parties`: Places._check_unambiguous "
        "runs after loading and has no Node to point at",
    ),
}


def _load_case(tmp_path, name: str, expect: Expect):
    override = POLICIES / name
    files: dict[str, bytes | None] = {n: None for n in expect.remove}
    if override.is_dir():
        files |= {p.name: p.read_bytes() for p in override.iterdir()}
    return load_policy(write_policy(tmp_path / name, files))


def _matching(issues: tuple[Issue, ...], expect: Expect) -> list[Issue]:
    return [
        i
        for i in issues
        if not i.warning
        and (i.file, i.line, i.key) == (expect.file, expect.line, expect.key)
        and expect.message in i.message
        and expect.fix in i.fix
    ]


def _check(tmp_path, name: str, expect: Expect) -> None:
    with pytest.raises(PolicyError) as caught:
        _load_case(tmp_path, name, expect)
    issues = caught.value.issues
    assert _matching(issues, expect), "\n".join(repr(i) for i in issues)
    # the error's text names file (and line) for each issue
    where = f"{expect.file}:{expect.line}" if expect.line else expect.file
    assert where in str(caught.value)


@pytest.mark.parametrize("name", FAILURES, ids=FAILURES)
def test_failure_mode(tmp_path, name):
    _check(tmp_path, name, FAILURES[name])


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, id=n) for n in BUGS],
    ids=list(BUGS),
)
def test_failure_mode_once_a_bug(tmp_path, name):
    _check(tmp_path, name, BUGS[name][0])


def test_misspelt_key_also_reports_the_missing_key(tmp_path):
    with pytest.raises(PolicyError) as caught:
        _load_case(tmp_path, "misspelt-key", FAILURES["misspelt-key"])
    assert [(i.line, i.key, i.message) for i in caught.value.issues if not i.warning] == [
        (3, "rules[]", "missing `action`"),
        (6, "rules[].actoin", "unknown key"),
    ]


def test_every_failure_directory_has_a_row():
    dirs = {p.name for p in POLICIES.iterdir() if p.is_dir()} - {"base"}
    rows = set(FAILURES) | set(BUGS)
    assert dirs == rows - {
        n for n, e in FAILURES.items() if e.remove and not (POLICIES / n).exists()
    }


def test_base_policy_loads():
    policy = load_policy(POLICIES / "base")
    assert [r.id for r in policy.rules] == ["no-identity-out"]
    assert {z.name for z in policy.zones} == {"office", "restricted"}
    assert [p.id for p in policy.parties] == ["acme"]
    assert [c.id for c in policy.custom_detectors] == ["falcon"]
    assert all(": warning: " in w for w in policy.warnings)


def test_issues_from_several_files_are_all_listed(tmp_path):
    """Issues found while building are all listed (read errors stop before building)."""
    files = {
        p.name: p.read_bytes()
        for n in ("misspelt-key", "unknown-top-level-key", "wildcard-host")
        for p in (POLICIES / n).iterdir()
    }
    with pytest.raises(PolicyError) as caught:
        load_policy(write_policy(tmp_path / "p", files))
    assert {i.file for i in caught.value.issues if not i.warning} == {
        "zones.yaml",
        "destinations.yaml",
        "rules.yaml",
    }


def test_not_a_directory(tmp_path):
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "nowhere")
    [issue] = caught.value.issues
    assert issue.message == "not a directory"


def test_warnings_do_not_stop_loading(make_policy):
    policy = make_policy(
        rules="""\
        version: 1
        rules:
          - id: everything
            action: allow
          - id: no-identity-out
            when:
              class: [identity]
            action: block
        """
    )
    assert [r.id for r in policy.rules] == ["everything", "no-identity-out"]
    [warning] = [w for w in policy.warnings if "never reached" in w]
    assert warning.startswith("rules.yaml:5: `rules.no-identity-out`: warning: never reached")
    assert "rule everything (line 3)" in warning


def test_report_mode_catch_all_does_not_shadow(make_policy):
    policy = make_policy(
        rules="""\
        version: 1
        rules:
          - id: everything
            mode: report
            action: block
          - id: no-identity-out
            when:
              class: [identity]
            action: block
        """
    )
    assert not [w for w in policy.warnings if "never reached" in w]
