"""The live notification payloads on channel `opsloop_live`, in one place.

The triggers (migrations) publish the ids of committed rows: `t:<id>:<version>,…` for tasks,
`e:<id>,…` for task events, `l:<id>,…` for log lines, and `a:<slug>` when an agent registers.
A payload carries one kind; NOTIFY limits its size, so a big statement sends several.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

Prefix = Literal["t", "e", "l", "a"]
TASK, EVENT, LOG, AGENT = "t", "e", "l", "a"
KIND_OF_PREFIX = {"t": "task", "e": "event", "l": "log"}


@dataclass(frozen=True, slots=True)
class TaskChange:
    task_id: uuid.UUID
    version: int


@dataclass(frozen=True, slots=True)
class Notification:
    """One payload split: its prefix and its items (still text: most consumers need few)."""

    prefix: str
    items: list[str]


def decode(payload: str) -> Notification:
    prefix, _, items = payload.partition(":")
    return Notification(prefix, items.split(","))


def task_change(item: str) -> TaskChange:
    """`<id>:<version>` of a `t:` item."""
    task_id, _, version = item.partition(":")
    return TaskChange(uuid.UUID(task_id), int(version))


def task_id_of(item: str) -> str:
    """The id text of a `t:` item (the bus keys rows by it, without parsing the UUID)."""
    return item.split(":", 1)[0]


def has_new_task(payload: str) -> bool:
    """A `t:` payload naming a version-1 row: a task was created (the dispatcher's wake-up).
    A substring test: this runs for every task change of every instance."""
    return payload.startswith("t:") and ":1," in payload + ","


def encode(prefix: str, items: list[str]) -> str:
    """The payload the triggers send (tests and tools use it to fake one)."""
    return prefix + ":" + ",".join(items)


def encode_tasks(changes: list[TaskChange]) -> str:
    return encode(TASK, [f"{c.task_id}:{c.version}" for c in changes])
