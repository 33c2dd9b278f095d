"""`leakguard rules …` (being built)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rules", help="(not built yet)")
    parser.set_defaults(func=lambda _args: 2)
