"""Who is logged in: read from the HttpOnly session cookie on the state socket's own handshake.

The browser never sees the cookie's value (HttpOnly); we read it server-side from the headers of
the socket connection. Logging in is a native form POST to `/auth/login`, which reloads the page
and so reconnects the socket with the new cookie.
"""

from __future__ import annotations

from urllib.parse import quote

import reflex as rx

from opsloop.backend.auth import session_from_cookie_header
from opsloop.backend.config import get_settings


def current_user(state: rx.State) -> str | None:
    return session_from_cookie_header(get_settings(), state.router.headers.cookie)


class SessionState(rx.State):
    user: str = ""

    @rx.event
    def check_login(self):
        """Every page's first on_load: a logged-out visit lands on /login, then comes back."""
        user = current_user(self)
        if not user:
            self.user = ""
            return rx.redirect(f"/login?next={quote(self.router.url.path or '/')}", replace=True)
        self.user = user
        return None


class LoginState(rx.State):
    """What the login page shows: whether the last attempt failed, and where to go after."""

    failed: bool = False
    next_path: str = "/"

    @rx.event
    def load(self):
        if current_user(self):
            return rx.redirect(self.router.url.query_parameters.get("next") or "/", replace=True)
        params = self.router.url.query_parameters
        self.failed = params.get("error") == "1"
        nxt = params.get("next") or "/"
        self.next_path = nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"
        return None
