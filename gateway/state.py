"""The gateway's state directory and the installation key kept in it.

The installation key makes the value hashes in findings and events useful
for correlation inside one installation and useless to anyone else.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEFAULT_STATE_DIR = Path("var")
KEY_FILE = "installation.key"
KEY_BYTES = 32


def state_dir(explicit: str | os.PathLike | None = None) -> Path:
    """--state-dir, else $LEAKGUARD_STATE_DIR, else ./var (the embedded default)."""
    chosen = explicit or os.environ.get("LEAKGUARD_STATE_DIR") or DEFAULT_STATE_DIR
    return Path(chosen)


def installation_key(directory: Path) -> bytes:
    """Read the key, creating it (mode 0600, never overwritten) on first use."""
    path = directory / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            return installation_key(directory)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        return key
    if len(key) < 16:
        raise ValueError(f"{path}: installation key is too short ({len(key)} bytes)")
    return key
