"""The internal key: how services (agents, the dispatcher, other instances) prove who they are.
Compared in constant time, by the app and by every agent."""

from __future__ import annotations

import hmac

HEADER = "X-Internal-Key"


def key_matches(given: str | None, expected: str | None) -> bool:
    """True when both are set and equal (an unset key never matches, not even an empty one)."""
    return given is not None and expected is not None and hmac.compare_digest(given.encode(), expected.encode())
