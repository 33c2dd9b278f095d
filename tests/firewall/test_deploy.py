"""deploy/: the systemd units are hardened as docs/deploy.md says, and systemd accepts them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").iterdir())
BINARY = "/opt/leakguard/bin/leakguard"


def _settings(path: Path) -> dict[str, list[str]]:
    """key → every value it is given (systemd allows repeating a key)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_gateway_runs_as_its_own_user_without_capabilities() -> None:
    """REDIRECT plus SO_ORIGINAL_DST needs none (ports above 1024: none to bind)."""
    unit = _settings(DEPLOY / "systemd" / "leakguard.service")
    assert unit["User"] == ["leakguard"] and unit["Group"] == ["leakguard"]
    assert unit["AmbientCapabilities"] == [""]
    assert unit["CapabilityBoundingSet"] == [""]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/leakguard",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "StateDirectoryMode": "0700",
        "UMask": "0077",
    }.items():
        assert unit[key] == [value], key
    assert unit["ExecStart"] == [f"{BINARY} run --config /etc/leakguard/leakguard.yaml"]
    assert unit["Requires"] == ["leakguard-firewall.service"]


def test_the_firewall_is_applied_once_before_the_gateway_and_the_network() -> None:
    unit = _settings(DEPLOY / "systemd" / "leakguard-firewall.service")
    assert unit["Type"] == ["oneshot"] and unit["RemainAfterExit"] == ["yes"]
    assert unit["ExecStart"] == [f"{BINARY} firewall apply --config /etc/leakguard/leakguard.yaml"]
    before = unit["Before"][0].split()
    assert "leakguard.service" in before and "network-pre.target" in before
    assert unit["CapabilityBoundingSet"] == ["CAP_NET_ADMIN"]


def test_the_units_name_only_commands_that_exist() -> None:
    from gateway.cli import build_parser

    parser = build_parser()
    for path in UNITS:
        for line in _settings(path).get("ExecStart", []):
            if line.startswith(BINARY):
                args = line.removeprefix(BINARY).split()
                parser.parse_args(args)  # SystemExit if a subcommand or flag were wrong


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    for path in UNITS:  # the binary is not installed here: point ExecStart at one that is
        text = path.read_text().replace(BINARY, shutil.which("true") or "/bin/true")
        (tmp_path / path.name).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in done.stderr.splitlines()
        if re.search(r"Unknown|Invalid|Failed|error|bad-setting", line, re.I)
        and "leakguard" in line  # not complaints about the host's own units
    ]
    assert problems == [], done.stderr


def test_logrotate_rotates_the_json_logs_in_the_state_directory() -> None:
    text = (DEPLOY / "logrotate" / "leakguard").read_text()
    assert "/var/lib/leakguard/*.jsonl {" in text
    # moved away, then SIGHUP: the gateway opens the files by name again (no copytruncate,
    # which loses the lines written between the copy and the truncation)
    rules = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert "copytruncate" not in rules and "create 0600 leakguard leakguard" in rules
    assert rules[rules.index("postrotate") + 1] == "systemctl reload leakguard.service"
    unit = (DEPLOY / "systemd" / "leakguard.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit.splitlines()  # reload is SIGHUP
    assert "su leakguard leakguard" in text
