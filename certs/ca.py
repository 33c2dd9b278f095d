"""The interception CA: created here, kept in the state directory, handed to mitmproxy.

Layout (each slot a directory written whole, then renamed into place):

    <state>/ca/                   0700
        current/ca-cert.pem       the CA the proxy signs with
        current/ca-key.pem        0600
        next/…  + rotation.json   staged by `certs rotate`, clients install it meanwhile
        previous/… + rotation.json  the CA before the last activation, until retired

Rotation itself (staging, activation, retirement) is in `certs.rotation`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.errors import CAError, CAExists, CAMissing
from certs.files import fsync_dir, private_dir, replace_file, write_new

KeyType = Literal["ec", "rsa"]
CAPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

DEFAULT_KEY_TYPE: KeyType = "ec"
DEFAULT_COMMON_NAME = "leakguard interception CA"
DEFAULT_ORGANIZATION = "leakguard"
DEFAULT_CA_DAYS = 3650  # as mitmproxy's own CA; rotation, not expiry, is how a CA is replaced
DEFAULT_SERVER_DAYS = 397  # what browsers accept from public CAs; clients may apply it to ours
RSA_BITS = 3072
BACKDATE = timedelta(hours=1)  # clients whose clock is a little behind still accept a new cert

CA_DIR = "ca"
CERT_FILE = "ca-cert.pem"
KEY_FILE = "ca-key.pem"
ROTATION_FILE = "rotation.json"
MITMPROXY_BASENAME = "mitmproxy"

# RFC 7919 ffdhe4096, a published group: mitmproxy wants DH parameters beside the CA and
# writes its own file when there is none; with ours in place it writes nothing.
FFDHE4096_PEM = b"""-----BEGIN DH PARAMETERS-----
MIICCAKCAgEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0mkff3
7lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32
nuhtK8UiNjoNq8Uhl5sN6todv5pC1cRITgq80Gv6U93vPBsg7j/VnXwl5B0rZp4e
8W5vUsMWTfT7eTDp5OWIV7asfV9C1p9tGHdjzx1VA0AEh/VbpX4xzHpxNciG77Qx
iu1qHgEtnmgyqQdgCpGBMMRtx3j5ca0AOAkpmaMzy4t6Gh25PXFAADwqTs6p+Y0K
zAqCkc3OyX3Pjsm1Wn+IpGtNtahR9EGC4caKAH5eZV9q//////////8CAQI=
-----END DH PARAMETERS-----
"""


class Slot(StrEnum):
    CURRENT = "current"
    NEXT = "next"
    PREVIOUS = "previous"


@dataclass(frozen=True)
class CA:
    cert: x509.Certificate
    key: CAPrivateKey
    directory: Path
    slot: Slot
    rotation: dict[str, str]  # rotation.json of a next/previous slot; empty for current

    @property
    def cert_path(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def moment(self, field: str) -> datetime | None:
        """A date recorded at rotation (`activate_after`, `staged`, `retired`)."""
        value = self.rotation.get(field)
        return datetime.fromisoformat(value) if value else None


def ca_root(state_dir: Path) -> Path:
    return Path(state_dir) / CA_DIR


def new_ca(
    *,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    common_name: str = DEFAULT_COMMON_NAME,
    organization: str = DEFAULT_ORGANIZATION,
    days: int = DEFAULT_CA_DAYS,
    now: datetime | None = None,
) -> tuple[x509.Certificate, CAPrivateKey]:
    """A self-signed CA that may sign leaves only (path length 0), nothing written."""
    if days < 1:
        raise ValueError(f"a CA must be valid for at least one day, not {days}")
    now = now or datetime.now(UTC)
    key = _new_key(key_type)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    # Date and key id in the name tell two generations apart in a client's trust store,
    # and keep issuer names distinct for clients that pick an issuer by name alone.
    generation = f"created {now.astimezone(UTC):%Y-%m-%d}, key {ski.digest[:4].hex().upper()}"
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, generation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def create_ca(
    state_dir: Path,
    *,
    key_type: KeyType = DEFAULT_KEY_TYPE,
    common_name: str = DEFAULT_COMMON_NAME,
    organization: str = DEFAULT_ORGANIZATION,
    days: int = DEFAULT_CA_DAYS,
    force: bool = False,
    now: datetime | None = None,
) -> CA:
    """`certs init`: the current CA. CAExists unless `force` (which discards the old one)."""
    cert, key = new_ca(
        key_type=key_type, common_name=common_name, organization=organization, days=days, now=now
    )
    return install(state_dir, Slot.CURRENT, cert, key, replace=force)


def install(
    state_dir: Path,
    slot: Slot,
    cert: x509.Certificate,
    key: CAPrivateKey,
    *,
    rotation: dict[str, str] | None = None,
    replace: bool = False,
) -> CA:
    """Write a slot into a fresh directory, then rename it into place.

    Renaming a directory onto a non-empty one fails, so two `certs init` racing
    cannot both win, and a reader never finds a key without its certificate.
    """
    root = private_dir(ca_root(state_dir))
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=root))  # mkdtemp: 0700
    try:
        write_new(staging / KEY_FILE, _key_pem(key), 0o600)
        write_new(staging / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        if rotation:
            write_new(staging / ROTATION_FILE, json.dumps(rotation, indent=2).encode(), 0o644)
        fsync_dir(staging)
        _move_into_place(staging, root / slot, replace=replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(root)
    return load_ca(state_dir, slot)


def _move_into_place(staging: Path, target: Path, *, replace: bool) -> None:
    if replace and target.exists():
        discarded = Path(tempfile.mkdtemp(prefix=".old-", dir=target.parent))
        os.rename(target, discarded / target.name)
        os.rename(staging, target)
        shutil.rmtree(discarded)
        return
    try:
        os.rename(staging, target)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise CAExists(
                f"{target}: a CA is already there; use --force to replace it "
                "(clients trusting it will then reject the proxy until they get the new one)"
            ) from None
        raise


def find_ca(state_dir: Path, slot: Slot = Slot.CURRENT) -> CA | None:
    directory = ca_root(state_dir) / slot
    if not (directory / CERT_FILE).exists():
        return None
    return load_ca(state_dir, slot)


def load_ca(state_dir: Path, slot: Slot = Slot.CURRENT) -> CA:
    """Read a slot, checking the key is private and belongs to the certificate."""
    directory = ca_root(state_dir) / slot
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        mode = key_path.stat().st_mode & 0o777
        if mode & 0o077:
            raise CAError(f"{key_path}: the CA key is readable by others (mode {mode:o})")
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as err:
        hint = "; create one with `leakguard certs init`" if slot is Slot.CURRENT else ""
        raise CAMissing(f"no {slot} CA in {directory} ({err.filename} is missing){hint}") from None
    except ValueError as err:
        raise CAError(f"{directory}: cannot read the CA: {err}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CAError(f"{key_path}: a CA key must be EC or RSA, not {type(key).__name__}")
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise CAError(f"{directory}: {KEY_FILE} does not belong to {CERT_FILE}")
    rotation: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        rotation = json.loads((directory / ROTATION_FILE).read_text())
    return CA(cert=cert, key=key, directory=directory, slot=slot, rotation=rotation)


def issue_server_certificate(
    ca: CA,
    hostnames: list[str],
    days: int = DEFAULT_SERVER_DAYS,
    *,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """A TLS server certificate (e.g. the relay's STARTTLS) → (cert PEM, PKCS#8 key PEM).

    Its key is a fresh EC P-256 key whatever the CA's type. Names that parse as
    IP addresses become iPAddress SANs. The certificate never outlives the CA.
    Only the leaf is returned: clients hold the CA already.
    """
    if not hostnames:
        raise ValueError("a server certificate needs at least one host name")
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0][:64])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + timedelta(days=days), ca.cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hostnames]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(aki, critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def write_mitmproxy_confdir(state_dir: Path, confdir: Path) -> Path:
    """Put the current CA where mitmproxy's `CertStore.from_store(confdir, "mitmproxy")` reads it.

    mitmproxy generates a CA of its own when `mitmproxy-ca.pem` is missing, so
    this runs before the proxy starts. Written: `mitmproxy-ca.pem` (key then
    certificate, 0600 — the one file it loads), `mitmproxy-dhparam.pem` (else it
    writes its own), and the certificate alone as `mitmproxy-ca-cert.pem`/`.cer`/
    `.p12`, which its onboarding app (mitm.it) serves to clients. Only the
    current CA goes in: a second certificate in that file would be sent as chain.
    Returns the path of `mitmproxy-ca.pem`.
    """
    ca = load_ca(state_dir, Slot.CURRENT)
    confdir = private_dir(Path(confdir))
    ca_file = confdir / f"{MITMPROXY_BASENAME}-ca.pem"
    replace_file(ca_file, _key_pem(ca.key) + ca.cert_pem, 0o600)
    replace_file(confdir / f"{MITMPROXY_BASENAME}-dhparam.pem", FFDHE4096_PEM, 0o644)
    for ext in ("pem", "cer"):
        replace_file(confdir / f"{MITMPROXY_BASENAME}-ca-cert.{ext}", ca.cert_pem, 0o644)
    p12 = pkcs12.serialize_key_and_certificates(
        name=MITMPROXY_BASENAME.encode(),
        key=None,
        cert=ca.cert,
        cas=None,
        encryption_algorithm=serialization.NoEncryption(),
    )
    replace_file(confdir / f"{MITMPROXY_BASENAME}-ca-cert.p12", p12, 0o644)
    return ca_file


def _new_key(key_type: KeyType) -> CAPrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise ValueError(f"unknown key type {key_type!r}: use 'ec' or 'rsa'")


def _key_pem(key: CAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),  # the file mode protects it; the proxy starts unattended
    )


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host.encode("idna").decode("ascii"))
