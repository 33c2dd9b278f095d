"""Strict YAML reading that remembers where every value came from.

PyYAML's composer gives nodes with marks; we turn them into `Node`s that
keep the line, and refuse what a hand-edited file gets wrong silently:
duplicate keys (YAML keeps the last one), non-text keys, several documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rules.policy.errors import Issue, PolicyError

MAX_POLICY_FILE_BYTES = 4 * 1024 * 1024  # a policy is hand-written; anything larger is a mistake
MAX_NODES = 200_000  # aliases can multiply a small file ("billion laughs"): stop early


@dataclass(frozen=True, slots=True)
class Node:
    """A YAML value with its line. `value` is a dict of str → Node, a list of Node, or a scalar."""

    value: Any
    line: int
    file: str

    @property
    def kind(self) -> str:
        if isinstance(self.value, dict):
            return "mapping"
        if isinstance(self.value, list):
            return "list"
        return "scalar"

    def plain(self) -> Any:
        """The value without line numbers (for messages and round trips)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def read(path: Path, display: str | None = None) -> Node:
    """Parse one policy file. Raises PolicyError naming the file and line."""
    name = display or path.name
    try:
        size = path.stat().st_size
        if size > MAX_POLICY_FILE_BYTES:
            raise PolicyError(
                [
                    Issue(
                        name,
                        0,
                        "",
                        f"file is {size} bytes; a policy file "
                        f"is at most {MAX_POLICY_FILE_BYTES} bytes",
                    )
                ]
            )
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise PolicyError(
            [
                Issue(
                    name,
                    0,
                    "",
                    f"not UTF-8 text ({err.reason} at byte {err.start})",
                    "save the file as UTF-8",
                )
            ]
        ) from None
    except OSError as err:
        raise PolicyError([Issue(name, 0, "", f"cannot read: {err.strerror}")]) from None
    return parse(text, name)


def parse(text: str, name: str) -> Node:
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else 0
        raise PolicyError([Issue(name, line, "", f"not valid YAML: {err.problem}")]) from None
    except yaml.YAMLError as err:
        raise PolicyError([Issue(name, 0, "", f"not valid YAML: {err}")]) from None
    documents = [d for d in documents if d is not None]
    if not documents:
        raise PolicyError([Issue(name, 0, "", "the file is empty", "start it with `version: 1`")])
    if len(documents) > 1:
        line = documents[1].start_mark.line + 1
        raise PolicyError(
            [Issue(name, line, "", "a second YAML document ('---')", "keep one document per file")]
        )
    issues: list[Issue] = []
    budget = [MAX_NODES]
    node = _convert(documents[0], name, issues, yaml.SafeLoader(""), frozenset(), budget)
    if budget[0] < 0:
        issues.append(
            Issue(
                name,
                0,
                "",
                f"more than {MAX_NODES} values once aliases are expanded",
                "write the values out, or use fewer aliases",
            )
        )
    if issues:
        raise PolicyError(issues)
    return node


def _convert(
    node: yaml.Node,
    name: str,
    issues: list[Issue],
    loader: yaml.SafeLoader,
    path: frozenset[int],
    budget: list[int],
) -> Node:
    line = node.start_mark.line + 1
    budget[0] -= 1
    if budget[0] < 0:
        return Node(None, line, name)
    if id(node) in path:  # `&a [*a]`: an alias inside itself
        issues.append(Issue(name, line, "", "a recursive alias", "an alias cannot contain itself"))
        return Node(None, line, name)
    inner = path | {id(node)}
    if isinstance(node, yaml.MappingNode):
        try:
            loader.flatten_mapping(node)  # resolves `<<:` merge keys
        except yaml.YAMLError as err:
            issues.append(Issue(name, line, "", f"bad merge key (`<<:`): {_problem(err)}"))
            return Node({}, line, name)
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = _scalar(key_node, loader) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                issues.append(Issue(name, key_line, str(key), "keys must be text", "quote the key"))
                continue
            if key in out:
                issues.append(
                    Issue(
                        name,
                        key_line,
                        key,
                        f"duplicate key (first on line {out[key].line})",
                        "YAML keeps only the last; merge them",
                    )
                )
                continue
            out[key] = _convert(value_node, name, issues, loader, inner, budget)
        return Node(out, line, name)
    if isinstance(node, yaml.SequenceNode):
        return Node(
            [_convert(i, name, issues, loader, inner, budget) for i in node.value], line, name
        )
    try:
        return Node(loader.construct_object(node), line, name)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as err:
        if node.tag == "tag:yaml.org,2002:timestamp" and "!!" not in str(node.value):
            # looks like a date but is none (2027-02-30): the reader names the key and the fix
            return Node(str(node.value), line, name)
        # a tag that does not fit (`!!int https`), an impossible date (2027-02-30), …
        issues.append(
            Issue(
                name,
                line,
                "",
                f"cannot read value {node.value!r}: {_problem(err)}",
                "quote it to mean text",
            )
        )
        return Node(None, line, name)


def _scalar(node: yaml.ScalarNode, loader: yaml.SafeLoader) -> object:
    try:
        return loader.construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        return None


def _problem(err: Exception) -> str:
    return getattr(err, "problem", None) or str(err)
