"""`leakguard incidents …`: who sent what (masked) to whom, when, which rule, what happened.

    incidents [--since T] [--until T] [--user U] [--rule R] [--action A] [--type T]
              [--limit N] [--json]          one line per incident, oldest first
    incidents show ID [--json]              every event of one incident, findings masked

T is relative (7d, 24h, 30m, 2w) or an ISO date or date-time (local time
unless it carries an offset; a bare --until date includes that day). The
record is read from the audit store of `--config FILE` / `--state-dir DIR`
(the same as `leakguard run`), so it works while the gateway runs.

Exit status: 0 done (also when nothing matched), 2 bad arguments, an unknown
incident, or a store that cannot be read (one sentence on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from datetime import datetime

from audit.incidents import (
    Filters,
    Redactor,
    find_incident,
    incidents,
    local,
    parse_when,
    safe_event,
    text,
)
from gateway.admin_args import (
    AdminCommand,
    add_location_args,
)
from gateway.admin_store import AdminError, admin_store

EXIT_OK, EXIT_ERROR = 0, 2
CELL = 40  # widest cell in a table; longer values end with "…"


def _build(parser: argparse.ArgumentParser) -> None:
    add_location_args(parser)
    parser.add_argument("--since", metavar="T", help="from (7d, 24h, 2026-11-01, …)")
    parser.add_argument("--until", metavar="T", help="up to, excluded (a bare date: that day)")
    parser.add_argument("--user", default="", help="only this user's incidents")
    parser.add_argument("--rule", default="", help="only incidents this rule decided")
    parser.add_argument("--action", default="", help="block, quarantine, mask, encrypt, …")
    parser.add_argument("--type", default="", help="event type or prefix (smtp, http.request)")
    parser.add_argument("--limit", type=_positive, metavar="N", help="only the latest N")
    parser.add_argument("--json", action="store_true", help="one JSON object per incident")
    parser.set_defaults(func=_list)
    actions = parser.add_subparsers(dest="incidents_command", metavar="show")
    show = actions.add_parser("show", help="every event of one incident")
    add_location_args(show)  # also accepted after `show`
    show.add_argument("id", help="an incident id, e.g. LG-20261123-7F3K9Q")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(func=_show)
    for action in show._actions:  # given before `show`, they must not be reset by its defaults
        if action.dest in ("config", "state_dir", "json"):
            action.default = argparse.SUPPRESS


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return n


def _filters(args: argparse.Namespace) -> Filters:
    now = datetime.now().astimezone()
    since = parse_when(args.since, now) if args.since else None
    until = parse_when(args.until, now, end_of_day=True) if args.until else None
    if since and until and since >= until:
        raise ValueError(f"--since {args.since} is not before --until {args.until}")
    return Filters(
        since=since, until=until, user=args.user, rule=args.rule, action=args.action, type=args.type
    )


def _fail(message: str) -> int:
    print(f"leakguard incidents: {message}", file=sys.stderr)
    return EXIT_ERROR


def _list(args: argparse.Namespace) -> int:
    try:
        filters = _filters(args)
    except ValueError as err:
        return _fail(str(err))
    try:
        with admin_store(args) as (store, _mirror):
            found = incidents(store.events(), filters)
    except AdminError as err:
        return _fail(str(err))
    if args.limit:
        found = found[-args.limit :]
    redact = Redactor()
    rows = [i.summary(redact) for i in found]
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("no incidents match")
        return EXIT_OK
    table = [("TIME", "INCIDENT", "USER", "CHANNEL", "TO", "RULE", "ACTION", "WHAT", "OUTCOME")]
    for r in rows:
        table.append(
            (
                local(r["time"]),
                r["incident"],
                r["user"] or r["source_ip"] or "-",
                r["channel"] or "-",
                r["destination"] or "-",
                r["rule"] or "-",
                r["action"] or "-",
                _what(r["findings"]),
                r["outcome"],
            )
        )
    print_table(table)
    print(f"{len(rows)} incident(s); `leakguard incidents show ID` for every event of one")
    return EXIT_OK


def _what(findings: list[dict]) -> str:
    if not findings:
        return "-"
    shown = ", ".join(f"{f.get('type', '?')} {f.get('masked', '')}".strip() for f in findings[:2])
    return shown + (f" +{len(findings) - 2}" if len(findings) > 2 else "")


def _show(args: argparse.Namespace) -> int:
    try:
        with admin_store(args) as (store, _mirror):
            incident = find_incident(store.events(), args.id)
    except AdminError as err:
        return _fail(str(err))
    if incident is None:
        return _fail(
            f"no incident {text(args.id)!r} in the record (`leakguard incidents` lists them)"
        )
    redact = Redactor()
    summary = incident.summary(redact)
    events = [safe_event(e, redact) for e in incident.events]
    if args.json:
        print(json.dumps({**summary, "events": events}, ensure_ascii=False))
        return EXIT_OK
    print(f"incident {summary['incident']}")
    for label, key in (
        ("when", "time"),
        ("user", "user"),
        ("from", "source_ip"),
        ("channel", "channel"),
        ("to", "destination"),
        ("party", "party"),
        ("rule", "rule"),
        ("action", "action"),
        ("reason", "reason"),
        ("outcome", "outcome"),
    ):
        value = local(summary[key]) if key == "time" else summary[key]
        print(f"  {label + ':':9}{value or '-'}")
    for e in events:
        print()
        print(f"{local(e.get('time', ''))}  {e.get('type', '?')}  {e.get('action') or '-'}")
        for key in ("rule", "reason", "destination", "detail"):
            if e.get(key):
                print(f"    {key + ':':13}{_line(e[key])}")
        for f in e["findings"]:
            where = f" at {f['location']}" if f.get("location") else ""
            cls = f" ({f['class']})" if f.get("class") else ""
            print(f"    finding:     {f.get('type', '?')}{cls} {f.get('masked', '')}{where}")
    return EXIT_OK


def _line(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# -- tables ---------------------------------------------------------------------------------


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _cell(s: str) -> str:
    if _width(s) <= CELL:
        return s
    out = ""
    for c in s:
        if _width(out + c) > CELL - 1:
            break
        out += c
    return out + "…"


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns aligned by display width (CJK characters count two)."""
    cells = [[_cell(text(c)) for c in row] for row in rows]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(cells[0]))]
    for row in cells:
        padded = [c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)]
        print("  ".join(padded).rstrip())


add_parser, build_parser, main = AdminCommand(
    "incidents",
    help="list incidents and show one",
    description="Who sent what (masked) to whom, when, which rule, what happened. "
    "Safe while the gateway runs.",
    build=_build,
).parts()
