"""Third parties' certificates: which ones can mail to them be encrypted with, and until when.

Stored as `<state>/certs/parties/<party>.pem` plus `<party>.json` (where it came
from, the addresses and domains it was checked against, its fingerprint).
The policy names parties and their addresses; it calls `check_recipient_certificate`
and `PartyCertificates.status`, this module never reads the policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.describe import day, email_addresses, fingerprint, is_ca, key_type, subject
from certs.errors import CertificateFormatError, CertificateRejected, InvalidPartyId
from certs.files import private_dir, replace_file
from certs.load import end_entity, read_certificates

PARTY_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
EXPIRY_WARNING = timedelta(days=30)

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}


class CertState(StrEnum):
    OK = "ok"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    MISSING = "missing"


@dataclass(frozen=True)
class CertificateStatus:
    party: str
    state: CertState
    not_before: datetime | None = None
    not_after: datetime | None = None
    subject: str = ""
    addresses: tuple[str, ...] = ()
    fingerprint: str = ""

    @property
    def usable(self) -> bool:
        """Mail may be encrypted with it now (an expiring certificate still works)."""
        return self.state in (CertState.OK, CertState.EXPIRING)

    @property
    def message(self) -> str:
        who = f"certificate of party '{self.party}'"
        before = day(self.not_before) if self.not_before else "?"
        after = day(self.not_after) if self.not_after else "?"
        match self.state:
            case CertState.MISSING:
                return (
                    f"party '{self.party}' has no certificate; "
                    f"import one with `leakguard certs import {self.party} FILE`"
                )
            case CertState.EXPIRED:
                return f"{who} expired on {after}"
            case CertState.NOT_YET_VALID:
                return f"{who} is not valid before {before}"
            case CertState.EXPIRING:
                return f"{who} expires on {after}"
            case _:
                return f"{who} is valid until {after}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = str(self.state)
        out["addresses"] = list(self.addresses)
        for field in ("not_before", "not_after"):
            out[field] = out[field].isoformat() if out[field] else None
        return out


def certificate_status(
    party: str, cert: x509.Certificate | None, now: datetime, within: timedelta = EXPIRY_WARNING
) -> CertificateStatus:
    _require_aware(now)
    if cert is None:
        return CertificateStatus(party, CertState.MISSING)
    before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < before:
        state = CertState.NOT_YET_VALID
    elif now > after:
        state = CertState.EXPIRED
    elif after - now <= within:
        state = CertState.EXPIRING
    else:
        state = CertState.OK
    return CertificateStatus(
        party,
        state,
        not_before=before,
        not_after=after,
        subject=subject(cert),
        addresses=tuple(email_addresses(cert)),
        fingerprint=fingerprint(cert),
    )


def validate_party(party: str) -> str:
    if not PARTY_ID.fullmatch(party):
        raise InvalidPartyId(
            f"invalid party id {party!r}: use lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit (at most 64 characters)"
        )
    return party


def check_recipient_certificate(
    cert: x509.Certificate,
    *,
    addresses: Sequence[str] = (),
    domains: Sequence[str] = (),
    now: datetime,
) -> list[str]:
    """Why mail to these addresses/domains cannot be encrypted with `cert`; [] when it can.

    One sentence per problem. A domain is satisfied by any address of the
    certificate at that domain; an address must be named exactly (case aside).
    """
    _require_aware(now)
    mine = email_addresses(cert)
    who = f"certificate for {mine[0] if mine else subject(cert) or 'an unnamed subject'}"
    problems: list[str] = []
    if is_ca(cert):
        problems.append(f"{who} is a CA certificate, not a mailbox's")
    if now < cert.not_valid_before_utc:
        problems.append(f"{who} is not valid before {day(cert.not_valid_before_utc)}")
    if now > cert.not_valid_after_utc:
        problems.append(f"{who} expired on {day(cert.not_valid_after_utc)}")
    kind = key_type(cert)
    if kind != "RSA":
        # cryptography's PKCS7EnvelopeBuilder encrypts to RSA recipients only.
        problems.append(f"{who}: key type {kind} is not supported for S/MIME encryption (RSA only)")
    problems += _key_usage_problems(cert, who)
    problems += _extended_key_usage_problems(cert, who)
    theirs = ", ".join(mine)
    held = f"its addresses are {theirs}" if mine else "it names no e-mail address"
    for address in addresses:
        if address.lower() not in mine:
            problems.append(f"{who} is not valid for mail to {address}: {held}")
    for domain in domains:
        wanted = _domain(domain)
        if not any(a.rpartition("@")[2] == wanted for a in mine):
            problems.append(f"{who} is not valid for mail to domain {domain}: {held}")
    return problems


class PartyCertificates:
    """The store of accepted party certificates under `<state>/certs/parties/`."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / "certs" / "parties"

    def path(self, party: str) -> Path:
        return self.directory / f"{validate_party(party)}.pem"

    def get(self, party: str) -> x509.Certificate | None:
        try:
            data = self.path(party).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError as err:
            raise CertificateFormatError(f"{self.path(party)}: {err}") from None

    def metadata(self, party: str) -> dict[str, Any]:
        try:
            return json.loads(self.path(party).with_suffix(".json").read_text())
        except FileNotFoundError:
            return {}

    def list(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.pem") if PARTY_ID.fullmatch(p.stem))

    def status(
        self, party: str, now: datetime, within: timedelta = EXPIRY_WARNING
    ) -> CertificateStatus:
        return certificate_status(party, self.get(party), now, within)

    def add(
        self,
        party: str,
        cert: x509.Certificate,
        *,
        addresses: Sequence[str],
        domains: Sequence[str],
        source: str,
        now: datetime,
    ) -> Path:
        """Store (or replace) a party's certificate. Checking it is the caller's job."""
        path = self.path(party)
        private_dir(self.directory)
        meta = {
            "party": party,
            "imported": now.isoformat(),
            "source": source,
            "addresses": list(addresses),
            "domains": list(domains),
            "sha256": fingerprint(cert),
        }
        # Metadata first: a certificate on disk always has the record of how it was checked.
        replace_file(path.with_suffix(".json"), json.dumps(meta, indent=2).encode(), 0o644)
        replace_file(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return path


def import_certificate(
    store: PartyCertificates,
    party: str,
    data: bytes,
    *,
    name: str,
    addresses: Sequence[str] = (),
    domains: Sequence[str] = (),
    now: datetime,
) -> x509.Certificate:
    """Read, pick the party's certificate, check it, store it. CertificateRejected lists why not."""
    validate_party(party)
    cert = end_entity(
        read_certificates(data, name), addresses=addresses, domains=domains, name=name
    )
    problems = check_recipient_certificate(cert, addresses=addresses, domains=domains, now=now)
    if problems:
        raise CertificateRejected(problems)
    store.add(party, cert, addresses=addresses, domains=domains, source=name, now=now)
    return cert


def expiring(
    store: PartyCertificates, now: datetime, within: timedelta = EXPIRY_WARNING
) -> list[CertificateStatus]:
    """Certificates to alert on (at start and daily): expiring within `within`, or expired."""
    statuses = [store.status(party, now, within) for party in store.list()]
    return [s for s in statuses if s.state in (CertState.EXPIRING, CertState.EXPIRED)]


def _key_usage_problems(cert: x509.Certificate, who: str) -> list[str]:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return []  # no KeyUsage: any use is allowed
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        needed, allowed = "keyEncipherment", usage.key_encipherment
    elif isinstance(key, ec.EllipticCurvePublicKey):
        needed, allowed = "keyAgreement", usage.key_agreement
    else:
        return []
    if allowed:
        return []
    return [
        f"{who} may not be used for encryption: its key usage is {_usages(usage)} "
        f"(an {key_type(cert)} key needs {needed})"
    ]


def _extended_key_usage_problems(cert: x509.Certificate, who: str) -> list[str]:
    try:
        purposes = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []
    if {ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(
        purposes
    ):
        return []
    named = ", ".join(_EKU_NAMES.get(p, p.dotted_string) for p in purposes)
    return [f"{who} is not for e-mail: its extended key usage is {named} (needs emailProtection)"]


def _usages(usage: x509.KeyUsage) -> str:
    names = {
        "digitalSignature": usage.digital_signature,
        "nonRepudiation": usage.content_commitment,
        "keyEncipherment": usage.key_encipherment,
        "dataEncipherment": usage.data_encipherment,
        "keyAgreement": usage.key_agreement,
        "keyCertSign": usage.key_cert_sign,
        "cRLSign": usage.crl_sign,
    }
    return ", ".join(name for name, on in names.items() if on) or "empty"


def _domain(domain: str) -> str:
    domain = domain.strip().lstrip("@").rstrip(".").lower()
    try:
        return domain.encode("idna").decode("ascii")  # certificates carry A-labels
    except UnicodeError:
        return domain


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("`now` must carry a time zone (certificate times are UTC)")
