"""Scan throughput: leakguard's engine beside Presidio and one plain `re` pass, same text.

What is measured, in one run, on each of two generated corpora (bench/corpus_gen.py:
mixed Chinese/English prose, JSON, CSV, HTML and MIME mail with synthetic PII, some
of it disguised; ~50 MB each, cached under bench/.cache/):

- the "debt-file dense" corpus (`--profile dense`): ~350 planted values and
  ~10,700 runs of 8+ digits per MB — an order number and a timestamp on every
  JSON record and CSV row;
- the "office traffic" corpus (`--profile office`): the same document kinds and
  the same mix of plain, separated and disguised values, but ~15 values and
  ~1,900 runs of 8+ digits per MB — closer to the sparse mixed text on which the
  notes' figures, and the issue's goals, were measured.

On each corpus:

1. leakguard `Engine(backend="hyperscan").scan_text()` — disguise handling included;
2. the same engine with `backend="re"` (the pure-Python fallback);
3. one plain `re` pass: a single combined alternation over the `str`, with the
   same checksums (GB 11643, Luhn + issuer prefix, mobile ranges, GB 32100)
   applied to its matches — the "one re pass" baseline of the notes;
4. Presidio `PatternRecognizer`s (offline, no spaCy, no AnalyzerEngine) with
   regexes equivalent to leakguard's detectors and `validate_result` running the
   same checksums — on a representative slice (every k-th document), because
   Presidio is slow;
5. extraction: generated .xlsx/.docx/.pdf files through
   `rules.extract.extract()` alone and through `engine.scan_parts(extract(...))`
   (once, not per corpus).

How: every document (64 KiB–1 MiB, like real bodies) is scanned on its own;
the contenders run in turn, in a rotating order, `--repeats` times, and each
figure is the median of its repeats. MB = 10^6 bytes of UTF-8 (of the input
file, for extraction). Findings counts are a sanity check: the baselines see
no disguised values, so they should find somewhat fewer, not many more.
The goals of the issue are reported PASS/MISS; a miss never fails the run.

    .venv/bin/python bench/scan.py            # both corpora, ~50 MB each
    .venv/bin/python bench/scan.py --quick    # smoke run: 5 MB each, 1 repeat, small office files
    .venv/bin/python bench/scan.py --profile office --mb 20 --repeats 5 --cprofile
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import corpus_gen
from corpus_gen import Doc

from rules import checks
from rules.detectors import CHINESE_BINS
from rules.engine import Engine
from rules.findings import Problem

HERE = Path(__file__).resolve().parent
KEY = b"bench-key-not-secret-0123456789ab"
GOALS = (("Presidio", 10.0), ("plain re", 3.0))  # the issue: >= 10x Presidio, >= 3x one re pass
MB = 1e6
CORPUS_TITLES = {"dense": "debt-file dense corpus", "office": "office traffic corpus"}

# -- the same checks for both baselines ----------------------------------------------

_SEPARATORS = str.maketrans("", "", " -+")


def _compact(text: str) -> str:
    return text.translate(_SEPARATORS).upper()


def id_ok(text: str) -> bool:
    return checks.resident_id_problem(_compact(text)) is None


def card_ok(text: str) -> bool:
    digits = _compact(text)
    return checks.luhn_ok(digits) and digits.startswith(("62", *CHINESE_BINS))


def mobile_ok(text: str) -> bool:
    digits = _compact(text)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return checks.mobile_ok(digits)


def uscc_ok(text: str) -> bool:
    return checks.uscc_problem(text) is None


def number_ok(text: str) -> bool:
    """A digit run of the plain pass: whatever its length says it could be."""
    digits = _compact(text)
    n = len(digits)
    if n == 18 and (id_ok(digits) or uscc_ok(digits)):
        return True
    if 16 <= n <= 19 and digits.isdigit() and card_ok(digits):
        return True
    return n in (11, 13, 15) and mobile_ok(digits)


# Regexes equivalent to leakguard's detectors (separators as people write them).
# ASCII boundaries, not \b: on str a CJK character is a word character (号110101… has no \b).
# ID and card test the boundary after their first digit (`_B1`): the same matches, and the
# `regex` module Presidio uses then finds candidate starts ~2x faster on digit-heavy text.
_B, _A = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
_B1 = r"(?<![0-9A-Za-z].)"
ID_RX = r"[1-9]" + _B1 + r"[0-9]{5}[ -]?(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
ID_RX += r"(?:0[1-9]|[12][0-9]|3[01])[ -]?[0-9]{3}[0-9Xx]" + _A
CARD_RX = r"[0-9]" + _B1 + r"(?:[0-9]{15,18}|[0-9]{3}(?:[ -][0-9]{4}){3}(?:[ -][0-9]{1,3})?)"
CARD_RX += _A
MOBILE_RX = _B + r"(?:(?:\+|00)?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}" + _A
USCC_RX = _B + r"[0-9A-HJ-NP-RTUW-Y]{2}[0-9]{6}[0-9A-HJ-NP-RTUW-Y]{10}" + _A
EMAIL_RX = (
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)
# leakguard reports a passport only beside a context word: so do the baselines.
PASSPORT_RX = r"(?:护照|[Pp]assport)[^0-9A-Za-z\n]{0,12}"
PASSPORT_RX += r"(?:E[0-9]{8}|E[A-HJ-NP-Z][0-9]{7}|G[0-9]{8})" + _A

# -- contenders ---------------------------------------------------------------------


def leakguard_scanner(backend: str) -> tuple[Callable[[str], int], float]:
    """(scan one document -> findings, seconds to build the engine)."""
    t0 = time.perf_counter()
    engine = Engine(hash_key=KEY, backend=backend)
    return (lambda text: len(engine.scan_text(text))), time.perf_counter() - t0


def plain_re_scanner() -> Callable[[str], int]:
    """One combined alternation; digit runs are classified by their checksums."""
    number = _B + r"(?:(?:\+|00)?86[ -]?)?[0-9](?:[ -]?[0-9]){10,18}[Xx]?" + _A
    branches = {"number": number, "uscc": USCC_RX, "email": EMAIL_RX, "passport": PASSPORT_RX}
    combined = re.compile("|".join(f"(?P<{k}>{rx})" for k, rx in branches.items()))
    check = {"number": number_ok, "uscc": uscc_ok}

    def scan(text: str) -> int:
        found = 0
        for m in combined.finditer(text):
            ok = check.get(m.lastgroup)
            if ok is None or ok(m.group()):
                found += 1
        return found

    return scan


def presidio_scanner() -> Callable[[str], int]:
    from presidio_analyzer import Pattern, PatternRecognizer

    class Checked(PatternRecognizer):
        """A PatternRecognizer whose validate_result runs a checksum (None: no check)."""

        def __init__(self, entity: str, regex: str, check, score: float) -> None:
            pattern = Pattern(entity.lower(), regex, score)
            super().__init__(supported_entity=entity, patterns=[pattern])
            self._check = check

        def validate_result(self, pattern_text: str) -> bool | None:
            return self._check(pattern_text) if self._check else None

    recognizers = [
        Checked("CN_RESIDENT_ID", ID_RX, id_ok, 0.5),
        Checked("CN_BANK_CARD", CARD_RX, card_ok, 0.5),
        Checked("CN_MOBILE", MOBILE_RX, mobile_ok, 0.5),
        Checked("CN_USCC", USCC_RX, uscc_ok, 0.5),
        Checked("EMAIL_ADDRESS", EMAIL_RX, None, 0.8),
        Checked("CN_PASSPORT", PASSPORT_RX, None, 0.85),
    ]

    def scan(text: str) -> int:
        found = 0
        for rec in recognizers:
            found += len(rec.analyze(text, rec.supported_entities, nlp_artifacts=None))
        return found

    return scan


# -- timing -------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    docs: list[Doc]
    scan: Callable[[str], int]
    runs: list[list[float]] = field(default_factory=list)  # seconds per document, per repeat
    found: list[int] = field(default_factory=list)  # findings per document (last run)

    @property
    def mb(self) -> float:
        return sum(d.size for d in self.docs) / MB

    @property
    def seconds(self) -> float:
        return statistics.median(sum(run) for run in self.runs)

    @property
    def rate(self) -> float:
        return self.mb / self.seconds

    @property
    def findings(self) -> int:
        return sum(self.found)

    def run_once(self) -> None:
        times, found = [], []
        for doc in self.docs:
            t0 = time.perf_counter()
            found.append(self.scan(doc.text))
            times.append(time.perf_counter() - t0)
        self.runs.append(times)
        self.found = found

    def rate_by_kind(self) -> dict[str, float]:
        size, secs = Counter(), Counter()
        for i, doc in enumerate(self.docs):
            size[doc.kind] += doc.size / MB
            secs[doc.kind] += statistics.median(run[i] for run in self.runs)
        return {kind: size[kind] / secs[kind] for kind in sorted(size)}


def interleaved(steps: list[Callable[[], None]], repeats: int) -> None:
    """Run every step `repeats` times, rotating the order so no step always goes first."""
    for r in range(repeats):
        for i in range(len(steps)):
            gc.collect()
            steps[(i + r) % len(steps)]()


# -- extraction ---------------------------------------------------------------------

OFFICE_SIZES = {  # (full, quick): xlsx rows, docx paragraphs, pdf pages
    "debtors.xlsx": ((20_000, 2_000), corpus_gen.xlsx_bytes),
    "report.docx": ((6_000, 600), corpus_gen.docx_bytes),
    "statement.pdf": ((250, 25), corpus_gen.pdf_bytes),
}


def office_files(seed: int, quick: bool, cache_dir: Path | None) -> dict[str, bytes]:
    files = {}
    for name, ((full, small), make) in OFFICE_SIZES.items():
        size = small if quick else full
        path = None
        if cache_dir is not None:
            path = cache_dir / f"office-v{corpus_gen.GENERATOR_VERSION}-seed{seed}-{size}-{name}"
        if path is not None and path.exists():
            files[name] = path.read_bytes()
            continue
        files[name] = make(size, seed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_suffix(".tmp").write_bytes(files[name])
            path.with_suffix(".tmp").replace(path)
    return files


@dataclass
class ExtractionResult:
    name: str
    mb: float
    text_mb: float = 0.0
    problems: list[str] = field(default_factory=list)
    findings: int = 0
    extract_runs: list[float] = field(default_factory=list)
    scan_runs: list[float] = field(default_factory=list)


def bench_extraction(files: dict[str, bytes], extract, engine: Engine, repeats: int):
    results = {name: ExtractionResult(name, len(data) / MB) for name, data in files.items()}

    def extract_only(name: str) -> None:
        t0 = time.perf_counter()
        items = list(extract(files[name], name=name))
        results[name].extract_runs.append(time.perf_counter() - t0)
        parts = [i for i in items if not isinstance(i, Problem)]
        results[name].text_mb = sum(len(p.text.encode()) for p in parts) / MB
        results[name].problems = [i.reason for i in items if isinstance(i, Problem)]

    def extract_and_scan(name: str) -> None:
        t0 = time.perf_counter()
        findings = engine.scan_parts(extract(files[name], name=name))
        results[name].scan_runs.append(time.perf_counter() - t0)
        results[name].findings = len(findings)

    steps = [lambda n=n: extract_only(n) for n in files]
    steps += [lambda n=n: extract_and_scan(n) for n in files]
    interleaved(steps, repeats)
    return list(results.values())


def load_extract():
    """`rules.extract.extract`, or the reason it cannot be imported (yet)."""
    try:
        from rules.extract import extract
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return extract, ""


# -- report -------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x"


def print_scan_table(contenders: list[Contender], presidio: Contender, plain: Contender) -> None:
    print(
        f"{'engine':<24}{'docs':>5}{'MB':>8}{'s':>8}{'MB/s':>8}"
        f"{'vs Presidio':>12}{'vs plain re':>12}{'findings':>10}"
    )
    for c in contenders:
        print(
            f"{c.name:<24}{len(c.docs):>5}{c.mb:>8.1f}{c.seconds:>8.2f}{c.rate:>8.1f}"
            f"{ratio(c.rate, presidio.rate):>12}{ratio(c.rate, plain.rate):>12}{c.findings:>10,}"
        )


def print_goals(engine: Contender, presidio: Contender, plain: Contender) -> None:
    print("\nGoals from the issue (reported, never enforced):")
    for (label, goal), other in zip(GOALS, (presidio, plain), strict=True):
        got = engine.rate / other.rate
        verdict = "PASS" if got >= goal else "MISS"
        print(f"  {engine.name} >= {goal:>2g}x {label + ':':<10}{got:6.1f}x  {verdict}")


def print_by_kind(contenders: list[Contender]) -> None:
    rates = [c.rate_by_kind() for c in contenders]
    sizes = Counter()
    for doc in contenders[0].docs:
        sizes[doc.kind] += doc.size / MB
    print("\nMB/s by document kind (same runs):")
    print(f"  {'kind':<12}{'MB':>7}" + "".join(f"{c.name:>24}" for c in contenders))
    for kind in sorted(sizes):
        cells = "".join(f"{r[kind]:>24.1f}" for r in rates)
        print(f"  {kind:<12}{sizes[kind]:>7.1f}{cells}")


def planted_summary(docs: Iterable[Doc]) -> str:
    total = Counter()
    for doc in docs:
        total += doc.planted
    hidden = {k: v for k, v in total.items() if k not in ("plain", "separated")}
    hidden_text = ", ".join(f"{k} {v}" for k, v in sorted(hidden.items(), key=lambda kv: -kv[1]))
    return (
        f"{total.total():,} values planted: plain {total['plain']:,}, separated "
        f"{total['separated']:,}, disguised {sum(hidden.values()):,} ({hidden_text})"
    )


def print_extraction(results: list[ExtractionResult]) -> None:
    print(
        f"{'file':<16}{'file MB':>8}{'text MB':>9}{'extract s':>11}{'MB/s':>7}"
        f"{'+scan s':>9}{'MB/s':>7}{'findings':>10}  problems"
    )
    for r in results:
        ext_s, scan_s = statistics.median(r.extract_runs), statistics.median(r.scan_runs)
        problems = "; ".join(r.problems) or "-"
        print(
            f"{r.name:<16}{r.mb:>8.2f}{r.text_mb:>9.2f}{ext_s:>11.2f}{r.mb / ext_s:>7.1f}"
            f"{scan_s:>9.2f}{r.mb / scan_s:>7.1f}{r.findings:>10,}  {problems}"
        )


def profile_engine(docs: list[Doc], mb: float) -> None:
    """cProfile the hyperscan engine over a slice; the top functions by own and total time."""
    chosen = docs[:: slice_step(docs, mb)]
    engine = Engine(hash_key=KEY, backend="hyperscan")
    profiler = cProfile.Profile()
    profiler.enable()
    for doc in chosen:
        engine.scan_text(doc.text)
    profiler.disable()
    size = sum(d.size for d in chosen) / MB
    for order, title in (("tottime", "own time"), ("cumulative", "time including callees")):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(12)
        lines = out.getvalue().replace(str(HERE.parent) + "/", "").splitlines()
        table = lines[next(i for i, line in enumerate(lines) if "ncalls" in line) :]
        print(f"\ncProfile, leakguard hyperscan over {size:.1f} MB, top 12 by {title}:")
        print("\n".join(line for line in table if line.strip()))


# -- main ---------------------------------------------------------------------------


def slice_step(docs: list[Doc], mb: float) -> int:
    """Every k-th document makes a slice of about `mb` with the corpus's mix of kinds."""
    total = sum(d.size for d in docs) / MB
    return max(1, round(total / mb))


def digit_runs_per_mb(docs: list[Doc]) -> float:
    """Runs of 8+ digits (separators allowed): each costs the engine a look in Python."""
    runs = sum(len(DIGIT_RUN.findall(d.text)) for d in docs)
    return runs / (sum(d.size for d in docs) / MB)


DIGIT_RUN = re.compile(r"[0-9](?:[ \-./]?[0-9]){7,}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 MB, 1 repeat")
    parser.add_argument(
        "--profile",
        choices=(*corpus_gen.PROFILES, "both"),
        default="both",
        help="corpus: debt-file dense, office traffic, or both in turn (default)",
    )
    parser.add_argument("--mb", type=float, help="size of each corpus in MB (default 50, quick 5)")
    parser.add_argument(
        "--presidio-mb", type=float, help="Presidio slice per corpus (default 5, quick 1)"
    )
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 3, quick 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=HERE / ".cache")
    parser.add_argument("--no-cache", action="store_true", help="generate, do not read/write")
    parser.add_argument("--no-extract", action="store_true", help="skip the extraction part")
    parser.add_argument("--cprofile", action="store_true", help="cProfile the hyperscan engine")
    args = parser.parse_args(argv)
    args.mb = args.mb or (5.0 if args.quick else 50.0)
    args.presidio_mb = args.presidio_mb or (1.0 if args.quick else 5.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.no_cache:
        args.cache_dir = None
    args.profiles = list(corpus_gen.PROFILES) if args.profile == "both" else [args.profile]
    return args


def code_version() -> str:
    """The commit being measured, and whether the work tree has changes on top."""

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=HERE, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "rules")
    return commit + (" + uncommitted changes in rules/" if dirty else "")


def load_corpus(args: argparse.Namespace, profile: str) -> list[Doc]:
    t0 = time.perf_counter()
    docs = corpus_gen.corpus(args.mb, args.seed, args.cache_dir, profile)
    sizes = [d.size for d in docs]
    kinds = Counter(d.kind for d in docs)
    print(
        f"Corpus: {sum(sizes) / MB:.1f} MB in {len(docs)} documents of "
        f"{min(sizes) / 1024:.0f}-{max(sizes) / 1024:.0f} KiB (seed {args.seed}, profile "
        f"{profile}; {'cache or generator' if args.cache_dir else 'generated'}: "
        f"{time.perf_counter() - t0:.1f} s)"
    )
    print(f"  kinds: {', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}")
    print(
        f"  {values_per_mb(docs):,.1f} values planted per MB; {digit_runs_per_mb(docs):,.0f} runs "
        f"of 8+ digits per MB (dates, order numbers, timestamps, values, …)"
    )
    print(f"  {planted_summary(docs)}")
    return docs


def values_per_mb(docs: list[Doc]) -> float:
    return sum(d.planted.total() for d in docs) / (sum(d.size for d in docs) / MB)


@dataclass
class CorpusResult:
    """One line of the closing summary."""

    profile: str
    values_per_mb: float
    runs_per_mb: float
    engine: float  # MB/s of leakguard hyperscan
    presidio: float
    plain: float


def bench_corpus(args: argparse.Namespace, profile: str) -> CorpusResult:
    """The text-engine comparison on one corpus: main table, goals, per kind, findings."""
    title = f"{CORPUS_TITLES[profile]} (--profile {profile})"
    print(f"\n{'=' * 20} {title} {'=' * max(3, 66 - len(title))}")
    docs = load_corpus(args, profile)
    step = slice_step(docs, args.presidio_mb)

    hs_scan, hs_build = leakguard_scanner("hyperscan")
    re_scan, re_build = leakguard_scanner("re")
    presidio_label = "Presidio recognizers"
    if "presidio_analyzer" not in sys.modules:
        presidio_label = "Presidio import + recognizers"
    t0 = time.perf_counter()
    presidio_scan = presidio_scanner()
    presidio_build = time.perf_counter() - t0
    engine = Contender("leakguard hyperscan", docs, hs_scan)
    plain = Contender("plain re + checksums", docs, plain_re_scanner())
    presidio = Contender("Presidio (slice)", docs[::step], presidio_scan)
    contenders = [engine, Contender("leakguard re backend", docs, re_scan), plain, presidio]
    print(
        f"Setup, not timed: hyperscan engine {hs_build:.2f} s, re engine {re_build:.2f} s, "
        f"{presidio_label} {presidio_build:.2f} s"
    )
    print(
        f"Each document is scanned on its own (scan_text / finditer / analyze); "
        f"median of {args.repeats} interleaved repeat(s).\n"
        f"Presidio is slow: it scans a slice, every {step}th document ({presidio.mb:.1f} MB).\n"
        f"MB = 10^6 bytes of UTF-8.\n"
    )
    interleaved([c.run_once for c in contenders], args.repeats)
    print_scan_table(contenders, presidio, plain)
    print_goals(engine, presidio, plain)
    print_by_kind(contenders[:3])
    print(f"\nFindings on the Presidio slice ({presidio.mb:.1f} MB), the same documents for all:")
    for c in contenders:
        on_slice = c.found if c is presidio else c.found[::step]
        print(f"  {c.name:<24}{sum(on_slice):>8,}")
    print(f"  (of {planted_summary(presidio.docs)})")
    if args.cprofile:
        profile_engine(docs, mb=min(args.mb, 10.0))
    return CorpusResult(
        profile,
        values_per_mb(docs),
        digit_runs_per_mb(docs),
        engine.rate,
        presidio.rate,
        plain.rate,
    )


def print_summary(results: list[CorpusResult]) -> None:
    print(f"\n{'=' * 20} summary: leakguard hyperscan on each corpus (details above)")
    print(
        f"  {'corpus':<24}{'values/MB':>10}{'runs/MB':>9}{'MB/s':>8}"
        f"{'vs Presidio':>13}{'vs plain re':>13}"
    )
    for r in results:
        print(
            f"  {CORPUS_TITLES[r.profile]:<24}{r.values_per_mb:>10,.1f}{r.runs_per_mb:>9,.0f}"
            f"{r.engine:>8.1f}{ratio(r.engine, r.presidio):>13}{ratio(r.engine, r.plain):>13}"
        )
    goals = ", ".join(f">= {goal:g}x {label}" for label, goal in GOALS)
    print(f"  (goals of the issue: {goals}; runs/MB = runs of 8+ digits per MB)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"leakguard scan benchmark, code at {code_version()}")
    print(
        f"Corpora: {', '.join(CORPUS_TITLES[p] for p in args.profiles)}; "
        f"{args.mb:g} MB each, engines built afresh for each."
    )
    results = [bench_corpus(args, profile) for profile in args.profiles]
    if len(results) > 1:
        print_summary(results)

    if not args.no_extract:
        print(f"\n{'=' * 20} extraction (office files, not the corpora above)")
        print_extraction_part(args, Engine(hash_key=KEY, backend="hyperscan"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak RSS of this process: {peak:.0f} MiB (corpora, office files, all engines)")
    return 0


def print_extraction_part(args: argparse.Namespace, engine: Engine) -> None:
    print("Extraction: rules.extract.extract(data, name=...) alone, and")
    print("engine.scan_parts(extract(...)) with the hyperscan engine; MB/s of the input file.")
    extract, why = load_extract()
    if extract is None:
        print(f"  skipped: rules.extract is not importable yet ({why})")
        return
    t0 = time.perf_counter()
    files = office_files(args.seed, args.quick, args.cache_dir)
    print(f"  (files ready in {time.perf_counter() - t0:.1f} s)\n")
    print_extraction(bench_extraction(files, extract, engine, args.repeats))


if __name__ == "__main__":
    raise SystemExit(main())
