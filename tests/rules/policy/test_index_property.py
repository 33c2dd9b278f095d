"""The rule index only skips rules that cannot match: random policies, random transfers,
and `evaluate` (indexed) must decide exactly as `evaluate_linear` (every rule in order).
"""

from __future__ import annotations

import ipaddress
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Finding
from rules.policy import Context, PolicyError, evaluate, load_policy
from rules.policy.evaluate import evaluate_linear
from rules.policy.facts import classify, matches

ZONE_NETS = ("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "172.16.0.0/12", "fd00::/8", "fd00:1::/32")
ZONES = ("z0", "z1", "z2")
CATEGORIES = ("cat0", "cat1", "cat2")
PARTIES = ("p0", "p1")
CLASSES = {
    "identity": ("important", ["cn_resident_id", "cn_passport"]),
    "financial": ("important", ["cn_bank_card"]),
    "contact": ("basic", ["cn_mobile"]),
    "secret": ("core", ["cn_uscc"]),
}
DETECTORS = ("cn_resident_id", "cn_passport", "cn_bank_card", "cn_mobile", "cn_uscc", "email")
PROBLEMS = (ENCRYPTED_ARCHIVE, UNINSPECTABLE)
CHANNELS = ("http", "https", "websocket", "smtp")
DOMAINS = ("a.example", "b.example", "mail.b.example", "example")
SOURCES = ("10.1.0.0/16", "10.1.2.3/32", "fd00::/8", "203.0.113.0/24", "0.0.0.0/0")
ADDRESSES = (
    "10.1.2.3", "10.1.9.9", "10.200.0.1", "172.16.1.1", "fd00::5", "fd00:1::5",
    "::ffff:10.1.2.3", "203.0.113.5", "198.51.100.9", "192.0.2.1",
)  # fmt: skip
HOSTS = (
    "a.example", "www.a.example", "b.example", "mail.b.example", "c.example", "p0.example",
    "x.p0.example", "p1.example", "intranet.example", "example",
)  # fmt: skip
RECIPIENTS = ("a@p0.example", "boss@x.example", "u@firm.example", "u@mail.example", "u@b.example")
DAYS = st.dates(date(2025, 6, 1), date(2028, 6, 1))


def subset(items, min_size=1):
    return st.lists(st.sampled_from(items), min_size=min_size, max_size=len(items), unique=True)


@st.composite
def zones_file(draw):
    owner = {net: draw(st.sampled_from((*ZONES, None))) for net in ZONE_NETS}
    zones = {}
    for z in ZONES:
        cidrs = [n for n, o in owner.items() if o == z]
        if not cidrs and draw(st.booleans()):
            continue
        zones[z] = {"cidrs": cidrs or ["192.168.0.0/16"] if z == "z0" else cidrs}
        if draw(st.booleans()):
            zones[z]["domains"] = draw(subset(("intranet.example", "c.example")))
        if z == "z0" and draw(st.booleans()):
            zones[z]["mail_domains"] = ["firm.example"]
    names = [*zones, "external"]
    # most zone pairs open (else reach decides nearly everything), a few restricted
    reach = [{"from": a, "to": b} for a in names for b in names if draw(st.integers(0, 3))]
    for _ in range(draw(st.integers(0, 4))):
        entry = {"from": draw(st.sampled_from(names)), "to": draw(st.sampled_from(names))}
        if draw(st.booleans()):
            entry["ports"] = draw(subset((22, 25, 80, 443)))
        if draw(st.booleans()):
            entry["channels"] = draw(subset(CHANNELS))
        if draw(st.booleans()):
            entry["mode"] = draw(st.sampled_from(("enforce", "report")))
        reach.append(entry)
    return {"version": 1, "zones": zones, "reach": reach}, names


@st.composite
def destinations_file(draw):
    categories = {}
    for c in CATEGORIES:
        categories[c] = {
            "domains": draw(subset(DOMAINS[:3], 0)),
            "hosts": draw(subset(("c.example", "www.a.example"), 0)),
            "cidrs": draw(subset(("198.51.100.0/24", "203.0.113.0/24", "10.1.0.0/16"), 0)),
            "mail_domains": draw(subset(("mail.example", "b.example"), 0)),
        }
    return {"version": 1, "categories": categories}


@st.composite
def parties_file(draw):
    parties = {}
    for p in PARTIES:
        start = draw(DAYS)
        party = {
            "name": p.upper(),
            "domains": [f"{p}.example"],
            "receives": draw(subset(tuple(CLASSES))),
            "valid_until": draw(st.dates(start, date(2028, 12, 31))),
        }
        if draw(st.booleans()):
            party["valid_from"] = start
        if p == "p0":
            party["mail_domains"] = ["p0.example"]
        else:
            party["addresses"] = ["boss@x.example"]
        if draw(st.booleans()):
            party["mask"] = draw(subset((*CLASSES, "cn_mobile", "cn_passport")))
        if draw(st.booleans()):
            party["encrypt_mail"] = draw(st.sampled_from(("always", "by-rule")))
        parties[p] = party
    return {"version": 1, "parties": parties}


@st.composite
def classes_file(draw):
    classes = {}
    for name, (level, detectors) in CLASSES.items():
        classes[name] = {"level": level, "detectors": detectors}
        if draw(st.booleans()):
            classes[name]["bulk"] = draw(st.integers(1, 4))
    return {"version": 1, "classes": classes}


@st.composite
def rule(draw, i: int, zones: list[str]):
    when: dict = {}
    options = {
        "source_zone": subset(zones),
        "destination_zone": subset(zones),
        "channel": subset(CHANNELS),
        "category": subset(CATEGORIES),
        "host": subset(DOMAINS),
        "source": subset(SOURCES),
        "user": subset(("alice", "bob")),
        "group": subset(("legal", "ops")),
        "party": st.one_of(st.sampled_from(("any", "none")), subset(PARTIES)),
        "class": subset((*CLASSES, "unclassified")),
        "level": subset(("core", "important", "basic")),
        "detector": subset(DETECTORS + PROBLEMS),
        "min_distinct": st.integers(1, 4),
        "bulk": st.booleans(),
        "uninspectable": st.booleans(),
    }
    for key in draw(st.lists(st.sampled_from(tuple(options)), max_size=4, unique=True)):
        when[key] = draw(options[key])
    actions = ["allow", "report", "mask", "block"]
    if when.get("channel") == ["smtp"]:
        actions += ["encrypt", "quarantine"]
    out = {"id": f"r{i}", "action": draw(st.sampled_from(actions))}
    if when:
        out["when"] = when
    if draw(st.booleans()):
        out["mode"] = draw(st.sampled_from(("enforce", "report")))
    if draw(st.booleans()):
        out["message"] = "{action} ({rule}) to {destination}: {reason}"
    return out


@st.composite
def policies(draw):
    zones, names = draw(zones_file())
    rules = [draw(rule(i, names)) for i in range(draw(st.integers(1, 30)))]
    top = {"version": 1, "rules": rules}
    if draw(st.booleans()):
        top["default_action"] = draw(st.sampled_from(("allow", "report", "mask", "block")))
    if draw(st.booleans()):
        top["mode"] = draw(st.sampled_from(("enforce", "report")))
    top["timezone"] = draw(st.sampled_from(("Asia/Shanghai", "UTC")))
    return {
        "zones.yaml": zones,
        "destinations.yaml": draw(destinations_file()),
        "parties.yaml": draw(parties_file()),
        "classes.yaml": draw(classes_file()),
        "rules.yaml": top,
    }


def maybe(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def transfers(draw):
    channel = draw(st.sampled_from(CHANNELS))
    ctx = Context(
        channel,
        source_ip=draw(maybe(st.sampled_from(ADDRESSES).map(ipaddress.ip_address))),
        user=draw(maybe(st.sampled_from(("alice", "bob", "carol")))),
        groups=frozenset(draw(subset(("legal", "ops", "hr"), 0))),
        host=draw(maybe(st.sampled_from(HOSTS))),
        dest_ip=draw(maybe(st.sampled_from(ADDRESSES).map(ipaddress.ip_address))),
        port=draw(st.sampled_from((None, 22, 25, 80, 443))),
        recipient=draw(maybe(st.sampled_from(RECIPIENTS))) if channel == "smtp" else None,
        when=datetime.combine(draw(DAYS), datetime.min.time(), UTC),
    )
    findings = [
        Finding(
            d,
            1.0,
            f"part {i}",
            0,
            0,
            "" if d in PROBLEMS else "m***",
            "" if d in PROBLEMS else draw(st.sampled_from(("h1", "h2", "h3", "h4", "h5"))),
        )
        for i, d in enumerate(draw(st.lists(st.sampled_from(DETECTORS + PROBLEMS), max_size=8)))
    ]
    return findings, ctx


def load(files: dict) -> object:
    with tempfile.TemporaryDirectory() as d:
        for name, doc in files.items():
            text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
            Path(d, name).write_text(text, encoding="utf-8")
        try:
            return load_policy(d)
        except PolicyError as err:  # the generator must only make valid policies
            raise AssertionError(f"{err}\n{files}") from None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.lists(transfers(), min_size=1, max_size=12))
def test_index_decides_as_linear(files, samples):
    policy = load(files)
    compiled = policy.compiled
    order = [r.id for r in policy.rules]
    for findings, ctx in samples:
        indexed = evaluate(policy, findings, ctx)
        linear = evaluate_linear(policy, findings, ctx)
        assert indexed.rule != "fail-closed", indexed.reason
        assert (indexed.action, indexed.rule, indexed.reason) == (
            linear.action,
            linear.rule,
            linear.reason,
        )
        assert indexed == linear
        # stronger than the first decision: no matching rule anywhere is skipped, order kept
        facts = classify(policy, findings, ctx, compiled.places.resolve(ctx))
        candidates = [r.id for r in compiled.rules.candidates(facts)]
        matching = [r.id for r in policy.rules if matches(policy, r, facts) is not None]
        assert set(matching) <= set(candidates)
        assert candidates == sorted(candidates, key=order.index)
