"""Repeated warnings and errors are written once per window, with one summary line for the rest."""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import Iterator

import pytest

from opsloop.shared.log_throttle import RepeatFilter, logging_config
from tests.support.processes import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, RepeatFilter, Clock]]:
    """A real logger whose handler carries the filter, as `logging_config()` installs it."""
    clock = Clock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    throttle = RepeatFilter(window_s=60, clock=clock)
    handler.addFilter(throttle)
    logger = logging.getLogger("opsloop.test.throttle")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, out, throttle, clock
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _refused(logger: logging.Logger, port: int) -> None:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError:
        logger.exception("connecting to the database on port %d failed", port)


def test_first_occurrence_passes_with_traceback_then_repeats_become_one_line(logged) -> None:
    logger, out, _, clock = logged
    for i in range(500):
        clock.now += 0.1
        _refused(logger, 5432 + i % 3)  # same template, other arguments
    text = out.getvalue()
    assert text.count("connecting to the database") == 1
    assert text.count("Traceback") == 1 and "ConnectionRefusedError" in text

    clock.now += 60  # the window is over: the next occurrence passes again, after the summary
    _refused(logger, 5432)
    lines = out.getvalue()[len(text) :].splitlines()
    assert "repeated 499 times in the last 60s" in lines[0] and "connecting to the database on port 5432 failed" in lines[0]
    assert "Traceback" in out.getvalue()[len(text) :], "the first of a new window carries its traceback again"


def test_other_messages_levels_and_info_are_not_held_back(logged) -> None:
    logger, out, _, _ = logged
    for _ in range(3):
        logger.warning("disk %s is full", "a")
        logger.error("disk %s is full", "a")  # another level: another key
        logger.warning("pool %s exhausted", "p")
        logger.info("request served")  # below WARNING: never throttled (the handler decides)
    logger.setLevel(logging.INFO)
    logger.info("request served")
    logger.info("request served")
    text = out.getvalue()
    assert text.count("WARNING opsloop.test.throttle: disk a is full") == 1
    assert text.count("ERROR opsloop.test.throttle: disk a is full") == 1
    assert text.count("pool p exhausted") == 1
    assert text.count("request served") == 2


def test_messages_formatted_by_the_caller_are_grouped_without_their_numbers(logged) -> None:
    logger, out, _, _ = logged
    for i in range(50):
        logger.warning(f"task {i} lease lost after {i * 7} ms")  # formatted by the caller: the case being tested
    assert out.getvalue().count("lease lost") == 1


def test_a_burst_that_stops_is_summarised_when_its_window_ends() -> None:
    """No later record needed: a timer writes the summary (real clock, short window)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatFilter(window_s=0.3))
    logger = logging.getLogger("opsloop.test.throttle.timer")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for _ in range(20):
            logger.error("database unavailable")
        assert out.getvalue().count("database unavailable") == 1
        wait_for(lambda: "repeated 19 times" in out.getvalue(), timeout=10, what="the summary line")
    finally:
        logger.removeHandler(handler)


def test_window_zero_writes_everything(logged) -> None:
    logger, out, throttle, _ = logged
    throttle.window_s = 0
    for _ in range(5):
        logger.warning("same")
    assert out.getvalue().count("same") == 5


def test_logging_config_puts_one_filter_on_root_and_uvicorn_handlers() -> None:
    config = logging_config(window_s=30)
    assert config["root"]["handlers"] == ["root"]
    for name, handler in config["handlers"].items():
        assert handler["filters"] == ["repeats"], name
    saved = (logging.root.handlers[:], logging.root.level)
    try:
        logging.config.dictConfig(config)
        filters = {id(f) for h in [*logging.root.handlers, *logging.getLogger("uvicorn").handlers] for f in h.filters}
        assert len(filters) == 1
        (only,) = [f for f in logging.root.handlers[0].filters]
        assert isinstance(only, RepeatFilter) and only.window_s == 30
    finally:
        logging.root.handlers[:] = saved[0]
        logging.root.setLevel(saved[1])
