"""Rate-limit repeated warnings and errors: a database outage wrote 70 MB of identical
connection-error tracebacks in minutes.

`RepeatFilter` lets the first WARNING+ record of each (logger, level, message template) through,
traceback included, counts the repeats for `window_s` seconds without writing them, and then
writes one line "… repeated N times in the last Ts". It sits on the handlers (a filter on a
logger never sees records propagated from child loggers), installed by `logging_config()`,
which every server of ours passes to uvicorn at process start.
"""

from __future__ import annotations

import atexit
import copy
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SUMMARY_ATTR = "opsloop_repeat_summary"
_VERDICT_ATTR = "_opsloop_repeat_verdict"
_DIGITS = re.compile(r"\d+")


@dataclass
class _Window:
    start: float
    text: str
    repeats: int = 0


class RepeatFilter(logging.Filter):
    """First occurrence passes, repeats within the window are counted and summarised once."""

    def __init__(
        self,
        window_s: float = 60.0,
        min_level: int = logging.WARNING,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.window_s = float(window_s)
        self.min_level = min_level
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: OrderedDict[tuple[str, int, str], _Window] = OrderedDict()  # oldest window first
        self._timer: threading.Timer | None = None
        atexit.register(_flush_at_exit, weakref.ref(self))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level or self.window_s <= 0 or record.__dict__.get(SUMMARY_ATTR):
            return True
        verdict = record.__dict__.get(_VERDICT_ATTR)
        if verdict is not None:  # the same record on a second handler of ours
            return verdict
        key = (record.name, record.levelno, _template(record))
        now = self.clock()
        with self._lock:
            due = self._expire(now)
            window = self._windows.get(key)
            if window is None:
                self._windows[key] = _Window(start=now, text=_first_line(record))
                if len(self._windows) > self.max_keys:
                    oldest_key, oldest = self._windows.popitem(last=False)
                    if oldest.repeats:
                        due.append((oldest_key, oldest, now))
                verdict = True
            else:
                window.repeats += 1
                if window.repeats == 1:
                    self._arm_timer(window.start + self.window_s - now)
                verdict = False
        setattr(record, _VERDICT_ATTR, verdict)
        self._summarise(due)
        return verdict

    def flush(self, *, all_windows: bool = True) -> None:
        """Write the summaries of windows holding repeats: every window (at exit), else the ended ones."""
        with self._lock:
            due = self._expire(self.clock(), everything=all_windows)
        self._summarise(due)

    def _expire(self, now: float, everything: bool = False) -> list[tuple[tuple[str, int, str], _Window, float]]:
        """Pop the windows that ended by `now` (or all); return those with repeats, with their end."""
        due = []
        while self._windows:
            key, window = next(iter(self._windows.items()))
            if not everything and now - window.start < self.window_s:
                break
            self._windows.popitem(last=False)
            if window.repeats:
                due.append((key, window, min(now, window.start + self.window_s)))
        return due

    def _arm_timer(self, delay: float) -> None:
        """One timer thread at a time, so a burst that stops is still summarised on time."""
        if self._timer is not None and self._timer.is_alive():
            return
        self._timer = threading.Timer(max(delay, 0.0) + 0.01, self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        self.flush(all_windows=False)
        with self._lock:
            self._timer = None
            pending = [w for w in self._windows.values() if w.repeats]
            if pending:
                self._arm_timer(min(w.start for w in pending) + self.window_s - self.clock())

    def _summarise(self, due: list[tuple[tuple[str, int, str], _Window, float]]) -> None:
        for (name, level, _), window, end in due:
            logging.getLogger(name).log(
                level,
                "%s ... repeated %d times in the last %.0fs",
                window.text,
                window.repeats,
                max(end - window.start, 0.0),
                extra={SUMMARY_ATTR: True},
            )


def _flush_at_exit(ref: weakref.ref[RepeatFilter]) -> None:
    throttle = ref()
    if throttle is not None:
        throttle.flush()


def _template(record: logging.LogRecord) -> str:
    """The message before its arguments; digits folded when it was formatted by the caller."""
    msg = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    if not record.args:
        msg = _DIGITS.sub("#", msg[:300])
    if record.exc_info and record.exc_info[0] is not None:
        msg += "|" + record.exc_info[0].__name__
    return msg


def _first_line(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:  # a bad format string still gets summarised
        text = str(record.msg)
    first = text.splitlines()[0] if text else ""
    return first[:200]


def logging_config(window_s: float = 60.0) -> dict[str, Any]:
    """uvicorn's logging config plus a root handler (our own loggers had none: Python's
    last-resort handler wrote them), all behind one shared `RepeatFilter`."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"repeats": {"()": RepeatFilter, "window_s": window_s}}
    config["formatters"]["plain"] = {"format": "%(levelname)s %(name)s: %(message)s"}
    for handler in config["handlers"].values():
        handler["filters"] = ["repeats"]
    config["handlers"]["root"] = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "plain",
        "filters": ["repeats"],
    }
    config["root"] = {"handlers": ["root"], "level": "WARNING"}
    return config
