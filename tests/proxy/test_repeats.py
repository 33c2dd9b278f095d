"""proxy.repeats: remembered answers are the answers evaluate gives, for the policy in force."""

from __future__ import annotations

import ipaddress
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from proxy.repeats import Repeats
from rules.policy import Context, evaluate, load_policy

SHIPPED = Path(__file__).resolve().parents[2] / "rules" / "default"
OFFICE = ipaddress.ip_address("10.1.2.3")
OUTSIDE = ipaddress.ip_address("203.0.113.9")
WEB = ipaddress.ip_address("198.51.100.7")


def ctx(source=OFFICE, port=443, when=None) -> Context:
    return Context(
        channel="https", source_ip=source, host="example.org", dest_ip=WEB, port=port,
        when=when or datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    )  # fmt: skip


def test_a_remembered_verdict_is_the_one_evaluate_gives_for_that_context():
    policy = load_policy(SHIPPED)
    repeats = Repeats()
    office, outside = ctx(), ctx(source=OUTSIDE, port=22)
    for c in (office, outside):
        assert repeats.verdict(policy, c) is None
        repeats.remember_verdict(policy, c, evaluate(policy, (), c))
    assert repeats.verdict(policy, office) == evaluate(policy, (), office)
    assert repeats.verdict(policy, outside) == evaluate(policy, (), outside)
    # different contexts, different answers: the key is not just the host
    assert repeats.verdict(policy, office).action != repeats.verdict(policy, outside).action


def test_the_time_counts_to_the_quarter_hour():
    policy = load_policy(SHIPPED)
    repeats = Repeats()
    first = ctx()
    repeats.remember_verdict(policy, first, evaluate(policy, (), first))
    assert repeats.verdict(policy, ctx(when=first.when + timedelta(minutes=5))) is not None
    assert repeats.verdict(policy, ctx(when=first.when + timedelta(minutes=15))) is None
    assert repeats.verdict(policy, ctx(when=first.when + timedelta(days=1))) is None


def test_a_reloaded_policy_forgets_everything(tmp_path):
    shutil.copytree(SHIPPED, tmp_path / "p")
    before = load_policy(tmp_path / "p")
    zones = tmp_path / "p" / "zones.yaml"
    # the office may no longer reach the web: the same context now gets a block
    text = zones.read_text()
    assert "    ports: [80, 443]\n" in text
    zones.write_text(text.replace("    ports: [80, 443]\n", "    ports: [80]\n", 1))
    after = load_policy(tmp_path / "p")
    repeats = Repeats()
    c = ctx()
    repeats.remember_verdict(before, c, evaluate(before, (), c))
    repeats.remember_clean_url(before, "example.org", "/page")
    assert repeats.verdict(after, c) is None
    assert not repeats.url_is_clean(after, "example.org", "/page")
    assert evaluate(after, (), c).action != evaluate(before, (), c).action


def test_clean_urls_are_exact_and_bounded():
    policy = load_policy(SHIPPED)
    repeats = Repeats(max_entries=3)
    repeats.remember_clean_url(policy, "example.org", "/a")
    assert repeats.url_is_clean(policy, "example.org", "/a")
    assert not repeats.url_is_clean(policy, "example.org", "/a?x=1")
    assert not repeats.url_is_clean(policy, "example.net", "/a")
    for path in ("/b", "/c", "/d"):
        repeats.remember_clean_url(policy, "example.org", path)
    assert not repeats.url_is_clean(policy, "example.org", "/a")  # a full table starts afresh
    assert repeats.url_is_clean(policy, "example.org", "/d")
