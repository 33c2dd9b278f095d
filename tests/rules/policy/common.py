"""Shared values for the policy tests: fixed time, synthetic identifiers, contexts, policies.

Every identifier is generated (tests.rules.strategies), never a real person's.
"""

from __future__ import annotations

import ipaddress
import shutil
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from rules.engine import Engine
from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE, Finding, Part, Problem
from rules.policy import Context, Policy, load_policy
from tests.rules import strategies as s

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DIR = ROOT / "rules" / "default"
POLICIES = ROOT / "tests" / "data" / "policies"
BASE_DIR = POLICIES / "base"
POLICY_FILES = ("zones.yaml", "destinations.yaml", "parties.yaml", "classes.yaml", "rules.yaml")

KEY = b"k" * 32
WHEN = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # both default agreements are in force

ID = s.make_resident_id("110101", "19900307", "123")
ID2 = s.make_resident_id("310104", "19851231", "042")
PHONE = "13812345678"
CARD = s.make_card("622202", 16, "3")
RAW_VALUES = (ID, ID2, PHONE, CARD)

ID_TEXT = f"身份证号 {ID}"
PHONE_TEXT = f"联系电话 {PHONE}"
CARD_TEXT = f"银行卡号 {CARD}"
CORE_TEXT = "【核心数据】 2026 年催收计划"
BUSINESS_TEXT = "债权转让协议（草稿）"
ARCHIVE = Problem(ENCRYPTED_ARCHIVE, "attachment 合同.zip", "encrypted with a password")
UNREADABLE = Problem(UNINSPECTABLE, "attachment scan.pdf", "the PDF could not be parsed")


def phones(n: int, first: int = 0) -> str:
    """n distinct mobile numbers, one per line (all with a context word)."""
    return "\n".join(f"联系电话：1391234{i:04d}" for i in range(first, first + n))


def ip(value: str | None):
    return ipaddress.ip_address(value) if value is not None else None


def web(
    src: str | None,
    host: str | None,
    *,
    dest: str | None = None,
    port: int | None = 443,
    channel: str = "https",
    when: datetime = WHEN,
    **kw,
) -> Context:
    return Context(channel, ip(src), host=host, dest_ip=ip(dest), port=port, when=when, **kw)


def mail(src: str | None, to: str, *, port: int = 25, when: datetime = WHEN, **kw) -> Context:
    return Context("smtp", ip(src), recipient=to, port=port, when=when, **kw)


@cache
def engine_for(custom: tuple = ()) -> Engine:
    """One engine per set of policy-declared detectors (building one compiles patterns)."""
    return Engine(hash_key=KEY, custom=[spec.build() for spec in custom])


def scan(policy: Policy, content) -> list[Finding]:
    """Findings for text, a Problem, or a tuple of them, with the policy's own detectors."""
    items = content if isinstance(content, tuple) else (content,)
    parts = [
        item if isinstance(item, Problem) else Part(f"part {i}", item)
        for i, item in enumerate(items)
        if item != ""
    ]
    return engine_for(tuple(policy.custom_detectors)).scan_parts(parts)


def write_policy(directory: Path, files: dict[str, str | bytes | None], base: Path = BASE_DIR):
    """`base`'s files with `files` written over them (None removes a file). Returns `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in base.iterdir():
        shutil.copy(path, directory / path.name)
    for name, text in files.items():
        target = directory / name
        if text is None:
            target.unlink()
        elif isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8")
    return directory


def default_policy() -> Policy:
    return load_policy(DEFAULT_DIR)
