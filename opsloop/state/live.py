"""Live updates into open dashboards: one app-wide listener, small deltas per tab.

A page's load handler calls `watch(self, params)`: this tab (client token) now shows that page
with those filters. One lifespan task subscribes to the process's live bus, gathers messages for
a short window, and for each connected tab whose page cares applies them to that tab's state
through `app.modify_state` — which sends only the delta. A slow tick refreshes pages whose data
does not come through the bus (agent heartbeats, chart aggregates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import reflex as rx

from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.runtime import get_runtime

log = logging.getLogger("opsloop.dashboard.live")
# Pushes are throttled, not debounced: the first change after a quiet spell goes out at once (after
# GATHER_S, which lets the other changes of the same commit arrive), and while changes keep coming a
# tab gets at most one push per PUSH_INTERVAL_S. Each push costs every open browser a render, so the
# interval bounds that work (with 20 dashboards on 2 cores the browsers are the bottleneck: a 0.08 s
# debounce window gave a p95 delay of 9.4 s), while a change waits at most one interval for its push
# instead of a whole window every time (bench/bench_dashboard.py).
GATHER_S = 0.01
PUSH_INTERVAL_S = 0.15
TICK_S = 5.0
PUSH_TIMEOUT_S = 3.0


@dataclass
class Interest:
    state: type[rx.State]
    params: dict[str, Any] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)


_interests: dict[str, Interest] = {}


def watch(state: rx.State, params: dict[str, Any] | None = None) -> None:
    """This tab now shows `type(state)`'s page with `params`; later changes are pushed to it."""
    _interests[state.router.session.client_token] = Interest(type(state), dict(params or {}))


def watching() -> int:
    return len(_interests)


async def _push(app: rx.App, token: str, interest: Interest, msgs: list[LiveMessage] | None) -> None:
    """Apply `msgs` (or a periodic refresh when None) to one tab's state; the delta goes out on exit.

    Bounded in time: a tab that went away can leave the emit hanging, and one stuck tab must never
    hold up the others. A tab that times out is forgotten (its next page load registers it again).
    """

    async def apply() -> None:
        async with app.modify_state(rx.BaseStateToken(ident=token, cls=interest.state)) as root:
            st = await root.get_state(interest.state)
            if msgs is None:
                await st._live_tick()  # type: ignore[attr-defined]
            else:
                await st._apply_live(msgs)  # type: ignore[attr-defined]

    try:
        await asyncio.wait_for(apply(), timeout=PUSH_TIMEOUT_S)
    except TimeoutError:
        _interests.pop(token, None)
        raise


def _connected(app: rx.App) -> set[str]:
    namespace = app.event_namespace
    return set(namespace.token_to_sid) if namespace is not None else set()


async def _deliver(app: rx.App, batch: list[LiveMessage]) -> None:
    connected = _connected(app)
    jobs = []
    for token, interest in list(_interests.items()):
        if token not in connected:
            if time.monotonic() - interest.since > 30:
                _interests.pop(token, None)  # the tab is gone
            continue
        accepts = getattr(interest.state, "live_accepts", None)
        relevant = [m for m in batch if accepts is None or accepts(interest.params, m)]
        if relevant:
            jobs.append(_push(app, token, interest, relevant))
    for result in await asyncio.gather(*jobs, return_exceptions=True):
        if isinstance(result, Exception):
            log.warning("live push failed: %r", result)


async def _refresh(app: rx.App, only: type[rx.State] | None = None, params: Callable[[dict[str, Any]], bool] | None = None) -> None:
    """Run `_live_tick` in every connected tab (of `only`'s page, with `params` matching its filters, if given)."""
    connected = _connected(app)
    jobs = [
        _push(app, token, interest, None)
        for token, interest in list(_interests.items())
        if token in connected
        and hasattr(interest.state, "_live_tick")
        and only in (None, interest.state)
        and (params is None or params(interest.params))
    ]
    for result in await asyncio.gather(*jobs, return_exceptions=True):
        if isinstance(result, Exception):
            log.warning("live tick failed: %r", result)


_app: rx.App | None = None
_refreshing: set[asyncio.Task] = set()


def refresh_soon(state: type[rx.State], params: Callable[[dict[str, Any]], bool] | None = None) -> None:
    """Run `state._live_tick` in its open tabs (those whose filters `params` accepts) now rather
    than at the next tick: for data a push did not wait for (the tasks view's counts are refreshed
    in the background)."""
    if _app is not None:
        task = asyncio.create_task(_refresh(_app, state, params))
        _refreshing.add(task)
        task.add_done_callback(_refreshing.discard)


async def _tick(app: rx.App) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        await _refresh(app)


async def live_pusher(app: rx.App) -> None:
    """Lifespan task: bus → open dashboards, until the app stops."""
    rt = get_runtime()
    while not rt.started:
        await asyncio.sleep(0.1)
    global _app
    _app = app
    ticker = asyncio.create_task(_tick(app))
    loop = asyncio.get_running_loop()
    last_push = -PUSH_INTERVAL_S
    try:
        while True:
            sub = rt.bus.subscribe(maxsize=50_000)
            while True:
                first = await sub.get()
                if first is None:  # we fell behind: start over with a fresh subscription
                    break
                await asyncio.sleep(max(GATHER_S, last_push + PUSH_INTERVAL_S - loop.time()))
                last_push = loop.time()
                batch = [first]
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        batch.append(sub.queue.get_nowait())
                try:
                    await _deliver(app, batch)
                except Exception as exc:  # never let one bad push stop live updates
                    log.warning("live delivery failed: %s", exc)
            rt.bus.unsubscribe(sub)
    finally:
        ticker.cancel()
        for task in list(_refreshing):
            task.cancel()
