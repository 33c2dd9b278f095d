"""`leakguard scan`: what would the gateway find in these files?

Exit status: 0 nothing found, 1 findings, 2 error (with a message on stderr).
Output never contains a raw value: masked forms and keyed hashes only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from gateway.state import installation_key, state_dir
from rules.detectors import DEFAULT_MIN_SCORE
from rules.engine import Engine
from rules.extract import Limits, extract
from rules.findings import Finding

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "scan",
        help="scan files or stdin for client data",
        description="Scan files of any supported format (or stdin with '-') for sensitive values.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="file, directory or '-' for stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per finding")
    p.add_argument(
        "--min-score",
        type=float,
        default=DEFAULT_MIN_SCORE,
        help=f"report findings at or above this score (default {DEFAULT_MIN_SCORE})",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "hyperscan", "re"),
        default="auto",
        help="pattern engine (default: hyperscan when available)",
    )
    p.add_argument("--state-dir", help="where the installation key lives (default ./var)")
    p.set_defaults(func=run)


def inputs(paths: list[str]) -> Iterator[tuple[str, Path | None]]:
    for given in paths:
        if given == "-":
            yield "-", None
            continue
        path = Path(given)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                yield str(child), child
        else:
            yield given, path


def read_input(path: Path | None, limit: int) -> bytes:
    if path is None:
        data = sys.stdin.buffer.read(limit + 1)
    else:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    return data


def run(args: argparse.Namespace) -> int:
    try:
        key = installation_key(state_dir(args.state_dir))
        engine = Engine(hash_key=key, min_score=args.min_score, backend=args.backend)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"leakguard scan: {err}", file=sys.stderr)
        return EXIT_ERROR
    limits = Limits()
    status = EXIT_CLEAN
    rows: list[tuple[str, Finding]] = []
    for given, path in inputs(args.paths):
        source = engine.redact(given)  # file names hold client data too: 张三_<ID>.xlsx
        try:
            data = read_input(path, limits.max_input_bytes)
        except OSError as err:
            print(f"leakguard scan: {source}: {err.strerror or err}", file=sys.stderr)
            status = EXIT_ERROR
            continue
        name = "" if path is None else path.name
        findings = engine.scan_parts(
            extract(data, name=name, location=name or "stdin", limits=limits)
        )
        for finding in findings:
            if args.json:
                print(
                    json.dumps({"source": source, **finding.to_dict()}, ensure_ascii=False),
                    flush=False,
                )
            else:
                rows.append((source, finding))
        if findings and status == EXIT_CLEAN:
            status = EXIT_FINDINGS
    if not args.json:
        print_table(rows)
    return status


def print_table(rows: list[tuple[str, Finding]]) -> None:
    if not rows:
        print("no findings")
        return
    header = ("SOURCE", "TYPE", "SCORE", "LOCATION", "MASKED")
    table = [header] + [
        (
            src,
            f.detector,
            f"{f.score:.2f}",
            f"{f.location} [{f.start}:{f.end}]",
            f.masked or "; ".join(f.why),
        )
        for src, f in rows
    ]
    widths = [max(_width(r[i]) for r in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [row[i] + " " * (widths[i] - _width(row[i])) for i in range(len(widths))]
        print("  ".join([*cells, row[-1]]))


def _width(text: str) -> int:
    """Display width: CJK characters take two columns in a terminal."""
    return sum(2 if ord(c) >= 0x1100 and not 0xFF61 <= ord(c) <= 0xFFDC else 1 for c in text)
