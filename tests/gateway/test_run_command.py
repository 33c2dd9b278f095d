"""`leakguard run`: what it refuses to start with, and why (status 2, a message that helps).

What fails before the proxy is built runs in-process through `gateway.cli.main`;
the rest (and starting and stopping for real, tests/proxy/test_run_e2e.py) runs
`leakguard run` as a subprocess with a timeout.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.cli import main
from tests.support.gateway import run_gateway_once

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LEAKGUARD_STATE_DIR", "LEAKGUARD_POLICY"):
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    if not {"--relay-listen", "--no-relay"} & set(args):
        args = (*args, "--relay-listen", "127.0.0.1:0")  # never contend for port 2525
    status = main(["run", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_unknown_config_key_names_file_and_line(tmp_path: Path, capsys) -> None:
    config = tmp_path / "leakguard.yaml"
    config.write_text("version: 1\nproxy:\n  listen: 127.0.0.1:0\n  lisen: 127.0.0.1:0\n")
    status, out, err = run(capsys, "--config", str(config), "--state-dir", str(tmp_path / "v"))
    assert status == 2
    assert f"{config}:4" in err and "did you mean `listen`?" in err
    assert out == ""
    assert not (tmp_path / "v").exists()  # nothing was set up


def test_missing_config_file(tmp_path: Path, capsys) -> None:
    status, _, err = run(capsys, "--config", str(tmp_path / "nope.yaml"))
    assert status == 2 and "nope.yaml" in err and "cannot read" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--resolve", "intranet"], "write NAME=ADDRESS"),
        (["--resolve", "intranet=10.1.0"], "'10.1.0' is not an IP address"),
        (["--proxy-listen", "8080"], "has no port"),
        (["--proxy-listen", "127.0.0.1:70000"], "not HOST:PORT"),
    ],
)
def test_bad_flags(tmp_path: Path, capsys, flags: list[str], message: str) -> None:
    status, _, err = run(capsys, "--state-dir", str(tmp_path / "v"), *flags)
    assert status == 2
    assert err.startswith("leakguard run: ") and message in err


def test_nothing_to_run(tmp_path: Path, capsys) -> None:
    status, _, err = run(capsys, "--state-dir", str(tmp_path / "v"), "--no-proxy", "--no-relay")
    assert status == 2 and "nothing to run" in err


def test_broken_policy_says_how_to_see_the_problems(tmp_path: Path, capsys) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "zones.yaml").write_text("version: 1\nzones: {}\nreach: []\n")
    status, _, err = run(capsys, "--state-dir", str(tmp_path / "v"), "--policy", str(policy))
    assert status == 2
    assert f"the policy in {policy} cannot be used" in err
    assert f"leakguard rules check {policy}" in err


def test_state_directory_that_is_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "v").write_text("not a directory")
    status, _, err = run(capsys, "--state-dir", str(tmp_path / "v"), "--policy", "/nonexistent")
    assert status == 2 and f"state directory {tmp_path / 'v'}" in err


def test_state_dir_from_the_environment(tmp_path: Path, capsys, monkeypatch) -> None:
    """$LEAKGUARD_STATE_DIR when no flag says otherwise: the key is made there first."""
    monkeypatch.setenv("LEAKGUARD_STATE_DIR", str(tmp_path / "envstate"))
    status, _, _ = run(capsys, "--policy", str(tmp_path / "no-policy"))
    assert status == 2  # stopped at the policy, after the state directory was set up
    assert (tmp_path / "envstate" / "installation.key").is_file()
    assert (tmp_path / "envstate" / "ca" / "current" / "ca-cert.pem").is_file()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "No such file"), (b"hello\n", "no PEM certificate")],
    ids=["missing", "not-pem"],
)
def test_upstream_ca_must_hold_certificates(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    """mitmproxy takes a missing file silently and fails every HTTPS origin later.
    (A subprocess: were the file accepted, the gateway would run.)"""
    ca = tmp_path / "upstream.pem"
    if content is not None:
        ca.write_bytes(content)
    done = run_gateway_once(
        "--proxy-listen", "127.0.0.1:0", "--upstream-ca", str(ca), state_dir=tmp_path / "v"
    )
    assert done.returncode == 2, done
    assert f"upstream CA file {ca}: " in done.stderr and message in done.stderr
    assert "ready" not in done.stdout


def test_port_in_use_is_status_2_with_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_gateway_once("--proxy-listen", f"127.0.0.1:{port}", state_dir=tmp_path / "v")
    assert done.returncode == 2, done
    assert f"could not start on 127.0.0.1:{port}" in done.stderr
    assert "address already in use" in done.stderr
    assert "ready" not in done.stdout


def test_a_relay_port_in_use_is_status_2_naming_the_relay(tmp_path: Path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, err = run(
            capsys, "--state-dir", str(tmp_path / "v"), "--relay-listen", f"127.0.0.1:{port}"
        )
    assert status == 2
    assert "the mail relay could not start" in err
