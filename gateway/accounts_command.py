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

from audit.logins import normal_account
from audit.store import Hold
from gateway.admin_args import (
    AdminCommand,
    add_location_args,
    local_time,
    operator,
)
from gateway.admin_store import AdminError, admin_store, print_recorded, record_action

EXIT_OK, EXIT_NOTHING, EXIT_ERROR = 0, 1, 2
KINDS = ("account", "address")  # the holds this command shows (senders: the transfer holds)


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


def _fail(message: str) -> int:
    print(f"leakguard accounts: {message}", file=sys.stderr)
    return EXIT_ERROR


def _list(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        with admin_store(args) as (store, _):
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
        until = "released by hand" if h.until == 0 else local_time(h.until)
        if not h.active(now):
            until += " (ended)"
        kind = h.kind if h.level <= 1 else f"{h.kind} ×{h.level}"
        rows.append((kind, h.name, local_time(h.since), until, h.by, h.reason))
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
        with admin_store(args) as (store, mirror):
            current = store.get_hold("account", name)
            if current is not None and current.active(time.time()):
                print(f"account {name} is frozen already (since {local_time(current.since)})")
                return EXIT_NOTHING
            now = time.time()
            store.put_hold(Hold("account", name, reason, since=now, by=by))
            stored = record_action(store, mirror, "account.frozen", name, by, reason, "hold")
    except AdminError as err:
        return _fail(str(err))
    return print_recorded(args, stored, f"account {name} frozen")


def _unfreeze(args: argparse.Namespace) -> int:
    name = normal_account(args.name)
    by = operator()
    try:
        with admin_store(args) as (store, mirror):
            released = store.drop_hold("account", name)
            if released is None:
                print(f"account {name} is not frozen", file=sys.stderr)
                return EXIT_NOTHING
            store.reset(f"login.fail:{name}")  # the count starts over, not one short of a freeze
            reason = args.reason or "released by an administrator"
            detail = (
                f"frozen since {local_time(released.since)} by {released.by}: {released.reason}"
            )
            stored = record_action(
                store, mirror, "account.unfrozen", name, by, reason, "release", detail
            )
    except AdminError as err:
        return _fail(str(err))
    return print_recorded(args, stored, f"account {name} unfrozen")


def _unblock(args: argparse.Namespace) -> int:
    address = args.name.strip()
    by = operator()
    try:
        with admin_store(args) as (store, mirror):
            released = store.drop_hold("address", address)
            if released is None:
                print(f"address {address} is not blocked", file=sys.stderr)
                return EXIT_NOTHING
            # the level is forgotten with the hold: the next offence starts a fresh cool-down
            reason = args.reason or "released by an administrator"
            detail = f"block {released.level} since {local_time(released.since)}: {released.reason}"
            stored = record_action(
                store, mirror, "address.unblocked", address, by, reason, "release", detail,
                address=True,
            )  # fmt: skip
    except AdminError as err:
        return _fail(str(err))
    return print_recorded(args, stored, f"address {address} unblocked")


add_parser, build_parser, main = AdminCommand(
    "accounts",
    help="list, freeze and unfreeze accounts",
    description="Frozen accounts and blocked addresses. Safe while the gateway runs.",
    build=_build,
).parts()
