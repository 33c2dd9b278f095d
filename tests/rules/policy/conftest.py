from __future__ import annotations

import textwrap

import pytest

from rules.policy import Policy, load_policy
from tests.rules.policy.common import DEFAULT_DIR, write_policy


@pytest.fixture(scope="session")
def default() -> Policy:
    return load_policy(DEFAULT_DIR)


@pytest.fixture
def make_policy(tmp_path):
    """make_policy(rules="…", zones="…") → the base policy with those files replaced, loaded.

    Keys are file stems (zones, destinations, parties, classes, rules) or full file names.
    """
    count = 0

    def make(**files: str | None) -> Policy:
        nonlocal count
        count += 1
        named = {
            (k if k.endswith(".yaml") else f"{k}.yaml"): (
                textwrap.dedent(v) if isinstance(v, str) else v
            )
            for k, v in files.items()
        }
        return load_policy(write_policy(tmp_path / f"policy{count}", named))

    return make
