"""Policy files → domain objects. The wire schema lives here and only here.

One directory, five files, each starting with `version: 1`:
zones.yaml, destinations.yaml, parties.yaml, classes.yaml, rules.yaml,
and optionally a sixth, watch.yaml (rules.policy.watch_wire).
Names are checked across files (a rule naming an unknown zone, class or
party is an error at load time, not a rule that silently never matches).
"""

from __future__ import annotations

import ipaddress
import re
import string
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rules.custom import resolve_validator
from rules.detectors import DETECTORS
from rules.findings import ENCRYPTED_ARCHIVE, UNINSPECTABLE
from rules.policy import yamlsrc
from rules.policy.errors import Issue, PolicyError, did_you_mean
from rules.policy.index import compile_policy
from rules.policy.model import (
    CHANNELS,
    EXTERNAL,
    MAIL_ONLY_ACTIONS,
    Action,
    Category,
    Conditions,
    CustomSpec,
    DataClass,
    Level,
    Mode,
    Party,
    Policy,
    Reach,
    Rule,
    Zone,
)
from rules.policy.reader import Reader
from rules.policy.watch_wire import FILE as WATCH_FILE
from rules.policy.watch_wire import parse_watch
from rules.policy.yamlsrc import Node

VERSION = 1
FILES = ("zones.yaml", "destinations.yaml", "parties.yaml", "classes.yaml", "rules.yaml")
OPTIONAL_FILES = (WATCH_FILE,)  # absent: the defaults
PROBLEM_DETECTORS = (UNINSPECTABLE, ENCRYPTED_ARCHIVE)
MESSAGE_FIELDS = ("rule", "reason", "destination", "action")
CONDITION_KEYS = (
    "source_zone", "source", "user", "group", "channel", "destination_zone", "category",
    "host", "party", "class", "level", "detector", "min_distinct", "bulk", "uninspectable",
)  # fmt: skip


def load_policy(directory: str | Path) -> Policy:
    """Read, validate and build a policy. Raises PolicyError listing every problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError(
            [
                Issue(
                    str(directory),
                    0,
                    "",
                    "not a directory",
                    "give the directory holding zones.yaml, rules.yaml, …",
                )
            ]
        )
    issues: list[Issue] = []
    docs: dict[str, dict[str, Node]] = {}
    for path in sorted(directory.glob("*.y*ml")):
        if path.name not in FILES + OPTIONAL_FILES:
            issues.append(
                Issue(
                    path.name,
                    0,
                    "",
                    "not a policy file",
                    did_you_mean(path.name, FILES + OPTIONAL_FILES) + " (or move it away)",
                )
            )
    for name in FILES:
        path = directory / name
        if not path.exists():
            issues.append(Issue(name, 0, "", "missing", f"create {name} with `version: 1`"))
            continue
        try:
            docs[name] = _versioned(yamlsrc.read(path), name, issues)
        except PolicyError as err:
            issues.extend(err.issues)
    watch_doc = None
    if (directory / WATCH_FILE).exists():
        try:
            watch_doc = _versioned(yamlsrc.read(directory / WATCH_FILE), WATCH_FILE, issues)
        except PolicyError as err:
            issues.extend(err.issues)
    if any(not i.warning for i in issues):
        raise PolicyError(issues)
    builder = _Builder(docs)
    policy = builder.build(source=str(directory))
    issues.extend(builder.issues)
    if watch_doc is not None:
        watch_reader = Reader(WATCH_FILE)
        policy = replace(policy, watch=parse_watch(watch_doc, watch_reader, directory))
        issues.extend(watch_reader.issues)
    if any(not i.warning for i in issues):
        raise PolicyError(issues)

    warnings = tuple(str(i) for i in issues)
    return compile_policy(policy, warnings)


_PLACE_WORDS = {"domains": "domain", "mail_domains": "mail domain", "addresses": "address"}


def _quiet_network(value: object):
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return None


def _versioned(node: Node, name: str, issues: list[Issue]) -> dict[str, Node]:
    if node.kind != "mapping":
        issues.append(Issue(name, node.line, "", "expected a mapping at the top of the file"))
        return {}
    version = node.value.get("version")
    if version is None:
        issues.append(
            Issue(name, node.line, "version", "missing", "start the file with `version: 1`")
        )
    elif type(version.value) is not int or version.value != VERSION:  # `true == 1` in Python
        issues.append(
            Issue(
                name,
                version.line,
                "version",
                f"version {version.value!r} is not supported",
                f"this leakguard reads `version: {VERSION}`",
            )
        )
    return {k: v for k, v in node.value.items() if k != "version"}


class _Builder:
    def __init__(self, docs: dict[str, dict[str, Node]]) -> None:
        self.docs = docs
        self.readers = {name: Reader(name) for name in FILES}

    @property
    def issues(self) -> list[Issue]:
        out = [i for r in self.readers.values() for i in r.issues]
        return sorted(out, key=lambda i: (FILES.index(i.file) if i.file in FILES else 9, i.line))

    def top(self, name: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
        doc = self.docs.get(name, {})
        r = self.readers[name]
        node = Node(doc, 1, name)
        return r.mapping(node, "", allowed, required) or {}

    def build(self, source: str) -> Policy:
        zones, reach = self.zones()
        categories, passthrough = self.destinations()
        classes, custom = self.classes()
        parties = self.parties(classes, custom)
        settings, rules = self.rules(zones, categories, parties, classes, custom)
        return Policy(
            zones=zones,
            reach=reach,
            categories=categories,
            parties=parties,
            classes=classes,
            rules=rules,
            custom_detectors=custom,
            tls_passthrough=passthrough,
            source=source,
            **settings,
        )

    # -- zones.yaml -----------------------------------------------------------

    def zones(self) -> tuple[tuple[Zone, ...], tuple[Reach, ...]]:
        r = self.readers["zones.yaml"]
        top = self.top("zones.yaml", ("zones", "reach"), ("zones", "reach"))
        zones: list[Zone] = []
        claimed: dict = {}
        for name, node in r.entries(top.get("zones", Node({}, 1, "")), "zones").items():
            key = f"zones.{name}"
            if name == EXTERNAL:
                r.issue(
                    node,
                    key,
                    "`external` is every address no zone claims; it cannot be declared",
                    "remove it, or give the zone another name",
                )
                continue
            m = r.mapping(
                node, key, ("cidrs", "domains", "mail_domains", "description"), ("cidrs",)
            )
            if m is None:
                continue
            cidrs = r.list_of(m["cidrs"], f"{key}.cidrs", r.network) if "cidrs" in m else ()
            listed = m["cidrs"].value if "cidrs" in m and m["cidrs"].kind == "list" else ()
            for item in listed:
                net = _quiet_network(item.value)
                if net is None:
                    continue
                if net in claimed and claimed[net] != name:
                    r.issue(
                        item,
                        f"{key}.cidrs",
                        f"{net} is also in zone {claimed[net]}",
                        "an address belongs to one zone; use a more specific network",
                    )
                claimed.setdefault(net, name)
            zones.append(
                Zone(
                    name,
                    cidrs,
                    r.list_of(m["domains"], f"{key}.domains", r.domain) if "domains" in m else (),
                    r.list_of(m["mail_domains"], f"{key}.mail_domains", r.domain)
                    if "mail_domains" in m
                    else (),
                    self._text(r, m, "description", key),
                )
            )
        names = {z.name for z in zones} | {EXTERNAL}
        reach = []
        for item in r.items(top.get("reach", Node([], 1, "")), "reach"):
            allowed = ("from", "to", "ports", "channels", "inspect", "mode", "description")
            m = r.mapping(item, "reach", allowed, ("from", "to"))
            if m is None or "from" not in m or "to" not in m:
                continue
            src = self._zone_ref(r, m["from"], "reach.from", names)
            dst = self._zone_ref(r, m["to"], "reach.to", names)
            ports = (
                r.list_of(m["ports"], "reach.ports", lambda n, k: r.integer(n, k, 1, 65535))
                if "ports" in m
                else ()
            )
            channels = (
                frozenset(
                    r.list_of(
                        m["channels"], "reach.channels", lambda n, k: r.choice(n, k, CHANNELS)
                    )
                )
                if "channels" in m
                else frozenset()
            )
            inspect = r.flag(m["inspect"], "reach.inspect") if "inspect" in m else True
            mode = (
                Mode(r.choice(m["mode"], "reach.mode", [x.value for x in Mode]) or "enforce")
                if "mode" in m
                else Mode.ENFORCE
            )
            for name in ("ports", "channels"):
                if name in m and m[name].value == []:
                    r.issue(
                        m[name],
                        f"reach.{name}",
                        "empty list",
                        f"leave `{name}` out to allow any, or list some",
                    )
            if src and dst:
                if src == EXTERNAL and dst != EXTERNAL:
                    r.warn(
                        item,
                        "reach",
                        f"lets the external network reach zone {dst}",
                        "make sure this is intended: it opens an internal zone to the internet",
                    )
                reach.append(Reach(src, dst, frozenset(ports), channels, bool(inspect), mode))
        return tuple(zones), tuple(reach)

    def _zone_ref(self, r: Reader, node: Node, key: str, names: set[str]) -> str | None:
        if not isinstance(node.value, str):
            r.issue(node, key, "expected one zone name", "write `from: office`, one entry per pair")
            return None
        if node.value in names:
            return node.value
        r.issue(node, key, f"unknown zone {node.value!r}", did_you_mean(str(node.value), names))
        return None

    @staticmethod
    def _text(r: Reader, m: dict, key: str, where: str) -> str:
        return (r.text(m[key], f"{where}.{key}") or "") if key in m else ""

    # -- destinations.yaml ---------------------------------------------------

    def destinations(self) -> tuple[tuple[Category, ...], tuple[str, ...]]:
        r = self.readers["destinations.yaml"]
        top = self.top("destinations.yaml", ("categories", "tls_passthrough"), ("categories",))
        out = []
        for name, node in r.entries(top.get("categories", Node({}, 1, "")), "categories").items():
            key = f"categories.{name}"
            allowed = ("domains", "hosts", "cidrs", "mail_domains", "description")
            m = r.mapping(node, key, allowed)
            if m is None:
                continue
            lists = {
                k: r.list_of(m[k], f"{key}.{k}", r.network if k == "cidrs" else r.domain)
                for k in ("domains", "hosts", "cidrs", "mail_domains")
                if k in m
            }
            if not any(lists.values()):
                r.warn(node, key, "matches nothing", "list domains, hosts, cidrs or mail_domains")
            out.append(Category(name, description=self._text(r, m, "description", key), **lists))
        passthrough = ()
        if "tls_passthrough" in top:
            passthrough = r.list_of(top["tls_passthrough"], "tls_passthrough", r.domain)
        return tuple(out), passthrough

    # -- classes.yaml --------------------------------------------------------

    def classes(self) -> tuple[tuple[DataClass, ...], tuple[CustomSpec, ...]]:
        r = self.readers["classes.yaml"]
        top = self.top("classes.yaml", ("classes", "detectors"), ("classes",))
        custom = []
        for name, node in r.entries(top.get("detectors", Node({}, 1, "")), "detectors").items():
            custom.extend(self._custom(r, name, node))
        detector_ids = set(DETECTORS) | {c.id for c in custom}
        owner: dict[str, str] = {}
        out = []
        for name, node in r.entries(top.get("classes", Node({}, 1, "")), "classes").items():
            key = f"classes.{name}"
            m = r.mapping(
                node, key, ("level", "detectors", "bulk", "description"), ("level", "detectors")
            )
            if m is None or "level" not in m or "detectors" not in m:
                continue
            level = r.choice(m["level"], f"{key}.level", [lv.value for lv in Level])
            detectors = r.names_in(m["detectors"], f"{key}.detectors", detector_ids, "detector")
            for item in m["detectors"].value if m["detectors"].kind == "list" else ():
                if item.value in owner and item.value in detectors and owner[item.value] != name:
                    r.issue(
                        item,
                        f"{key}.detectors",
                        f"detector {item.value} is already in class {owner[item.value]}",
                        "a detector feeds one class",
                    )
                owner.setdefault(item.value, name)
            bulk = r.integer(m["bulk"], f"{key}.bulk", 1, 10_000_000) if "bulk" in m else None
            if level:
                out.append(
                    DataClass(
                        name,
                        Level(level),
                        tuple(sorted(detectors)),
                        bulk,
                        self._text(r, m, "description", key),
                    )
                )
        for detector in sorted(detector_ids - set(owner)):
            r.warn(
                1,
                "classes",
                f"detector {detector} is in no class",
                "its findings count as class `unclassified`, level basic",
            )
        return tuple(out), tuple(custom)

    def _custom(self, r: Reader, name: str, node: Node) -> list[CustomSpec]:
        key = f"detectors.{name}"
        if name in DETECTORS or name in PROBLEM_DETECTORS:
            r.issue(node, key, f"{name} is a built-in detector", "give yours another name")
            return []
        allowed = ("keywords", "regex", "validator", "score", "case_sensitive", "description")
        m = r.mapping(node, key, allowed)
        if m is None:
            return []
        if ("keywords" in m) == ("regex" in m):
            r.issue(node, key, "needs exactly one of `keywords` or `regex`")
            return []
        score = r.number(m["score"], f"{key}.score", 0.0, 1.0) if "score" in m else 0.8
        if score is None:
            return []
        description = self._text(r, m, "description", key)
        if "keywords" in m:
            words = r.list_of(m["keywords"], f"{key}.keywords", r.text)
            if not words or any(not w.strip() for w in words):
                r.issue(m["keywords"], f"{key}.keywords", "needs at least one non-empty keyword")
                return []
            if "validator" in m:
                r.issue(m["validator"], f"{key}.validator", "only a regex has a validator")
            case = (
                r.flag(m["case_sensitive"], f"{key}.case_sensitive")
                if "case_sensitive" in m
                else False
            )
            return [
                CustomSpec(
                    name,
                    words=words,
                    score=score,
                    case_sensitive=bool(case),
                    description=description,
                )
            ]
        pattern = r.text(m["regex"], f"{key}.regex")
        if pattern is None:
            return []
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            r.issue(m["regex"], f"{key}.regex", f"invalid regex: {err}")
            return []
        if compiled.match(""):
            r.issue(
                m["regex"],
                f"{key}.regex",
                "matches the empty string",
                "a detector must match at least one character",
            )
            return []
        validator = None
        if "validator" in m:
            validator = r.text(m["validator"], f"{key}.validator")
            try:
                resolve_validator(validator or "")
            except ValueError as err:
                r.issue(m["validator"], f"{key}.validator", str(err))
                return []
        return [
            CustomSpec(
                name,
                pattern=pattern,
                validator=validator,
                score=score,
                description=description,
            )
        ]

    # -- parties.yaml --------------------------------------------------------

    def parties(
        self, classes: tuple[DataClass, ...], custom: tuple[CustomSpec, ...]
    ) -> tuple[Party, ...]:
        r = self.readers["parties.yaml"]
        top = self.top("parties.yaml", ("parties",), ("parties",))
        class_names = {c.name for c in classes}
        maskable = class_names | set(DETECTORS) | {c.id for c in custom}
        out = []
        owners: dict[tuple[str, str], str] = {}  # (kind, place) → party: one party per place
        for pid, node in r.entries(top.get("parties", Node({}, 1, "")), "parties").items():
            key = f"parties.{pid}"
            allowed = (
                "name",
                "domains",
                "mail_domains",
                "addresses",
                "receives",
                "mask",
                "encrypt_mail",
                "encrypt_scope",
                "certificate",
                "agreement",
                "valid_from",
                "valid_until",
            )
            m = r.mapping(node, key, allowed, ("name", "receives", "valid_until"))
            if m is None or "name" not in m or "receives" not in m:
                continue
            lists = {
                k: r.list_of(m[k], f"{key}.{k}", r.domain)
                for k in ("domains", "mail_domains")
                if k in m
            }
            if "addresses" in m:
                lists["addresses"] = r.list_of(m["addresses"], f"{key}.addresses", r.mail_address)
            for kind in ("domains", "mail_domains", "addresses"):
                for item in m[kind].value if kind in m and m[kind].kind == "list" else ():
                    place = (kind, str(item.value).strip().lower().rstrip("."))
                    if owners.setdefault(place, pid) != pid:
                        r.issue(
                            item,
                            f"{key}.{kind}",
                            f"{_PLACE_WORDS[kind]} {place[1]} belongs to several parties: "
                            f"{owners[place]}, {pid}",
                            "a destination belongs to one party",
                        )
            if not any(lists.values()):
                r.issue(
                    node,
                    key,
                    "names no domains, mail_domains or addresses",
                    "say where this party receives data",
                )
            valid_from = r.day(m["valid_from"], f"{key}.valid_from") if "valid_from" in m else None
            valid_until = (
                r.day(m["valid_until"], f"{key}.valid_until") if "valid_until" in m else None
            )
            if valid_from and valid_until and valid_until < valid_from:
                r.issue(
                    m["valid_until"],
                    f"{key}.valid_until",
                    f"ends ({valid_until}) before it starts ({valid_from})",
                )
            out.append(
                Party(
                    pid,
                    r.text(m["name"], f"{key}.name") or pid,
                    r.names_in(m["receives"], f"{key}.receives", class_names, "class"),
                    mask=r.names_in(m["mask"], f"{key}.mask", maskable, "class or detector")
                    if "mask" in m
                    else frozenset(),
                    encrypt_mail=r.choice(
                        m["encrypt_mail"], f"{key}.encrypt_mail", ("always", "by-rule")
                    )
                    or "by-rule"
                    if "encrypt_mail" in m
                    else "by-rule",
                    encrypt_scope=r.choice(
                        m["encrypt_scope"], f"{key}.encrypt_scope", ("message", "attachments")
                    )
                    or "message"
                    if "encrypt_scope" in m
                    else "message",
                    certificate=r.text(m["certificate"], f"{key}.certificate")
                    if "certificate" in m
                    else None,
                    agreement=self._text(r, m, "agreement", key),
                    valid_from=valid_from,
                    valid_until=valid_until,
                    **lists,
                )
            )
        return tuple(out)

    # -- rules.yaml ----------------------------------------------------------

    def rules(self, zones, categories, parties, classes, custom) -> tuple[dict, tuple[Rule, ...]]:
        r = self.readers["rules.yaml"]
        top = self.top("rules.yaml", ("mode", "timezone", "default_action", "rules"), ("rules",))
        settings: dict = {}
        if "mode" in top:
            settings["mode"] = Mode(
                r.choice(top["mode"], "mode", [m.value for m in Mode]) or "enforce"
            )
        if "default_action" in top:
            web_too = [a.value for a in Action if a not in MAIL_ONLY_ACTIONS]
            node = top["default_action"]
            if node.value in {a.value for a in MAIL_ONLY_ACTIONS}:
                r.issue(
                    node,
                    "default_action",
                    f"`{node.value}` applies only to mail, and the "
                    "default applies to web uploads too",
                    "use " + ", ".join(web_too),
                )
            elif chosen := r.choice(node, "default_action", web_too):
                settings["default_action"] = Action(chosen)
        if "timezone" in top:
            tz = r.text(top["timezone"], "timezone")
            try:
                ZoneInfo(tz or "")
                settings["timezone"] = tz
            except (ZoneInfoNotFoundError, ValueError):
                r.issue(
                    top["timezone"],
                    "timezone",
                    f"unknown time zone {tz!r}",
                    "use an IANA name such as Asia/Shanghai",
                )
        known = {
            "zone": {z.name for z in zones} | {EXTERNAL},
            "category": {c.name for c in categories},
            "party": {p.id for p in parties},
            "class": {c.name for c in classes} | {"unclassified"},
            "detector": set(DETECTORS) | {c.id for c in custom} | set(PROBLEM_DETECTORS),
        }
        default_mode = settings.get("mode", Mode.ENFORCE)
        out: list[Rule] = []
        seen: dict[str, int] = {}
        catch_all: Rule | None = None
        for node in r.items(top.get("rules", Node([], 1, "")), "rules"):
            rule = self._rule(r, node, known, default_mode)
            if rule is None:
                continue
            if rule.id in seen:
                r.issue(
                    node,
                    f"rules.{rule.id}",
                    f"duplicate rule id (first on line {seen[rule.id]})",
                    "rule ids must be unique",
                )
                continue
            seen[rule.id] = node.line
            if catch_all is not None:
                r.warn(
                    node,
                    f"rules.{rule.id}",
                    f"never reached: rule {catch_all.id} (line "
                    f"{catch_all.line}) matches everything before it",
                )
            elif rule.when == Conditions() and rule.mode is Mode.ENFORCE:
                catch_all = rule
            out.append(rule)
        return settings, tuple(out)

    def _rule(self, r: Reader, node: Node, known: dict, default_mode: Mode) -> Rule | None:
        allowed = ("id", "description", "when", "action", "mode", "message")
        m = r.mapping(node, "rules[]", allowed, ("id", "action"))
        if m is None or "id" not in m or "action" not in m:
            return None
        rid = r.name(m["id"].value, "rules[].id", m["id"])
        if rid is None:
            return None
        key = f"rules.{rid}"
        action = r.choice(m["action"], f"{key}.action", [a.value for a in Action])
        mode = (
            r.choice(m["mode"], f"{key}.mode", [x.value for x in Mode])
            if "mode" in m
            else default_mode.value
        )
        when = self._conditions(r, m["when"], f"{key}.when", known) if "when" in m else Conditions()
        message = self._text(r, m, "message", key)
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(message) if f is not None]
        except ValueError as err:  # a lone `{` or `}`
            fields = []
            r.issue(
                m["message"],
                f"{key}.message",
                f"cannot be used as a template: {err}",
                "write a literal brace as {{ or }}",
            )
        for field_name in fields:
            if field_name not in MESSAGE_FIELDS:
                r.issue(
                    m["message"],
                    f"{key}.message",
                    f"unknown placeholder {{{field_name}}}",
                    "use " + ", ".join(f"{{{f}}}" for f in MESSAGE_FIELDS),
                )
        if action is None or mode is None or when is None:
            return None
        action = Action(action)
        if action in MAIL_ONLY_ACTIONS and when.channel != frozenset({"smtp"}):
            r.issue(
                m["action"],
                f"{key}.action",
                f"`{action}` applies only to mail",
                "add `channel: [smtp]` under `when`",
            )
            return None
        return Rule(
            rid,
            when,
            action,
            Mode(mode),
            message,
            self._text(r, m, "description", key),
            node.line,
            "rules.yaml",
        )

    def _conditions(self, r: Reader, node: Node, key: str, known: dict) -> Conditions | None:
        m = r.mapping(node, key, CONDITION_KEYS)
        if m is None:
            return None
        before = len(r.issues)
        c: dict = {}

        def names(name: str, kind: str, field_name: str | None = None) -> None:
            if name in m:
                c[field_name or name] = r.names_in(m[name], f"{key}.{name}", known[kind], kind)

        names("source_zone", "zone")
        names("destination_zone", "zone")
        names("category", "category")
        names("class", "class", "data_class")
        names("detector", "detector")
        if "source" in m:
            c["source"] = r.list_of(m["source"], f"{key}.source", r.network)
        for name in ("user", "group"):
            if name in m:
                c[name] = frozenset(r.list_of(m[name], f"{key}.{name}", r.text))
        if "channel" in m:
            c["channel"] = frozenset(
                r.list_of(m["channel"], f"{key}.channel", lambda n, k: r.choice(n, k, CHANNELS))
            )
        if "level" in m:
            c["level"] = frozenset(
                Level(v)
                for v in r.list_of(
                    m["level"],
                    f"{key}.level",
                    lambda n, k: r.choice(n, k, [x.value for x in Level]),
                )
            )
        if "host" in m:
            c["host"] = r.list_of(m["host"], f"{key}.host", r.domain)
        if "party" in m:
            p = m["party"]
            if p.value in ("any", "none"):
                c["party"] = p.value
            elif p.kind == "list":
                c["party"] = r.names_in(p, f"{key}.party", known["party"], "party")
            else:
                r.issue(
                    p,
                    f"{key}.party",
                    f"{p.value!r} is not allowed",
                    "write `any`, `none` or a list of party ids",
                )
        if "min_distinct" in m:
            c["min_distinct"] = r.integer(m["min_distinct"], f"{key}.min_distinct", 1, 10_000_000)
        for name in ("bulk", "uninspectable"):
            if name in m:
                c[name] = r.flag(m[name], f"{key}.{name}")
        for name, value in c.items():
            if value in (frozenset(), ()) and name in m:
                r.issue(
                    m[name],
                    f"{key}.{name}",
                    "empty list: the rule could never match",
                    f"remove `{name}` or list something",
                )
        if len(r.issues) > before and any(not i.warning for i in r.issues[before:]):
            return None
        return Conditions(**c)
