"""watch.yaml → audit.watch_settings.Watch: what the login and transfer watchers look for.

The sixth policy file, and the only optional one: without it a firm gets
`Watch()`'s defaults. Same house style as the other five: `version: 1`,
unknown keys refused with a did-you-mean, every problem with its line.

    version: 1
    logins:
      failures: {count: 5, within: 10m, freeze: true}
      spraying: {accounts: 5, within: 10m, block_for: 15m, escalate: 4, max_block: 1d}
      unusual: {new_subnet: alert, external: hold, odd_hour: alert, learn_logins: 20}
      web_apps:
        oa: {host: oa.firm.example, path: /login, username_field: user,
             failure: {status: [401]}}          # or {redirect: "error="} or {body: "密码错误"}
    transfers:
      window: 1h
      external_bytes: {limit: 500MB, action: alert}     # `off` turns a check off
      distinct_pii: {limit: 200, action: hold}
      new_destination: alert
      off_hours: {start: "08:00", end: "20:00", days: [mon, tue, wed, thu, fri], action: alert}
      baseline: {factor: 10, min_bytes: 50MB, learn_days: 7, action: alert}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import time
from pathlib import Path
from typing import Any

from audit.watch_settings import (
    ACTIONS,
    Baseline,
    Failures,
    FailureSign,
    LoginWatch,
    OffHours,
    Spraying,
    Threshold,
    TransferWatch,
    Unusual,
    Watch,
    WebLogin,
)
from rules.policy.reader import Reader
from rules.policy.yamlsrc import Node

FILE = "watch.yaml"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SWITCH = (*ACTIONS, "off")  # an unusual-login or new-destination check: alert, hold or off
# decimal and binary units; "500MB" is 500e6 bytes like a disk maker's, "500MiB" is 500·2^20
_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_HOST = re.compile(r"^[a-z0-9.-]+(:\d{1,5})?$")


def parse_watch(doc: dict[str, Node], r: Reader, directory: Path | None = None) -> Watch:
    """The top-level mapping (without `version`) → Watch; problems go to `r`. Relative
    paths (geoip_database) are relative to the policy `directory`."""
    top = r.mapping(Node(doc, 1, FILE), "", ("logins", "transfers")) or {}
    logins = _logins(r, top["logins"]) if "logins" in top else LoginWatch()
    if logins.unusual.geoip_database:
        node = top["logins"].value["unusual"].value["geoip_database"]
        path = (directory or Path()) / logins.unusual.geoip_database
        if not path.is_file():
            r.issue(
                node,
                "logins.unusual.geoip_database",
                f"no such file: {path}",
                'give a MaxMind-format .mmdb file, or "" for no geo checks',
            )
        unusual = replace(logins.unusual, geoip_database=str(path))
        logins = replace(logins, unusual=unusual)
    transfers = _transfers(r, top["transfers"]) if "transfers" in top else TransferWatch()
    return Watch(logins=logins, transfers=transfers)


# -- scalars ------------------------------------------------------------------


def parse_size(value: Any) -> float:
    """'500MB', '2GiB', 1048576 → bytes; ValueError says why."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int | float):
        size = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
        if not m or m[2].lower() not in _SIZE_UNITS:
            raise ValueError(f"{value!r} is not a size")
        size = float(m[1]) * _SIZE_UNITS[m[2].lower()]
    if size <= 0:
        raise ValueError(f"{value!r}: a size must be positive")
    return size


def parse_duration(value: Any) -> float:
    """'10m', '1h', '7d', 90 → seconds; ValueError says why."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration")
        seconds = float(int(m[1]) * _SECONDS[m[2]])
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be positive")
    return seconds


def _parsed(r: Reader, node: Node, key: str, parse: Callable[[Any], Any], fix: str) -> Any:
    try:
        return parse(node.value)
    except ValueError as err:
        r.issue(node, key, str(err), fix)
        return None


def _size(r: Reader, node: Node, key: str) -> float | None:
    return _parsed(r, node, key, parse_size, "write e.g. 500MB, 2GiB or 1048576 (bytes)")


def _duration(r: Reader, node: Node, key: str) -> float | None:
    return _parsed(r, node, key, parse_duration, "write e.g. 90s, 10m, 1h or 7d")


def _switch(r: Reader, node: Node, key: str, choices: tuple[str, ...] = SWITCH) -> str | None:
    if node.value is False and "off" in choices:  # YAML 1.1 reads a bare `off` as false
        return "off"
    return r.choice(node, key, choices)


def _clock(r: Reader, node: Node, key: str) -> time | None:
    v = node.value
    if isinstance(v, str) and (m := _HH_MM.match(v.strip())):
        return time(int(m[1]), int(m[2]))
    if isinstance(v, int) and not isinstance(v, bool):
        # YAML 1.1 reads an unquoted 20:00 as the base-60 number 1200
        r.issue(node, key, f"{v!r} is not a time of day", 'quote it: "20:00"')
        return None
    r.issue(node, key, f"{v!r} is not a time of day", 'write HH:MM in quotes, e.g. "08:00"')
    return None


def _fill(r: Reader, node: Node, key: str, default: Any, readers: dict[str, Callable]) -> Any:
    """A mapping whose keys are `default`'s fields: each present key read, the rest defaulted."""
    m = r.mapping(node, key, readers)
    if m is None:
        return default
    changes = {}
    for name, value in m.items():
        got = readers[name](value, f"{key}.{name}")
        if got is not None:
            changes[name] = got
    return replace(default, **changes)


def _int(r: Reader, low: int, high: int) -> Callable[[Node, str], int | None]:
    return lambda node, key: r.integer(node, key, low, high)


def _num(r: Reader, low: float, high: float) -> Callable[[Node, str], float | None]:
    return lambda node, key: r.number(node, key, low, high)


# -- logins --------------------------------------------------------------------


def _logins(r: Reader, node: Node) -> LoginWatch:
    m = r.mapping(node, "logins", ("failures", "spraying", "unusual", "web_apps"))
    if m is None:
        return LoginWatch()
    out = LoginWatch()
    dur = lambda n, k: _duration(r, n, k)  # noqa: E731
    if "failures" in m:
        readers = {"count": _int(r, 1, 1000), "within": dur, "freeze": r.flag}
        out = replace(out, failures=_fill(r, m["failures"], "logins.failures", Failures(), readers))
    if "spraying" in m:
        readers = {
            "accounts": _int(r, 2, 10000),
            "within": dur,
            "block_for": dur,
            "escalate": _num(r, 1.0, 100.0),
            "max_block": dur,
        }
        spraying = _fill(r, m["spraying"], "logins.spraying", Spraying(), readers)
        if spraying.max_block < spraying.block_for:
            r.issue(
                m["spraying"],
                "logins.spraying.max_block",
                f"max_block ({spraying.max_block:g}s) is shorter than block_for "
                f"({spraying.block_for:g}s)",
                "make max_block at least block_for",
            )
        out = replace(out, spraying=spraying)
    if "unusual" in m:
        readers = {
            "new_subnet": lambda n, k: _switch(r, n, k),
            "external": lambda n, k: _switch(r, n, k),
            "odd_hour": lambda n, k: _switch(r, n, k),
            "learn_logins": _int(r, 1, 100000),
            "subnet_v4": _int(r, 8, 32),
            "subnet_v6": _int(r, 16, 128),
            "geoip_database": r.text,
            "impossible_kmh": _num(r, 1.0, 100000.0),
        }
        out = replace(out, unusual=_fill(r, m["unusual"], "logins.unusual", Unusual(), readers))
    if "web_apps" in m:
        apps = []
        for name, app in r.entries(m["web_apps"], "logins.web_apps").items():
            if (web := _web_app(r, name, app)) is not None:
                apps.append(web)
        seen: dict[tuple[str, str], str] = {}
        for web in apps:
            if (web.host, web.path) in seen:
                r.issue(
                    m["web_apps"].value[web.name],
                    f"logins.web_apps.{web.name}",
                    f"{web.host}{web.path} is also web app {seen[(web.host, web.path)]}",
                    "one login form belongs to one web app",
                )
            seen.setdefault((web.host, web.path), web.name)
        out = replace(out, web_apps=tuple(apps))
    return out


def _web_app(r: Reader, name: str, node: Node) -> WebLogin | None:
    key = f"logins.web_apps.{name}"
    keys = ("host", "path", "username_field", "failure")
    m = r.mapping(node, key, keys, keys)
    if m is None or any(k not in m for k in keys):
        return None
    host = r.text(m["host"], f"{key}.host")
    if host is not None:
        host = host.strip().lower().rstrip(".")
        if "/" in host or not _HOST.match(host):
            r.issue(
                m["host"],
                f"{key}.host",
                f"{m['host'].value!r} is not a host name",
                "write the host alone (and :port if not 80/443), e.g. oa.firm.example",
            )
            host = None
    path = r.text(m["path"], f"{key}.path")
    if path is not None and not path.startswith("/"):
        r.issue(m["path"], f"{key}.path", f"{path!r} is not a path", f"write /{path.lstrip('/')}")
        path = None
    field = r.text(m["username_field"], f"{key}.username_field")
    if field is not None and not field.strip():
        r.issue(m["username_field"], f"{key}.username_field", "empty", "name the form field")
        field = None
    failure = _failure(r, m["failure"], f"{key}.failure")
    if None in (host, path, field, failure):
        return None
    return WebLogin(name, host, path, field, failure)


def _failure(r: Reader, node: Node, key: str) -> FailureSign | None:
    m = r.mapping(node, key, ("status", "redirect", "body"))
    if m is None:
        return None
    if len(m) != 1:
        r.issue(
            node,
            key,
            "needs exactly one of `status`, `redirect` or `body`",
            "say how the application shows a failed login, e.g. `status: [401]`",
        )
        return None
    if "status" in m:
        item = m["status"]
        items = item if item.kind == "list" else Node([item], item.line, item.file)
        codes = r.list_of(items, f"{key}.status", lambda n, k: r.integer(n, k, 100, 599))
        return FailureSign("status", statuses=tuple(codes)) if codes else None
    kind = "redirect" if "redirect" in m else "body"
    text = r.text(m[kind], f"{key}.{kind}")
    if text is not None and not text.strip():
        r.issue(m[kind], f"{key}.{kind}", "empty: every response would match", "write some text")
        return None
    if text is None:
        return None
    return (
        FailureSign(kind, location=text) if kind == "redirect" else FailureSign(kind, marker=text)
    )


# -- transfers -----------------------------------------------------------------


def _transfers(r: Reader, node: Node) -> TransferWatch:
    keys = [f.name for f in fields(TransferWatch)]
    m = r.mapping(node, "transfers", keys)
    out = TransferWatch()
    if m is None:
        return out
    # a check written `off` becomes None; one that fails to read keeps its default (the
    # issue recorded stops the load anyway)
    if "window" in m and (window := _duration(r, m["window"], "transfers.window")):
        out = replace(out, window=window)
    size = lambda n, k: _size(r, n, k)  # noqa: E731
    checks: dict[str, Callable[[Node, str], Any]] = {
        "external_bytes": lambda n, k: _threshold(r, n, k, size),
        "distinct_pii": lambda n, k: _threshold(r, n, k, _int(r, 1, 10_000_000)),
        "off_hours": lambda n, k: _off_hours(r, n, k),
        "baseline": lambda n, k: _baseline(r, n, k),
    }
    for name, read in checks.items():
        if name in m:
            key = f"transfers.{name}"
            got = None if _is_off(m[name]) else read(m[name], key)
            if got is not None or _is_off(m[name]):
                out = replace(out, **{name: got})
    if "new_destination" in m:
        got = _switch(r, m["new_destination"], "transfers.new_destination")
        out = replace(out, new_destination=got or out.new_destination)
    return out


def _is_off(node: Node) -> bool:
    return node.value is False or node.value == "off"


def _threshold(
    r: Reader, node: Node, key: str, read_limit: Callable[[Node, str], Any]
) -> Threshold | None:
    m = r.mapping(node, key, ("limit", "action"), ("limit",))
    if m is None or "limit" not in m:
        return None
    limit = read_limit(m["limit"], f"{key}.limit")
    action = r.choice(m["action"], f"{key}.action", ACTIONS) if "action" in m else "alert"
    if limit is None or action is None:
        return None
    return Threshold(float(limit), action)


def _baseline(r: Reader, node: Node, key: str) -> Baseline:
    readers = {
        "factor": _num(r, 1.0, 1000.0),
        "min_bytes": lambda n, k: _size(r, n, k),
        "learn_days": _int(r, 1, 365),
        "action": lambda n, k: r.choice(n, k, ACTIONS),
    }
    return _fill(r, node, key, Baseline(), readers)


def _off_hours(r: Reader, node: Node, key: str) -> OffHours:
    def days(n: Node, k: str) -> tuple[int, ...] | None:
        picked = r.list_of(n, k, lambda d, kk: r.choice(d, kk, DAYS))
        if not picked:
            if n.value == []:
                r.issue(n, k, "no days", "list working days, e.g. [mon, tue, wed, thu, fri]")
            return None
        return tuple(sorted(DAYS.index(d) for d in picked))

    readers = {
        "start": lambda n, k: _clock(r, n, k),
        "end": lambda n, k: _clock(r, n, k),
        "days": days,
        "action": lambda n, k: r.choice(n, k, ACTIONS),
    }
    out = _fill(r, node, key, OffHours(), readers)
    if out.start == out.end:
        r.issue(node, key, f"start and end are both {out.start:%H:%M}", "give working hours")
    return out


# -- back to the wire (`leakguard rules explain --yaml`) ------------------------


def watch_to_wire(watch: Watch) -> dict:
    """Watch → watch.yaml's mapping; loading it gives an equal Watch."""
    lw, tw = watch.logins, watch.transfers

    def plain(obj: Any) -> dict:
        return {f.name: _number(getattr(obj, f.name)) for f in fields(obj)}

    def off_or(value: Any, shape: Callable[[Any], Any]) -> Any:
        return "off" if value is None else shape(value)

    return {
        "logins": {
            "failures": plain(lw.failures),
            "spraying": plain(lw.spraying),
            "unusual": plain(lw.unusual),
            "web_apps": {
                w.name: {
                    "host": w.host,
                    "path": w.path,
                    "username_field": w.username_field,
                    "failure": {
                        "status": {"status": list(w.failure.statuses)},
                        "redirect": {"redirect": w.failure.location},
                        "body": {"body": w.failure.marker},
                    }[w.failure.kind],
                }
                for w in lw.web_apps
            },
        },
        "transfers": {
            "window": _number(tw.window),
            "external_bytes": off_or(tw.external_bytes, plain),
            "distinct_pii": off_or(tw.distinct_pii, plain),
            "new_destination": tw.new_destination,
            "off_hours": off_or(
                tw.off_hours,
                lambda o: {
                    "start": f"{o.start:%H:%M}",
                    "end": f"{o.end:%H:%M}",
                    "days": [DAYS[d] for d in o.days],
                    "action": o.action,
                },
            ),
            "baseline": off_or(tw.baseline, plain),
        },
    }


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value
