"""`leakguard audit …`: check and hand out the tamper-evident record, while the gateway runs.

    verify [--export FILE] [--json]              walk the chain: exit 0 intact, 1 tampered, 2 error
    export [--since T] [--until T] [--out FILE]  JSON lines with seq/prev/hash, verifiable alone
    events [--since T] [--until T] [--type T] [--limit N] [--json]   what the record holds

Every action takes --config FILE / --state-dir DIR like `leakguard run`
(gateway.admin_args) and opens the store with audit.open.open_store; the
chain key comes from the installation key in the state directory, so
verifying needs that directory (an export is checked against the same key).

An export is every event from the first to the last one in the period, in
seq order and without gaps (so it verifies as one piece even when gateways'
clocks disagree a little), followed by the `audit.export` event that the
export itself records in the store: it names the seq range and count it
closes, so a cut or shortened export is detected as well as an edited one.
`verify` and `export` are recorded as events (audit.verify, audit.export).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from audit.chain import EVERY_SEQ, Problem, body_of, event_hash, verify
from audit.events import Event
from audit.log import record_now
from audit.open import DB_FILE, open_store
from audit.store import AuditStore, StoreError
from gateway.admin_args import (
    EXIT_ERROR,
    EXIT_OK,
    add_location_args,
    admin_config,
    operator,
    parse_when,
    report_config_error,
)
from gateway.config import Config, ConfigError
from gateway.state import KEY_FILE

EXIT_TAMPERED = 1
EVENTS_FILE = "events.jsonl"  # the gateway's mirror (gateway.runtime.EVENTS_FILE)
EXPORT_TYPE = "audit.export"
LISTED = ("seq", "time", "type", "user", "source_ip", "action", "rule", "destination")


def add_parser(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser(
        "audit",
        help="the tamper-evident record: verify, export, list events",
        description="Verify, export and list the gateway's chained audit record.",
    )
    actions = audit.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    add_location_args(common)

    v = actions.add_parser(
        "verify",
        parents=[common],
        help="find edited, inserted or deleted events (exit 0 intact, 1 tampered, 2 error)",
    )
    v.add_argument("--export", metavar="FILE", help="verify a `leakguard audit export` file")
    v.add_argument("--json", action="store_true", help="the result as one JSON object")
    v.set_defaults(func=_verify)

    e = actions.add_parser("export", parents=[common], help="JSON lines for a SIEM, verifiable")
    _period_args(e)
    e.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    e.set_defaults(func=_export)

    ls = actions.add_parser("events", parents=[common], help="list recorded events")
    _period_args(ls)
    ls.add_argument(
        "--type",
        action="append",
        metavar="TYPE",
        help="only this type, or a family with a trailing dot: login. (repeatable)",
    )
    ls.add_argument("--limit", type=int, metavar="N", help="only the last N")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(func=_events)


def _period_args(parser: argparse.ArgumentParser) -> None:
    when = "a date, a time (2026-11-23 10:00, local unless a zone is given) or a span ago (7d)"
    parser.add_argument("--since", metavar="WHEN", help=f"from: {when}")
    parser.add_argument("--until", metavar="WHEN", help=f"before: {when}")


def _run(fn):
    def wrapped(args: argparse.Namespace) -> int:
        try:
            config = admin_config(args)
            return fn(args, config)
        except ConfigError as err:
            return report_config_error(err)
        except (StoreError, LookupError, OSError, ValueError) as err:
            print(f"leakguard audit: {err}", file=sys.stderr)
            return EXIT_ERROR

    return wrapped


def _open(config: Config) -> AuditStore:
    """The existing store: an admin command never starts a new record or a new key."""
    state = Path(config.state_dir)
    if not (state / KEY_FILE).is_file():
        raise LookupError(f"no installation key in {state} (has the gateway run with it?)")
    if config.audit.store == "sqlite" and not (state / DB_FILE).is_file():
        raise LookupError(f"no audit record in {state} (has the gateway run with it?)")
    return open_store(config, state)


def _record(store: AuditStore, config: Config, event: Event) -> dict:
    return record_now(store, Path(config.state_dir) / EVENTS_FILE, event)


# -- verify -------------------------------------------------------------------------------


@_run
def _verify(args: argparse.Namespace, config: Config) -> int:
    store = _open(config)
    try:
        if args.export:
            count, problems, notes = verify_export(Path(args.export), store.chain_key)
            what = f"export {args.export}"
        else:
            head = store.head()  # before the walk: events appended meanwhile are fine
            count, problems = verify(
                store.events(after_seq=EVERY_SEQ), store.chain_key, head=head, checkpointed=True
            )
            notes = []
            what = f"audit record in {_where(config)}"
        outcome = "tampered" if problems else "intact"
        _record(
            store,
            config,
            Event(
                type="audit.verify",
                user=operator(),
                action=outcome,
                reason=f"{what}: {count} events, {len(problems)} problems",
                detail="; ".join(str(p) for p in problems[:5]),
            ),
        )
    finally:
        store.close()
    if args.json:
        result = {
            "intact": not problems,
            "verified": what,
            "events": count,
            "problems": [p.__dict__ for p in problems],
            "notes": notes,
        }
        print(json.dumps(result, ensure_ascii=False))
    else:
        for note in notes:
            print(f"note: {note}")
        if problems:
            print(f"{what}: TAMPERED — {len(problems)} problem(s) in {count} events")
            for p in problems:
                print(f"  {p}")
        else:
            checked = "closing record" if args.export else "head checkpoint"
            print(f"{what}: intact ({count} events, chain and {checked} verified)")
    return EXIT_TAMPERED if problems else EXIT_OK


def _where(config: Config) -> str:
    if config.audit.store == "redis":
        return f"Redis (prefix {config.audit.redis_prefix!r})"
    return str(Path(config.state_dir) / DB_FILE)


def verify_export(path: Path, key: bytes) -> tuple[int, list[Problem], list[str]]:
    """An export file: its lines in seq order make one unbroken piece of the chain, and its
    closing audit.export event (itself chained) says which piece; → (events, problems, notes)."""
    problems: list[Problem] = []
    rows: list[tuple[int, dict]] = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                problems.append(Problem(None, "", "not a JSON object: edited or cut", number))
                continue
            rows.append((number, event))
    closing = None
    if (
        rows
        and rows[-1][1].get("type") == EXPORT_TYPE
        and isinstance(rows[-1][1].get("export"), dict)
    ):
        closing = rows.pop()
    rows.sort(key=lambda r: r[1].get("seq") if isinstance(r[1].get("seq"), int) else -1)
    events = [e for _, e in rows]
    first = events[0].get("seq") if events else None
    count, found = verify(events, key, from_start=first == 1, lines=[n for n, _ in rows])
    problems.extend(found)
    notes = []
    if closing is None:
        notes.append(
            "no closing audit.export event: a cut end cannot be detected "
            "(an export from `leakguard audit export` ends with one)"
        )
    else:
        problems.extend(_check_closing(closing, events, key))
    return count, sorted(problems, key=lambda p: p.line or 0), notes


def _check_closing(closing: tuple[int, dict], events: list[dict], key: bytes) -> list[Problem]:
    line, event = closing
    seq, ident = event.get("seq"), str(event.get("id", ""))
    if not isinstance(seq, int) or event_hash(
        body_of(event), seq, str(event.get("prev")), key
    ) != event.get("hash"):
        what = "the closing audit.export event does not match its hash: edited"
        return [Problem(seq if isinstance(seq, int) else None, ident, what, line)]
    said = event["export"]
    seqs = [e.get("seq") for e in events]
    got = {"first": seqs[0] if seqs else None, "last": seqs[-1] if seqs else None}
    problems = []
    if said.get("count") != len(events):
        problems.append(
            Problem(
                seq,
                ident,
                f"the export closes {said.get('count')} events but holds {len(events)}: "
                "events removed or added",
                line,
            )
        )
    for end in ("first", "last"):
        if said.get(end) != got[end]:
            problems.append(
                Problem(
                    seq,
                    ident,
                    f"the export's {end} event should be seq {said.get(end)}, is {got[end]}: "
                    "cut or extended",
                    line,
                )
            )
    return problems


# -- export -------------------------------------------------------------------------------


@_run
def _export(args: argparse.Namespace, config: Config) -> int:
    since = parse_when(args.since) if args.since else None
    until = parse_when(args.until) if args.until else None
    store = _open(config)
    try:
        first = last = None
        for event in store.events(since=since, until=until):
            first = event["seq"] if first is None else first
            last = event["seq"]
        if first is None:
            events: Iterable[dict] = ()
        else:
            events = _between(store.events(after_seq=first - 1), last)
        out = _Output(args.out)
        with out as f:
            count = 0
            for event in events:
                f.write(json.dumps(event, ensure_ascii=False) + "\n")
                count += 1
            period = f"{args.since or 'the start'} to {args.until or 'now'}"
            span = f"seq {first}-{last}" if count else "no events"
            closing = _record(
                store,
                config,
                Event(
                    type=EXPORT_TYPE,
                    user=operator(),
                    reason=f"{count} events exported ({span})",
                    detail=f"period {period}" + (f", to {args.out}" if args.out else ""),
                ).to_dict()
                | {"export": {"first": first, "last": last, "count": count}},
            )
            f.write(json.dumps(closing, ensure_ascii=False) + "\n")
    finally:
        store.close()
    if args.out:
        print(f"{count} events ({span}) written to {args.out}", file=sys.stderr)
    return EXIT_OK


def _between(events: Iterator[dict], last: int) -> Iterator[dict]:
    for event in events:
        if event["seq"] > last:
            return
        yield event


class _Output:
    """Standard output, or FILE written beside itself and renamed into place when complete."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def __enter__(self):
        if self.path is None:
            return sys.stdout
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent or ".", prefix=".export-")
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        return self._file

    def __exit__(self, kind, value, tb) -> None:
        if self.path is None:
            sys.stdout.flush()
            return
        self._file.close()
        if kind is None:
            os.replace(self._tmp, self.path)
        else:
            os.unlink(self._tmp)


# -- events -------------------------------------------------------------------------------


@_run
def _events(args: argparse.Namespace, config: Config) -> int:
    since = parse_when(args.since) if args.since else None
    until = parse_when(args.until) if args.until else None
    types = args.type or []
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    store = _open(config)
    try:
        rows = [e for e in store.events(since=since, until=until) if _typed(e, types)]
    finally:
        store.close()
    if args.limit:
        rows = rows[-args.limit :]
    if args.json:
        for event in rows:
            print(json.dumps(event, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("no events")
        return EXIT_OK
    table = [("SEQ", "TIME", "TYPE", "USER", "FROM", "ACTION", "RULE", "TO")]
    for e in rows:
        table.append(tuple(str(e.get(k) or "-") for k in LISTED))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for row in table:
        print("  ".join([*(row[i].ljust(widths[i]) for i in range(len(widths))), row[-1]]))
    return EXIT_OK


def _typed(event: dict, types: list[str]) -> bool:
    kind = str(event.get("type", ""))
    return not types or any(kind == t or (t.endswith(".") and kind.startswith(t)) for t in types)
