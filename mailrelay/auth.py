"""Who may relay: SMTP AUTH users (scrypt hashes in a users file) and trusted networks.

The users file, one account a line (`#` comments and blank lines ignored):

    alice:$scrypt$ln=14,r=8,p=1$<salt, base64>$<hash, base64>

Each password has its own 16-byte random salt; scrypt (n=2**14, r=8, p=1,
about 16 MiB and 50 ms a check) makes a stolen file expensive to attack.
Checking runs off the event loop (the handler calls `Users.verify` in a
thread). An unknown login costs the same as a wrong password, so timing does
not tell which logins exist. The file is re-read when it changes, so adding a
user needs no restart:

    python -m mailrelay.auth add  USERS_FILE LOGIN     # password asked, or --password-stdin
    python -m mailrelay.auth remove USERS_FILE LOGIN
    python -m mailrelay.auth list USERS_FILE
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import getpass
import hashlib
import hmac
import ipaddress
import os
import secrets
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from certs.files import replace_file

SCHEME = "scrypt"
LOG_N, R, P = 14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
MAXMEM = 64 * 2**20
MAX_LOG_N = 20  # a file asking for more is refused rather than letting it eat memory

DEFAULT_TRUSTED_NETWORKS = ("127.0.0.0/8", "::1/128")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def hash_password(password: str | bytes, *, log_n: int = LOG_N) -> str:
    """'$scrypt$ln=14,r=8,p=1$salt$hash' with a fresh random salt."""
    pw = password.encode() if isinstance(password, str) else password
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(pw, salt=salt, n=2**log_n, r=R, p=P, maxmem=MAXMEM, dklen=HASH_BYTES)
    return f"${SCHEME}$ln={log_n},r={R},p={P}${_b64(salt)}${_b64(digest)}"


def check_password(stored: str, password: str | bytes) -> bool:
    """True when `password` matches `stored`; False for a wrong password or a malformed hash."""
    pw = password.encode() if isinstance(password, str) else password
    try:
        _, scheme, params, salt_text, hash_text = stored.split("$")
        if scheme != SCHEME:
            return False
        values = dict(item.split("=", 1) for item in params.split(","))
        log_n, r, p = int(values["ln"]), int(values["r"]), int(values["p"])
        if not (1 <= log_n <= MAX_LOG_N and 1 <= r <= 32 and 1 <= p <= 16):
            return False
        salt, expected = _unb64(salt_text), _unb64(hash_text)
        digest = hashlib.scrypt(
            pw, salt=salt, n=2**log_n, r=r, p=p, maxmem=MAXMEM * 4, dklen=len(expected)
        )
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(digest, expected)


class Users:
    """The users file, re-read when its modification time or size changes."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._hashes: dict[str, str] = {}
        self._dummy = hash_password(secrets.token_bytes(16))
        self._refresh()

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            with self._lock:
                self._seen, self._hashes = None, {}
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._seen:
            return
        hashes = parse_users(self.path.read_text(encoding="utf-8"))
        with self._lock:
            self._seen, self._hashes = stamp, hashes

    def __contains__(self, login: str) -> bool:
        self._refresh()
        return login in self._hashes

    def verify(self, login: str | bytes, password: str | bytes) -> bool:
        """Blocking (scrypt): call it from a thread. Unknown logins cost a full check too."""
        if isinstance(login, bytes):
            try:
                login = login.decode("utf-8")
            except UnicodeDecodeError:
                login = ""
        self._refresh()
        stored = self._hashes.get(login)
        ok = check_password(stored or self._dummy, password)
        return ok and stored is not None


def parse_users(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        login, sep, stored = line.partition(":")
        if sep and login and stored.startswith(f"${SCHEME}$"):
            out[login] = stored
    return out


def set_user(path: str | os.PathLike, login: str, password: str | bytes | None) -> None:
    """Add or replace `login` (password None: remove it). The file is rewritten atomically, 0600."""
    if not login or any(c in login for c in ":\n\r#") or login != login.strip():
        raise ValueError(f"{login!r}: a login may not be empty or contain ':', '#' or spaces")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = ["# leakguard mail relay users: login:$scrypt$… (python -m mailrelay.auth)"]
        kept = [ln for ln in lines if ln.strip().partition(":")[0] != login]
        if password is None and len(kept) == len(lines):
            raise KeyError(login)
        if password is not None:
            kept.append(f"{login}:{hash_password(password)}")
        replace_file(path, ("\n".join(kept) + "\n").encode(), 0o600)
    finally:
        os.close(fd)


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """'10.1.0.0/16', '192.0.2.7', '::1' → networks; ValueError names the bad one."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a network; write e.g. 10.1.0.0/16") from None
    return tuple(out)


def in_networks(address: str, networks: Iterable[Network]) -> bool:
    """Is the peer's address inside one of `networks` (IPv4-mapped IPv6 counts as IPv4)?"""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mailrelay.auth", description="Manage the mail relay's users file."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("add", "remove"):
        p = sub.add_parser(name)
        p.add_argument("file")
        p.add_argument("login")
        if name == "add":
            p.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    sub.add_parser("list").add_argument("file")
    args = parser.parse_args(argv)
    try:
        if args.action == "list":
            for login in sorted(parse_users(Path(args.file).read_text(encoding="utf-8"))):
                print(login)
        elif args.action == "remove":
            set_user(args.file, args.login, None)
        else:
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\r\n")
            else:
                password = getpass.getpass(f"password for {args.login}: ")
                if getpass.getpass("again: ") != password:
                    print("the passwords differ", file=sys.stderr)
                    return 2
            if len(password) < 12:
                print("use at least 12 characters", file=sys.stderr)
                return 2
            set_user(args.file, args.login, password)
    except KeyError:
        print(f"{args.login}: no such user", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:
        print(f"mailrelay.auth: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
