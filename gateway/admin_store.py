"""The gateway's audit record, opened by an admin command beside the running gateway.

    with admin_store(args) as (store, mirror):   # raises AdminError with a message for people
        stored = record_action(store, mirror, "account.frozen", name, by, reason, "hold")
    return print_recorded(args, stored, f"account {name} frozen")

The state directory comes from --state-dir / --config as `leakguard run` finds it
(gateway.admin_args). A missing SQLite record is an error rather than a new empty one:
a wrong --state-dir must not look like a quiet period, nor freeze an account in a store
no gateway reads. `mirror` is the gateway's events.jsonl, where admin actions are
mirrored like every other event.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from audit.events import Event
from audit.log import record_now
from audit.logins import redact
from audit.open import DB_FILE, open_store
from audit.store import AuditStore, StoreError
from gateway.admin_args import admin_config, report_config_error
from gateway.config import ConfigError

EVENTS_FILE = "events.jsonl"  # gateway.runtime's mirror (importing runtime loads mitmproxy)


class AdminError(Exception):
    """The record cannot be opened or used; the message says why."""


@contextmanager
def admin_store(args: argparse.Namespace) -> Iterator[tuple[AuditStore, Path]]:
    try:
        config = admin_config(args)
    except ConfigError as err:
        report_config_error(err)
        raise AdminError("the configuration file has errors (above)") from None
    directory = config.state_dir
    if config.audit.store == "sqlite" and not (directory / DB_FILE).is_file():
        raise AdminError(f"no audit record in {directory} (is this the gateway's state directory?)")
    try:
        store = open_store(config, directory)
    except StoreError as err:
        raise AdminError(str(err)) from None
    try:
        yield store, directory / EVENTS_FILE
    except StoreError as err:
        raise AdminError(str(err)) from None
    finally:
        store.close()


def record_action(
    store, mirror, kind, name, by, reason, action, detail="", *, address: bool = False
) -> dict:
    """The admin action as an event, stored and mirrored now: the fixed fields (personal
    data in the name, reason or detail masked), and `by` (who did it). With `address`,
    `name` is a source address and goes to source_ip as it is."""
    subject = {"source_ip": name} if address else {"user": redact(name)}
    event = Event(
        type=kind, action=action, reason=redact(reason),
        detail=redact(f"{detail + '; ' if detail else ''}by {by}"), **subject,
    )  # fmt: skip
    return record_now(store, mirror, {**event.to_dict(), "by": by})


def print_recorded(args: argparse.Namespace, stored: dict, words: str) -> int:
    """What was done, as the recorded event (--json) or in words; exit status 0."""
    if args.json:
        print(json.dumps(stored, ensure_ascii=False))
    else:
        print(f"{words} (event {stored.get('seq', '?')}, by {stored['by']})")
    return 0
