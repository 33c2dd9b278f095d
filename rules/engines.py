"""One scan engine per thread and policy, for the proxy's and the relay's worker threads.

An Engine holds scratch state that must not be shared between threads, and
its custom detectors come from the policy, so a reload brings a new engine.
"""

from __future__ import annotations

import threading

from rules.engine import Engine
from rules.policy import Policy


class EnginePerThread:
    def __init__(self, hash_key: bytes) -> None:
        self.hash_key = hash_key
        self._local = threading.local()

    def get(self, policy: Policy) -> Engine:
        cached = getattr(self._local, "engine", None)
        if cached is None or cached[0] is not policy:
            engine = Engine(
                hash_key=self.hash_key, custom=[s.build() for s in policy.custom_detectors]
            )
            self._local.engine = cached = (policy, engine)
        return cached[1]
