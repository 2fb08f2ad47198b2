"""Who is calling: Basic Auth for people and scripts, X-Internal-Key for services, signed session
cookies for the dashboard. Every comparison is constant-time; nothing here logs a credential.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, URLSafeTimedSerializer

from opsloop.backend.config import Settings

SESSION_COOKIE = "opsloop_session"
SESSION_MAX_AGE_S = 12 * 3600

Kind = Literal["operator", "service"]


@dataclass(frozen=True)
class Principal:
    kind: Kind
    name: str


def _equal(a: str, b: str | None) -> bool:
    return b is not None and hmac.compare_digest(a.encode(), b.encode())


def decode_basic(value: str) -> tuple[str, str] | None:
    """`user:pass` from a base64 string (the part after `Basic `, or `?auth=`)."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def check_password(settings: Settings, user: str, password: str) -> bool:
    """Both halves are always compared, so timing says nothing about which one was wrong."""
    user_ok = _equal(user, settings.BASIC_AUTH_USER)
    pass_ok = _equal(password, settings.BASIC_AUTH_PASS)
    return user_ok and pass_ok


def authenticate(
    settings: Settings,
    authorization: str | None,
    internal_key: str | None,
    query_auth: str | None = None,
) -> Principal | None:
    """The caller, from an Authorization header, an X-Internal-Key header, or `?auth=` (streams only)."""
    if internal_key is not None and _equal(internal_key, settings.INTERNAL_KEY):
        return Principal("service", "internal")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            creds = decode_basic(value)
            if creds and check_password(settings, *creds):
                return Principal("operator", creds[0])
    if query_auth:
        creds = decode_basic(query_auth)
        if creds and check_password(settings, *creds):
            return Principal("operator", creds[0])
    return None


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.session_secret, salt="opsloop-dashboard-session")


def issue_session(settings: Settings, user: str) -> str:
    """A signed, timestamped session token for the dashboard cookie."""
    return _serializer(settings).dumps({"u": user})


def read_session(settings: Settings, token: str | None) -> str | None:
    """The user of a valid, unexpired session token, else None."""
    if not token:
        return None
    try:
        data = _serializer(settings).loads(token, max_age=SESSION_MAX_AGE_S)
    except BadSignature:
        return None
    user = data.get("u") if isinstance(data, dict) else None
    return user if isinstance(user, str) and _equal(user, settings.BASIC_AUTH_USER) else None


def session_from_cookie_header(settings: Settings, cookie_header: str | None) -> str | None:
    """The session user from a raw `Cookie:` header (the state socket only gives us that)."""
    if not cookie_header:
        return None
    from http.cookies import CookieError, SimpleCookie

    jar = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return read_session(settings, morsel.value if morsel else None)


class LoginRateLimiter:
    """At most `limit` failed logins per client address per `window_s` (per process)."""

    def __init__(self, limit: int = 10, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def blocked(self, client: str) -> float:
        """Seconds until `client` may try again (0 when it may now)."""
        now = time.monotonic()
        window = self._failures[client]
        while window and now - window[0] > self.window_s:
            window.popleft()
        if len(window) < self.limit:
            return 0.0
        return self.window_s - (now - window[0])

    def record_failure(self, client: str) -> None:
        self._failures[client].append(time.monotonic())

    def reset(self, client: str) -> None:
        self._failures.pop(client, None)
