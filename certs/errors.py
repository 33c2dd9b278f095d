"""What can go wrong with key material, as one small hierarchy.

CertsError                   base: every error here carries a sentence for a person
├── CertificateFormatError   a file holds no certificate leakguard can read
├── CertificateRejected      a certificate is unfit for a party (.problems, one per line)
├── InvalidPartyId           a party id outside [a-z0-9][a-z0-9_-]*
├── CAError                  the interception CA is missing, present or half-written
│   ├── CAExists             refusing to overwrite a CA without --force
│   └── CAMissing            no CA in that slot yet
└── CannotEncrypt            the relay must block: no usable certificate (.party, .reason)
"""

from __future__ import annotations


class CertsError(Exception):
    """Base class; str(err) is the message shown to the operator."""


class CertificateFormatError(CertsError):
    pass


class CertificateRejected(CertsError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class InvalidPartyId(CertsError, ValueError):
    pass


class CAError(CertsError):
    pass


class CAExists(CAError):
    pass


class CAMissing(CAError):
    pass


class CannotEncrypt(CertsError):
    def __init__(self, party: str | None, reason: str) -> None:
        super().__init__(reason)
        self.party = party
        self.reason = reason
