"""LocalPipe: a two-way pipe between coroutines of one process."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Generator
from typing import Any

import numpy as np

from .buffer import Span
from .errors import PipeError
from .layout import clone, concat
from .pipe import CloseCallback, Pipe

YIELD_EVERY = 32  # a write passes through the event loop at least this often


class _Done:
    """An awaitable that completes at once (what a write awaits when it need not yield)."""

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # a generator that yields nothing


_DONE = _Done()


class LocalPipe(Pipe):
    """An in-process pipe: write at one end, read at the other, in one event loop.

    Event-driven: a waiting ``read`` wakes as soon as rows are written, an interval is closed or
    the pipe is closed (no polling). Each written block is copied once (the writer may reuse
    its array); a read that spans several blocks concatenates them. ``write_limit > 0`` bounds the
    number of blocks waiting to be read: ``write`` then waits for the reader (backpressure)
    and ``write_nowait`` raises PipeError. A ``write`` passes through the event loop when another
    task is ready to run (a reader its rows woke, among others) and at least every 32 writes,
    not at every write as joule's does: a pass costs more than a small write. Not thread-safe:
    use it from one event loop.
    """

    def __init__(
        self,
        layout: str,
        name: str | None = None,
        close_cb: CloseCallback | None = None,
        debug: bool = False,
        stream: Any = None,
        write_limit: int = 0,
        *,
        check_timestamps: bool = False,
    ) -> None:
        super().__init__(
            name=name, direction=Pipe.DIRECTION.TWOWAY, stream=stream, layout=layout,
            close_cb=close_cb, check_timestamps=check_timestamps,
        )
        self.debug = debug
        self.write_limit = int(write_limit)
        self._queue: collections.deque[np.ndarray] = collections.deque()  # blocks not yet read
        self._boundaries: collections.deque[int] = collections.deque()
        self._written = 0
        self._pulled = 0  # rows moved from the queue into _held
        self._held: np.ndarray = np.empty(0, self.dtype)  # rows [_held_start, _pulled)
        self._held_start = 0
        self._news = asyncio.Event()
        self._room = asyncio.Event()
        self._unyielded = 0  # writes since the last one that yielded to the event loop
        self._dtype = self.dtype

    # --------------------------------------------------------------- read hooks
    def _source(self) -> tuple[int, int | None, bool, bool]:
        boundary = self._boundaries[0] if self._boundaries else None
        return self._written, boundary, self.closed, False

    def _rows(self, span: Span) -> np.ndarray:
        queue = self._queue
        if span.start == self._pulled and queue and len(queue[0]) == span.stop - span.start:
            rows = queue.popleft()  # the common case: exactly the next block
            self._pulled = span.stop
            if self.write_limit:
                self._room.set()
            self._held, self._held_start = rows, span.start
            if self.debug:
                print(f"[{self.name}:read] returning {len(rows)} rows")
            return rows
        parts = []
        if span.start < self._pulled:
            parts.append(self._held[span.start - self._held_start :])
        while self._pulled < span.stop:
            block = self._queue.popleft()
            parts.append(block)
            self._pulled += len(block)
        self._room.set()
        if len(parts) == 1:
            rows = parts[0]
        elif parts:
            rows = concat(parts, self.dtype)
        else:
            rows = self._held[:0]
        self._held, self._held_start = rows, span.start
        if self.debug:
            print(f"[{self.name}:read] returning {len(rows)} rows")
        return rows

    def _pass_boundary(self) -> None:
        self._boundaries.popleft()

    async def _wait_for_news(self) -> None:
        self._news.clear()
        await self._news.wait()

    def _wait_for_news_sync(self, timeout: float | None) -> bool:
        raise PipeError("a LocalPipe cannot block its own thread: use read() or read_nowait()")

    # --------------------------------------------------------------- write hooks
    def _append(self, rows: np.ndarray) -> None:
        rows = clone(rows)  # the writer may reuse its array: the one copy on the write path
        self._queue.append(rows)
        self._written += len(rows)
        self._news.set()
        if self.debug:
            print(f"[{self.name}:write] queueing block with [{len(rows)}] rows")

    def _full(self) -> bool:
        return self.write_limit > 0 and len(self._queue) >= self.write_limit

    async def _write_rows(self, rows: np.ndarray, then_break: bool = False) -> None:
        while self._full() and not self.closed:
            self._room.clear()
            await self._room.wait()
        if self.closed:
            raise PipeError("Cannot write to a closed pipe")
        self._append(rows)
        if then_break:
            self._add_boundary()  # no await in between: a reader sees the rows and the break
        await self._yield()

    def _yield(self) -> Awaitable[None] | _Done:
        """What a write awaits last: a pass through the event loop when another task is ready
        to run (a reader its rows just woke, among others) and at least every
        ``YIELD_EVERY`` writes (so that I/O is polled); otherwise nothing (a pass costs
        more than the rest of a small write)."""
        loop = asyncio.get_running_loop()
        self._unyielded += 1
        if self._unyielded >= YIELD_EVERY or getattr(loop, "_ready", True):
            self._unyielded = 0
            return asyncio.sleep(0)
        return _DONE

    async def write(self, data: Any) -> None:
        """See :meth:`Pipe.write`. Yields to the event loop when another task is ready to run
        (a reader waiting for these rows, among others) and at least every 32 writes, not at
        every write: a pass through the loop costs more than a small write."""
        if (type(data) is np.ndarray and self._cache is None and not self.subscribers
                and not self.check_timestamps and not self.closed and not self._failed
                and not self._full()):
            dtype = self._dtype
            if (data.dtype is dtype or data.dtype == dtype) and data.ndim == 1 and len(data):
                self._append(data)
                await self._yield()
                return
        await super().write(data)

    def _write_rows_nowait(self, rows: np.ndarray) -> None:
        if self._full():
            raise PipeError(
                f"pipe is full: {len(self._queue)} blocks wait and write_limit is "
                f"{self.write_limit}; use await write() to wait for the reader"
            )
        self._append(rows)

    def _add_boundary(self) -> None:
        self._boundaries.append(self._written)
        self._news.set()
        if self.debug:
            print(f"[{self.name}:write] closing interval")

    async def _close_interval(self) -> None:
        self._add_boundary()

    async def _write_rows_then_break(self, rows: np.ndarray) -> None:
        await self._write_rows(rows, then_break=True)

    def _close_interval_nowait(self) -> None:
        self._add_boundary()

    async def _close(self) -> None:
        self._news.set()
        self._room.set()

    def _check_nowait(self) -> None:
        if self._full():
            raise PipeError(f"pipe is full: {len(self._queue)} blocks wait and write_limit is "
                            f"{self.write_limit}")

    def close_nowait(self) -> None:
        """Close without awaiting; PipeError if subscribers or ``close_cb`` need awaiting."""
        if self.subscribers:
            raise PipeError("cannot close_nowait subscribers, use async")
        if self.close_cb is not None:
            raise PipeError("close_cb cannot be executed, use async")
        if self._cache is not None:
            self._flush_cache_nowait()
        self.closed = True
        self._news.set()
        self._room.set()
