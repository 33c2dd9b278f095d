"""`leakguard accounts …`: frozen accounts and blocked addresses, and releasing them.

    accounts list [--all] [--json]            frozen accounts, blocked addresses
    accounts freeze NAME [--reason TEXT]      refuse NAME's logins until unfrozen
    accounts unfreeze NAME [--reason TEXT]    release NAME (its failure count starts over)
    accounts unblock ADDRESS [--reason TEXT]  end an address's cool-down early

Holds live in the gateway's audit store (`--config FILE` / `--state-dir DIR`,
the same as `leakguard run`), which the relay and the proxy read at every
login and request: a change here takes effect at the next one, while the
gateway runs. Every change is an event in the record (account.frozen,
account.unfrozen, address.unblocked) naming the administrator (the login
name, and SUDO_USER behind sudo).

Exit status: 0 done, 1 nothing to do (NAME is not frozen, or is already),
2 bad arguments or a store that cannot be opened.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from audit.events import Event
from audit.log import record_now
from audit.logins import normal_account, redact
from audit.open import DB_FILE, open_store
from audit.store import AuditStore, Hold, StoreError
from gateway.admin_args import add_location_args, admin_config, operator, report_config_error
from gateway.config import ConfigError

EXIT_OK, EXIT_NOTHING, EXIT_ERROR = 0, 1, 2
EVENTS_FILE = "events.jsonl"  # gateway.runtime's mirror (importing runtime loads mitmproxy)
KINDS = ("account", "address")  # the holds this command shows (senders: the transfer holds)


class AdminError(Exception):
    """The store cannot be opened; the message says why."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "accounts",
        help="list, freeze and unfreeze accounts",
        description="Frozen accounts and blocked addresses. Safe while the gateway runs.",
    )
    _build(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leakguard accounts", description=__doc__.split("\n")[0])
    _build(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


def _build(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    show = actions.add_parser("list", help="frozen accounts and blocked addresses")
    add_location_args(show)
    show.add_argument("--all", action="store_true", help="also cool-downs that have ended")
    show.add_argument("--json", action="store_true", help="one JSON object per hold")
    show.set_defaults(func=_list)
    for name, func, what in (
        ("freeze", _freeze, "refuse an account's logins until it is unfrozen"),
        ("unfreeze", _unfreeze, "release a frozen account"),
        ("unblock", _unblock, "end a blocked address's cool-down now"),
    ):
        action = actions.add_parser(name, help=what)
        add_location_args(action)
        action.add_argument("name", metavar="ADDRESS" if name == "unblock" else "NAME")
        action.add_argument("--reason", default="", help="why, for the record")
        action.add_argument("--json", action="store_true", help="the recorded event as JSON")
        action.set_defaults(func=func)


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[tuple[AuditStore, object]]:
    """The gateway's store and events mirror. A missing SQLite record is an error: a wrong
    --state-dir must not freeze an account in a store no gateway reads."""
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


def _fail(message: str) -> int:
    print(f"leakguard accounts: {message}", file=sys.stderr)
    return EXIT_ERROR


def _list(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        with _store(args) as (store, _):
            holds = [h for kind in KINDS for h in store.holds(kind)]
    except AdminError as err:
        return _fail(str(err))
    if not args.all:
        holds = [h for h in holds if h.active(now)]
    if args.json:
        for h in holds:
            print(json.dumps({**h.to_dict(), "active": h.active(now)}, ensure_ascii=False))
        return EXIT_OK
    if not holds:
        print("no frozen accounts or blocked addresses")
        return EXIT_OK
    rows = [("KIND", "NAME", "SINCE", "UNTIL", "BY", "REASON")]
    for h in holds:
        until = "released by hand" if h.until == 0 else _local(h.until)
        if not h.active(now):
            until += " (ended)"
        kind = h.kind if h.level <= 1 else f"{h.kind} ×{h.level}"
        rows.append((kind, h.name, _local(h.since), until, h.by, h.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return EXIT_OK


def _freeze(args: argparse.Namespace) -> int:
    name = normal_account(args.name)
    if not name:
        return _fail("give an account name")
    by = operator()
    reason = args.reason or "frozen by an administrator"
    try:
        with _store(args) as (store, mirror):
            current = store.get_hold("account", name)
            if current is not None and current.active(time.time()):
                print(f"account {name} is frozen already (since {_local(current.since)})")
                return EXIT_NOTHING
            now = time.time()
            store.put_hold(Hold("account", name, reason, since=now, by=by))
            stored = _record(store, mirror, "account.frozen", name, by, reason, "hold")
    except AdminError as err:
        return _fail(str(err))
    return _done(args, stored, f"account {name} frozen")


def _unfreeze(args: argparse.Namespace) -> int:
    name = normal_account(args.name)
    by = operator()
    try:
        with _store(args) as (store, mirror):
            released = store.drop_hold("account", name)
            if released is None:
                print(f"account {name} is not frozen", file=sys.stderr)
                return EXIT_NOTHING
            store.reset(f"login.fail:{name}")  # the count starts over, not one short of a freeze
            reason = args.reason or "released by an administrator"
            detail = f"frozen since {_local(released.since)} by {released.by}: {released.reason}"
            stored = _record(store, mirror, "account.unfrozen", name, by, reason, "release", detail)
    except AdminError as err:
        return _fail(str(err))
    return _done(args, stored, f"account {name} unfrozen")


def _unblock(args: argparse.Namespace) -> int:
    address = args.name.strip()
    by = operator()
    try:
        with _store(args) as (store, mirror):
            released = store.drop_hold("address", address)
            if released is None:
                print(f"address {address} is not blocked", file=sys.stderr)
                return EXIT_NOTHING
            # the level is forgotten with the hold: the next offence starts a fresh cool-down
            reason = args.reason or "released by an administrator"
            detail = f"block {released.level} since {_local(released.since)}: {released.reason}"
            event = Event(
                type="address.unblocked", source_ip=address, action="release",
                reason=redact(reason), detail=redact(f"{detail}; by {by}"),
            )  # fmt: skip
            stored = record_now(store, mirror, {**event.to_dict(), "by": by})
    except AdminError as err:
        return _fail(str(err))
    return _done(args, stored, f"address {address} unblocked")


def _record(store, mirror, kind, name, by, reason, action, detail="") -> dict:
    """The admin action as an event: the fixed fields, and `by` (who did it)."""
    event = Event(
        type=kind, user=redact(name), action=action, reason=redact(reason),
        detail=redact(f"{detail + '; ' if detail else ''}by {by}"),
    )  # fmt: skip
    return record_now(store, mirror, {**event.to_dict(), "by": by})


def _done(args: argparse.Namespace, stored: dict, words: str) -> int:
    if args.json:
        print(json.dumps(stored, ensure_ascii=False))
    else:
        print(f"{words} (event {stored.get('seq', '?')}, by {stored['by']})")
    return EXIT_OK


def _local(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
