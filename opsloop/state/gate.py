"""One gate for the state socket: every event from a client without a valid session is refused,
except the few that hydrate a page and check the login (REFLEX.md: anyone can open `/_event`
and send any event name)."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

import reflex as rx
from reflex.middleware import Middleware
from reflex.state import StateUpdate
from reflex_base.event import Event

from opsloop.state.session import LoginState, SessionState, current_user

PUBLIC_PATHS = ("/login",)


@functools.cache
def always_allowed() -> frozenset[str]:
    """Wire names of the events an anonymous client may send."""
    from reflex.state import OnLoadInternalState, State, UpdateVarsInternalState
    from reflex_base.utils.format import format_event_handler

    handlers = [
        State.event_handlers["hydrate"],
        State.event_handlers["hydrate_and_load"],
        OnLoadInternalState.event_handlers["on_load_internal"],
        OnLoadInternalState.event_handlers["set_is_hydrated"],
        UpdateVarsInternalState.event_handlers["update_vars_internal"],
        SessionState.event_handlers["check_login"],
        LoginState.event_handlers["load"],
    ]
    return frozenset(format_event_handler(h) for h in handlers)


class SessionGate(Middleware):
    refused = 0

    async def preprocess(self, app: Any, state: Any, event: Event) -> StateUpdate | None:
        if event.name in always_allowed() or current_user(state):
            return None
        SessionGate.refused += 1
        path = state.router.url.path or "/"
        if path.rstrip("/") in PUBLIC_PATHS:
            return StateUpdate()
        return StateUpdate(events=Event.from_event_type(rx.redirect(f"/login?next={quote(path)}", replace=True)))
