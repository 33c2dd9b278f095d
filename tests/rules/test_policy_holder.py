"""Reload: a new policy is built completely before it is swapped in; a bad one is refused."""

from __future__ import annotations

import ipaddress
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rules.engine import Engine
from rules.policy import Action, Context, PolicyError, evaluate
from rules.policy.holder import PolicyHolder

DEFAULT = Path(__file__).resolve().parents[2] / "rules" / "default"
ID_TEXT = "身份证 11010519491231002X"
WHEN = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    shutil.copytree(DEFAULT, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_reload_swaps_in_the_new_policy_and_reports_it(policy_dir: Path) -> None:
    events: list[dict] = []
    holder = PolicyHolder(policy_dir, on_event=events.append)
    first = holder.policy
    _edit(policy_dir / "rules.yaml", "default_action: allow", "default_action: block")
    result = holder.reload()
    assert result.ok and result.changed
    assert holder.policy is not first
    assert holder.policy.default_action is Action.BLOCK
    assert events[-1]["type"] == "policy.reload"
    assert events[-1]["outcome"] == "loaded"
    assert events[-1]["fingerprint"] == holder.fingerprint


def test_failed_reload_keeps_the_last_good_policy_and_says_why(policy_dir: Path) -> None:
    events: list[dict] = []
    holder = PolicyHolder(policy_dir, on_event=events.append)
    good, good_print = holder.policy, holder.fingerprint
    _edit(policy_dir / "rules.yaml", "    action: encrypt", "    actoin: encrypt")
    result = holder.reload()
    assert not result.ok
    assert holder.policy is good
    assert holder.fingerprint == good_print
    assert events[-1]["outcome"] == "refused"
    assert any("rules.yaml:" in p and "did you mean `action`?" in p for p in result.problems)
    # the gateway keeps deciding with the good policy
    engine = Engine(hash_key=b"k" * 32)
    ctx = Context("https", ipaddress.ip_address("10.1.1.1"), host="mail.qq.com", when=WHEN)
    assert evaluate(holder.policy, engine.scan_text(ID_TEXT), ctx).action is Action.BLOCK


def test_a_broken_edit_is_reported_once_by_the_watcher(policy_dir: Path) -> None:
    events: list[dict] = []
    holder = PolicyHolder(policy_dir, on_event=events.append)
    assert holder.reload_if_changed().changed is False
    assert events == []
    (policy_dir / "zones.yaml").write_text("version: 1\nzones: [\n", encoding="utf-8")
    assert holder.reload_if_changed().ok is False
    assert holder.reload_if_changed().ok is False  # same broken files: not reported again
    assert [e["outcome"] for e in events] == ["refused"]
    shutil.copy(DEFAULT / "zones.yaml", policy_dir / "zones.yaml")
    assert holder.reload_if_changed().ok is True
    assert [e["outcome"] for e in events] == ["refused", "loaded"]


def test_a_broken_policy_at_start_is_an_error(policy_dir: Path) -> None:
    (policy_dir / "classes.yaml").unlink()
    with pytest.raises(PolicyError, match=r"classes\.yaml: missing"):
        PolicyHolder(policy_dir)


def test_an_event_sink_that_fails_does_not_break_reload(policy_dir: Path) -> None:
    def broken_sink(_event: dict) -> None:
        raise OSError("disk full")

    holder = PolicyHolder(policy_dir, on_event=broken_sink)
    assert holder.reload().ok


def _variant(directory: Path, tag: str) -> None:
    """Policy `tag`: its zone and its rule carry the tag, so a mixed decision shows."""
    _edit(directory / "zones.yaml", "  office:\n", f"  office-{tag}:\n")
    _edit(directory / "zones.yaml", "from: office\n", f"from: office-{tag}\n")
    text = (directory / "zones.yaml").read_text(encoding="utf-8")
    (directory / "zones.yaml").write_text(
        text.replace("to: office\n", f"to: office-{tag}\n"), encoding="utf-8"
    )
    _edit(
        directory / "rules.yaml",
        "- id: identifying-to-personal-channels",
        f"- id: identifying-to-personal-channels-{tag}",
    )


def test_reload_under_concurrent_evaluation_never_mixes_policies(tmp_path: Path) -> None:
    variants = {}
    for tag in ("a", "b"):
        variants[tag] = tmp_path / tag
        shutil.copytree(DEFAULT, variants[tag])
        _variant(variants[tag], tag)
    live = tmp_path / "live"
    shutil.copytree(variants["a"], live)
    holder = PolicyHolder(live)
    findings = Engine(hash_key=b"k" * 32).scan_text(ID_TEXT)
    ctx = Context(
        "https",
        ipaddress.ip_address("10.1.1.1"),
        host="mail.qq.com",
        dest_ip=ipaddress.ip_address("203.0.113.5"),
        port=443,
        when=WHEN,
    )
    stop = threading.Event()
    seen: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def decide() -> None:
        try:
            while not stop.is_set():
                v = evaluate(holder.policy, findings, ctx)  # one read of the reference
                seen.append((v.place.source_zone, v.rule))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=decide) for _ in range(2)]
    for t in threads:
        t.start()
    reloads = 0
    try:
        for i in range(12):
            tag = "b" if i % 2 == 0 else "a"
            for f in variants[tag].iterdir():  # files change one by one, as an editor would
                shutil.copy(f, live / f.name)
            assert holder.reload().ok
            reloads += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert reloads == 12
    tags = {(zone.rpartition("-")[2], rule.rpartition("-")[2]) for zone, rule in seen}
    assert tags <= {("a", "a"), ("b", "b")}, f"mixed decisions: {tags}"
    assert tags == {("a", "a"), ("b", "b")}, "both policies should have decided something"
