"""`leakguard senders …`: senders held for review after an anomalous transfer, and releasing them.

    senders list [--all] [--json]           held senders (user, or source address)
    senders release NAME [--reason TEXT]    let NAME send to external destinations again

A sender is held by the transfer watch (audit.transfers: distinct PII,
volume, new destinations, off-hours, baseline — whichever watch.yaml sets
to `hold`); while held, the proxy and the relay refuse that sender's
external sending with "held for review: …". Holds live in the gateway's
audit store (`--config FILE` / `--state-dir DIR`, as for `leakguard run`),
read at every transfer, so a release takes effect at the next one while the
gateway runs. A release is recorded as a "sender.released" event naming the
administrator.

Exit status: 0 done, 1 nothing to do (NAME is not held), 2 bad arguments or a
store that cannot be opened.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from audit.transfers import release_sender
from gateway.admin_args import (
    AdminCommand,
    add_location_args,
    local_time,
    operator,
)
from gateway.admin_store import AdminError, admin_store, print_recorded, record_action

EXIT_OK, EXIT_NOTHING, EXIT_ERROR = 0, 1, 2


def _build(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="senders_command", metavar="ACTION", required=True)
    show = actions.add_parser("list", help="senders held for review")
    add_location_args(show)
    show.add_argument("--all", action="store_true", help="also holds that have ended")
    show.add_argument("--json", action="store_true", help="one JSON object per hold")
    show.set_defaults(func=_list)
    release = actions.add_parser("release", help="let a held sender send out again")
    add_location_args(release)
    release.add_argument("name", metavar="NAME", help="the user (or source address) held")
    release.add_argument("--reason", default="", help="why, for the record")
    release.add_argument("--json", action="store_true", help="the recorded event as JSON")
    release.set_defaults(func=_release)


def _fail(message: str) -> int:
    print(f"leakguard senders: {message}", file=sys.stderr)
    return EXIT_ERROR


def _list(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        with admin_store(args) as (store, _mirror):
            holds = store.holds("sender")
    except AdminError as err:
        return _fail(str(err))
    if not args.all:
        holds = [h for h in holds if h.active(now)]
    if args.json:
        for h in holds:
            print(json.dumps({**h.to_dict(), "active": h.active(now)}, ensure_ascii=False))
        return EXIT_OK
    if not holds:
        print("no senders held")
        return EXIT_OK
    rows = [("SENDER", "SINCE", "BY", "REASON")]
    rows += [(h.name, local_time(h.since), h.by, h.reason) for h in holds]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return EXIT_OK


def _release(args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not name:
        return _fail("give the held sender's name (see `leakguard senders list`)")
    by = operator()
    try:
        with admin_store(args) as (store, mirror):
            released = release_sender(store, name)
            if released is None:
                print(f"sender {name} is not held", file=sys.stderr)
                return EXIT_NOTHING
            reason = args.reason or "released by an administrator"
            detail = f"held since {local_time(released.since)} by {released.by}: {released.reason}"
            stored = record_action(
                store, mirror, "sender.released", name, by, reason, "release", detail
            )
    except AdminError as err:
        return _fail(str(err))
    return print_recorded(args, stored, f"sender {name} released")


add_parser, build_parser, main = AdminCommand(
    "senders",
    help="list and release senders held after anomalous transfers",
    description="Senders held for review. Safe while the gateway runs.",
    build=_build,
).parts()
