"""Policies written for one behaviour each: the base policy (tests/data/policies/base)
with one or two files replaced. Base: office 10/8 + fd00::/8, restricted 10.9.0.0/24;
category webmail (mail.example.net, @webmail.example) and netdisk (drop.example.org,
198.51.100.0/24); party acme (acme.example, receives contact, 2026–2027); classes
identity (important), contact (basic, bulk 3), secret (core, keyword "Project Falcon").
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rules.custom import KeywordDetector, RegexDetector
from rules.engine import Engine
from rules.policy import Action, Mode, evaluate
from rules.policy.model import CustomSpec
from tests.rules.policy.common import (
    ARCHIVE,
    ID_TEXT,
    KEY,
    PHONE_TEXT,
    mail,
    phones,
    scan,
    web,
)

OFFICE = "10.1.2.3"
OUT = "www.example.com"


def rules(*body: str, head: str = "") -> str:
    """rules.yaml text from rule blocks (each a YAML list item) and optional top keys."""
    return "version: 1\n" + head + "rules:\n" + "".join(body)


def decide(policy, content, ctx):
    return evaluate(policy, scan(policy, content), ctx)


# -- report mode ---------------------------------------------------------------------------


def test_report_mode_rule_is_recorded_and_a_later_rule_decides(make_policy):
    policy = make_policy(
        rules=rules(
            """\
  - id: watch-identity
    mode: report
    when: {class: [identity]}
    action: block
  - id: record-identity
    when: {class: [identity]}
    action: report
"""
        )
    )
    v = decide(policy, ID_TEXT, web(OFFICE, OUT))
    assert (v.action, v.rule) == (Action.REPORT, "record-identity")
    assert v.would_block and v.would_action is Action.BLOCK
    [r] = v.reported
    assert (r.rule, r.action) == ("watch-identity", Action.BLOCK)
    assert "cn_resident_id ×1 (identity, important) to www.example.com" in r.reason
    assert v.to_dict()["reported"][0]["rule"] == "watch-identity"


def test_report_mode_rule_that_does_not_match_is_not_recorded(make_policy):
    policy = make_policy(
        rules=rules(
            """\
  - id: watch-identity
    mode: report
    when: {class: [identity]}
    action: block
"""
        )
    )
    v = decide(policy, PHONE_TEXT, web(OFFICE, OUT))
    assert (v.action, v.rule, v.reported, v.would_block) == (Action.ALLOW, "default", (), False)


def test_policy_wide_report_mode(make_policy):
    policy = make_policy(
        rules=rules(
            """\
  - id: no-identity-out
    when: {class: [identity]}
    action: block
  - id: no-secret-out
    mode: enforce
    when: {level: [core]}
    action: block
""",
            head="mode: report\n",
        )
    )
    assert [r.mode for r in policy.rules] == [Mode.REPORT, Mode.ENFORCE]
    v = decide(policy, ID_TEXT, web(OFFICE, OUT))
    assert (v.action, v.rule) == (Action.ALLOW, "default")
    assert v.would_block
    assert [r.rule for r in v.reported] == ["no-identity-out"]
    v = decide(policy, (ID_TEXT, "Project Falcon budget"), web(OFFICE, OUT))
    assert (v.action, v.rule) == (Action.BLOCK, "no-secret-out")  # its own mode: enforce
    assert [r.rule for r in v.reported] == ["no-identity-out"]


ZONES_REPORT = """\
version: 1
zones:
  office:
    cidrs: [10.0.0.0/8]
reach:
  - from: office
    to: external
    ports: [443]
    mode: report
"""


def test_reach_in_report_mode_is_recorded_not_enforced(make_policy):
    policy = make_policy(zones=ZONES_REPORT)
    v = decide(policy, ID_TEXT, web(OFFICE, OUT, port=22))
    assert (v.action, v.rule) == (Action.BLOCK, "no-identity-out")  # decided by the rules
    [r] = v.reported
    assert (r.rule, r.action) == ("reach:office->external", Action.BLOCK)
    assert r.reason == (
        "zone office may reach zone external only ports 443, not on port 22 over https "
        "(www.example.com)"
    )
    v = decide(policy, "", web(OFFICE, OUT, port=22))
    assert (v.action, v.rule, v.would_block) == (Action.ALLOW, "default", True)
    assert decide(policy, "", web(OFFICE, OUT, port=443)).reported == ()


def test_reach_enforced_when_any_path_enforces(make_policy):
    policy = make_policy(
        zones=ZONES_REPORT
        + """\
  - from: office
    to: external
    ports: [80]
"""
    )
    v = decide(policy, "", web(OFFICE, OUT, port=22))
    assert (v.action, v.rule) == (Action.BLOCK, "reach:office->external")
    assert "only ports 443; or ports 80, not on port 22" in v.reason


def test_unlisted_zone_pair_is_refused(make_policy):
    policy = make_policy()
    v = decide(policy, "", web("10.9.0.5", "db.firm.example", dest="10.1.0.9"))
    assert (v.action, v.rule) == (Action.BLOCK, "reach:restricted->office")
    assert v.reason == "zone restricted may not reach zone office (db.firm.example)"


# -- order and defaults ------------------------------------------------------------------------

FIRST = """\
  - id: first
    when: {class: [identity]}
    action: report
"""
SECOND = """\
  - id: second
    when: {destination_zone: [external]}
    action: block
"""


@pytest.mark.parametrize(
    ("order", "rule", "action"),
    [((FIRST, SECOND), "first", Action.REPORT), ((SECOND, FIRST), "second", Action.BLOCK)],
    ids=["report-first", "block-first"],
)
def test_first_matching_rule_decides(make_policy, order, rule, action):
    policy = make_policy(rules=rules(*order))
    v = decide(policy, ID_TEXT, web(OFFICE, OUT))
    assert (v.rule, v.action) == (rule, action)


def test_default_action_block(make_policy):
    policy = make_policy(rules=rules(FIRST, head="default_action: block\n"))
    v = decide(policy, PHONE_TEXT, web(OFFICE, OUT))
    assert (v.action, v.rule) == (Action.BLOCK, "default")
    assert v.reason == "no rule matched; the policy's default action is block"
    assert v.message.startswith("Blocked by the data-protection policy (rule default): no rule")


def test_message_placeholders(make_policy):
    policy = make_policy(
        rules=rules(
            """\
  - id: no-identity-out
    when: {class: [identity]}
    action: block
    message: "{action} by {rule} to {destination}: {reason}"
"""
        )
    )
    v = decide(policy, ID_TEXT, web(OFFICE, "WWW.Example.COM"))
    assert v.message == (
        "block by no-identity-out to www.example.com: rule no-identity-out: "
        "1 distinct value: cn_resident_id ×1 (identity, important) to www.example.com; "
        "zone external"
    )


# -- parties ---------------------------------------------------------------------------------

PARTY_RULES = rules(
    """\
  - id: to-party
    when: {party: any, destination_zone: [external]}
    action: allow
  - id: data-elsewhere
    when: {destination_zone: [external], level: [important, basic]}
    action: block
"""
)


def test_party_may_not_receive_a_class(make_policy):
    policy = make_policy(rules=PARTY_RULES)
    v = decide(policy, ID_TEXT, web(OFFICE, "upload.acme.example"))
    assert (v.action, v.rule) == (Action.BLOCK, "data-elsewhere")
    assert "approved party acme (party acme may not receive identity)" in v.reason
    v = decide(policy, PHONE_TEXT, web(OFFICE, "upload.acme.example"))
    assert (v.action, v.rule, v.party) == (Action.ALLOW, "to-party", "acme")
    v = decide(policy, PHONE_TEXT, mail(OFFICE, "ops@ACME.example"))
    assert (v.action, v.rule, v.party) == (Action.ALLOW, "to-party", "acme")


def test_party_by_id_list_and_none(make_policy):
    policy = make_policy(
        rules=rules(
            """\
  - id: acme-only
    when: {party: [acme]}
    action: report
  - id: no-party
    when: {party: none}
    action: block
"""
        )
    )
    assert decide(policy, "", web(OFFICE, "acme.example")).rule == "acme-only"
    assert decide(policy, "", web(OFFICE, OUT)).rule == "no-party"
    expired = web(OFFICE, "acme.example", when=datetime(2028, 1, 1, tzinfo=UTC))
    v = decide(policy, "", expired)
    assert (v.rule, v.place.party) == ("no-party", None)
    assert "agreement of party acme expired on 2027-12-31: treated as unapproved" in v.reason


PARTIES_FULL = """\
version: 1
parties:
  acme:
    name: Acme Collections
    domains: [acme.example]
    mail_domains: [acme.example]
    addresses: [Boss@Mail.Example]
    receives: [contact, identity]
    mask: [cn_mobile]
    encrypt_mail: always
    valid_from: 2026-01-01
    valid_until: 2027-12-31
"""


def test_need_to_know_and_encrypt_always(make_policy):
    policy = make_policy(parties=PARTIES_FULL, rules=rules(FIRST))
    v = decide(policy, (ID_TEXT, PHONE_TEXT), mail(OFFICE, "boss@mail.example"))
    assert (v.action, v.rule, v.party, v.encrypt_scope) == (
        Action.ENCRYPT,
        "first",
        "acme",
        "message",
    )
    assert [f.detector for f in v.mask] == ["cn_mobile"]
    v = decide(policy, (ID_TEXT, PHONE_TEXT), web(OFFICE, "acme.example"))
    assert (v.action, v.rule, v.encrypt_scope) == (Action.MASK, "first", "")
    assert [f.detector for f in v.mask] == ["cn_mobile"]
    v = decide(policy, ID_TEXT, mail(OFFICE, "other@mail.example"))  # not the listed address
    assert (v.action, v.party) == (Action.REPORT, None)


def test_party_agreement_day_is_in_the_policy_timezone(make_policy):
    evening = datetime(2027, 12, 31, 20, 0, tzinfo=UTC)  # 2028-01-01 04:00 in Shanghai
    shanghai = make_policy(rules=PARTY_RULES)
    utc = make_policy(rules=PARTY_RULES.replace("rules:", "timezone: UTC\nrules:"))
    assert utc.timezone == "UTC"
    assert decide(utc, PHONE_TEXT, web(OFFICE, "acme.example", when=evening)).rule == "to-party"
    v = decide(shanghai, PHONE_TEXT, web(OFFICE, "acme.example", when=evening))
    assert v.rule == "data-elsewhere"
    assert "expired on 2027-12-31" in v.reason


# -- data conditions ----------------------------------------------------------------------


@pytest.mark.parametrize(("count", "matched"), [(1, False), (2, False), (3, True), (4, True)])
def test_min_distinct(make_policy, count, matched):
    policy = make_policy(
        rules=rules(
            """\
  - id: many-phones
    when: {class: [contact], min_distinct: 3}
    action: block
"""
        )
    )
    v = decide(policy, phones(count), web(OFFICE, OUT))
    assert v.rule == ("many-phones" if matched else "default")


def test_min_distinct_counts_values_not_occurrences(make_policy):
    policy = make_policy(
        rules=rules(
            """\
  - id: many-phones
    when: {min_distinct: 2}
    action: block
"""
        )
    )
    assert decide(policy, (PHONE_TEXT, PHONE_TEXT, PHONE_TEXT), web(OFFICE, OUT)).rule == "default"
    assert decide(policy, (PHONE_TEXT, ID_TEXT), web(OFFICE, OUT)).rule == "many-phones"


@pytest.mark.parametrize(
    ("count", "rule"), [(2, "few-contacts"), (3, "bulk-contacts"), (5, "bulk-contacts")]
)
def test_bulk(make_policy, count, rule):
    policy = make_policy(
        rules=rules(
            """\
  - id: bulk-contacts
    when: {class: [contact], bulk: true}
    action: block
  - id: few-contacts
    when: {class: [contact], bulk: false}
    action: report
"""
        )
    )
    v = decide(policy, phones(count), web(OFFICE, OUT))
    assert v.rule == rule
    assert f"{count} distinct values: cn_mobile ×{count} (contact, basic)" in v.reason


def test_bulk_counts_per_class(make_policy):
    """Two phones and one ID are three values, but no class reaches its own threshold."""
    policy = make_policy(
        rules=rules(
            """\
  - id: bulk
    when: {bulk: true}
    action: block
"""
        )
    )
    assert decide(policy, (phones(2), ID_TEXT), web(OFFICE, OUT)).rule == "default"


def test_detector_condition_on_a_problem(make_policy):
    policy = make_policy(
        rules=rules(
            """\
  - id: archives
    when: {detector: [encrypted_archive]}
    action: block
  - id: readable
    when: {uninspectable: false}
    action: report
"""
        )
    )
    v = decide(policy, (ARCHIVE, ID_TEXT), web(OFFICE, OUT))
    assert v.rule == "archives"
    assert [f.detector for f in v.findings] == ["encrypted_archive"]
    assert decide(policy, ID_TEXT, web(OFFICE, OUT)).rule == "readable"


def test_unclassified_detector_is_basic(make_policy):
    policy = make_policy(
        rules=rules(
            """\
  - id: unclassified
    when: {class: [unclassified], level: [basic]}
    action: report
"""
        )
    )
    v = decide(policy, "write to someone@example.org", web(OFFICE, OUT))
    assert v.rule == "unclassified"
    assert "email ×1 (unclassified, basic)" in v.reason


# -- where conditions ---------------------------------------------------------------------------

HOST_RULES = rules(
    """\
  - id: to-example-net
    when: {host: [example.net]}
    action: block
"""
)


@pytest.mark.parametrize(
    ("ctx", "matched"),
    [
        (web(OFFICE, "example.net"), True),
        (web(OFFICE, "www.example.net"), True),
        (web(OFFICE, "A.B.Example.NET."), True),
        (web(OFFICE, "badexample.net"), False),
        (web(OFFICE, "example.net.evil.org"), False),
        (web(OFFICE, None, dest="192.0.2.1"), False),
        (mail(OFFICE, "someone@example.net"), True),
        (mail(OFFICE, "someone@mx.example.net"), True),
        (mail(OFFICE, "example.net@evil.org"), False),
    ],
    ids=[
        "domain",
        "subdomain",
        "case-and-dot",
        "suffix-not-label",
        "prefix",
        "address-only",
        "mail",
        "mail-subdomain",
        "mail-local-part",
    ],
)
def test_host_condition(make_policy, ctx, matched):
    v = decide(make_policy(rules=HOST_RULES), "", ctx)
    assert v.rule == ("to-example-net" if matched else "default")


WHO_RULES = rules(
    """\
  - id: by-user
    when: {user: [alice]}
    action: report
  - id: by-group
    when: {group: [legal, finance]}
    action: mask
  - id: by-source
    when: {source: [10.20.0.0/16, "fd00:1::/32"]}
    action: block
"""
)


@pytest.mark.parametrize(
    ("ctx", "rule"),
    [
        (web(OFFICE, OUT, user="alice"), "by-user"),
        (web(OFFICE, OUT, user="alice", groups=frozenset({"legal"})), "by-user"),
        (web(OFFICE, OUT, user="bob", groups=frozenset({"finance", "x"})), "by-group"),
        (web(OFFICE, OUT, user="bob", groups=frozenset({"x"})), "default"),
        (web("10.20.1.1", OUT, user="bob"), "by-source"),
        (web("fd00:1::9", OUT), "by-source"),
        (web("fd00:2::9", OUT), "default"),
        (web(None, OUT), "reach:external->external"),
        (web(OFFICE, OUT), "default"),
    ],
    ids=[
        "user",
        "user-before-group",
        "group",
        "other-group",
        "source-v4",
        "source-v6",
        "other-v6",
        "no-source",
        "nobody",
    ],
)
def test_who_conditions(make_policy, ctx, rule):
    assert decide(make_policy(rules=WHO_RULES), "", ctx).rule == rule


def test_source_condition_sees_ipv4_mapped_addresses(make_policy):
    """::ffff:10.20.1.1 is 10.20.1.1 for `source:` as it is for zones (index and rule)."""
    assert decide(make_policy(rules=WHO_RULES), "", web("::ffff:10.20.1.1", OUT)).rule == (
        "by-source"
    )


@pytest.mark.parametrize(
    ("src", "zone"),
    [
        ("10.9.0.5", "restricted"),
        ("::ffff:10.9.0.5", "restricted"),
        ("10.9.1.5", "office"),
        ("10.8.255.255", "office"),
        ("::ffff:10.1.1.1", "office"),
        ("fd00::1", "office"),
        ("fe80::1", "external"),
        ("11.0.0.1", "external"),
    ],
)
def test_source_zone_longest_prefix(make_policy, src, zone):
    v = decide(make_policy(), "", web(src, "intranet.example", dest="10.9.0.9"))
    assert v.place.source_zone == zone


def test_destination_zone_by_address_then_by_name(make_policy):
    policy = make_policy()
    assert decide(policy, "", web(OFFICE, "intranet.example")).place.destination_zone == "office"
    assert decide(policy, "", web(OFFICE, "wiki.intranet.example")).place.destination_zone == (
        "office"
    )
    # the address connected to decides, not the name the client gave
    v = decide(policy, "", web(OFFICE, "intranet.example", dest="192.0.2.7"))
    assert v.place.destination_zone == "external"


def test_zone_mail_domain_keeps_internal_mail_internal(make_policy):
    policy = make_policy()
    v = decide(policy, ID_TEXT, mail(OFFICE, "Colleague@Firm.Example"))
    assert (v.place.destination_zone, v.action, v.rule) == ("office", Action.ALLOW, "default")
    v = decide(policy, ID_TEXT, mail(OFFICE, "colleague@firm.example.org"))
    assert (v.place.destination_zone, v.rule) == ("external", "no-identity-out")


@pytest.mark.parametrize(
    ("ctx", "categories"),
    [
        (web(OFFICE, "mail.example.net"), {"webmail"}),
        (web(OFFICE, "eu.mail.example.net"), {"webmail"}),
        (web(OFFICE, "drop.example.org"), {"netdisk"}),  # `hosts:` is exact
        (web(OFFICE, "x.drop.example.org"), set()),
        (web(OFFICE, None, dest="198.51.100.20"), {"netdisk"}),
        (web(OFFICE, "mail.example.net", dest="198.51.100.20"), {"webmail", "netdisk"}),
        (mail(OFFICE, "a@webmail.example"), {"webmail"}),
        (mail(OFFICE, "a@mail.example.net"), set()),  # web domains are not mail domains
    ],
    ids=[
        "domain",
        "subdomain",
        "exact-host",
        "under-exact-host",
        "cidr",
        "name-and-cidr",
        "mail-domain",
        "web-domain-by-mail",
    ],
)
def test_categories(make_policy, ctx, categories):
    assert decide(make_policy(), "", ctx).place.categories == frozenset(categories)


# -- custom detectors -----------------------------------------------------------------------

CLASSES_CUSTOM = """\
version: 1
classes:
  identity:
    level: important
    detectors: [cn_resident_id]
  contact:
    level: basic
    detectors: [cn_mobile]
    bulk: 3
  project:
    level: core
    detectors: [falcon, ticket, card_ref]
detectors:
  falcon:
    keywords: [Project Falcon, 猎鹰计划]
    score: 0.9
  ticket:
    regex: "TK-[0-9]{6}"
  card_ref:
    regex: "(?<=REF)[0-9]{16}"  # the validator sees the whole match
    validator: luhn
"""


def test_custom_detectors_are_declared_built_and_used(make_policy):
    policy = make_policy(
        classes=CLASSES_CUSTOM,
        rules=rules(
            """\
  - id: tickets
    when: {detector: [ticket]}
    action: block
  - id: project
    when: {class: [project]}
    action: report
"""
        ),
    )
    specs = {s.id: s for s in policy.custom_detectors}
    assert specs["falcon"] == CustomSpec("falcon", words=("Project Falcon", "猎鹰计划"), score=0.9)
    assert specs["ticket"] == CustomSpec("ticket", pattern="TK-[0-9]{6}")
    assert (specs["card_ref"].pattern, specs["card_ref"].validator) == ("(?<=REF)[0-9]{16}", "luhn")
    built = {s.id: s.build() for s in policy.custom_detectors}
    assert isinstance(built["falcon"], KeywordDetector)
    assert isinstance(built["ticket"], RegexDetector)

    engine = Engine(hash_key=KEY, custom=[s.build() for s in policy.custom_detectors])
    text = "猎鹰计划: see TK-123456, REF4111111111111111 and REF4111111111111112"
    found = sorted(f.detector for f in engine.scan_text(text))
    assert found == ["card_ref", "falcon", "ticket"]  # the Luhn-invalid reference is dropped

    v = evaluate(policy, engine.scan_text(text), web(OFFICE, OUT))
    assert (v.action, v.rule) == (Action.BLOCK, "tickets")
    assert [f.detector for f in v.findings] == ["ticket"]
    v = evaluate(policy, engine.scan_text("project falcon"), web(OFFICE, OUT))
    assert (v.action, v.rule) == (Action.REPORT, "project")
    assert "falcon ×1 (project, core)" in v.reason


def test_custom_detector_score_zero_is_kept(make_policy):
    policy = make_policy(classes=CLASSES_CUSTOM.replace("score: 0.9", "score: 0"))
    [falcon] = [s for s in policy.custom_detectors if s.id == "falcon"]
    assert falcon.score == 0.0
