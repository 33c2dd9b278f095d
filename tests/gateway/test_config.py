"""The configuration file: typed, line-numbered errors, flags override it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.config import (
    Config,
    ConfigError,
    Endpoint,
    load_config,
    parse_endpoint,
    parse_host_entry,
    with_flags,
)


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


def test_proxy_stream_above_upstream_ca_and_hosts(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            """\
version: 1
proxy:
  stream_above: 128KiB
  upstream_ca: certs/origins.pem
  hosts:
    Intranet.Firm.Example.: 10.1.0.7
    mapped.firm.example: "::ffff:10.1.0.8"
""",
        )
    )
    assert config.proxy.stream_above == 128 * 1024
    assert config.proxy.upstream_ca == tmp_path / "certs" / "origins.pem"  # beside the file
    assert {k: str(v) for k, v in config.proxy.hosts.items()} == {
        "intranet.firm.example": "10.1.0.7",  # names normalised
        "mapped.firm.example": "10.1.0.8",  # IPv4-mapped IPv6 is the IPv4 address
    }


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("version: 1\nproxy:\n  stream_above: 1KiB\n", 3, "too small; at least 64KiB"),
        ("version: 1\nproxy:\n  stream_above: lots\n", 3, "is not a size"),
        ("version: 1\nproxy:\n  hosts:\n    bad host!: 10.1.0.8\n", 4, "not a valid host name"),
        ("version: 1\nproxy:\n  hosts:\n    a.example: nope\n", 4, "'nope' is not an IP address"),
        ("version: 1\nproxy:\n  hosts: [a.example]\n", 3, "expected a mapping"),
    ],
    ids=["small", "not-a-size", "bad-name", "bad-address", "not-a-mapping"],
)
def test_proxy_errors_name_line_and_fix(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert any(i.line == line and message in str(i) for i in caught.value.issues), [
        str(i) for i in caught.value.issues
    ]


def test_resolve_flags_add_to_the_files_hosts(tmp_path: Path) -> None:
    config = load_config(
        _write(tmp_path, "version: 1\nproxy:\n  hosts:\n    a.example: 10.1.0.7\n")
    )
    args = argparse.Namespace(
        resolve=["B.Example=10.1.0.8", "a.example=10.1.0.9"], upstream_ca="x.pem"
    )
    out = with_flags(config, args)
    assert {k: str(v) for k, v in out.proxy.hosts.items()} == {
        "a.example": "10.1.0.9",  # the flag wins
        "b.example": "10.1.0.8",
    }
    assert out.proxy.upstream_ca == Path("x.pem")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("a.example", "write NAME=ADDRESS"),
        ("=10.1.0.7", "write NAME=ADDRESS"),
        ("a.example=10.1.0", "'10.1.0' is not an IP address"),
    ],
)
def test_resolve_entry_errors(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_host_entry(entry)
