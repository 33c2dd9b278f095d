"""The configuration file: typed, line-numbered errors, flags override it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.config import Config, ConfigError, Endpoint, load_config, parse_endpoint, with_flags


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leakguard.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            """\
version: 1
state_dir: state
policy: policy
contact: 信息安全部 sec@firm.example
proxy:
  listen: "[::1]:3128"
  mode: transparent
relay:
  enabled: false
  smarthost: mail.firm.example:25
""",
        )
    )
    assert config.state_dir == tmp_path / "state"
    assert config.policy == tmp_path / "policy"
    assert config.contact.startswith("信息安全部")
    assert config.proxy.listen == Endpoint("::1", 3128) and config.proxy.mode == "transparent"
    assert str(config.proxy.listen) == "[::1]:3128"
    assert config.relay.enabled is False
    assert config.relay.smarthost == Endpoint("mail.firm.example", 25)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("version: 1\nproxy:\n  lisen: 127.0.0.1:1\n", 3, "did you mean `listen`?"),
        ("version: 1\nproxy:\n  mode: inline\n", 3, "expected one of: `regular`, `transparent`"),
        ("version: 1\nrelay:\n  listen: 127.0.0.1\n", 3, "has no port"),
        ("version: 1\nrelay:\n  listen: 127.0.0.1:99999\n", 3, "not HOST:PORT"),
        ("version: 2\n", 1, "version 2 is not supported"),
        ("state_dir: x\n", 1, "start the file with `version: 1`"),
        ("version: 1\nproxy:\n  enabled: maybe\n", 3, "expected true or false"),
    ],
    ids=["misspelt-key", "bad-mode", "no-port", "bad-port", "version", "no-version", "bad-bool"],
)
def test_errors_name_line_and_fix(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(i.line == line and message in str(i) for i in caught.value.issues), [
        str(i) for i in caught.value.issues
    ]
    assert str(path) in str(caught.value)


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "version: 1\nproxy:\n  listen: 127.0.0.1:8080\n"))
    args = argparse.Namespace(
        proxy_listen="127.0.0.1:0",
        no_relay=True,
        policy=str(tmp_path),
        state_dir=None,
        proxy_mode=None,
        relay_listen=None,
        smarthost="127.0.0.1:2526",
        no_proxy=False,
    )
    out = with_flags(config, args)
    assert out.proxy.listen == Endpoint("127.0.0.1", 0)
    assert out.relay.enabled is False and out.relay.smarthost == Endpoint("127.0.0.1", 2526)
    assert out.policy == tmp_path
    assert with_flags(Config(), argparse.Namespace()) == Config()


def test_endpoint_parsing() -> None:
    assert parse_endpoint("localhost:25") == Endpoint("localhost", 25)
    with pytest.raises(ValueError, match="has no port"):
        parse_endpoint("::1")
    with pytest.raises(ValueError):
        parse_endpoint("[zz::1]:80")
