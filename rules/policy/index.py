"""Precomputed lookups so a decision costs the same with ten rules or a thousand.

For each condition (channel, zones, categories, classes, …) the index keeps
one integer bitset per value: bit i is set when rule i can match that value
(rules without the condition are set for every value). AND-ing the sets for
a decision's facts leaves the few rules that may match, in order; each is
then checked in full by `facts.matches`, which alone decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from rules.policy.facts import Facts
from rules.policy.model import Conditions, DataClass, Policy, Rule
from rules.policy.places import Places, network_bits, plain_ip


class _Dimension:
    def __init__(
        self, rules: tuple[Rule, ...], condition: Callable[[Conditions], Iterable | None]
    ) -> None:
        self.unconditioned = 0
        self.by_value: dict[object, int] = {}
        for i, rule in enumerate(rules):
            values = condition(rule.when)
            if not values:
                self.unconditioned |= 1 << i
                continue
            for v in values:
                self.by_value[v] = self.by_value.get(v, 0) | (1 << i)

    def allowed(self, facts: Iterable) -> int:
        mask = self.unconditioned
        for v in facts:
            mask |= self.by_value.get(v, 0)
        return mask


def _suffixes(host: str) -> list[str]:
    """mail.qq.com → mail.qq.com, qq.com, com: the domains a host is under."""
    labels = host.split(".") if host else []
    return [".".join(labels[i:]) for i in range(len(labels))]


def _network_key(net) -> tuple[int, int, int]:
    return (net.version, net.prefixlen, int(net.network_address))


class _SourceDimension(_Dimension):
    """Source networks: the facts are the client address cut to each prefix length in use."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        super().__init__(rules, lambda w: [_network_key(n) for n in w.source])
        self.lengths = sorted({(v, plen) for v, plen, _ in self.by_value})

    def keys(self, facts: Facts) -> list[tuple[int, int, int]]:
        if facts.ctx.source_ip is None:
            return []
        ip = plain_ip(facts.ctx.source_ip)
        return [(v, plen, network_bits(ip, plen)) for v, plen in self.lengths if v == ip.version]


def _party_values(w: Conditions):
    if not w.party:
        return None
    return (w.party,) if isinstance(w.party, str) else w.party


def _flag(value: bool | None):
    return None if value is None else (value,)


class RuleIndex:
    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.dimensions: list[tuple[_Dimension, Callable[[Facts], Iterable]]] = [
            (_Dimension(rules, lambda w: w.channel), lambda f: (f.ctx.channel,)),
            (_Dimension(rules, lambda w: w.source_zone), lambda f: (f.place.source_zone,)),
            (
                _Dimension(rules, lambda w: w.destination_zone),
                lambda f: (f.place.destination_zone,),
            ),
            (_Dimension(rules, lambda w: w.category), lambda f: f.place.categories),
            (_Dimension(rules, lambda w: w.user), lambda f: (f.ctx.user,)),
            (_Dimension(rules, lambda w: w.group), lambda f: f.ctx.groups),
            (_Dimension(rules, lambda w: w.data_class), lambda f: f.classes),
            (_Dimension(rules, lambda w: w.level), lambda f: f.levels),
            (_Dimension(rules, lambda w: w.detector), lambda f: f.detectors),
            (
                _Dimension(rules, _party_values),
                lambda f: ("any", f.place.party) if f.place.party else ("none",),
            ),
            (_Dimension(rules, lambda w: _flag(w.uninspectable)), lambda f: (f.uninspectable,)),
            (_Dimension(rules, lambda w: w.host), lambda f: _suffixes(f.host)),
        ]
        source = _SourceDimension(rules)
        self.dimensions.append((source, source.keys))
        self.everything = (1 << len(rules)) - 1

    def candidates(self, facts: Facts) -> Iterator[Rule]:
        """Rules that may match, in policy order."""
        mask = self.everything
        for dimension, values in self.dimensions:
            mask &= dimension.allowed(values(facts))
            if not mask:
                return
        while mask:
            low = mask & -mask
            yield self.rules[low.bit_length() - 1]
            mask ^= low


@dataclass(frozen=True)
class Compiled:
    places: Places
    rules: RuleIndex
    owner: dict[str, DataClass]  # detector → the class it feeds


def compile_policy(policy: Policy, warnings: tuple[str, ...] = ()) -> Policy:
    """The policy with its lookups built (raises PolicyError if they are ambiguous)."""
    bare = replace(policy, warnings=warnings, compiled=None)
    owner = {d: c for c in bare.classes for d in c.detectors}
    return replace(bare, compiled=Compiled(Places(bare), RuleIndex(bare.rules), owner))
