"""`leakguard run [--config FILE] [flags]`: start the gateway (gateway.runtime).

Flags override the file so scripts and tests need not write one; with
neither, it runs on loopback with the embedded defaults (gateway.config).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from gateway.config import PROXY_MODES, Config, ConfigError, load_config, with_flags

EXAMPLE = "deploy/leakguard.example.yaml"


def add_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run",
        help="start the gateway (proxy and mail relay)",
        description=(
            "Start the gateway. Settings come from --config FILE (see "
            f"{EXAMPLE}); the flags below override it."
        ),
    )
    run.add_argument("--config", metavar="FILE", help="configuration file (YAML)")
    run.add_argument("--policy", metavar="DIR", help="policy directory")
    run.add_argument("--state-dir", metavar="DIR", help="state: CA, key, events (default ./var)")
    run.add_argument("--proxy-listen", metavar="ADDR:PORT", help="default 127.0.0.1:8080")
    run.add_argument("--proxy-mode", choices=PROXY_MODES, help="default regular")
    run.add_argument("--no-proxy", action="store_true", help="do not start the proxy")
    run.add_argument("--relay-listen", metavar="ADDR:PORT", help="default 127.0.0.1:2525")
    run.add_argument("--smarthost", metavar="HOST:PORT", help="where the relay delivers mail")
    run.add_argument("--no-relay", action="store_true", help="do not start the mail relay")
    run.add_argument(
        "--users-file", metavar="FILE", help="relay users for SMTP AUTH (python -m mailrelay.auth)"
    )
    run.add_argument(
        "--upstream-ca", metavar="FILE", help="CA certificates trusted for origin servers"
    )
    run.add_argument(
        "--resolve",
        metavar="NAME=ADDRESS",
        action="append",
        help="answer NAME with ADDRESS before DNS (repeatable)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    run.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    _logging(args.verbose)
    try:
        config = load_config(args.config) if args.config else Config()
        if not args.config and os.environ.get("LEAKGUARD_STATE_DIR") and not args.state_dir:
            args.state_dir = os.environ["LEAKGUARD_STATE_DIR"]
        config = with_flags(config, args)
    except ConfigError as err:
        for issue in err.issues:
            print(issue, file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:
        print(f"leakguard run: {err}", file=sys.stderr)
        return 2
    from gateway.runtime import Gateway  # mitmproxy loads only when it is needed

    return asyncio.run(Gateway(config).serve())


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # mitmproxy logs every connection at INFO; its warnings and errors are kept.
    logging.getLogger("mitmproxy").setLevel(logging.DEBUG if verbose else logging.WARNING)
