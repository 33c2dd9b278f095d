"""`leakguard firewall render|apply|check [--policy DIR] [--config FILE]`.

    render   print the nftables file built from the policy and the config (gateway.firewall)
    apply    load it with `nft -f`: one transaction replaces `table inet leakguard`
    check    compare the loaded table with what the policy says now; print the drift

`check` lets nft itself read the rendered file, in a scratch network
namespace (`unshare --net`), and compares nft's listing of that with its
listing of the live table, counter values aside: the same canonical form on
both sides, whatever spelling the file used.

The config is --config FILE, else $LEAKGUARD_CONFIG, else /etc/leakguard/leakguard.yaml;
the policy --policy DIR, else the config's `policy:`, else the shipped one.

Exit status: 0 done / no drift, 1 drift (check), 2 refused or failed.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gateway.config import ConfigError, load_config
from gateway.firewall import TABLE, render
from gateway.rules_command import default_policy_dir
from rules.policy import PolicyError, load_policy

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2
DEFAULT_CONFIG = "/etc/leakguard/leakguard.yaml"
COUNTS = re.compile(r"packets \d+ bytes \d+")


class FirewallFailed(Exception):
    """nft refused or could not run; the message says what it said."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "firewall",
        help="the gateway host's nftables ruleset, from the policy",
        description="Render, load or check the nftables table `inet leakguard` built "
        "from the policy's zones and reach entries and the config's `firewall:` section.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("render", "print the ruleset (the file `apply` loads)"),
        ("apply", "load it atomically with nft -f"),
        ("check", "compare the loaded table with the policy; exit 1 on drift"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument(
            "--config", metavar="FILE", default=None, help=f"configuration file ({DEFAULT_CONFIG})"
        )
        action.add_argument("--policy", metavar="DIR", help="policy directory (overrides config)")
        action.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        text = _render(args)
        if args.action == "render":
            sys.stdout.write(text)
            return EXIT_OK
        if args.action == "apply":
            apply(text)
            print(f"leakguard firewall: table inet {TABLE} loaded")
            return EXIT_OK
        drift = check(text)
    except (ConfigError, PolicyError) as err:  # FirewallError is a ConfigError
        for issue in err.issues:
            print(issue, file=sys.stderr)
        return EXIT_ERROR
    except (FirewallFailed, OSError) as err:
        print(f"leakguard firewall {args.action}: {err}", file=sys.stderr)
        return EXIT_ERROR
    if drift:
        print(f"leakguard firewall: table inet {TABLE} differs from the policy:")
        sys.stdout.writelines(drift)
        print("(`leakguard firewall apply` loads what the policy says)")
        return EXIT_DRIFT
    print(f"leakguard firewall: table inet {TABLE} matches the policy")
    return EXIT_OK


def _render(args: argparse.Namespace) -> str:
    config = load_config(args.config or os.environ.get("LEAKGUARD_CONFIG") or DEFAULT_CONFIG)
    policy_dir = Path(args.policy or config.policy or default_policy_dir())
    return render(load_policy(policy_dir), config)


# -- nft ----------------------------------------------------------------------------------


def _nft() -> str:
    found = shutil.which("nft")
    if found is None:
        raise FirewallFailed("`nft` not found: install nftables")
    return found


def _run(cmd: list[str], what: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as err:
        raise FirewallFailed(f"{what}: no answer within 60 s") from err
    if done.returncode != 0:
        raise FirewallFailed(f"{what}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def apply(text: str) -> None:
    """`nft -f` of the rendered file: its first lines make it replace the table atomically."""
    with tempfile.NamedTemporaryFile("w", suffix=".nft", prefix="leakguard-") as f:
        f.write(text)
        f.flush()
        _run([_nft(), "-f", f.name], "nft refused the ruleset")


def loaded() -> str | None:
    """nft's listing of the live table, counter values zeroed; None when it is not loaded."""
    done = subprocess.run(
        [_nft(), "list", "table", "inet", TABLE], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        if "No such file" in done.stderr:
            return None
        raise FirewallFailed(f"nft list: {done.stderr.strip()}")
    return COUNTS.sub("packets 0 bytes 0", done.stdout)


def canonical(text: str) -> str:
    """nft's own listing of the rendered file, loaded in a scratch network namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise FirewallFailed("`unshare` not found: install util-linux")
    with tempfile.NamedTemporaryFile("w", suffix=".nft", prefix="leakguard-") as f:
        f.write(text)
        f.flush()
        nft = _nft()
        script = f'"{nft}" -f "$1" && "{nft}" list table inet {TABLE}'
        listing = _run(
            [unshare, "--net", "sh", "-c", script, "sh", f.name],
            "reading the rendered ruleset in a scratch namespace",
        )
    return COUNTS.sub("packets 0 bytes 0", listing)


def check(text: str) -> list[str]:
    """Lines of a unified diff from what should be loaded to what is; [] when equal."""
    want = canonical(text)
    have = loaded()
    if have is None:
        return [f"table inet {TABLE} is not loaded\n"]
    if have == want:
        return []
    return list(
        difflib.unified_diff(
            want.splitlines(keepends=True),
            have.splitlines(keepends=True),
            "policy",
            "loaded",
        )
    )
