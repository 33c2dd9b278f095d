"""The judge rigs the mail tests share: policies and engines built once per module."""

from __future__ import annotations

import pytest

from tests.mailrelay.test_judge_rig import MAIL_POLICY, Shared


@pytest.fixture(scope="module")
def shared() -> Shared:
    return Shared()


@pytest.fixture
def rig(shared, tmp_path):
    """The shipped policy."""
    return shared.rig(tmp_path)


@pytest.fixture
def mail_rig(shared, tmp_path):
    """The mail tests' policy (tests/data/mail/policy): parties with encryption scopes."""
    return shared.rig(tmp_path, MAIL_POLICY)
