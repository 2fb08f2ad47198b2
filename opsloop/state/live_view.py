"""The interface every live dashboard view implements.

The pusher (`state/pusher.py`) only ever talks to a `LiveView`: it asks the view's class for the
filter of a tab's messages when the tab loads (`live_filter_for`), hands the tab's state each batch
that passed it (`_apply_live`), and ticks the views whose data does not come through the bus
(`_live_tick`). `LiveView` is a Reflex mixin state (`mixin=True`, Reflex 0.10.1's way to share
members between states): it is never part of the state tree, so the views stay flat (`class
TasksState(LiveView, rx.State)`: their parent is `rx.State`), and nothing here becomes an event
handler (the instance hooks are private, `live_filter_for` is a classmethod: no browser can call
them over the state socket). `abc.ABC` cannot be used (its metaclass conflicts with Reflex's),
so `__init_subclass__` refuses a view that leaves a hook out, at import.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import reflex as rx

from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.live.filter import Accepts

LiveParams = Mapping[str, str]  # a tab's filters, as its page loaded them (from the URL)
LiveFilter = Accepts  # built by the core's one live filter, `opsloop.backend.live.filter.live_filter`


def no_messages(msg: LiveMessage) -> bool:
    """The filter of a view that only ticks (its data does not come through the bus)."""
    return False


_REQUIRED = ("live_filter_for", "_apply_live")


class LiveView(rx.State, mixin=True):
    """Base of every dashboard state a live push or tick reaches (mix in before `rx.State`)."""

    def __init_subclass__(cls, mixin: bool = False, **kwargs: Any) -> None:
        """Refuse a concrete view without its hooks before Reflex registers it as a state."""
        missing = [name for name in _REQUIRED if getattr(getattr(cls, name), "__isabstractmethod__", False)]
        if missing and not mixin:
            raise TypeError(f"{cls.__name__} is a LiveView but does not implement {', '.join(missing)}")
        super().__init_subclass__(mixin=mixin, **kwargs)

    @classmethod
    @abstractmethod
    def live_filter_for(cls, params: LiveParams) -> LiveFilter:
        """Which messages a tab showing this view with `params` wants (built once per page load;
        it is then asked once per message, so it must be cheap). `no_messages` for a view that
        only ticks."""

    @abstractmethod
    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        """Merge a batch of changes (already filtered by `live_accepts` with the params of the
        tab's last load) into this tab's state; only the vars assigned are sent to the tab."""

    async def _live_tick(self) -> None:
        """A periodic refresh (every few seconds, or when `refresh_soon` asks); only views that
        override it are ticked (see `ticks`)."""
        return None


def ticks(view: type[LiveView]) -> bool:
    """Whether the pusher ticks `view`: only when it overrides `_live_tick` (a tick takes the tab's
    state lock, which a view without one should not pay for)."""
    return view._live_tick is not LiveView._live_tick
