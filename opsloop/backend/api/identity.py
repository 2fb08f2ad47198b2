"""Who is calling a route: X-Internal-Key, Basic Auth, or the dashboard's session cookie.

Failed credentials are counted per client address (`limiter.api_basic`): after a few, that
address waits exponentially longer (429 + Retry-After) before its next guess is evaluated. The
check is one dict lookup; check, evaluation and count run with no `await` between them, so
concurrent guesses cannot slip past the count. Requests with no credentials at all are not
counted (a browser's first request carries none).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException
from starlette.requests import HTTPConnection

from opsloop.backend import limiter
from opsloop.backend.api.proxies import trusted_proxies
from opsloop.backend.auth import Principal, authenticate
from opsloop.backend.config import get_settings
from opsloop.backend.sessions import COOKIE, SessionStore


def too_many(wait: float, what: str) -> HTTPException:
    seconds = int(wait) + 1
    return HTTPException(429, f"Too many failed {what}; try again in {seconds}s", headers={"Retry-After": str(seconds)})


def client_key(conn: HTTPConnection) -> str:
    return limiter.address_key(trusted_proxies().client(conn.scope))


async def identify(conn: HTTPConnection, sessions: Callable[[], SessionStore]) -> Principal | None:
    """Basic Auth or X-Internal-Key (throttled per address after failures), else the session
    cookie, looked up in `sessions()` (asked for only when a cookie is there)."""
    headers = conn.headers
    authorization = headers.get("authorization")
    internal_key = headers.get("x-internal-key")
    if authorization is None and internal_key is None:
        token = conn.cookies.get(COOKIE)
        if not token:
            return None
        session = await sessions().lookup(token)
        return Principal("operator", session.user) if session else None
    return authenticate_limited(conn, authorization, internal_key)


def authenticate_limited(
    conn: HTTPConnection, authorization: str | None, internal_key: str | None, query_auth: str | None = None
) -> Principal | None:
    """`authenticate` behind the per-address limiter: raises the 429 while the address is blocked,
    counts a failure. For any route taking credentials (the streams' `?auth=` too)."""
    key = client_key(conn)
    wait = limiter.api_basic.check(key)
    if wait:
        raise too_many(wait, "credentials from this address")
    principal = authenticate(get_settings(), authorization, internal_key, query_auth)
    if principal is None:
        limiter.api_basic.fail(key)
    return principal
