"""`leakguard rules check|test|explain`: lint the policy, try it, read it in words.

Exit status:
  check    0 valid (warnings may be printed), 2 invalid (file:line messages on stderr)
  test     0 the content would leave (allow, report, mask, encrypt),
           1 it would be held (block, quarantine), 2 error
  explain  0, or 2 when the policy does not load
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.scan_command import inputs, print_table, read_input
from gateway.state import installation_key, state_dir
from rules.engine import Engine
from rules.extract import Limits, extract
from rules.policy import Context, PolicyError, Verdict, evaluate, load_policy
from rules.policy.dump import dump_yaml, to_wire
from rules.policy.explain import explain
from rules.policy.model import CHANNELS, Policy

EXIT_OK, EXIT_HELD, EXIT_ERROR = 0, 1, 2
SHIPPED_POLICY = Path(__file__).resolve().parent.parent / "rules" / "default"
DEFAULT_PORTS = {"http": 80, "https": 443, "websocket": 443, "smtp": 25}


def default_policy_dir() -> Path:
    """$LEAKGUARD_POLICY, else the shipped default policy."""
    return Path(os.environ.get("LEAKGUARD_POLICY") or SHIPPED_POLICY)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "rules",
        help="check, try and explain the policy",
        description="Check, try and explain the policy (a directory of YAML).",
    )
    cmds = parser.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")

    check = cmds.add_parser("check", help="lint the policy: exit 0 valid, 2 invalid")
    check.add_argument("dir", nargs="?", type=Path, help="policy directory")
    check.set_defaults(func=run_check)

    test = cmds.add_parser(
        "test",
        help="what would happen if these files were sent there, and why",
        usage="leakguard rules test [DIR] --to HOST|ADDRESS|IP [--from IP|USER] "
        "[--channel CH] [--json] FILE...",
    )
    test.add_argument(
        "args",
        nargs="+",
        metavar="[DIR] FILE",
        help="optional policy directory, then files (or '-') sent together",
    )
    test.add_argument("--to", required=True, help="host, IP, or mail address of the recipient")
    test.add_argument(
        "--from",
        dest="sender",
        default="127.0.0.1",
        help="source IP, or user name (then from 127.0.0.1); default 127.0.0.1",
    )
    test.add_argument("--user", help="the sending user (with --from IP)")
    test.add_argument("--group", action="append", default=[], help="a group of the user")
    test.add_argument(
        "--channel", choices=CHANNELS, help="default: smtp for a mail address, else https"
    )
    test.add_argument("--port", type=int, help="destination port (default by channel)")
    test.add_argument("--at", help="when, ISO 8601 (default now): agreements are dated")
    test.add_argument("--json", action="store_true", help="the verdict as one JSON object")
    test.add_argument("--policy", type=Path, help="policy directory (instead of DIR)")
    test.add_argument("--state-dir", help="where the installation key lives (default ./var)")
    test.set_defaults(func=run_test, extra_positionals=lambda a, extra: a.args.extend(extra))

    exp = cmds.add_parser("explain", help="the effective policy in words")
    exp.add_argument("dir", nargs="?", type=Path, help="policy directory")
    exp.add_argument(
        "--yaml",
        action="store_true",
        help="the effective policy as canonical YAML (loads back to the same policy)",
    )
    exp.set_defaults(func=run_explain)


def _load(directory: Path | None, command: str) -> Policy | None:
    directory = directory or default_policy_dir()
    try:
        return load_policy(directory)
    except PolicyError as err:
        for issue in err.issues:
            print(_located(directory, str(issue)), file=sys.stderr)
        errors = sum(1 for i in err.issues if not i.warning)
        print(
            f"leakguard rules {command}: {directory}: {errors} error"
            f"{'s' if errors != 1 else ''}; the policy was not loaded",
            file=sys.stderr,
        )
        return None


def _located(directory: Path, message: str) -> str:
    """Prefix the directory so editors can jump to file:line."""
    head = message.split(":", 1)[0]
    return str(directory / message) if head.endswith((".yaml", ".yml")) else message


def run_check(args: argparse.Namespace) -> int:
    directory = args.dir or default_policy_dir()
    policy = _load(directory, "check")
    if policy is None:
        return EXIT_ERROR
    for warning in policy.warnings:
        print(_located(directory, warning), file=sys.stderr)
    print(
        f"{directory}: valid — {len(policy.zones)} zones, {len(policy.reach)} reach entries, "
        f"{len(policy.categories)} destination categories, {len(policy.parties)} parties, "
        f"{len(policy.classes)} data classes, {len(policy.rules)} rules"
        + (f", {len(policy.warnings)} warnings" if policy.warnings else "")
    )
    return EXIT_OK


def run_explain(args: argparse.Namespace) -> int:
    policy = _load(args.dir, "explain")
    if policy is None:
        return EXIT_ERROR
    if args.yaml:
        for name, doc in to_wire(policy).items():
            print(f"# --- {name}\n{dump_yaml(doc)}")
    else:
        sys.stdout.write(explain(policy, datetime.now(UTC).date()))
    return EXIT_OK


def run_test(args: argparse.Namespace) -> int:
    directory, files = args.policy, list(args.args)
    if directory is None and len(files) > 1 and (Path(files[0]) / "rules.yaml").is_file():
        directory, files = Path(files[0]), files[1:]
    policy = _load(directory, "test")
    if policy is None:
        return EXIT_ERROR
    try:
        ctx = _context(args)
        key = installation_key(state_dir(args.state_dir))
        engine = Engine(hash_key=key, custom=[s.build() for s in policy.custom_detectors])
    except (OSError, ValueError) as err:
        print(f"leakguard rules test: {err}", file=sys.stderr)
        return EXIT_ERROR
    limits = Limits()
    findings = []
    for given, path in inputs(files):
        try:
            data = read_input(path, limits.max_input_bytes)
        except OSError as err:
            print(
                f"leakguard rules test: {engine.redact(given)}: {err.strerror or err}",
                file=sys.stderr,
            )
            return EXIT_ERROR
        name = "" if path is None else path.name
        findings += engine.scan_parts(
            extract(data, name=name, location=name or "stdin", limits=limits)
        )
    verdict = evaluate(policy, findings, ctx)
    if args.json:
        print(json.dumps(verdict.to_dict(), ensure_ascii=False))
    else:
        _print_verdict(verdict, engine)
    return EXIT_HELD if verdict.action.holds else EXIT_OK


def _context(args: argparse.Namespace) -> Context:
    to = args.to.strip()
    recipient = host = dest_ip = None
    if "@" in to:
        recipient = to
    else:
        try:
            dest_ip = ipaddress.ip_address(to.strip("[]"))
        except ValueError:
            host = to.lower()
    channel = args.channel or ("smtp" if recipient else "https")
    if recipient and channel != "smtp":
        raise ValueError(f"--to {to} is a mail address: use --channel smtp (or a host)")
    try:
        source_ip, user = ipaddress.ip_address(args.sender), args.user
    except ValueError:
        source_ip, user = ipaddress.ip_address("127.0.0.1"), args.sender
    when = datetime.now(UTC)
    if args.at:
        when = datetime.fromisoformat(args.at)
        if when.tzinfo is None:
            raise ValueError("--at needs a time zone, e.g. 2026-11-23T10:00+08:00")
    return Context(
        channel=channel,
        source_ip=source_ip,
        user=user,
        groups=frozenset(args.group),
        host=host,
        dest_ip=dest_ip,
        port=args.port or DEFAULT_PORTS[channel],
        recipient=recipient,
        when=when,
    )


def _print_verdict(verdict: Verdict, engine: Engine) -> None:
    print(f"verdict: {verdict.action.value.upper()}")
    print(f"rule:    {verdict.rule}")
    print(f"reason:  {verdict.reason}")
    if verdict.message:
        print(f"message: {verdict.message}")
    for r in verdict.reported:
        print(f"report-mode rule {r.rule} would have: {r.action} ({r.reason})")
    if verdict.would_block:
        print("in enforce mode this would be held back")
    if verdict.mask:
        print(f"masked before sending: {len(verdict.mask)} values")
    if verdict.findings:
        print()
        print_table(
            [(f"{f.data_class}/{f.level}" if f.data_class else "-", f) for f in verdict.findings]
        )
