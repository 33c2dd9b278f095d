"""The config file's `alerts:` section: typed, validated, errors with their line."""

from __future__ import annotations

import textwrap

import pytest

from gateway.config import AlertsConfig, ConfigError, load_config


def _load(tmp_path, body: str):
    path = tmp_path / "leakguard.yaml"
    path.write_text("version: 1\n" + textwrap.dedent(body), encoding="utf-8")
    return load_config(path)


def test_every_alert_setting(tmp_path):
    config = _load(
        tmp_path,
        """\
        alerts:
          file: logs/alerts.jsonl
          dedup_window: 10m
          syslog: {address: "tcp://[::1]:6514", app_name: lg-gw1, facility: local3}
          webhook: {url: "https://soc.example/hook?token=x", timeout: 5s, retries: 0}
          mail: {to: [Security@Firm.example, soc@firm.example], from: leakguard@firm.example}
        """,
    )
    a = config.alerts
    assert a.file == tmp_path / "logs" / "alerts.jsonl"
    assert a.dedup_window == 600
    assert (a.syslog.address, a.syslog.app_name, a.syslog.facility) == (
        "tcp://[::1]:6514",
        "lg-gw1",
        "local3",
    )
    assert (a.webhook.url, a.webhook.timeout, a.webhook.retries) == (
        "https://soc.example/hook?token=x",
        5,
        0,
    )
    assert a.mail.to == ("security@firm.example", "soc@firm.example")
    assert a.mail.sender == "leakguard@firm.example"


def test_defaults_without_the_section(tmp_path):
    assert _load(tmp_path, "").alerts == AlertsConfig()


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("alerts:\n  syslog: {address: '127.0.0.1:514'}\n", 3, "udp://HOST:PORT"),
        ("alerts:\n  syslog: {app_name: x}\n", 3, "alerts.syslog.address"),
        ("alerts:\n  syslog:\n    address: udp://h:514\n    facility: security\n", 5, "facility"),
        ("alerts:\n  syslog:\n    address: udp://h:514\n    app_name: my app\n", 5, "printable"),
        ("alerts:\n  webhook: {url: 'ftp://soc.example/x'}\n", 3, "http:// or https://"),
        ("alerts:\n  webhook:\n    url: https://h/\n    retries: 99\n", 5, "out of range"),
        ("alerts:\n  webhook:\n    url: https://h/\n    timeout: soon\n", 5, "duration"),
        ("alerts:\n  mail: {from: a@b.example}\n", 3, "no recipient"),
        ("alerts:\n  mail: {to: [not-an-address]}\n", 3, "not a mail address"),
        ("alerts:\n  dedup_window: -5\n", 3, "duration"),
        ("alerts:\n  sms: {to: '+86 138'}\n", 3, "sms"),
    ],
)
def test_bad_settings_name_their_line(tmp_path, body, line, words):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, body)
    text = "\n".join(str(i) for i in err.value.issues)
    assert f":{line}" in text and words in text, text


def test_mail_alerts_without_the_relay_stop_the_gateway_with_one_sentence(tmp_path):
    from tests.support.gateway import run_gateway_once

    config = tmp_path / "leakguard.yaml"
    config.write_text("version: 1\nalerts:\n  mail: {to: [security@firm.example]}\n")
    got = run_gateway_once(
        "--config", str(config), "--no-relay", "--proxy-listen", "127.0.0.1:0",
        state_dir=tmp_path / "var",
    )  # fmt: skip
    assert got.returncode == 2
    assert "alerts.mail goes through the relay" in got.stderr
    assert "Traceback" not in got.stderr
