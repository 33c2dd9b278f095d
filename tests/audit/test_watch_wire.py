"""watch.yaml, the policy's optional sixth file → Policy.watch (audit.watch_settings.Watch).

Failure modes are one file each under tests/data/watch/, copied over the base policy;
each row names the line, key and the words expected in the message and the fix.
"""

from __future__ import annotations

import io
import re
import shutil
from contextlib import redirect_stdout
from datetime import time
from pathlib import Path
from typing import NamedTuple

import pytest

from audit.watch_settings import (
    Baseline,
    Failures,
    FailureSign,
    OffHours,
    Spraying,
    Threshold,
    Unusual,
    Watch,
    WebLogin,
)
from gateway.cli import main as cli
from rules.policy import PolicyError, load_policy
from rules.policy.holder import PolicyHolder
from tests.rules.policy.common import BASE_DIR, DEFAULT_DIR, write_policy

CASES = Path(__file__).resolve().parents[1] / "data" / "watch"

GOOD = """\
version: 1
logins:
  failures: {count: 3, within: 5m, freeze: false}
  spraying: {accounts: 4, within: 2m, block_for: 30m, escalate: 2.5, max_block: 2d}
  unusual:
    new_subnet: hold
    external: alert
    odd_hour: off
    learn_logins: 10
    subnet_v4: 16
  web_apps:
    oa:
      host: OA.Firm.Example
      path: /login
      username_field: username
      failure: {status: [401, 403]}
    crm:
      host: crm.firm.example:8443
      path: /api/session
      username_field: email
      failure: {redirect: "error=1"}
    wiki:
      host: wiki.firm.example
      path: /do/login
      username_field: u
      failure: {body: "密码错误"}
transfers:
  window: 30m
  external_bytes: {limit: 2GiB, action: hold}
  distinct_pii: off
  new_destination: off
  off_hours: {start: "09:30", end: "18:00", days: [sat, mon], action: hold}
  baseline: {factor: 5, min_bytes: 10MB}
"""


def test_absent_file_gives_the_defaults() -> None:
    assert not (BASE_DIR / "watch.yaml").exists()
    assert load_policy(BASE_DIR).watch == Watch()


def test_the_shipped_file_says_the_defaults() -> None:
    assert (DEFAULT_DIR / "watch.yaml").exists()
    assert load_policy(DEFAULT_DIR).watch == Watch()


def test_a_good_file_sets_every_field(tmp_path) -> None:
    watch = load_policy(write_policy(tmp_path, {"watch.yaml": GOOD})).watch
    logins, transfers = watch.logins, watch.transfers
    assert logins.failures == Failures(count=3, within=300.0, freeze=False)
    assert logins.spraying == Spraying(4, 120.0, 1800.0, 2.5, 172800.0)
    assert logins.unusual == Unusual(
        new_subnet="hold", external="alert", odd_hour="off", learn_logins=10, subnet_v4=16
    )
    assert logins.web_apps == (
        WebLogin("oa", "oa.firm.example", "/login", "username", FailureSign("status", (401, 403))),
        WebLogin(
            "crm",
            "crm.firm.example:8443",
            "/api/session",
            "email",
            FailureSign("redirect", location="error=1"),
        ),
        WebLogin(
            "wiki", "wiki.firm.example", "/do/login", "u", FailureSign("body", marker="密码错误")
        ),
    )
    assert transfers.window == 1800.0
    assert transfers.external_bytes == Threshold(2 * 2**30, "hold")
    assert transfers.distinct_pii is None
    assert transfers.new_destination == "off"
    assert transfers.off_hours == OffHours(time(9, 30), time(18, 0), (0, 5), "hold")
    assert transfers.baseline == Baseline(factor=5.0, min_bytes=10e6)


class Expect(NamedTuple):
    line: int
    key: str
    message: str
    fix: str = ""


FAILURES = {
    "misspelt-key": Expect(5, "logins.failures.withn", "unknown key", "did you mean `within`?"),
    "unknown-top-level-key": Expect(2, "login", "unknown key", "did you mean `logins`?"),
    "bad-duration": Expect(5, "logins.spraying.block_for", "'15 minutes' is not a duration", "10m"),
    "bad-size": Expect(5, "transfers.external_bytes.limit", "'500XB' is not a size", "500MB"),
    "unquoted-time": Expect(5, "transfers.off_hours.end", "1200 is not a time", '"20:00"'),
    "unknown-day": Expect(
        4, "transfers.off_hours.days", "'wedn' is not allowed", "did you mean `wed`?"
    ),
    "unknown-action": Expect(5, "transfers.distinct_pii.action", "'freeze' is not allowed"),
    "failure-sign-two-kinds": Expect(
        9, "logins.web_apps.oa.failure", "exactly one of `status`, `redirect` or `body`"
    ),
    "web-app-url-host": Expect(
        5, "logins.web_apps.oa.host", "is not a host name", "write the host alone"
    ),
    "web-app-missing-field": Expect(
        5, "logins.web_apps.oa", "missing `username_field`", "add `username_field:`"
    ),
    "max-block-below-block-for": Expect(
        4, "logins.spraying.max_block", "shorter than block_for", "at least block_for"
    ),
    "wrong-version": Expect(1, "version", "version 2 is not supported", "version: 1"),
    "count-out-of-range": Expect(4, "logins.failures.count", "0 is out of range", "1..1000"),
    "geoip-missing": Expect(
        4, "logins.unusual.geoip_database", "no such file", "MaxMind-format .mmdb"
    ),
}


def test_every_case_file_has_a_row() -> None:
    assert {p.stem for p in CASES.glob("*.yaml")} == set(FAILURES)


@pytest.mark.parametrize("name", FAILURES)
def test_failure_mode(tmp_path, name: str) -> None:
    expect = FAILURES[name]
    directory = write_policy(tmp_path, {})
    shutil.copy(CASES / f"{name}.yaml", directory / "watch.yaml")
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    errors = [i for i in caught.value.issues if not i.warning]
    assert any(
        i.file == "watch.yaml"
        and i.line == expect.line
        and i.key == expect.key
        and expect.message in i.message
        and expect.fix in i.fix
        for i in errors
    ), "\n".join(repr(i) for i in errors)
    assert f"watch.yaml:{expect.line}:" in str(caught.value)


def test_problems_in_watch_and_rules_are_listed_together(tmp_path) -> None:
    directory = write_policy(
        tmp_path,
        {
            "watch.yaml": "version: 1\nlogins:\n  failures: {count: many}\n",
            "rules.yaml": "version: 1\nrules:\n  - id: x\n    action: blok\n",
        },
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    files = {i.file for i in caught.value.issues if not i.warning}
    assert files == {"watch.yaml", "rules.yaml"}


def test_a_misnamed_watch_file_is_not_a_policy_file(tmp_path) -> None:
    directory = write_policy(tmp_path, {"watch.yml": "version: 1\n"})
    with pytest.raises(PolicyError, match=r"watch\.yml.*not a policy file.*`watch\.yaml`"):
        load_policy(directory)


def test_reload_picks_up_an_edited_watch_file(tmp_path) -> None:
    directory = write_policy(tmp_path, {})
    holder = PolicyHolder(directory)
    assert holder.policy.watch == Watch()
    (directory / "watch.yaml").write_text("version: 1\nlogins:\n  failures: {count: 2}\n")
    assert holder.reload_if_changed().changed
    assert holder.policy.watch.logins.failures.count == 2
    (directory / "watch.yaml").write_text("version: 1\nlogins:\n  failures: {count: -2}\n")
    result = holder.reload_if_changed()
    assert not result.ok and any("watch.yaml:3" in p for p in result.problems)
    assert holder.policy.watch.logins.failures.count == 2  # the last good policy stays


def _explained(directory: Path) -> dict[str, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli(["rules", "explain", "--yaml", str(directory)]) == 0
    parts = re.split(r"^# --- (\S+)\n", out.getvalue(), flags=re.M)[1:]
    return dict(zip(parts[::2], parts[1::2], strict=True))


def test_explain_yaml_round_trips_a_watch_file(tmp_path) -> None:
    original = load_policy(write_policy(tmp_path / "a", {"watch.yaml": GOOD}))
    explained = _explained(tmp_path / "a")
    assert "watch.yaml" in explained
    again_dir = tmp_path / "b"
    again_dir.mkdir()
    for name, text in explained.items():
        (again_dir / name).write_text(text, encoding="utf-8")
    assert load_policy(again_dir).watch == original.watch
    assert load_policy(again_dir) == original


def test_explain_yaml_leaves_out_a_watch_file_that_says_the_defaults() -> None:
    assert "watch.yaml" not in _explained(DEFAULT_DIR)


def test_a_geoip_database_is_found_beside_the_policy(tmp_path) -> None:
    directory = write_policy(
        tmp_path, {"watch.yaml": "version: 1\nlogins:\n  unusual: {geoip_database: geo.mmdb}\n"}
    )
    (directory / "geo.mmdb").write_bytes(b"")  # the loader checks it exists; the watcher opens it
    watch = load_policy(directory).watch
    assert watch.logins.unusual.geoip_database == str(directory / "geo.mmdb")
