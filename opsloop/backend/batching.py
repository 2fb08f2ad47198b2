"""Group commit: the writes that arrive together go to the database together.

Every write on a hot path (task creates, log lines, the dispatcher's answers) is a commit, and
commits of rows with live triggers are serialised by NOTIFY. Grouping them costs no latency (an
item arriving alone is written at once, or after `gather_s`; others wait only for the write in
flight) and turns N commits, trigger runs and NOTIFYs into one.

Each item is encoded on its caller's side before it joins a group (see `jsonutil`), so a group
holds only values that encode; when the database still refuses a group (`split_on`), its items
are written one by one and only the refused one fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """`submit(item)` queues an item and returns the future of its own outcome.

    `write(group)` stores a group and returns one outcome per item, in order (a value, or an
    exception that fails that item alone). An exception raised by `write` fails the whole group,
    except one of `split_on` (the database refused a value), which writes the items one by one;
    `refused(exc)` is what a single refused item fails with.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int,
        max_inflight: int = 1,
        gather_s: float = 0.0,
        split_on: tuple[type[BaseException], ...] = (),
        refused: Callable[[BaseException], BaseException] | None = None,
    ) -> None:
        self._write = write
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.gather_s = gather_s
        self.split_on = split_on
        self.refused = refused
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._inflight = 0
        self._flushers: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Items queued and not yet handed to a write."""
        return len(self._queue)

    def submit(self, item: T) -> asyncio.Future[R]:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._idle.clear()
        if self._inflight < self.max_inflight:
            self._inflight += 1
            flusher = asyncio.create_task(self._flush())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return future

    async def drain(self) -> None:
        """Until every queued item was written (or failed)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop writing: what is still queued fails with CancelledError."""
        for flusher in list(self._flushers):
            flusher.cancel()
        await asyncio.gather(*self._flushers, return_exceptions=True)
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()
        self._idle.set()

    async def _flush(self) -> None:
        try:
            if self.gather_s:
                await asyncio.sleep(self.gather_s)  # let a few items gather: one statement for all
            while self._queue:
                group, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                await self._write_group(group)
        finally:
            self._inflight -= 1
            if self._inflight == 0 and not self._queue:
                self._idle.set()

    async def _write_group(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self._write([item for item, _ in group])
        except self.split_on as exc:
            if len(group) == 1:
                _settle(group[0][1], exc=self.refused(exc) if self.refused else exc)
                return
            for one in group:
                await self._write_group([one])
            return
        except asyncio.CancelledError:  # closed while writing: its callers are cancelled too
            for _, future in group:
                future.cancel()
            raise
        except BaseException as exc:  # the database is down: every item of the group gets the error
            for _, future in group:
                _settle(future, exc=exc)
            if not isinstance(exc, Exception):
                raise
            return
        if len(outcomes) != len(group):
            error = RuntimeError(f"stored {len(outcomes)} of {len(group)} items")
            for _, future in group:
                _settle(future, exc=error)
            return
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                _settle(future, exc=outcome)
            else:
                _settle(future, outcome)


def _settle(future: asyncio.Future[R], value: R | None = None, exc: BaseException | None = None) -> None:
    if future.done():  # the caller went away (a client disconnected); its row stands
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)  # type: ignore[arg-type]  # R when no exception
