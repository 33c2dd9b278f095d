"""Recall and precision per detector over the labelled development corpus.

Findings carry no raw values, so labels are compared by keyed hash: the
expected (type, value) hashed with the engine's key must equal a finding's.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from rules.engine import Engine
from rules.findings import UNINSPECTABLE
from rules.masking import value_hash

CORPUS = Path(__file__).parent.parent / "data" / "corpus"
KEY = b"corpus-evaluation-key-0123456789ab"
TARGET = 0.99


def _load(name: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / name).read_text("utf-8").splitlines() if line]


def _score(cases, findings_of) -> dict[str, tuple[float, float, int, int, int]]:
    tp, fn, fp = Counter(), Counter(), Counter()
    misses = []
    for case in cases:
        expected = {
            (e["type"], value_hash(KEY, e["type"], e["value"]) if "value" in e else "")
            for e in case["expect"]
        }
        # `uninspectable` is a verdict on limits, not a labelled type (the zip bomb's label
        # is "no values"; that it is reported as uninspectable is tested with extraction).
        got = {(f.detector, f.value_hash) for f in findings_of(case) if f.detector != UNINSPECTABLE}
        for item in expected:
            if item in got:
                tp[item[0]] += 1
            else:
                fn[item[0]] += 1
                misses.append((case.get("id") or case.get("file"), "missed", item[0]))
        for item in got - expected:
            fp[item[0]] += 1
            misses.append((case.get("id") or case.get("file"), "spurious", item[0]))
    table = {}
    for kind in sorted(set(tp) | set(fn) | set(fp)):
        recall = tp[kind] / (tp[kind] + fn[kind]) if tp[kind] + fn[kind] else 1.0
        precision = tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else 1.0
        table[kind] = (recall, precision, tp[kind], fn[kind], fp[kind])
    print(f"\n{'type':<20} {'recall':>7} {'precision':>9} {'tp':>4} {'fn':>4} {'fp':>4}")
    for kind, (r, p, t, n, f) in table.items():
        print(f"{kind:<20} {r:7.3f} {p:9.3f} {t:4d} {n:4d} {f:4d}")
    for miss in misses:
        print("  ", *miss)
    return table


@pytest.fixture(scope="module", params=["hyperscan", "re"])
def engine(request) -> Engine:
    return Engine(hash_key=KEY, backend=request.param)


def test_text_corpus_recall_and_precision(engine):
    table = _score(_load("text.jsonl"), lambda case: engine.scan_text(case["text"]))
    assert table, "no labels evaluated"
    for kind, (recall, precision, *_counts) in table.items():
        assert recall >= TARGET, f"{kind}: recall {recall:.3f} below {TARGET}"
        assert precision >= TARGET, f"{kind}: precision {precision:.3f} below {TARGET}"


def test_file_corpus_recall_and_precision(engine):
    from rules.extract import extract

    def findings_of(case):
        data = (CORPUS / "files" / case["file"]).read_bytes()
        return engine.scan_parts(extract(data, name=case["file"], location=case["file"]))

    table = _score(_load("files.jsonl"), findings_of)
    assert table, "no labels evaluated"
    for kind, (recall, precision, *_counts) in table.items():
        assert recall >= TARGET, f"{kind}: recall {recall:.3f} below {TARGET}"
        assert precision >= TARGET, f"{kind}: precision {precision:.3f} below {TARGET}"
