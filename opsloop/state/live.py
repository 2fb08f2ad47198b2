"""Live updates into open dashboards: what views and the app call.

A `LiveView`'s load handler calls `watch(self, params)`; the app registers `live_pusher` as a
lifespan task. The mechanism is `state/pusher.py` (one pusher per runtime, owned by
`state/access.py`); the interface a view implements is `state/live_view.py`.
"""

from __future__ import annotations

import asyncio
import functools

import reflex as rx

from opsloop.state.access import dashboard
from opsloop.state.live_view import LiveParams, LiveView


def watch(view: LiveView, params: LiveParams | None = None) -> None:
    """This tab now shows `view`'s page with `params`; later changes are pushed to it."""
    params = dict(params or {})
    if isinstance(view, LiveView):
        accepts = view.live_filter_for(params)
    else:  # state/render.py, until it derives from LiveView (the Render plugin's part of issue 12)
        accepts = functools.partial(getattr(type(view), "live_accepts"), params)  # noqa: B009
    dashboard().pusher.watch(view.router.session.client_token, type(view), params, accepts)


def forget(token: str) -> None:
    """No more live pushes to this tab until one of its views loads again."""
    dashboard().pusher.forget(token)


async def live_pusher(app: rx.App) -> None:
    """Lifespan task: bus → open dashboards, once the runtime has started, until the app stops."""
    board = dashboard()
    while not board.runtime.started:
        await asyncio.sleep(0.1)
    await board.pusher.run(app)
