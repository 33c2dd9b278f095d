"""The `leakguard` command: one subcommand per module, each adds its own parser."""

from __future__ import annotations

import argparse
import sys

from gateway import (
    accounts_command,
    audit_command,
    certs_command,
    firewall_command,
    incidents_command,
    mail_command,
    report_command,
    rules_command,
    run_command,
    scan_command,
    senders_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leakguard", description="Data-loss-prevention gateway for client data."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    scan_command.add_parser(sub)
    rules_command.add_parser(sub)
    certs_command.add_parser(sub)
    run_command.add_parser(sub)
    mail_command.add_parser(sub)
    firewall_command.add_parser(sub)
    incidents_command.add_parser(sub)
    accounts_command.add_parser(sub)
    report_command.add_parser(sub)
    audit_command.add_parser(sub)
    senders_command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `rules test DIR --to HOST FILE…` puts positionals on both sides of an option;
    # argparse leaves the later ones over, and commands that take files accept them.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "extra_positionals") or any(
            e.startswith("-") and e != "-" for e in extra
        ):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.extra_positionals(args, extra)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
