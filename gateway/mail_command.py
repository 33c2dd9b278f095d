"""`leakguard mail …`: the relay's queue and quarantine, while the gateway runs.

    queue [--json]                          what waits for delivery, and why
    flush                                   retry the whole queue now
    quarantine list [--json]                messages held for review
    quarantine show ID [--json|--raw]       who, to whom, rule, masked findings; --raw: the message
    quarantine release ID [--note TEXT]     deliver the held groups
    quarantine reject ID [--note TEXT]      refuse them: the sender gets a DSN

Every action works on the spool directory (`<state>/spool`, see
mailrelay.spool) with atomic renames under a lock, so it is safe beside the
running relay and needs no connection to it. `flush` (and release/reject)
leave a request file, `spool/flush.request`, that the running relay picks up
within a second; the command waits briefly and says whether it was seen.
The relay records the release/reject events when it carries them out.

Exit status: 0 done, 2 refused or failed (one sentence on stderr).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import getpass
import json
import os
import sys
import time
from datetime import datetime

from gateway.admin_args import AdminCommand, add_location_args, admin_config
from gateway.config import ConfigError
from mailrelay.spool import QUARANTINE, QUEUE, REJECT, RELEASE, SPOOL_DIR, Spool, valid_name

EXIT_OK, EXIT_ERROR = 0, 2
FLUSH_WAIT = 3.0  # seconds `flush` waits for a running relay to take the request


def _build(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    add_location_args(common)
    actions = parser.add_subparsers(dest="mail_command", required=True, metavar="ACTION")

    p = actions.add_parser("queue", parents=[common], help="list the delivery queue")
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    p.set_defaults(func=_queue)

    p = actions.add_parser("flush", parents=[common], help="retry the whole queue now")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the relay to see it")
    p.set_defaults(func=_flush)

    q = actions.add_parser("quarantine", help="review held messages")
    qa = q.add_subparsers(dest="quarantine_command", required=True, metavar="ACTION")
    p = qa.add_parser("list", parents=[common], help="messages held for review")
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    p.set_defaults(func=_q_list)
    p = qa.add_parser("show", parents=[common], help="one held message, findings masked")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.add_argument("--raw", action="store_true", help="write the message itself to stdout")
    p.set_defaults(func=_q_show)
    for name, decision, text in (
        ("release", RELEASE, "deliver the held recipients"),
        ("reject", REJECT, "refuse the held recipients; the sender gets a DSN"),
    ):
        p = qa.add_parser(name, parents=[common], help=text)
        p.add_argument("id")
        p.add_argument("--note", default="", help="why (kept in the event, told to the sender)")
        p.add_argument("--no-wait", action="store_true")
        p.set_defaults(func=_q_decide, decision=decision)


# -- where the spool is ----------------------------------------------------------------------


def _spool(args: argparse.Namespace) -> Spool:
    root = admin_config(args).state_dir  # where `leakguard run` keeps it
    if not (root / SPOOL_DIR).is_dir():
        raise LookupError(f"no mail spool in {root} (has the relay run with this state directory?)")
    return Spool(root / SPOOL_DIR)


def _run(fn):
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return fn(args, _spool(args))
        except ConfigError as err:
            for issue in err.issues:
                print(issue, file=sys.stderr)
            return EXIT_ERROR
        except (LookupError, OSError) as err:
            print(f"leakguard mail: {err}", file=sys.stderr)
            return EXIT_ERROR

    return wrapped


# -- queue and flush ---------------------------------------------------------------------------


@_run
def _queue(args: argparse.Namespace, spool: Spool) -> int:
    now = time.time()
    rows = []
    for name in spool.names(QUEUE):
        meta = spool.read_meta(name, QUEUE)
        if meta is None:
            continue  # delivered while we looked
        rows.append(_queue_row(name, meta, now))
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("the queue is empty")
    else:
        table = [("ID", "RECEIVED", "SENDER", "WAITING", "TRIES", "NEXT TRY", "LAST ERROR")]
        for r in rows:
            nxt = _when(r["next_attempt"], now) if r["next_attempt"] else "now"
            table.append(
                (
                    r["id"],
                    _local(r["received"]),
                    r["sender"] or "<>",
                    f"{len(r['waiting'])}/{r['recipients']}",
                    str(r["attempts"]),
                    nxt,
                    r["last_error"][:60] or "-",
                )
            )
        _print_table(table)
    held = len(spool.names(QUARANTINE))
    if held:
        print(f"{held} message(s) in quarantine: `leakguard mail quarantine list`")
    return EXIT_OK


def _queue_row(name: str, meta: dict, now: float) -> dict:
    state, decision = meta["state"], meta["decision"]
    delivered = {i: set(r) for i, r in state.get("delivered", {}).items()}
    failed = {(f["group"], f["rcpt"]) for f in state.get("failed", ())}
    waiting, total = [], 0
    for i, d in enumerate(meta["plan"]["deliveries"]):
        total += len(d["recipients"])
        outcome = d["outcome"]
        if decision and outcome == "quarantine":
            outcome = "deliver" if decision.get("decision") == RELEASE else "bounce"
        if outcome != "deliver":
            continue
        for r in d["recipients"]:
            if r not in delivered.get(str(i), ()) and (i, r) not in failed:
                waiting.append(r)
    return {
        "id": name,
        "received": meta["received"],
        "age_seconds": round(now - meta["received"]),
        "sender": meta["envelope"]["mail_from"],
        "recipients": total,
        "waiting": waiting,
        "attempts": state.get("attempts", 0),
        "next_attempt": state.get("next"),
        "last_error": state.get("last_error", ""),
        "decision": (decision or {}).get("decision", ""),
        "size": meta["size"],
    }


@_run
def _flush(args: argparse.Namespace, spool: Spool) -> int:
    spool.request_flush()
    _report_flush(spool, args.no_wait, "flush requested")
    return EXIT_OK


def _report_flush(spool: Spool, no_wait: bool, what: str) -> None:
    if no_wait:
        print(f"{what}; a running relay picks it up within a second")
        return
    deadline = time.monotonic() + FLUSH_WAIT
    while spool.flush_requested() and time.monotonic() < deadline:
        time.sleep(0.05)
    if spool.flush_requested():
        print(f"{what}; no running relay took it yet: it will when the relay (re)starts")
    else:
        print(f"{what}; the relay is retrying the queue now")


# -- quarantine --------------------------------------------------------------------------------


@_run
def _q_list(args: argparse.Namespace, spool: Spool) -> int:
    rows = []
    for name in spool.names(QUARANTINE):
        meta = spool.read_meta(name, QUARANTINE)
        if meta is not None:
            rows.append(_summary(name, meta))
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("nothing in quarantine")
        return EXIT_OK
    table = [("ID", "HELD SINCE", "SENDER", "RECIPIENTS", "RULE", "FINDINGS")]
    for r in rows:
        kinds = sorted({f.get("type", "?") for g in r["groups"] for f in g["findings"]})
        table.append(
            (
                r["id"],
                _local(r["quarantined"]),
                r["sender"] or "<>",
                ", ".join(rc for g in r["groups"] for rc in g["recipients"]),
                ", ".join(sorted({g["rule"] for g in r["groups"] if g["rule"]})) or "-",
                f"{sum(len(g['findings']) for g in r['groups'])} ({', '.join(kinds)})",
            )
        )
    _print_table(table)
    return EXIT_OK


def _summary(name: str, meta: dict) -> dict:
    env = meta["envelope"]
    return {
        "id": name,
        "received": meta["received"],
        "quarantined": meta.get("quarantined", meta["received"]),
        "sender": env.get("mail_from", ""),
        "source_ip": env.get("source_ip", ""),
        "user": env.get("user", ""),
        "size": meta["size"],
        "decision": (meta["decision"] or {}).get("decision", ""),
        "groups": [
            {
                "recipients": d["recipients"],
                "action": d.get("action", ""),
                "rule": d.get("rule", ""),
                "reason": d.get("reason", ""),
                "incident": d.get("incident", ""),
                "findings": d.get("findings", []),
            }
            for d in meta["plan"]["deliveries"]
        ],
    }


@_run
def _q_show(args: argparse.Namespace, spool: Spool) -> int:
    meta = spool.read_meta(args.id, QUARANTINE) if valid_name(args.id) else None
    raw = spool.read_message(args.id, QUARANTINE) if meta is not None else None
    if meta is None or raw is None:
        return _not_held(args.id)
    if args.raw:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return EXIT_OK
    row = _summary(args.id, meta)
    row["parts"] = _parts(raw)
    if args.json:
        print(json.dumps(row, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"quarantined message {row['id']}")
    print(f"  received     {_local(row['received'])}  held since {_local(row['quarantined'])}")
    print(f"  sender       {row['sender'] or '<>'}")
    user = f" (user {row['user']})" if row["user"] else ""
    print(f"  from         {row['source_ip'] or '?'}{user}")
    print(f"  size         {row['size']} bytes")
    for g in row["groups"]:
        print(f"  held for     {', '.join(g['recipients'])}")
        print(f"    rule       {g['rule'] or '-'} ({g['action']})")
        print(f"    reason     {g['reason'] or '-'}")
        if g["incident"]:
            print(f"    incident   {g['incident']}")
        for f in g["findings"]:
            shown = f.get("masked") or ", ".join(f.get("why", ())) or ""
            print(f"    found      {f.get('type', '?')} {shown} in {f.get('location', '?')}")
    print("  parts")
    for p in row["parts"]:
        name = f" {p['filename']}" if p["filename"] else ""
        print(f"    {p['type']}{name} ({p['size']} bytes)")
    print(f"the message itself (unmasked: handle with care): add --raw > {row['id']}.eml")
    print(f"release: leakguard mail quarantine release {row['id']}")
    print(f"reject:  leakguard mail quarantine reject {row['id']} --note 'why'")
    return EXIT_OK


def _parts(raw: bytes) -> list[dict]:
    """The MIME structure: content types, attachment names and sizes (no content)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        try:
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename() or ""
        except Exception:  # a broken part must not stop the review
            payload, filename = b"", "?"
        out.append({"type": part.get_content_type(), "filename": filename, "size": len(payload)})
    return out


@_run
def _q_decide(args: argparse.Namespace, spool: Spool) -> int:
    try:
        target = spool.decide(args.id, args.decision, by=_operator(), note=args.note)
    except KeyError:
        return _not_held(args.id)
    spool.request_flush()
    verb = "released" if args.decision == RELEASE else "rejected"
    _report_flush(spool, args.no_wait, f"{args.id} {verb} (queued as {target})")
    return EXIT_OK


def _not_held(ident: str) -> int:
    print(
        f"leakguard mail: no quarantined message {ident!r} "
        "(decided already? `leakguard mail quarantine list` shows what is held)",
        file=sys.stderr,
    )
    return EXIT_ERROR


def _operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {user})" if sudo and sudo != user else user


# -- output ------------------------------------------------------------------------------------


def _local(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _when(ts: float, now: float) -> str:
    left = ts - now
    if left <= 0:
        return "now"
    if left < 90:
        return f"in {left:.0f} s"
    if left < 5400:
        return f"in {left / 60:.0f} min"
    return f"in {left / 3600:.1f} h"


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([*(row[i].ljust(widths[i]) for i in range(len(widths))), row[-1]]))


add_parser, build_parser, main = AdminCommand(
    "mail",
    help="the mail relay's queue and quarantine",
    description="List and flush the relay's queue; review, release and reject "
    "quarantined mail. Safe while the gateway runs.",
    build=_build,
).parts()
