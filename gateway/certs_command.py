"""`leakguard certs …`: the interception CA and third parties' certificates.

    init | show | export | rotate | activate | retire-previous   the CA
    import | list                                               parties' certificates

Exit status: 0 done, 2 refused or failed (one sentence per problem on stderr).
`list` exits 1 when a certificate is expired or expires within 30 days.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from certs import ca as cas
from certs import rotation
from certs.describe import day, email_addresses, fingerprint, key_description, minute, subject
from certs.errors import CertificateRejected, CertsError
from certs.parties import (
    EXPIRY_WARNING,
    CertificateStatus,
    CertState,
    PartyCertificates,
    expiring,
    import_certificate,
    validate_party,
)
from gateway.rules_command import default_policy_dir
from gateway.state import state_dir
from rules.policy import PolicyError, load_policy

EXIT_OK, EXIT_FLAGGED, EXIT_ERROR = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "certs",
        help="the interception CA and third parties' certificates",
        description="Create, show, export and rotate the interception CA; "
        "import and list the certificates mail to third parties is encrypted to.",
    )
    commands = parser.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", help="the gateway's state directory (default ./var)")

    p = commands.add_parser("init", parents=[common], help="create the interception CA")
    _ca_options(p, defaults=True)
    p.add_argument("--force", action="store_true", help="replace an existing CA")
    p.set_defaults(func=_init)

    p = commands.add_parser("show", parents=[common], help="the CAs, fingerprints and files")
    p.set_defaults(func=_show)

    p = commands.add_parser("export", parents=[common], help="the CA certificate for clients")
    p.add_argument("--format", choices=("pem", "der"), default="pem")
    p.add_argument(
        "--which",
        choices=("trusted", "current", "next", "previous"),
        help="PEM default: every CA clients should trust (current, next, previous); "
        "DER holds one certificate, default current",
    )
    p.add_argument("--out", type=Path, help="write here instead of stdout")
    p.set_defaults(func=_export)

    p = commands.add_parser(
        "rotate", parents=[common], help="stage a new CA beside the current one"
    )
    _ca_options(p, defaults=False)
    p.add_argument(
        "--overlap-days",
        type=int,
        default=rotation.DEFAULT_OVERLAP_DAYS,
        help="time to install the new CA on clients before it can be activated "
        f"(default {rotation.DEFAULT_OVERLAP_DAYS})",
    )
    p.add_argument("--force", action="store_true", help="replace an already staged CA")
    p.set_defaults(func=_rotate)

    p = commands.add_parser("activate", parents=[common], help="sign with the staged CA")
    p.add_argument("--force", action="store_true", help="activate before the overlap ends")
    p.set_defaults(func=_activate)

    p = commands.add_parser("retire-previous", parents=[common], help="delete the previous CA")
    p.set_defaults(func=_retire)

    p = commands.add_parser("import", parents=[common], help="accept a party's certificate")
    p.add_argument("party", metavar="PARTY", help="party id: [a-z0-9][a-z0-9_-]*")
    p.add_argument("file", metavar="FILE", help="PEM, DER, .cer, .p7b, signed .eml, or '-'")
    p.add_argument(
        "--address", action="append", default=[], help="mailbox it must cover (repeatable)"
    )
    p.add_argument(
        "--domain", action="append", default=[], help="domain it must have an address at"
    )
    p.add_argument(
        "--policy",
        type=Path,
        help="policy directory whose parties.yaml names the party's addresses and domains "
        "(default: $LEAKGUARD_POLICY or the shipped policy); used unless --address/--domain",
    )
    p.set_defaults(func=_import)

    p = commands.add_parser("list", parents=[common], help="parties' certificates and expiry")
    p.add_argument("--json", action="store_true", help="one JSON object per certificate")
    p.set_defaults(func=_list)


def _ca_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    keep = "" if defaults else " (default: as the current CA)"
    p.add_argument(
        "--key-type",
        choices=("ec", "rsa"),
        default=cas.DEFAULT_KEY_TYPE if defaults else None,
        help=f"EC P-256 or RSA {cas.RSA_BITS}" + (keep or f" (default {cas.DEFAULT_KEY_TYPE})"),
    )
    p.add_argument(
        "--name",
        default=cas.DEFAULT_COMMON_NAME if defaults else None,
        help="the CA's common name" + (keep or f" (default {cas.DEFAULT_COMMON_NAME!r})"),
    )
    p.add_argument(
        "--org",
        default=cas.DEFAULT_ORGANIZATION if defaults else None,
        help="organisation shown to users" + (keep or f" (default {cas.DEFAULT_ORGANIZATION!r})"),
    )
    p.add_argument(
        "--days",
        type=int,
        default=cas.DEFAULT_CA_DAYS,
        help=f"validity in days (default {cas.DEFAULT_CA_DAYS})",
    )


def _guarded(action: Callable[[argparse.Namespace, Path], int]) -> Callable[..., int]:
    """Every action: CertsError/OSError/ValueError become one line on stderr and exit 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return action(args, state_dir(args.state_dir))
        except CertificateRejected as err:
            for problem in err.problems:
                _error(args, problem)
        except (CertsError, ValueError) as err:
            _error(args, str(err))
        except OSError as err:
            _error(args, f"{err.filename or ''}: {err.strerror or err}".lstrip(": "))
        return EXIT_ERROR

    return run


def _error(args: argparse.Namespace, message: str) -> None:
    print(f"leakguard certs {args.certs_command}: {message}", file=sys.stderr)


@_guarded
def _init(args: argparse.Namespace, state: Path) -> int:
    ca = cas.create_ca(
        state,
        key_type=args.key_type,
        common_name=args.name,
        organization=args.org,
        days=args.days,
        force=args.force,
    )
    print(f"created the interception CA in {ca.directory}")
    _describe("current CA", ca)
    print("install it on clients: leakguard certs export --out leakguard-ca.pem")
    return EXIT_OK


@_guarded
def _show(args: argparse.Namespace, state: Path) -> int:
    cas.load_ca(state)  # a missing current CA is an error, with the hint to create one
    for ca in rotation.trusted_cas(state):
        if ca.slot is cas.Slot.CURRENT:
            _describe("current CA (the proxy signs with it)", ca)
        elif ca.slot is cas.Slot.NEXT:
            due = ca.moment("activate_after")
            when = f"from {minute(due)}" if due else "now"
            _describe(f"next CA (staged; clients install it; `certs activate` {when})", ca)
        else:
            retired = ca.moment("retired")
            since = f" since {minute(retired)}" if retired else ""
            _describe(f"previous CA (retired{since}; `certs retire-previous` deletes it)", ca)
    return EXIT_OK


def _describe(title: str, ca: cas.CA) -> None:
    cert = ca.cert
    print(title)
    for label, value in (
        ("subject", subject(cert)),
        ("sha256", fingerprint(cert)),
        ("valid", f"{minute(cert.not_valid_before_utc)} – {minute(cert.not_valid_after_utc)}"),
        ("key", key_description(cert)),
        ("certificate", str(ca.cert_path)),
        ("private key", str(ca.key_path)),
    ):
        print(f"  {label:<12} {value}")


@_guarded
def _export(args: argparse.Namespace, state: Path) -> int:
    trusted = rotation.trusted_cas(state)
    if not trusted or trusted[0].slot is not cas.Slot.CURRENT:
        cas.load_ca(state)  # raises CAMissing with its hint
    which = args.which or ("trusted" if args.format == "pem" else "current")
    chosen = trusted if which == "trusted" else [ca for ca in trusted if ca.slot == which]
    if not chosen:
        raise CertsError(f"there is no {which} CA")
    if args.format == "der":
        if len(chosen) > 1:
            raise CertsError("DER holds one certificate: choose --which current, next or previous")
        if len(trusted) > 1 and args.which is None:
            others = ", ".join(ca.slot for ca in trusted[1:])
            print(
                f"leakguard certs export: DER holds one certificate: exported the current CA; "
                f"clients also need the {others} one (--which, or --format pem for all)",
                file=sys.stderr,
            )
        data = chosen[0].cert.public_bytes(serialization.Encoding.DER)
    else:
        data = b"".join(ca.cert_pem for ca in chosen)
    if args.out is not None:
        args.out.write_bytes(data)
        names = ", ".join(f"{ca.slot} ({fingerprint(ca.cert)[:23]}…)" for ca in chosen)
        print(f"wrote {args.out}: {names}")
    elif args.format == "der" and sys.stdout.isatty():
        raise CertsError("DER is binary: use --out FILE or redirect stdout")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


@_guarded
def _rotate(args: argparse.Namespace, state: Path) -> int:
    staged = rotation.stage_next(
        state,
        overlap_days=args.overlap_days,
        key_type=args.key_type,
        common_name=args.name,
        organization=args.org,
        days=args.days,
        force=args.force,
    )
    due = staged.moment("activate_after")
    print(f"staged a new CA in {staged.directory}; the proxy still signs with the current one")
    _describe("next CA", staged)
    print(
        "1. roll out `leakguard certs export` (both CAs) to every client\n"
        f"2. from {minute(due) if due else 'now'}: leakguard certs activate\n"
        "3. once nothing uses the old one: leakguard certs retire-previous"
    )
    return EXIT_OK


@_guarded
def _activate(args: argparse.Namespace, state: Path) -> int:
    ca = rotation.activate_next(state, force=args.force)
    _describe("current CA (the proxy signs with it from its next start)", ca)
    print("the old CA is now the previous one; it stays in `certs export` until retired")
    return EXIT_OK


@_guarded
def _retire(args: argparse.Namespace, state: Path) -> int:
    if rotation.retire_previous(state):
        print("deleted the previous CA; clients may remove it from their trust stores")
    else:
        print("there was no previous CA")
    return EXIT_OK


@_guarded
def _import(args: argparse.Namespace, state: Path) -> int:
    validate_party(args.party)
    if args.file == "-":
        data, name = sys.stdin.buffer.read(), "stdin"
    else:
        data, name = Path(args.file).read_bytes(), args.file
    addresses, domains = _party_places(args)
    store = PartyCertificates(state)
    now = datetime.now(UTC)
    had = store.status(args.party, now) if store.path(args.party).exists() else None
    cert = import_certificate(
        store,
        args.party,
        data,
        name=name,
        addresses=addresses,
        domains=domains,
        now=now,
    )
    status = store.status(args.party, now)
    verb = f"replaced ({had.message})" if had else "imported"
    addresses = ", ".join(email_addresses(cert)) or "no address"
    print(f"{verb}: certificate of party '{args.party}' for {addresses}")
    print(f"  subject  {subject(cert)}\n  sha256   {fingerprint(cert)}")
    print(f"  valid    {day(cert.not_valid_before_utc)} – {day(cert.not_valid_after_utc)}")
    if status.state is CertState.EXPIRING:
        print(f"warning: {status.message}; ask for the renewed one", file=sys.stderr)
    return EXIT_OK


def _party_places(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The addresses the certificate must cover: given, else the party's in the policy."""
    if args.address or args.domain:
        return args.address, args.domain
    directory = args.policy or default_policy_dir()
    try:
        party = load_policy(directory).party(args.party)
    except PolicyError as err:
        raise ValueError(
            f"the policy in {directory} does not load ({len(err.issues)} issues; run "
            "`leakguard rules check`): give --address/--domain, or fix the policy"
        ) from None
    if party is None:
        raise ValueError(
            f"party '{args.party}' is not in {directory / 'parties.yaml'}: add it there "
            "first, or give --address/--domain"
        )
    return list(party.addresses), list(party.mail_domains)


@_guarded
def _list(args: argparse.Namespace, state: Path) -> int:
    store = PartyCertificates(state)
    now = datetime.now(UTC)
    statuses = [store.status(party, now) for party in store.list()]
    flagged = {s.party for s in expiring(store, now)}
    if args.json:
        for s in statuses:
            days_left = (s.not_after - now).days if s.not_after else None
            row = {**s.to_dict(), "days_left": days_left, "flagged": s.party in flagged}
            print(json.dumps(row, ensure_ascii=False))
    else:
        _table(statuses, flagged, now)
    return EXIT_FLAGGED if flagged else EXIT_OK


def _table(statuses: list[CertificateStatus], flagged: set[str], now: datetime) -> None:
    if not statuses:
        print("no party certificates")
        return
    rows = [("PARTY", "STATUS", "EXPIRES", "ADDRESSES")]
    for s in statuses:
        mark = "!" if s.party in flagged else ""
        expires = f"{day(s.not_after)} ({(s.not_after - now).days} d)" if s.not_after else "-"
        rows.append((s.party, f"{s.state}{mark}", expires, ", ".join(s.addresses) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(row[i].ljust(widths[i]) for i in range(3)), row[3]]))
    if flagged:
        print(
            f"! expired or expiring within {EXPIRY_WARNING.days} days: ask the party for a new one"
        )
