"""`leakguard firewall apply` and `check` for real: nft in a network namespace of our own.

Needs root and nft (CI has both); skips saying why otherwise. The namespace is
`lgfw<pid>`, so concurrent runs and the other netns tests never meet it.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from gateway.cli import main
from tests.support import netns
from tests.support.netns import delete_namespace, in_netns, ip

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "rules" / "default"
CONFIG = """\
version: 1
proxy:
  listen: "*:8080"
  mode: transparent
relay:
  listen: "*:2525"
firewall:
  interfaces:
    office: [lg-office]
    restricted: [lg-restricted]
    external: [lg-uplink]
  resolvers: [198.51.100.53, "2001:db8::53"]
"""


@pytest.fixture(scope="module")
def ns() -> Iterator[str]:
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    name = f"lgfw{os.getpid()}"
    delete_namespace(name)
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")  # the interfaces need not exist: nft
        # matches iifname by name (tests/e2e/test_office.py runs the same over veths)
        yield name
    finally:
        delete_namespace(name)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "leakguard.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def leakguard(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*netns.exec_prefix(ns), sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def firewall(ns: str, action: str, config: Path) -> subprocess.CompletedProcess[str]:
    """The command in-process, in a thread inside `ns` (its nft children start there too):
    the same code as the subprocess without a second Python start-up each time."""
    args = ["firewall", action, "--config", str(config), "--policy", str(POLICY)]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = in_netns(ns, main, args)
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


def nft(ns: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*netns.exec_prefix(ns), "nft", *args], capture_output=True, text=True, input=input
    )


def test_the_command_applies_and_checks_as_a_program(ns: str, config: Path) -> None:
    for action in ("apply", "check"):
        args = ("firewall", action, "--config", str(config), "--policy", str(POLICY))
        done = leakguard(ns, *args)
        assert done.returncode == 0, done.stderr


def test_check_reports_a_table_that_is_not_loaded(ns: str, config: Path) -> None:
    nft(ns, "delete", "table", "inet", "leakguard")
    done = firewall(ns, "check", config)
    assert done.returncode == 1, done
    assert "not loaded" in done.stdout


def test_apply_loads_the_table_and_check_finds_no_drift(ns: str, config: Path) -> None:
    done = firewall(ns, "apply", config)
    assert done.returncode == 0, done.stderr
    listed = nft(ns, "list", "table", "inet", "leakguard").stdout
    assert "policy drop" in listed and "redirect to :8080" in listed
    assert "ct status ! dnat goto drop_direct" in listed  # nft's spelling of `& dnat == 0`
    done = firewall(ns, "check", config)
    assert (done.returncode, done.stdout.strip()) == (
        0,
        "leakguard firewall: table inet leakguard matches the policy",
    ), done


def test_apply_again_replaces_the_table_rather_than_adding_to_it(ns: str, config: Path) -> None:
    assert firewall(ns, "apply", config).returncode == 0
    assert firewall(ns, "apply", config).returncode == 0
    tables = nft(ns, "list", "tables").stdout.split("\n")
    assert tables.count("table inet leakguard") == 1
    listed = nft(ns, "list", "table", "inet", "leakguard").stdout
    assert listed.count("chain forward {") == 1
    assert firewall(ns, "check", config).returncode == 0


def test_a_rule_added_by_hand_is_drift(ns: str, config: Path) -> None:
    assert firewall(ns, "apply", config).returncode == 0
    added = nft(ns, "add", "rule", "inet", "leakguard", "forward", "tcp", "dport", "8443", "accept")
    assert added.returncode == 0, added.stderr
    done = firewall(ns, "check", config)
    assert done.returncode == 1, done
    assert "+\t\ttcp dport 8443 accept" in done.stdout
    assert "differs from the policy" in done.stdout
    assert firewall(ns, "apply", config).returncode == 0  # apply puts it right
    assert firewall(ns, "check", config).returncode == 0


def test_a_policy_change_is_drift_until_applied(ns: str, config: Path, tmp_path: Path) -> None:
    assert firewall(ns, "apply", config).returncode == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(CONFIG.replace("198.51.100.53", "198.51.100.54"), encoding="utf-8")
    done = firewall(ns, "check", changed)
    assert done.returncode == 1
    assert "-" in done.stdout and "198.51.100.54" in done.stdout and "198.51.100.53" in done.stdout
    assert firewall(ns, "apply", changed).returncode == 0
    assert firewall(ns, "check", changed).returncode == 0


def _connect(port: int) -> str:
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
            return "connected"
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"


def test_counters_move_without_being_drift(ns: str, config: Path) -> None:
    assert firewall(ns, "apply", config).returncode == 0
    listener = in_netns(ns, socket.create_server, ("127.0.0.1", 8080))
    try:  # a direct connection to the proxy port: refused by the guard, not accepted
        assert in_netns(ns, _connect, 8080) == "refused"
    finally:
        listener.close()
    counted = nft(ns, "list", "counter", "inet", "leakguard", "drop_direct").stdout
    assert "packets 0 " not in counted, counted
    assert firewall(ns, "check", config).returncode == 0


def test_a_file_nft_refuses_leaves_the_loaded_table_alone(ns: str, config: Path) -> None:
    assert firewall(ns, "apply", config).returncode == 0
    text = firewall(ns, "render", config)
    broken = text.stdout.replace("policy drop;", "policy drop; bogus-statement")
    assert nft(ns, "-f", "-", input=broken).returncode != 0
    assert firewall(ns, "check", config).returncode == 0  # the old table, whole


def test_bad_config_exits_2_and_changes_nothing(ns: str, config: Path, tmp_path: Path) -> None:
    assert firewall(ns, "apply", config).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace("restricted: [lg-restricted]", "dmz: [lg-restricted]"))
    done = firewall(ns, "apply", bad)
    assert done.returncode == 2
    assert f"{bad}:10:" in done.stderr and "zone 'dmz' is not in the policy" in done.stderr
    assert firewall(ns, "check", config).returncode == 0
