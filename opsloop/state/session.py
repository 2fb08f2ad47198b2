"""Who is logged in: read from the HttpOnly session cookie on the state socket's own handshake.

The browser never sees the cookie's value (HttpOnly); we read it server-side from the headers of
the socket connection and look its session up (`backend/sessions.py`: revocable, cached ~1 s).
Logging in is a native form POST to `/auth/login`, which reloads the page and so reconnects the
socket with the new cookie. `next` is only ever followed as a same-origin path (`safe_next`):
`/login?next=javascript:…` once ran script on this origin for a logged-in user.
"""

from __future__ import annotations

from urllib.parse import quote

import reflex as rx

from opsloop.backend.redirects import safe_next
from opsloop.backend.sessions import Session
from opsloop.state.access import runtime


async def session_of(state: rx.State) -> Session | None:
    """The live session of this client's socket (its cookie), else None."""
    return await runtime().sessions.from_cookie_header(state.router.headers.cookie)


def current_user(state: rx.State) -> str | None:
    """The user the gate verified for the event being handled (no database round trip)."""
    session = runtime().sessions.cached(state.router.headers.cookie)
    return session.user if session else None


class SessionState(rx.State):
    user: rx.Field[str] = rx.field("")
    _session: str = ""  # the session this client's state belongs to (set and checked by the gate)

    @rx.event
    async def check_login(self):
        """Every page's first on_load: a logged-out visit lands on /login, then comes back."""
        session = await session_of(self)
        if session is None:
            self.user = ""
            return rx.redirect(f"/login?next={quote(safe_next(self.router.url.path or '/'))}", replace=True)
        self.user = session.user
        return None


class LoginState(rx.State):
    """What the login page shows: whether the last attempt failed, and where to go after."""

    failed: rx.Field[bool] = rx.field(False)
    next_path: rx.Field[str] = rx.field("/")

    @rx.event
    async def load(self):
        params = self.router.url.query_parameters
        next_path = safe_next(params.get("next"))
        if await session_of(self) is not None:
            return rx.redirect(next_path, replace=True)
        self.failed = params.get("error") == "1"
        self.next_path = next_path
        return None
