"""`leakguard report`: the periodic information-security report, one self-contained HTML file.

    report --since T [--until T] --out report.html [--party P] [--title TEXT]

T is relative (30d, 24h, 2w) or an ISO date or date-time, local time unless
it carries an offset; a bare --until date includes that day; --until
defaults to now. The figures come from the audit store of `--config FILE` /
`--state-dir DIR` (the same as `leakguard run`), read beside the running
gateway. The page has inline CSS and SVG charts only — no scripts, no links
— so it opens offline and prints; for a PDF, print it from a browser.

Exit status: 0 written, 2 bad arguments or an unreadable store (one
sentence on stderr; no file is written).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from audit.incidents import Redactor, parse_when
from audit.report import build_report, render_html
from certs.files import replace_file
from gateway.admin_args import AdminCommand, add_location_args
from gateway.admin_store import AdminError, admin_store

EXIT_OK, EXIT_ERROR = 0, 2


def _build(parser: argparse.ArgumentParser) -> None:
    add_location_args(parser)
    parser.add_argument("--since", required=True, metavar="T", help="from (30d, 2026-11-01, …)")
    parser.add_argument("--until", metavar="T", help="up to, excluded (a bare date: that day)")
    parser.add_argument("--out", required=True, metavar="FILE", help="where to write the HTML")
    parser.add_argument("--party", default="", help="only transfers to this approved party")
    parser.add_argument("--title", default="", help="the report's title (default: bilingual)")
    parser.set_defaults(func=_report)


def _fail(message: str) -> int:
    print(f"leakguard report: {message}", file=sys.stderr)
    return EXIT_ERROR


def _report(args: argparse.Namespace) -> int:
    now = datetime.now().astimezone()
    try:
        since = parse_when(args.since, now)
        until = parse_when(args.until, now, end_of_day=True) if args.until else now
    except ValueError as err:
        return _fail(str(err))
    if since >= until:
        return _fail(f"--since {args.since} is not before --until {args.until or 'now'}")
    out = Path(args.out)
    if out.is_dir():
        return _fail(f"--out {out} is a directory: name the file, e.g. {out / 'report.html'}")
    if not out.absolute().parent.is_dir():
        return _fail(f"--out {out}: the directory {out.absolute().parent} does not exist")
    try:
        with admin_store(args) as (store, _mirror):
            report = build_report(
                store.events(since=since.timestamp(), until=until.timestamp()),
                store.holds("account"),
                since,
                until,
                now=now,
                party=args.party,
                title=args.title,
                redact=Redactor(),
            )
    except AdminError as err:
        return _fail(str(err))
    html = render_html(report)
    try:
        replace_file(out.absolute(), html.encode("utf-8"), 0o640)
    except OSError as err:
        return _fail(f"cannot write {out}: {err.strerror or err}")
    print(
        f"leakguard report: {out} — {report.transfers} transfer(s), "
        f"{report.totals['blocked']} blocked, {len(report.frozen)} account(s) frozen"
    )
    return EXIT_OK


add_parser, build_parser, main = AdminCommand(
    "report",
    help="write the periodic security report (HTML)",
    description="Blocked, masked, encrypted and delivered transfers per data class, party "
    "and channel; login anomalies; frozen accounts — one self-contained HTML file.",
    build=_build,
).parts()
