"""Fixtures for the audit tests: the same store contract against every backend."""

from __future__ import annotations

import secrets

import pytest

from audit.chain import chain_key
from audit.memory_store import MemoryStore
from audit.sqlite_store import SQLiteStore
from tests.support.redis import redis_server  # noqa: F401  (a session fixture)

KEY = chain_key(b"the installation key of the audit tests")
BACKENDS = ("memory", "sqlite", "redis")


@pytest.fixture
def redis_prefix() -> str:
    """Each test its own keys on the session's one server."""
    return f"test-{secrets.token_hex(6)}:"


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path, redis_prefix):
    if request.param == "memory":
        s = MemoryStore(KEY)
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "audit.db", KEY)
    else:
        from audit.redis_store import RedisStore

        server = request.getfixturevalue("redis_server")
        s = RedisStore(server.url, KEY, prefix=redis_prefix)
    yield s
    s.close()
