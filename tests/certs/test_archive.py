"""Encrypted zip files: AES-256, and passwords a person can read out."""

from __future__ import annotations

import io
import struct

import pytest
import pyzipper

from certs.archive import MIN_PASSWORD_LENGTH, PASSWORD_ALPHABET, encrypted_zip, new_password

FILES = [("债务清单.csv", "张三,11010519491231002X\n".encode() * 50), ("readme.txt", b"hello")]


def test_round_trip_with_the_password():
    password = new_password()
    data = encrypted_zip(FILES, password)
    with pyzipper.AESZipFile(io.BytesIO(data)) as archive:
        archive.setpassword(password.encode())
        assert [(n, archive.read(n)) for n in archive.namelist()] == FILES
    assert b"11010519491231002X" not in data


def test_every_member_is_aes_256():
    data = encrypted_zip(FILES, new_password())
    with pyzipper.AESZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    assert len(infos) == len(FILES)
    for info in infos:
        assert info.flag_bits & 0x1  # encrypted
        # WinZip AES extra field (0x9901): version, vendor "AE", strength 3 = 256 bits
        extra = info.extra
        at = extra.index(struct.pack("<H", 0x9901))
        size, _version, vendor, strength = struct.unpack("<HH2sB", extra[at + 2 : at + 9])
        assert (size, vendor, strength) == (7, b"AE", 3)


def test_the_wrong_password_opens_nothing():
    data = encrypted_zip(FILES, new_password())
    with pyzipper.AESZipFile(io.BytesIO(data)) as archive:
        archive.setpassword(new_password().encode())
        with pytest.raises(RuntimeError, match="Bad password"):
            archive.read("readme.txt")


def test_passwords_are_long_unambiguous_and_different():
    passwords = {new_password() for _ in range(200)}
    assert len(passwords) == 200
    for password in passwords:
        chars = password.replace("-", "")
        assert len(chars) >= MIN_PASSWORD_LENGTH
        assert set(chars) <= set(PASSWORD_ALPHABET)
    assert not set("0oO1lIi") & set(PASSWORD_ALPHABET)
    with pytest.raises(ValueError):
        new_password(12)


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/passwd", "a/../../b", "..\\win.txt", ""])
def test_unsafe_member_names_are_refused(name):
    with pytest.raises(ValueError, match="unsafe member name"):
        encrypted_zip([(name, b"x")], new_password())


def test_duplicates_and_short_passwords_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        encrypted_zip([("a", b"1"), ("a", b"2")], new_password())
    with pytest.raises(ValueError, match="at least"):
        encrypted_zip(FILES, "short")
