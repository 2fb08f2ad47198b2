"""The dashboard's live machinery without a browser: the pusher hands each connected tab only what
its view's filter takes (and forgets tabs gone for good), and the shared cache behind the tasks
view's counts runs one query for many tabs and refreshes in the background."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import reflex as rx

from opsloop.backend.live.bus import LiveBus, LiveMessage
from opsloop.backend.live.filter import live_filter
from opsloop.state import pusher as pusher_module
from opsloop.state.live_view import LiveFilter, LiveParams, LiveView, no_messages
from opsloop.state.pusher import LivePusher
from opsloop.state.shared_cache import SharedCache


class FakeView(LiveView, rx.State):
    """A view as the pusher sees it; its tabs' states are the fake app's `Tab`s."""

    @classmethod
    def live_filter_for(cls, params: LiveParams) -> LiveFilter:
        return live_filter(level=params.get("level", ""))

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        raise AssertionError("reached through the fake app's states")


class TickOnly(LiveView, rx.State):
    @classmethod
    def live_filter_for(cls, params: LiveParams) -> LiveFilter:
        return no_messages

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        return None

    async def _live_tick(self) -> None:
        return None


@dataclass
class Tab:
    applied: list[list[Any]] = field(default_factory=list)
    ticked: int = 0

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        self.applied.append([m.id for m in msgs])

    async def _live_tick(self) -> None:
        self.ticked += 1


class Root:
    def __init__(self, tab: Tab) -> None:
        self.tab = tab

    async def get_state(self, cls: type) -> Tab:
        return self.tab


class FakeApp:
    """What the pusher uses of `rx.App`: the connected tokens and `modify_state`."""

    def __init__(self, tabs: dict[str, Tab], connected: set[str]) -> None:
        self.tabs = tabs
        self.event_namespace = type("Namespace", (), {"token_to_sid": {t: f"sid-{t}" for t in connected}})()

    @contextlib.asynccontextmanager
    async def modify_state(self, token: rx.BaseStateToken) -> AsyncIterator[Root]:
        yield Root(self.tabs[token.ident])


NO_BUS = cast(LiveBus, object())  # deliver and tick never touch the bus (only `run` subscribes)


def line(i: int, level: str) -> LiveMessage:
    return LiveMessage("log", {"id": i, "service": "s", "level": level, "task_id": None, "trace_id": None})


async def test_each_connected_tab_gets_only_what_its_filter_takes() -> None:
    pusher = LivePusher(NO_BUS)
    tabs = {"warn": Tab(), "all": Tab(), "away": Tab(), "ticks": Tab()}
    app = cast(rx.App, FakeApp(tabs, connected={"warn", "all", "ticks"}))
    pusher.watch("warn", FakeView, {"level": "warn"}, FakeView.live_filter_for({"level": "warn"}))
    pusher.watch("all", FakeView, {}, FakeView.live_filter_for({}))
    pusher.watch("away", FakeView, {}, FakeView.live_filter_for({}))
    pusher.watch("ticks", TickOnly, {}, no_messages)
    await pusher.deliver(app, [line(1, "info"), line(2, "warn")])
    assert tabs["warn"].applied == [[2]] and tabs["all"].applied == [[1, 2]]
    assert tabs["away"].applied == [] and tabs["ticks"].applied == []
    await pusher.tick(app)
    assert tabs["ticks"].ticked == 1 and tabs["all"].ticked == 0  # only views with a tick are ticked


async def test_a_tab_gone_for_good_is_forgotten(monkeypatch) -> None:
    pusher = LivePusher(NO_BUS)
    tabs = {"away": Tab()}
    pusher.watch("away", FakeView, {}, FakeView.live_filter_for({}))
    monkeypatch.setattr(pusher_module, "GONE_AFTER_S", -1.0)
    await pusher.deliver(cast(rx.App, FakeApp(tabs, connected=set())), [line(1, "info")])
    assert "away" not in pusher._interests


async def test_the_shared_cache_runs_one_query_for_many_tabs() -> None:
    cache: SharedCache[str, int] = SharedCache(ttl_s=60)
    calls = 0

    async def query() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    assert await asyncio.gather(*(cache.get("k", query) for _ in range(20))) == [1] * 20
    assert calls == 1


async def test_a_peek_never_waits_and_its_refresh_is_pushed() -> None:
    cache: SharedCache[str, int] = SharedCache(ttl_s=60)
    pushed = asyncio.Event()

    async def query() -> int:
        return 7

    assert cache.peek("k", query, changed=True, then=pushed.set) is None  # nothing cached yet: no wait
    await asyncio.wait_for(pushed.wait(), timeout=5)
    assert cache.peek("k", query, changed=False, then=pushed.set) == 7
    cache.close()
