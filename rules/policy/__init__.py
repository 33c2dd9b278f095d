"""The policy: zones, destinations, parties, data classes and rules (YAML) → Verdicts.

load_policy(DIR) → Policy          strict; PolicyError lists every issue
evaluate(policy, findings, Context) → Verdict   pure; the zero Verdict blocks
PolicyHolder(DIR)                  the policy in use, reloaded atomically
"""

from rules.policy.decision import Context, Place, Reported, Verdict
from rules.policy.errors import Issue, PolicyError
from rules.policy.evaluate import evaluate
from rules.policy.model import Action, Level, Mode, Policy
from rules.policy.wire import load_policy

__all__ = [
    "Action", "Context", "Issue", "Level", "Mode", "Place", "Policy", "PolicyError", "Reported",
    "Verdict", "evaluate", "load_policy",
]  # fmt: skip
