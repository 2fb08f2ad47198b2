"""Live updates into open dashboards: one app-wide listener, small deltas per tab.

A view's load handler calls `watch(self, params)` (`state/live.py`): this tab (client token) now
shows that `LiveView` with those filters. The pusher subscribes to the process's live bus,
gathers messages for a short window, and for each connected tab whose view accepts some of them
hands them to that tab's state through `app.modify_state`, which sends only the delta. A slow
tick refreshes views whose data does not come through the bus (agent heartbeats, chart
aggregates). One pusher per runtime, built and owned by `state/access.py`'s `Dashboard`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import reflex as rx

from opsloop.backend.live.bus import LiveBus, LiveMessage
from opsloop.state.live_view import LiveFilter, LiveParams, LiveView, no_messages, ticks
from opsloop.state.reflex_seams import connected_tokens

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
GONE_AFTER_S = 30.0  # a watched tab without a socket for this long is forgotten


@dataclass
class Interest:
    """What one tab shows: a live view, with the filters its page loaded."""

    view: type[LiveView]
    params: dict[str, str]
    accepts: LiveFilter
    since: float = field(default_factory=time.monotonic)


class LivePusher:
    """Which tab shows which live view, and the loop that pushes bus changes to them."""

    def __init__(self, bus: LiveBus) -> None:
        self.bus = bus
        self._interests: dict[str, Interest] = {}  # client token -> what it shows
        self._app: rx.App | None = None  # set while `run` runs
        self._refreshing: set[asyncio.Task[None]] = set()

    def watch(self, token: str, view: type[LiveView], params: LiveParams, accepts: LiveFilter) -> None:
        """The tab `token` now shows `view` with `params`; later changes `accepts` takes are pushed to it."""
        self._interests[token] = Interest(view, dict(params), accepts)

    def forget(self, token: str) -> None:
        """No more pushes to `token` until one of its views loads again."""
        self._interests.pop(token, None)

    async def _push(self, app: rx.App, token: str, interest: Interest, msgs: list[LiveMessage] | None) -> None:
        """Apply `msgs` (or a tick when None) to one tab's state; the delta goes out on exit.

        Bounded in time: a tab that went away can leave the emit hanging, and one stuck tab must
        never hold up the others. A tab that times out is forgotten (its next load registers it again).
        """

        async def apply() -> None:
            async with app.modify_state(rx.BaseStateToken(ident=token, cls=interest.view)) as root:
                view = await root.get_state(interest.view)
                if msgs is None:
                    await view._live_tick()
                else:
                    await view._apply_live(msgs)

        try:
            await asyncio.wait_for(apply(), timeout=PUSH_TIMEOUT_S)
        except TimeoutError:
            self.forget(token)
            raise

    async def deliver(self, app: rx.App, batch: list[LiveMessage]) -> None:
        """Push `batch` to every connected tab, each getting only what its view accepts."""
        connected = connected_tokens(app)
        jobs = []
        for token, interest in list(self._interests.items()):
            if token not in connected:
                if time.monotonic() - interest.since > GONE_AFTER_S:
                    self.forget(token)  # the tab is gone
                continue
            if interest.accepts is no_messages:
                continue
            relevant = [m for m in batch if interest.accepts(m)]
            if relevant:
                jobs.append(self._push(app, token, interest, relevant))
        for result in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(result, Exception):
                log.warning("live push failed: %r", result)

    async def tick(self, app: rx.App, only: type[LiveView] | None = None, params: Callable[[LiveParams], bool] | None = None) -> None:
        """Tick every connected tab of a ticking view (of `only`, with filters `params` accepts, if given)."""
        connected = connected_tokens(app)
        jobs = [
            self._push(app, token, interest, None)
            for token, interest in list(self._interests.items())
            if token in connected and ticks(interest.view) and only in (None, interest.view) and (params is None or params(interest.params))
        ]
        for result in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(result, Exception):
                log.warning("live tick failed: %r", result)

    def refresh_soon(self, view: type[LiveView], params: Callable[[LiveParams], bool] | None = None) -> None:
        """Tick `view` in its open tabs (those whose filters `params` accepts) now rather than at
        the next tick: for data a push did not wait for (the tasks view's counts)."""
        if self._app is not None:
            task = asyncio.create_task(self.tick(self._app, view, params))
            self._refreshing.add(task)
            task.add_done_callback(self._refreshing.discard)

    async def _ticker(self, app: rx.App) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            await self.tick(app)

    async def run(self, app: rx.App) -> None:
        """Bus → open dashboards, until cancelled (the app stops)."""
        self._app = app
        ticker = asyncio.create_task(self._ticker(app))
        loop = asyncio.get_running_loop()
        last_push = -PUSH_INTERVAL_S
        try:
            while True:
                sub = self.bus.subscribe(maxsize=50_000)
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
                        await self.deliver(app, batch)
                    except Exception as exc:  # never let one bad push stop live updates
                        log.warning("live delivery failed: %s", exc)
                self.bus.unsubscribe(sub)
        finally:
            self._app = None
            ticker.cancel()
            for task in list(self._refreshing):
                task.cancel()
