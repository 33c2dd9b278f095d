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
from datetime import datetime

from audit.events import Event
from audit.log import record_now
from audit.open import DB_FILE, open_store
from audit.store import StoreError
from audit.transfers import release_sender
from gateway.admin_args import add_location_args, admin_config, operator, report_config_error
from gateway.config import ConfigError

EXIT_OK, EXIT_NOTHING, EXIT_ERROR = 0, 1, 2
EVENTS_FILE = "events.jsonl"  # gateway.runtime's mirror (importing runtime loads mitmproxy)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "senders",
        help="list and release senders held after anomalous transfers",
        description="Senders held for review. Safe while the gateway runs.",
    )
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


def _open(args: argparse.Namespace):
    """(store, events mirror); raises StoreError with a message for people. A missing
    SQLite record is an error: a wrong --state-dir must not look like "nobody is held"."""
    try:
        config = admin_config(args)
    except ConfigError as err:
        report_config_error(err)
        raise StoreError("the configuration file has errors (above)") from None
    directory = config.state_dir
    if config.audit.store == "sqlite" and not (directory / DB_FILE).is_file():
        raise StoreError(f"no audit record in {directory} (is this the gateway's state directory?)")
    return open_store(config, directory), directory / EVENTS_FILE


def _fail(message: str) -> int:
    print(f"leakguard senders: {message}", file=sys.stderr)
    return EXIT_ERROR


def _list(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        store, _ = _open(args)
        try:
            holds = store.holds("sender")
        finally:
            store.close()
    except StoreError as err:
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
    rows += [(h.name, _local(h.since), h.by, h.reason) for h in holds]
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
        store, mirror = _open(args)
        try:
            released = release_sender(store, name)
            if released is None:
                print(f"sender {name} is not held", file=sys.stderr)
                return EXIT_NOTHING
            reason = args.reason or "released by an administrator"
            detail = f"held since {_local(released.since)} by {released.by}: {released.reason}"
            event = Event(
                type="sender.released", user=name, action="release", reason=reason,
                detail=f"{detail}; by {by}",
            )  # fmt: skip
            stored = record_now(store, mirror, {**event.to_dict(), "by": by})
        finally:
            store.close()
    except StoreError as err:
        return _fail(str(err))
    if args.json:
        print(json.dumps(stored, ensure_ascii=False))
    else:
        print(f"sender {name} released (event {stored.get('seq', '?')}, by {by})")
    return EXIT_OK


def _local(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
