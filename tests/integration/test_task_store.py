"""The task store against PostgreSQL: typed rows keep the wire shape key for key (so every
answer and frame stays byte-for-byte the same), listings page by keyset, counts and type
listings see only what they should. Each test uses task types of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg.rows import dict_row

from opsloop.backend import jsonutil
from opsloop.backend.db import make_pool
from opsloop.backend.errors import BadRequest, Conflict, NotFound
from opsloop.backend.tasks.model import NewTask, Task, TaskEvent, TaskStatus
from opsloop.backend.tasks.store import EventFilter, TaskFilter, TaskStore


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TaskStore]:
    pool = make_pool(database_url, min_size=1, max_size=3, name="store-test")
    await pool.open(wait=True)
    tasks = TaskStore(pool)
    try:
        yield tasks
    finally:
        await tasks.close()
        await pool.close()


def new(kind: str, payload: object = None, key: str | None = None) -> NewTask:
    return NewTask(kind, "test", payload, None, uuid.uuid4().hex, "nobody", key, 3)


def raw_rows(url: str, sql: str, *params: object) -> list[dict[str, object]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


async def test_typed_rows_keep_the_wire_shape_key_for_key(store: TaskStore, database_url: str) -> None:
    kind = "store-" + uuid.uuid4().hex[:8]
    created = await store.create(new(kind, {"a": [1, {"b": None}]}))
    await store.add_event(created.id, actor="t", kind="note", data={"x": 1})
    (raw_task,) = raw_rows(database_url, "SELECT * FROM tasks WHERE id = %s", created.id)
    raw_events = raw_rows(database_url, "SELECT * FROM task_events WHERE task_id = %s ORDER BY id", created.id)
    task, events = await store.get_with_events(created.id)
    assert list(task.row().items()) == list(raw_task.items())
    assert [list(e.row().items()) for e in events] == [list(r.items()) for r in raw_events]
    assert jsonutil.dumps(task.row()) == jsonutil.dumps(raw_task)
    assert Task.from_row(raw_task) == task and TaskEvent.from_row(raw_events[0]) == events[0]
    assert task.status is TaskStatus.QUEUED and [e.kind for e in events] == ["created", "note"]


async def test_creates_in_one_group_each_get_their_own_answer(store: TaskStore) -> None:
    import asyncio

    kind = "store-" + uuid.uuid4().hex[:8]
    key = uuid.uuid4().hex
    results = await asyncio.gather(
        store.create(new(kind, {"n": 1}, key)),
        store.create(new(kind, {"n": 2}, key)),
        store.create(new(kind, {"n": 3})),
        return_exceptions=True,
    )
    first, again, other = results
    assert not isinstance(first, BaseException) and not isinstance(again, BaseException) and not isinstance(other, BaseException)
    assert first.id == again.id and [first.created, again.created] == [True, False]
    assert other.created and other.id != first.id
    with pytest.raises(BadRequest):  # refused on the caller's side, before it joins a group
        await store.create(new(kind, {"bad": "\x00"}))


async def test_listing_pages_by_keyset_and_filters(store: TaskStore) -> None:
    kind = "store-" + uuid.uuid4().hex[:8]
    ids = [(await store.create(new(kind, {"i": i}))).id for i in range(5)]
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page, cursor = await store.list(TaskFilter(type=kind), limit=2, cursor=cursor)
        seen += [t.id for t in page]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert [t.id for t in await store.list_by_types([kind], 3)] == seen[:3]
    await store.cancel(ids[0], actor="t")
    counts = await store.count_by_status(TaskFilter(type=kind))
    assert counts == {"queued": 4, "running": 0, "done": 0, "error": 0, "cancelled": 1}
    with pytest.raises(BadRequest):
        await store.list(TaskFilter(status="nope"))


async def test_changes_by_hand_refuse_what_does_not_apply(store: TaskStore) -> None:
    kind = "store-" + uuid.uuid4().hex[:8]
    task_id = (await store.create(new(kind))).id
    with pytest.raises(Conflict):
        await store.retry(task_id, actor="t")  # queued: nothing to retry
    patched = await store.patch(task_id, 1, {"status": "error", "error": {"message": "by hand"}}, actor="t")
    assert patched.status is TaskStatus.ERROR and patched.version == 2 and patched.finished_at is not None
    with pytest.raises(Conflict):
        await store.patch(task_id, 1, {"correlation_id": "late"}, actor="t")  # version moved on
    retried = await store.retry(task_id, actor="t")
    assert retried.status is TaskStatus.QUEUED and retried.attempts == 0
    with pytest.raises(NotFound):
        await store.get(uuid.uuid4())
    events, _ = await store.list_events(EventFilter(task_id=task_id), oldest_first=True)
    assert [e.kind for e in events] == ["created", "status", "retried"]
