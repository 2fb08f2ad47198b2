"""The group commit (opsloop.backend.batching): items that arrive together share one write, each
caller gets its own outcome, a refused item fails alone, a failed write fails its whole group."""

from __future__ import annotations

import asyncio

import pytest

from opsloop.backend.batching import GroupCommit


class Refused(Exception):
    pass


class Recorder:
    """A fake database: records each group; refuses any group holding a negative item."""

    def __init__(self, delay: float = 0.01) -> None:
        self.groups: list[list[int]] = []
        self.delay = delay
        self.down = False

    async def write(self, items: list[int]) -> list[int | BaseException]:
        self.groups.append(list(items))
        await asyncio.sleep(self.delay)
        if self.down:
            raise ConnectionError("database down")
        if any(i < 0 for i in items):
            raise Refused(f"refused {items}")
        return [ValueError("odd one") if i == 7 else i * 10 for i in items]


async def test_a_lone_item_is_written_at_once_and_the_rest_share_one_write() -> None:
    db = Recorder()
    group: GroupCommit[int, int] = GroupCommit(db.write, max_batch=100, max_inflight=1)
    first = group.submit(1)
    await asyncio.sleep(0)  # the first write is in flight
    rest = [group.submit(i) for i in range(2, 12) if i != 7]
    assert await first == 10
    assert await asyncio.gather(*rest) == [i * 10 for i in range(2, 12) if i != 7]
    assert db.groups == [[1], [2, 3, 4, 5, 6, 8, 9, 10, 11]]


async def test_groups_are_bounded_by_max_batch() -> None:
    db = Recorder(delay=0)
    group: GroupCommit[int, int] = GroupCommit(db.write, max_batch=3, max_inflight=1)
    assert await asyncio.gather(*[group.submit(i) for i in range(8) if i != 7]) == [i * 10 for i in range(7)]
    assert [len(g) for g in db.groups] == [3, 3, 1]


async def test_an_outcome_that_is_an_exception_fails_its_own_caller_only() -> None:
    group: GroupCommit[int, int] = GroupCommit(Recorder().write, max_batch=100)
    futures = [group.submit(i) for i in (6, 7, 8)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] == 60 and results[2] == 80
    assert isinstance(results[1], ValueError)


async def test_a_refused_group_is_written_item_by_item_and_only_the_refused_one_fails() -> None:
    db = Recorder(delay=0)
    group: GroupCommit[int, int] = GroupCommit(db.write, max_batch=100, split_on=(Refused,), refused=lambda exc: LookupError(str(exc)))
    results = await asyncio.gather(*[group.submit(i) for i in (1, -2, 3)], return_exceptions=True)
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], LookupError) and "refused [-2]" in str(results[1])
    assert db.groups == [[1, -2, 3], [1], [-2], [3]]


async def test_a_failed_write_fails_every_item_of_its_group() -> None:
    db = Recorder(delay=0)
    db.down = True
    group: GroupCommit[int, int] = GroupCommit(db.write, max_batch=100, split_on=(Refused,))
    results = await asyncio.gather(*[group.submit(i) for i in (1, 2)], return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    db.down = False
    assert await group.submit(3) == 30  # the next group goes through


async def test_concurrent_writes_are_bounded_by_max_inflight() -> None:
    active = 0
    most = 0

    async def write(items: list[int]) -> list[int | BaseException]:
        nonlocal active, most
        active += 1
        most = max(most, active)
        await asyncio.sleep(0.01)
        active -= 1
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(write, max_batch=1, max_inflight=2)
    assert await asyncio.gather(*[group.submit(i) for i in range(6)]) == list(range(6))
    assert most == 2


async def test_gather_window_lets_items_join_and_drain_waits_for_them() -> None:
    db = Recorder(delay=0)
    group: GroupCommit[int, int] = GroupCommit(db.write, max_batch=100, gather_s=0.02)
    futures = [group.submit(1)]
    await asyncio.sleep(0.005)
    futures.append(group.submit(2))
    await group.drain()
    assert all(f.done() for f in futures)
    assert db.groups == [[1, 2]]


async def test_a_caller_that_went_away_does_not_break_the_group() -> None:
    db = Recorder()
    group: GroupCommit[int, int] = GroupCommit(db.write, max_batch=100)
    gone = group.submit(1)
    kept = group.submit(2)
    gone.cancel()
    assert await kept == 20
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_close_cancels_what_is_still_queued() -> None:
    db = Recorder(delay=1.0)
    group: GroupCommit[int, int] = GroupCommit(db.write, max_batch=1)
    first, second = group.submit(1), group.submit(2)
    await asyncio.sleep(0)
    await group.close()
    assert first.cancelled() and second.cancelled()
    assert group.pending == 0
