"""The `audit:` config section and open_store: which store, where, and clear refusals."""

from __future__ import annotations

import argparse
import os

import pytest

from audit.open import DB_FILE, open_store
from audit.redis_store import RedisStore
from audit.sqlite_store import SQLiteStore
from audit.store import StoreError
from gateway.admin_args import admin_config
from gateway.config import AuditConfig, Config, ConfigError, load_config
from tests.support.redis import free_port


def _config(tmp_path, text: str) -> Config:
    path = tmp_path / "leakguard.yaml"
    path.write_text("version: 1\n" + text)
    return load_config(path)


def test_the_default_is_sqlite_in_the_state_directory(tmp_path):
    assert Config().audit == AuditConfig(store="sqlite", redis_url="", redis_prefix="leakguard:")
    store = open_store(Config(), tmp_path / "var")
    try:
        assert isinstance(store, SQLiteStore) and store.path == tmp_path / "var" / DB_FILE
        assert (tmp_path / "var" / "installation.key").is_file()
        assert os.stat(store.path).st_mode & 0o777 == 0o600
    finally:
        store.close()


def test_the_same_state_directory_gives_the_same_chain_key(tmp_path):
    a = open_store(Config(), tmp_path)
    b = open_store(Config(), tmp_path)
    assert a.chain_key == b.chain_key
    assert a.chain_key != (tmp_path / "installation.key").read_bytes()  # derived, not reused
    a.close()
    b.close()


def test_a_redis_store_from_the_config(tmp_path, redis_server, redis_prefix):
    config = _config(
        tmp_path,
        f"audit:\n  store: redis\n  redis_url: {redis_server.url}\n"
        f"  redis_prefix: '{redis_prefix}'\n",
    )
    assert config.audit == AuditConfig("redis", redis_server.url, redis_prefix)
    store = open_store(config, tmp_path / "var")
    try:
        assert isinstance(store, RedisStore)
        assert store.append({"id": "x"})["seq"] == 1
    finally:
        store.close()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("audit:\n  store: mysql\n", 3, "`audit.store`: 'mysql' is not allowed"),
        ("audit:\n  store: redis\n", 3, "`audit.redis_url`: missing (store: redis needs it)"),
        ("audit:\n  redis_url: http://x\n", 3, "'http://x' is not a Redis URL"),
        ("audit:\n  sotre: sqlite\n", 3, "sotre"),
        ("audit: [sqlite]\n", 2, "audit"),
    ],
)
def test_config_mistakes_name_the_line(tmp_path, text, line, message):
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, text)
    shown = "\n".join(str(i) for i in caught.value.issues)
    assert f"leakguard.yaml:{line}" in shown and message in shown, shown


def test_an_unreachable_redis_is_a_clear_error_without_the_password(tmp_path):
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreError) as caught:
        open_store(Config(audit=AuditConfig("redis", url)), tmp_path)
    assert f"redis://127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/0" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_state_directory_that_cannot_be_used_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="state directory"):
        open_store(Config(), tmp_path / "file")


def test_admin_commands_find_the_state_directory_like_run(tmp_path, monkeypatch):
    config = tmp_path / "leakguard.yaml"
    config.write_text("version: 1\nstate_dir: gw-state\n")
    monkeypatch.setenv("LEAKGUARD_STATE_DIR", str(tmp_path / "from-env"))
    ns = argparse.Namespace
    assert admin_config(ns(config=None, state_dir=None)).state_dir == tmp_path / "from-env"
    assert admin_config(ns(config=str(config), state_dir=None)).state_dir == tmp_path / "gw-state"
    flag = ns(config=str(config), state_dir=str(tmp_path / "flag"))
    assert admin_config(flag).state_dir == tmp_path / "flag"
