"""The one way to open the gateway's audit store, for `leakguard run` and every admin command.

    store = open_store(config, state_dir)   # SQLite <state>/audit.db, or Redis per `audit:`

The chain key comes from the installation key in the state directory
(created on first use, like `leakguard run` does), so a store opened here
verifies and extends the same chain the gateway writes. Raises StoreError
with a message fit for people.
"""

from __future__ import annotations

import os
from pathlib import Path

from audit.chain import chain_key
from audit.store import AuditStore, StoreError
from gateway.config import Config
from gateway.state import installation_key

DB_FILE = "audit.db"


def open_store(config: Config, state_dir: str | os.PathLike | None = None) -> AuditStore:
    directory = Path(state_dir if state_dir is not None else config.state_dir)
    try:
        key = chain_key(installation_key(directory))
    except (OSError, ValueError) as err:
        raise StoreError(f"state directory {directory}: {err}") from err
    audit = config.audit
    if audit.store == "redis":
        from audit.redis_store import RedisStore  # the redis package loads only when used

        return RedisStore(audit.redis_url, key, prefix=audit.redis_prefix)
    from audit.sqlite_store import SQLiteStore

    return SQLiteStore(directory / DB_FILE, key)
