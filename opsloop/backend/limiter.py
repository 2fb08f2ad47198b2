"""A per-address guessing limiter: exponential delay, never a lockout of the account.

Each client address (an IPv6 client by its /64: one host holds a whole /64) gets FREE failed
attempts; each failure after that blocks the address for twice as long as the one before, up to
MAX_DELAY_S. Nothing is counted against the user name, so an attack from other addresses never
keeps the owner out, and a success from an address forgets its failures.

`begin()` counts an attempt as failed *before* the password is evaluated (a success forgives it),
so concurrent attempts from one address cannot all pass the check before any is counted.
`check()` is a dict lookup for the API's Basic Auth, whose check, evaluation and count run without
an `await` between them (one event loop: nothing interleaves). Per process: N instances let an
attacker N times as many guesses, still exponentially slowed.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

FREE = 5
MAX_DELAY_S = 900.0
FORGET_S = 3600.0
MAX_ENTRIES = 100_000


@dataclass
class _Entry:
    failures: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


def address_key(host: str) -> str:
    """What one client is counted as: its IPv4 address, or its IPv6 /64."""
    if ":" not in host:
        return host
    try:
        return str(ipaddress.ip_network(f"{host}/64", strict=False))
    except ValueError:
        return host


class GuessLimiter:
    def __init__(self, free: int = FREE, max_delay_s: float = MAX_DELAY_S, forget_s: float = FORGET_S) -> None:
        self.free = free
        self.max_delay_s = max_delay_s
        self.forget_s = forget_s
        self._entries: dict[str, _Entry] = {}
        self.refused = 0

    def check(self, key: str) -> float:
        """Seconds `key` must wait before its next attempt is evaluated (0: go ahead)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        wait = entry.blocked_until - time.monotonic()
        if wait > 0:
            self.refused += 1
            return wait
        return 0.0

    def begin(self, key: str) -> float:
        """`check`, and when clear count this attempt as a failure until `forgive` says otherwise."""
        wait = self.check(key)
        if wait == 0.0:
            self.fail(key)
        return wait

    def fail(self, key: str) -> None:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or now - entry.last > self.forget_s:
            if len(self._entries) >= MAX_ENTRIES:
                self._prune(now)
            entry = self._entries[key] = _Entry()
        entry.failures += 1
        entry.last = now
        over = entry.failures - self.free
        if over >= 0:
            entry.blocked_until = now + min(self.max_delay_s, 2.0**over)

    def forgive(self, key: str) -> None:
        self._entries.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if now - e.last > self.forget_s or e.blocked_until < now]:
            del self._entries[key]
        while len(self._entries) >= MAX_ENTRIES:  # still full of blocked addresses: drop the oldest
            del self._entries[next(iter(self._entries))]


logins = GuessLimiter()
api_basic = GuessLimiter()
