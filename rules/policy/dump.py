"""Policy → the five files, canonical: what `leakguard rules explain --yaml` prints.

Loading what this writes gives an equal policy (a tested property), so the
output is a faithful, normalised copy of the effective policy.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from audit.watch_settings import Watch
from rules.policy.model import Conditions, Policy, Rule
from rules.policy.watch_wire import FILE as WATCH_FILE
from rules.policy.watch_wire import watch_to_wire
from rules.policy.wire import VERSION


def to_wire(policy: Policy) -> dict[str, dict]:
    files = _five_files(policy)
    if policy.watch != Watch():  # watch.yaml is optional: written only when it says something
        files[WATCH_FILE] = {"version": VERSION, **watch_to_wire(policy.watch)}
    return files


def _five_files(policy: Policy) -> dict[str, dict]:
    return {
        "zones.yaml": {
            "version": VERSION,
            "zones": {
                z.name: _drop_empty(
                    {
                        "description": z.description,
                        "cidrs": [str(n) for n in z.cidrs],
                        "domains": list(z.domains),
                        "mail_domains": list(z.mail_domains),
                    },
                    keep=("cidrs",),
                )
                for z in policy.zones
            },
            "reach": [
                _drop_empty(
                    {
                        "from": r.source,
                        "to": r.destination,
                        "ports": sorted(r.ports),
                        "channels": sorted(r.channels),
                        "inspect": None if r.inspect else False,
                        "mode": None if r.mode == "enforce" else str(r.mode),
                    }
                )
                for r in policy.reach
            ],
        },
        "destinations.yaml": {
            "version": VERSION,
            "categories": {
                c.name: _drop_empty(
                    {
                        "description": c.description,
                        "domains": list(c.domains),
                        "hosts": list(c.hosts),
                        "cidrs": [str(n) for n in c.cidrs],
                        "mail_domains": list(c.mail_domains),
                    }
                )
                for c in policy.categories
            },
            "tls_passthrough": list(policy.tls_passthrough),
        },
        "parties.yaml": {
            "version": VERSION,
            "parties": {
                p.id: _drop_empty(
                    {
                        "name": p.name,
                        "agreement": p.agreement,
                        "domains": list(p.domains),
                        "mail_domains": list(p.mail_domains),
                        "addresses": list(p.addresses),
                        "receives": sorted(p.receives),
                        "mask": sorted(p.mask),
                        "encrypt_mail": None if p.encrypt_mail == "by-rule" else p.encrypt_mail,
                        "encrypt_scope": None if p.encrypt_scope == "message" else p.encrypt_scope,
                        "certificate": p.certificate,
                        "valid_from": p.valid_from,
                        "valid_until": p.valid_until,
                    },
                    keep=("receives",),
                )
                for p in policy.parties
            },
        },
        "classes.yaml": {
            "version": VERSION,
            "classes": {
                c.name: _drop_empty(
                    {
                        "level": str(c.level),
                        "detectors": list(c.detectors),
                        "bulk": c.bulk,
                        "description": c.description,
                    },
                    keep=("detectors",),
                )
                for c in policy.classes
            },
            "detectors": {
                d.id: _drop_empty(
                    {
                        "description": d.description,
                        "keywords": list(d.words),
                        "regex": d.pattern,
                        "validator": d.validator,
                        "score": d.score,
                        "case_sensitive": d.case_sensitive or None,
                    }
                )
                for d in policy.custom_detectors
            },
        },
        "rules.yaml": {
            "version": VERSION,
            "mode": str(policy.mode),
            "timezone": policy.timezone,
            "default_action": str(policy.default_action),
            "rules": [_rule(r) for r in policy.rules],
        },
    }


def _rule(rule: Rule) -> dict:
    return _drop_empty(
        {
            "id": rule.id,
            "description": rule.description,
            "when": _conditions(rule.when),
            "action": str(rule.action),
            "mode": str(rule.mode),
            "message": rule.message,
        }
    )


def _conditions(w: Conditions) -> dict:
    party = w.party if isinstance(w.party, str) else sorted(w.party)
    return _drop_empty(
        {
            "source_zone": sorted(w.source_zone),
            "source": [str(n) for n in w.source],
            "user": sorted(w.user),
            "group": sorted(w.group),
            "channel": sorted(w.channel),
            "destination_zone": sorted(w.destination_zone),
            "category": sorted(w.category),
            "host": list(w.host),
            "party": party,
            "class": sorted(w.data_class),
            "level": sorted(str(lv) for lv in w.level),
            "detector": sorted(w.detector),
            "min_distinct": w.min_distinct or None,
            "bulk": w.bulk,
            "uninspectable": w.uninspectable,
        }
    )


def _drop_empty(d: dict, keep: tuple[str, ...] = ()) -> dict:
    return {k: v for k, v in d.items() if k in keep or v not in (None, "", [], {})}


def write(policy: Policy, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, doc in to_wire(policy).items():
        (directory / name).write_text(dump_yaml(doc), encoding="utf-8")


def dump_yaml(doc: dict) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)
