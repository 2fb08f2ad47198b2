"""One gate for the state socket: every event from a client without a valid session is refused,
except the few that hydrate a page and check the login (REFLEX.md: anyone can open `/_event`
and send any event name).

A client's state is bound to the session that filled it (`SessionState._session`): when an event
or a new socket connection arrives with another session or none (a closed tab's client token
reused without the cookie, a logout, an expiry), the whole state is reset and the tab's live
pushes stop before anything is answered, so `hydrate` returns defaults, never the user's rows.
"""

from __future__ import annotations

import functools
import logging
from typing import Any
from urllib.parse import quote

import reflex as rx
from reflex.event import Event
from reflex.middleware import Middleware
from reflex.state import BaseState, OnLoadInternalState, State, StateUpdate, UpdateVarsInternalState

from opsloop.state.access import dashboard, runtime
from opsloop.state.live import forget as stop_pushes
from opsloop.state.reflex_seams import before_connect, root_of, wire_name
from opsloop.state.session import LoginState, SessionState

PUBLIC_PATHS = ("/login",)
log = logging.getLogger("opsloop.dashboard.gate")


def bound() -> dict[str, str]:
    """Client token -> session id, for the tokens this process serves (the sweeper's list)."""
    return dashboard().sessions


@functools.cache
def always_allowed() -> frozenset[str]:
    """Wire names of the events an anonymous client may send."""
    handlers = [
        State.event_handlers["hydrate"],
        State.event_handlers["hydrate_and_load"],
        OnLoadInternalState.event_handlers["on_load_internal"],
        OnLoadInternalState.event_handlers["set_is_hydrated"],
        UpdateVarsInternalState.event_handlers["update_vars_internal"],
        SessionState.event_handlers["check_login"],
        LoginState.event_handlers["load"],
    ]
    return frozenset(wire_name(h) for h in handlers)


def forget(token: str) -> None:
    """No more live pushes to this token until one of its pages loads again (through the gate)."""
    stop_pushes(token)
    bound().pop(token, None)


async def rebind(root: BaseState, token: str, session_id: str) -> None:
    """Make `root` (a client's whole state) belong to `session_id` ("" for none): when it belonged
    to another session, reset it first, so nothing of that session's data is ever sent again."""
    owner = await root.get_state(SessionState)
    if owner._session != session_id:
        if owner._session:
            await reset_all(root)
            forget(token)
        owner._session = session_id
    if session_id:
        bound()[token] = session_id
    else:
        bound().pop(token, None)


async def reset_all(root: BaseState) -> None:
    """Every state of the client to its defaults, loading those not in memory first (a state
    manager on Redis loads substates on demand: an unloaded one would keep its data)."""
    pending = list(type(root).get_substates())
    while pending:
        cls = pending.pop()
        await root.get_state(cls)
        pending.extend(cls.get_substates())
    root.reset()


class SessionGate(Middleware):
    refused = 0

    async def preprocess(self, app: Any, state: BaseState, event: Event) -> StateUpdate | None:
        root = root_of(state)
        session = await runtime().sessions.from_cookie_header(root.router.headers.cookie)
        await rebind(root, root.router.session.client_token, session.id if session else "")
        if session is not None or event.name in always_allowed():
            return None
        SessionGate.refused += 1
        path = root.router.url.path or "/"
        if path.rstrip("/") in PUBLIC_PATHS:
            return StateUpdate()
        return StateUpdate(events=Event.from_event_type(rx.redirect(f"/login?next={quote(path)}", replace=True)))


def guard_connections(app: rx.App) -> None:
    """Check the session when a socket connects, before Reflex links its token: a reused token
    without its session's cookie gets a reset state and no pushes, even if it never sends an event."""

    async def check(token: str, environ: dict[str, Any]) -> None:
        session = await runtime().sessions.from_cookie_header(environ.get("HTTP_COOKIE"))
        async with app.modify_state(rx.BaseStateToken(ident=token, cls=SessionState)) as root:
            await rebind(root, token, session.id if session else "")

    before_connect(app, check)
