"""Password-protected zip files for parties that cannot receive S/MIME.

AES-256 (WinZip AE-2, via pyzipper), which 7-Zip, WinRAR, macOS Archive
Utility and WinZip open; the legacy ZipCrypto cipher is never used. Member
names are not encrypted in a zip: callers must not put client data in them.
"""

from __future__ import annotations

import io
import secrets
import zipfile
from collections.abc import Iterable
from pathlib import PurePosixPath

import pyzipper

# The password is read out on the phone or retyped from paper: one case (no "capital C?"),
# and no 0/o, 1/l/i.
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
PASSWORD_LENGTH = 24  # 24 × log2(31) ≈ 119 bits
MIN_PASSWORD_LENGTH = 20


def new_password(length: int = PASSWORD_LENGTH) -> str:
    """Random characters from an alphabet without look-alikes, in groups of four for reading."""
    if length < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    chars = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
    return "-".join(chars[i : i + 4] for i in range(0, length, 4))


def encrypted_zip(files: Iterable[tuple[str, bytes]], password: str) -> bytes:
    """A zip with every member AES-256 encrypted under `password`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    buffer = io.BytesIO()
    seen: set[str] = set()
    with pyzipper.AESZipFile(
        buffer, "w", compression=zipfile.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(password.encode("utf-8"))
        archive.setencryption(pyzipper.WZ_AES, nbits=256)
        for name, data in files:
            _check_name(name, seen)
            archive.writestr(name, data)
    return buffer.getvalue()


def _check_name(name: str, seen: set[str]) -> None:
    # Whoever unpacks it should not find files written outside the folder they chose.
    path = PurePosixPath(name.replace("\\", "/"))
    if not name or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"unsafe member name {name!r} for a zip file")
    if name in seen:
        raise ValueError(f"duplicate member name {name!r}")
    seen.add(name)
