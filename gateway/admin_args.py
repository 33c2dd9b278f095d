"""What every admin command shares with `leakguard run`: --config FILE / --state-dir DIR.

    add_location_args(parser)      # --config, --state-dir
    config = admin_config(args)    # the Config, its state_dir resolved like `run` does
    sys.exit(report_config_error(err))  # a ConfigError's line-numbered issues → status 2
    since = parse_when("7d")       # --since/--until: a date, a time, or a span ago
    by = operator()                # who ran it, for the admin action's event
    add_parser, build_parser, main = AdminCommand("mail", help, description, _build).parts()

The state directory is --state-dir, else the config file's `state_dir`, else
$LEAKGUARD_STATE_DIR, else ./var — the same answer `leakguard run` reaches, so
an admin command run beside the gateway works on the gateway's own state.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from gateway.config import Config, ConfigError, load_config, parse_duration
from gateway.state import state_dir as default_state_dir

EXIT_OK, EXIT_ERROR = 0, 2


@dataclass(frozen=True)
class AdminCommand:
    """One admin command's parser, under `leakguard` and on its own (tests, scripts):
    `build(parser)` adds its arguments and sets `func`, which `main` runs."""

    name: str
    help: str
    description: str
    build: Callable[[argparse.ArgumentParser], None]

    def add_parser(self, sub: argparse._SubParsersAction) -> None:
        self.build(sub.add_parser(self.name, help=self.help, description=self.description))

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=f"leakguard {self.name}", description=self.description
        )
        self.build(parser)
        return parser

    def main(self, argv: list[str] | None = None) -> int:
        args = self.build_parser().parse_args(argv)
        return args.func(args)

    def parts(self):
        return self.add_parser, self.build_parser, self.main


def local_time(epoch: float) -> str:
    """An instant as this host's local time, with its offset (for hold listings)."""
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def add_location_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="the gateway's configuration file")
    parser.add_argument("--state-dir", metavar="DIR", help="state directory (default ./var)")


def admin_config(args: argparse.Namespace) -> Config:
    """The gateway's Config as `leakguard run` would see it; raises ConfigError."""
    config_file = getattr(args, "config", None)
    config = load_config(config_file) if config_file else Config()
    explicit = getattr(args, "state_dir", None)
    if explicit:
        return replace(config, state_dir=Path(explicit))
    if config_file:
        return config
    return replace(config, state_dir=default_state_dir())


def report_config_error(err: ConfigError) -> int:
    for issue in err.issues:
        print(issue, file=sys.stderr)
    return EXIT_ERROR


def parse_when(text: str, now: float | None = None) -> float:
    """--since/--until: '2026-11-23', '2026-11-23T10:00', '2026-11-23 10:00+08:00' (no zone:
    this host's local time), or a span back from now: '24h', '7d', '30m' → epoch seconds.
    ValueError says what is accepted."""
    text = text.strip()
    if re.fullmatch(r"\d+\s*[smhd]", text):
        return (time.time() if now is None else now) - parse_duration(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; write e.g. 2026-11-23, '2026-11-23 10:00', "
            "2026-11-23T10:00+08:00, or 24h / 7d (that long ago)"
        ) from None
    return when.astimezone().timestamp() if when.tzinfo is None else when.timestamp()


def operator() -> str:
    """Who runs an admin command, for its event: the login name, and the sudo user behind it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {user})" if sudo and sudo != user else user
