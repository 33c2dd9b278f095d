"""Hash chain over events (placeholder rule; the audit-core work owns and may change it)."""

from __future__ import annotations

import hashlib
import json

GENESIS = "0" * 64


def canonical(event: dict) -> bytes:
    return json.dumps(event, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def link(event: dict, prev: dict | None) -> dict:
    body = {k: v for k, v in event.items() if k not in ("seq", "prev", "hash")}
    seq = (prev["seq"] + 1) if prev else 1
    prev_hash = prev["hash"] if prev else GENESIS
    body["seq"] = seq
    body["prev"] = prev_hash
    body["hash"] = hashlib.sha256(prev_hash.encode() + canonical(body)).hexdigest()
    return body
