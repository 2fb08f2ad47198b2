"""Dashboard sessions with a server-side identity: logout and expiry end them everywhere.

The cookie carries a random session id, signed (itsdangerous) with SESSION_SECRET or, when that is
unset, a secret generated once and kept in `app_secrets`, so every instance signs alike and no
agent can mint a cookie (agents hold INTERNAL_KEY, from which nothing here is derived). The
`sessions` table stores only a hash of the id, with its expiry and revocation time.

Lookups are cached per process for CACHE_S: a revocation takes effect at once on the instance that
revoked (its cache entry is replaced) and within CACHE_S on the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from itsdangerous import BadSignature, URLSafeTimedSerializer

from opsloop.backend.config import Settings
from opsloop.backend.db import DictPool

COOKIE = "opsloop_session"
SALT = "opsloop-session-v2"
CACHE_S = 1.0
SECRET_NAME = "session_secret"


@dataclass(frozen=True)
class Session:
    id: str  # sha256 of the random id in the cookie: what the table stores
    user: str
    expires_at: float  # epoch seconds


def _hash(raw_id: str) -> str:
    return hashlib.sha256(raw_id.encode()).hexdigest()


def cookie_value(cookie_header: str | None) -> str | None:
    """The session cookie's value from a raw `Cookie:` header (the state socket only has that)."""
    if not cookie_header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel else None


class SessionStore:
    def __init__(self, pool: DictPool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self.max_age_s = settings.OPSLOOP_SESSION_MAX_AGE_S
        self._serializer: URLSafeTimedSerializer | None = None
        self._secret_lock = asyncio.Lock()
        self._cache: dict[str, tuple[Session | None, float]] = {}
        self.revoked = asyncio.Event()  # set on every local revocation (the socket sweeper wakes up)

    async def serializer(self) -> URLSafeTimedSerializer:
        if self._serializer is None:
            async with self._secret_lock:
                if self._serializer is None:
                    secret = self.settings.SESSION_SECRET or await self._stored_secret()
                    self._serializer = URLSafeTimedSerializer(secret, salt=SALT)
        return self._serializer

    async def _stored_secret(self) -> str:
        """The generated secret every instance shares: the first instance to ask creates it."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO app_secrets (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                (SECRET_NAME, secrets.token_urlsafe(48)),
            )
            row = await (await conn.execute("SELECT value FROM app_secrets WHERE name = %s", (SECRET_NAME,))).fetchone()
        assert row is not None
        return str(row["value"])

    async def create(self, user: str) -> tuple[str, Session]:
        """A new session for `user`: (cookie value, session)."""
        raw_id = secrets.token_urlsafe(32)
        session = Session(_hash(raw_id), user, time.time() + self.max_age_s)
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO sessions (id, username, expires_at) VALUES (%s, %s, to_timestamp(%s))",
                (session.id, user, session.expires_at),
            )
            # Expired rows are of no use after a week (kept that long for the record).
            await conn.execute("DELETE FROM sessions WHERE expires_at < now() - interval '7 days'")
        self._cache[session.id] = (session, time.monotonic())
        return (await self.serializer()).dumps(raw_id), session

    async def _session_id(self, token: str | None) -> str | None:
        if not token or len(token) > 512:
            return None
        try:
            raw_id = (await self.serializer()).loads(token, max_age=int(self.max_age_s))
        except BadSignature:
            return None
        return _hash(raw_id) if isinstance(raw_id, str) else None

    async def lookup(self, token: str | None) -> Session | None:
        """The live session a cookie value names, else None (bad signature, expired, revoked)."""
        sid = await self._session_id(token)
        return await self.by_id(sid) if sid else None

    async def by_id(self, sid: str) -> Session | None:
        hit = self._cache.get(sid)
        now = time.monotonic()
        if hit is not None and now - hit[1] < CACHE_S:
            session = hit[0]
        else:
            async with self.pool.connection() as conn:
                row = await (
                    await conn.execute(
                        "SELECT username, extract(epoch FROM expires_at)::float8 AS expires_at FROM sessions "
                        "WHERE id = %s AND revoked_at IS NULL AND expires_at > now()",
                        (sid,),
                    )
                ).fetchone()
            session = Session(sid, row["username"], row["expires_at"]) if row else None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[sid] = (session, now)
        if session is not None and session.expires_at <= time.time():
            return None
        return session

    async def from_cookie_header(self, cookie_header: str | None) -> Session | None:
        return await self.lookup(cookie_value(cookie_header))

    def cached(self, cookie_header: str | None) -> Session | None:
        """A session verified recently (by the gate, for this event): no database round trip.
        The signature is checked against the cache's own ids: only ids we looked up are in it."""
        token = cookie_value(cookie_header)
        if not token or self._serializer is None:
            return None
        try:
            raw_id = self._serializer.loads(token, max_age=int(self.max_age_s))
        except BadSignature:
            return None
        hit = self._cache.get(_hash(raw_id)) if isinstance(raw_id, str) else None
        session = hit[0] if hit else None
        return session if session is not None and session.expires_at > time.time() else None

    async def revoke(self, token: str | None) -> None:
        sid = await self._session_id(token)
        if sid is None:
            return
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE sessions SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (sid,))
        self._cache[sid] = (None, time.monotonic())
        self.revoked.set()

    async def live_ids(self, ids: set[str]) -> set[str]:
        """Which of `ids` are still live sessions (one query for every open socket)."""
        if not ids:
            return set()
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT id FROM sessions WHERE id = ANY(%s) AND revoked_at IS NULL AND expires_at > now()",
                    (list(ids),),
                )
            ).fetchall()
        return {r["id"] for r in rows}
