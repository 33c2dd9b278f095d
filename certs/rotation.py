"""Replacing the interception CA without an outage.

Clients must trust a CA before the proxy signs with it, so rotation has two steps:

1. `stage_next` (`certs rotate`) creates the new CA in the `next` slot. The proxy
   keeps signing with the current one; `certs export` hands out both, and the
   overlap (default 30 days) is the time to roll the bundle out to every client.
2. `activate_next` (`certs activate`, refused before the overlap ends unless
   forced) makes it current. The old CA moves to `previous` and stays in the
   export bundle — leaves it issued (e.g. the relay's STARTTLS certificate)
   still validate — until `retire_previous` (`certs retire-previous`) deletes it.

A leaf from the old CA and one from the new CA thus both validate against
`trusted_cas()` throughout.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from certs.ca import (
    CA,
    DEFAULT_CA_DAYS,
    DEFAULT_COMMON_NAME,
    DEFAULT_ORGANIZATION,
    ROTATION_FILE,
    KeyType,
    Slot,
    ca_root,
    find_ca,
    install,
    load_ca,
    new_ca,
)
from certs.describe import day
from certs.errors import CAError, CAExists, CAMissing
from certs.files import fsync_dir, replace_file

DEFAULT_OVERLAP_DAYS = 30


def stage_next(
    state_dir: Path,
    *,
    overlap_days: int = DEFAULT_OVERLAP_DAYS,
    key_type: KeyType | None = None,
    common_name: str | None = None,
    organization: str | None = None,
    days: int = DEFAULT_CA_DAYS,
    force: bool = False,
    now: datetime | None = None,
) -> CA:
    """Create the next CA beside the current one. Key type and names default to the current's.

    CAExists if a next CA is already staged (clients may be installing it) unless `force`.
    """
    if overlap_days < 0:
        raise ValueError(f"the overlap cannot be negative ({overlap_days} days)")
    now = now or datetime.now(UTC)
    current = load_ca(state_dir, Slot.CURRENT)
    cert, key = new_ca(
        key_type=key_type or _key_type(current),
        common_name=common_name or _attribute(current, "CN") or DEFAULT_COMMON_NAME,
        organization=organization or _attribute(current, "O") or DEFAULT_ORGANIZATION,
        days=days,
        now=now,
    )
    rotation = {
        "staged": now.isoformat(),
        "activate_after": (now + timedelta(days=overlap_days)).isoformat(),
    }
    try:
        return install(state_dir, Slot.NEXT, cert, key, rotation=rotation, replace=force)
    except CAExists:
        raise CAExists(
            "a next CA is already staged (clients may be installing it); "
            "activate it with `leakguard certs activate`, or replace it with --force"
        ) from None


def activate_next(state_dir: Path, *, now: datetime | None = None, force: bool = False) -> CA:
    """Make the staged CA current; the current one becomes previous (replacing an older one)."""
    now = now or datetime.now(UTC)
    root = ca_root(state_dir)
    staged = find_ca(state_dir, Slot.NEXT)
    if staged is None:
        raise CAMissing("no next CA is staged; create one with `leakguard certs rotate`")
    due = staged.moment("activate_after")
    if due is not None and now < due and not force:
        raise CAError(
            f"the overlap lasts until {day(due)}: clients that have not installed the new CA "
            "would reject the proxy; wait, or use --force once every client has it"
        )
    # Each step is one rename; if interrupted after the old current moved away,
    # running this again finds no current and finishes the move.
    if (root / Slot.CURRENT).exists():
        if (root / Slot.PREVIOUS).exists():
            _discard(root / Slot.PREVIOUS)
        stamp = dict(load_ca(state_dir, Slot.CURRENT).rotation, retired=now.isoformat())
        _write_rotation(root / Slot.CURRENT, stamp)
        os.rename(root / Slot.CURRENT, root / Slot.PREVIOUS)
    os.rename(root / Slot.NEXT, root / Slot.CURRENT)
    (root / Slot.CURRENT / ROTATION_FILE).unlink(missing_ok=True)
    fsync_dir(root)
    return load_ca(state_dir, Slot.CURRENT)


def retire_previous(state_dir: Path) -> bool:
    """Delete the previous CA (clients may then remove it). False if there was none."""
    directory = ca_root(state_dir) / Slot.PREVIOUS
    if not directory.exists():
        return False
    _discard(directory)
    fsync_dir(directory.parent)
    return True


def trusted_cas(state_dir: Path) -> list[CA]:
    """Every CA clients should trust now: current, then next and previous if present."""
    found = [find_ca(state_dir, slot) for slot in (Slot.CURRENT, Slot.NEXT, Slot.PREVIOUS)]
    return [ca for ca in found if ca is not None]


def _discard(directory: Path) -> None:
    # Rename first so a half-deleted slot is never mistaken for a CA.
    graveyard = tempfile.mkdtemp(prefix=".old-", dir=directory.parent)
    os.rename(directory, Path(graveyard) / "slot")
    shutil.rmtree(graveyard)


def _write_rotation(directory: Path, rotation: dict[str, str]) -> None:
    replace_file(directory / ROTATION_FILE, json.dumps(rotation, indent=2).encode(), 0o644)


def _key_type(ca: CA) -> KeyType:
    return "rsa" if isinstance(ca.key, rsa.RSAPrivateKey) else "ec"


def _attribute(ca: CA, short: str) -> str | None:
    for attribute in ca.cert.subject:
        if attribute.rfc4514_attribute_name == short:
            return str(attribute.value)
    return None
