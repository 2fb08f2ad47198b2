"""The interface every live dashboard view implements, and the live filter the views use.

The pusher (`state/pusher.py`) only ever talks to a `LiveView`: it asks the view's class for the
filter of a tab's messages when the tab loads (`live_filter`), hands the tab's state each batch
that passed it (`_apply_live`), and ticks the views whose data does not come through the bus
(`_live_tick`). A plain base, not an `rx.State`: Reflex 0.10.1 binds the members of plain bases
to each concrete state (`BaseState._bind_fields`), so the views stay flat (`class
TasksState(LiveView, rx.State)`), and nothing here becomes an event handler (the instance hooks
are private, `live_filter` is a classmethod: no browser can call them over the state socket).
`abc.ABC` cannot be used (its metaclass conflicts with Reflex's), so `__init_subclass__` refuses
a view that leaves a hook out, at import.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Collection, Mapping
from typing import Any

from opsloop.backend.live.bus import Kind, LiveMessage

LiveParams = Mapping[str, str]  # a tab's filters, as its page loaded them (from the URL)
LiveFilter = Callable[[LiveMessage], bool]

_ALL_KINDS: frozenset[Kind] = frozenset(("task", "event", "log"))


def live_filter(
    *,
    kinds: Collection[Kind] = _ALL_KINDS,
    task_id: str = "",
    trace_id: str = "",
    type: str = "",  # the task field's name
    correlation_id: str = "",
    service: str = "",
    level: str = "",
) -> LiveFilter:
    """Which bus messages match these filters (empty = any), for the tasks and activity views.

    The one place the dashboard decides what a message matches. Issue 12 gives the core one live
    filter for SSE, WS and the dashboard (`opsloop/backend/live/filter.py`); when it lands, this
    body becomes a call of it. Same rules as the streams: a service or level filter keeps only
    log lines; task and trace ids match a task's own id or a line's/event's task.
    """
    wanted = frozenset(kinds)

    def accepts(msg: LiveMessage) -> bool:
        if msg.kind not in wanted:
            return False
        row = msg.row
        if task_id and str(row["id"] if msg.kind == "task" else row.get("task_id")) != task_id:
            return False
        if trace_id and row.get("trace_id") != trace_id:
            return False
        if type and row.get("type") != type:
            return False
        if correlation_id and row.get("correlation_id") != correlation_id:
            return False
        if msg.kind == "log":
            return (not service or row["service"] == service) and (not level or row["level"] == level)
        return not service and not level

    return accepts


def no_messages(msg: LiveMessage) -> bool:
    """The filter of a view that only ticks (its data does not come through the bus)."""
    return False


class LiveView:
    """Base of every dashboard state a live push or tick reaches (mix in before `rx.State`)."""

    _REQUIRED = ("live_filter", "_apply_live")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [name for name in cls._REQUIRED if getattr(getattr(cls, name), "__isabstractmethod__", False)]
        if missing:
            raise TypeError(f"{cls.__name__} is a LiveView but does not implement {', '.join(missing)}")

    @classmethod
    @abstractmethod
    def live_filter(cls, params: LiveParams) -> LiveFilter:
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
