"""Every place the dashboard reaches past Reflex 0.10.1's public API, one small function each.

Everything else the dashboard uses is public: `rx.State`, `app.modify_state` with
`rx.BaseStateToken`, `state.get_state`, `state.router`, `reflex.middleware.Middleware`,
`reflex.state.StateUpdate`, `reflex.event.Event` (the re-export of the event module).
Checked against Reflex 0.10.1's source under site-packages; on an upgrade, read these first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import reflex as rx
from reflex.event import EventHandler
from reflex.state import BaseState

ConnectHook = Callable[[str, dict[str, Any]], Awaitable[None]]


def connected_tokens(app: rx.App) -> set[str]:
    """The client tokens with a socket on this process.

    No public API: Reflex keeps them in its token manager, reachable through
    `app.event_namespace.token_to_sid` (a property kept "for backward compatibility")."""
    namespace = app.event_namespace
    return set(namespace.token_to_sid) if namespace is not None else set()


async def disconnect(app: rx.App, token: str) -> None:
    """Close the socket of `token` on this process, if it has one (the browser reconnects).

    No public API: the token's socket id comes from `event_namespace.token_to_sid`, and the
    socket.io server is `app.sio`."""
    namespace = app.event_namespace
    sid = namespace.token_to_sid.get(token) if namespace is not None else None
    if namespace is not None and sid is not None and app.sio is not None:
        await app.sio.disconnect(sid, namespace=namespace.namespace)


def wire_name(handler: EventHandler) -> str:
    """The name an event for `handler` carries on the state socket (`Event.name`).

    No public API: this is the function Reflex itself names handlers with when it compiles them
    (`reflex.utils.format.format_event_handler`)."""
    from reflex.utils.format import format_event_handler

    return format_event_handler(handler)


def before_connect(app: rx.App, hook: ConnectHook) -> None:
    """Run `hook(token, environ)` when a state socket connects, before Reflex links its token.

    No public API: Reflex offers no connect hook, so `event_namespace.on_connect` is wrapped
    (once; the namespace exists once the app is mounted, i.e. in a lifespan task)."""
    namespace = app.event_namespace
    if namespace is None or getattr(namespace, "_opsloop_hooked", False):
        return
    connect = namespace.on_connect

    async def on_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> Any:
        token = (parse_qs(environ.get("QUERY_STRING", "")).get("token") or [""])[0]
        if token:
            await hook(token, environ)
        return await connect(sid, environ, auth)

    namespace.on_connect = on_connect  # type: ignore[method-assign]  # the wrap described above
    namespace._opsloop_hooked = True  # marks the namespace as wrapped


def root_of(state: BaseState) -> BaseState:
    """The root of a client's state tree (what a middleware may be handed is not documented);
    `parent_state` is a public attribute."""
    while state.parent_state is not None:
        state = state.parent_state
    return state
