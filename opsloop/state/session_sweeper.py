"""Ends open state sockets whose session was revoked (logout) or expired, within about a second.

The gate checks the session on every event, but a tab that only receives live pushes sends none.
Once a second (at once after a logout on this instance) the sweeper checks the sessions of the
tokens this process serves in one query; for each that ended it resets the client's state, stops
its pushes and disconnects its socket. The browser reconnects, its page's login check sends it
to /login.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import reflex as rx

from opsloop.state.access import runtime
from opsloop.state.gate import bound, forget, guard_connections, reset_all
from opsloop.state.reflex_seams import connected_tokens, disconnect
from opsloop.state.session import SessionState

SWEEP_S = 1.0
log = logging.getLogger("opsloop.dashboard.sessions")


async def end_client(app: rx.App, token: str) -> None:
    forget(token)
    async with app.modify_state(rx.BaseStateToken(ident=token, cls=SessionState)) as root:
        owner = await root.get_state(SessionState)
        if owner._session:
            await reset_all(root)
            owner._session = ""
    await disconnect(app, token)


async def sweep(app: rx.App) -> int:
    """One pass; returns how many clients were ended."""
    connected = connected_tokens(app)
    sessions = bound()
    for token in [t for t in sessions if t not in connected]:
        sessions.pop(token, None)  # gone: the gate binds it again if it comes back
    if not sessions:
        return 0
    snapshot = dict(sessions)
    live_ids = await runtime().sessions.live_ids(set(snapshot.values()))
    ended = [t for t, sid in snapshot.items() if sid not in live_ids]
    for token in ended:
        await end_client(app, token)
    return len(ended)


async def session_sweeper(app: rx.App) -> None:
    """Lifespan task: guard new connections, then sweep until the app stops."""
    guard_connections(app)
    while True:
        revoked = runtime().sessions.revoked
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(revoked.wait(), timeout=SWEEP_S)
        revoked.clear()
        try:
            await sweep(app)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is away: try again next time
            log.warning("session sweep failed: %s", exc)
