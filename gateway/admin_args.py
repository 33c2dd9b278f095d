"""What every admin command shares with `leakguard run`: --config FILE / --state-dir DIR.

    add_location_args(parser)      # --config, --state-dir
    config = admin_config(args)    # the Config, its state_dir resolved like `run` does
    sys.exit(report_config_error(err))  # a ConfigError's line-numbered issues → status 2

The state directory is --state-dir, else the config file's `state_dir`, else
$LEAKGUARD_STATE_DIR, else ./var — the same answer `leakguard run` reaches, so
an admin command run beside the gateway works on the gateway's own state.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from gateway.config import Config, ConfigError, load_config
from gateway.state import state_dir as default_state_dir

EXIT_OK, EXIT_ERROR = 0, 2


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
