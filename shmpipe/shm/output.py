"""The writing end of a shared-memory pipe (the async shell around ``ring``'s writer rules)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import PipeError
from ..layout import check_increasing, clone, copy_rows, fill, validate
from ..pipe import OutputPipe
from . import ring
from .end import LIVENESS_PERIOD, Role, ShmEnd
from .header import MAX_BOUNDARIES, Header
from .locks import fence
from .segment import DEFAULT_MODE, current_pid, open_continued, open_segment, trusted_uids

log = logging.getLogger("shmpipe")

SLOW_READER_WARNING = 10.0  # seconds blocked by one reader before the writer logs a warning
SMALL_COPY = 16 << 10  # blocks up to this many bytes go into the ring as one bytes copy


class ShmOutputPipe(ShmEnd, OutputPipe):
    """The writing end of a shared-memory pipe (see :func:`shmpipe.open_output`).

    ``slow_reader_warning``: seconds (default 10) a write may stay blocked on a full ring
    before one warning is logged (logger ``shmpipe``) naming the pid of the reader furthest
    behind; None: never warn.
    """

    def __init__(
        self,
        name: str,
        layout: str,
        capacity: int | None = None,
        *,
        mode: int = DEFAULT_MODE,
        owner: int | str | None = None,
        check_timestamps: bool = False,
        _handover: int | None = None,
    ) -> None:
        super().__init__(name=name, layout=layout, check_timestamps=check_timestamps)
        trusted = trusted_uids(owner)
        if _handover is not None:  # continue an end: never create the pipe
            seg, created = open_continued(name, layout, mode, owner), False
        else:
            seg, created = open_segment(name, layout, capacity, mode, owner)
        role = Role(seg, trusted, reader=False)
        try:
            if not created and capacity is not None and seg.capacity < capacity:
                log.warning(
                    "pipe %r exists with a ring of %d rows; the %d rows asked for are ignored "
                    "(capacity is set by the end that creates the pipe)",
                    name, seg.capacity, capacity,
                )
            h = seg.header
            role.reap(h)
            me = role.register(h)
            try:
                ring.claim_writer(h, me, current_pid(), _handover, role.alive,
                                  time.monotonic_ns())
            except BaseException:
                role.unregister(me)
                raise
        except BaseException:
            try:
                role.remove_if_unused(seg.header)
            finally:
                seg.release()
                role.finish()
            raise
        seg.release()
        self._own(role)
        self._mode = mode
        self._owner_arg = owner
        self._reserved = 0  # rows handed out by reserve() and not committed
        self._reserved_at = 0
        self._break_owed = False
        self._warned_episode = 0
        self._tail = 0  # the oldest row a reader still needed when last looked (only grows)
        self._dtype = self.dtype
        self.slow_reader_warning: float | None = SLOW_READER_WARNING

    def __reduce__(self) -> tuple[Any, ...]:
        """Hand the end over (see ``shm/end.py``): the process that unpickles it becomes the
        writer at the same position; this end is retired."""
        if self._cache_index or self._reserved:
            raise PipeError("flush the cache and commit reserved rows before handing over")
        self._hand_over(ring.hand_over_writer)
        return (_reopen_output, (self.name, self.layout, self._mode, self._owner_arg,
                                 self.check_timestamps, self._role.owner,
                                 self._last_timestamp))

    # ----------------------------------------------------------------- the critical section
    def _enter(self) -> Header:
        """Take the mutex and check this end is still the writer (taking an inherited end
        over first). Call it inside ``try: ... finally: seg.release()``, so that nothing
        (not even KeyboardInterrupt) can leave the mutex held."""
        role = self._role
        if role.inherited or role.handed or self.closed:
            self._adopt()
        seg = role.seg
        seg.acquire()
        h = seg.header
        if h.writer_id != role.owner:
            seg.release()
            ring.check_writer(h, role.owner)
        return h

    def _continue(self, h: Header, inherited: int) -> None:
        role = self._role
        ring.claim_writer(h, role.owner, current_pid(), inherited, role.alive, time.monotonic_ns())
        self._reserved = 0

    def _put(self, want: int, limit: int, put: Callable[[np.ndarray, int], None],
             then_break: bool = False) -> int:
        """Under the mutex: if ``want`` rows are free, let ``put(view, k)`` fill up to
        ``limit`` rows in the ring and commit them; return how many (0: none, the writer is
        now marked asleep). The copy happens under the mutex, so no other process can take
        the pipe over between the owner check and the commit."""
        seg = self._role.seg
        woken: list[int] = []
        try:
            h = self._enter()
            now = time.monotonic_ns()
            free, woken = ring.writer_wait(h, want, now)
            if free < want:
                fence()  # our "asleep" mark is visible before we look at the cursors again
                free = ring.writer_recheck(h, want)
            if free < want:
                k = 0
            else:
                k = min(free, limit)
                w = int(h.write)
                put(seg.rows(w, w + k), k)
                woken = ring.commit(h, k, now)
                if then_break:  # in the same critical section: no read sees one alone
                    more = ring.add_boundary(h)
                    self._break_owed = more is None
                    woken = sorted(set(woken) | set(more or []))
            owners = [int(h.readers[i].owner) for i in woken]
        finally:
            seg.release()
        for owner in owners:
            self._role.ring_owner(owner)
        return k

    def _publish(self, n: int, rows: np.ndarray | None, arr: np.ndarray | None = None) -> bool:
        """Publish ``n`` rows without the mutex, if nothing stands in the way; False: nothing
        was done, take the locked path (:meth:`_put`).

        ``rows``: a structured block of this pipe's dtype, or None and ``arr``, a 2-D array
        checked by ``layout.validate`` (converted straight into the ring). The fast path
        needs this end to be the registered writer (not inherited through fork, not handed
        over, no reservation, not in a blocked episode) and the room last seen to be enough
        (else the readers' cursors are looked at again, without the mutex: a cursor only
        grows, so a stale one only understates the room). Then: one copy into the ring, the
        write cursor stored (the writer alone advances it; readers load it after the rows,
        and x86-64 keeps stores in order), the counters, a fence, and a look at the sleeping
        readers: when some sleep, they are woken under the mutex (they mark themselves
        asleep, fence, then look at the write cursor: one side sees the other).

        The owner is checked before and after the copy, not under a lock: an end inherited
        through fork must be used by one process at a time (the first use in the child takes
        it over and the parent's next write raises PipeError; a parent still writing in the
        very microseconds of the takeover could have that one block overwritten).
        """
        role = self._role
        if role.inherited or role.handed or self._reserved:
            return False
        seg = role.seg
        h = seg.header
        owner = role.owner
        if h.writer_id != owner or h.writer_blocked_since:
            return False
        w = h.write
        cap = seg.capacity
        if w + n - self._tail > cap:
            self._tail = ring.tail(h)[0]
            if w + n - self._tail > cap:
                return False
        if rows is None:
            assert arr is not None
            fill(seg.rows(w, w + n), arr)
        elif n * seg.row_size <= SMALL_COPY:
            off = (w * seg.row_size) % seg.ring_bytes
            seg.ring_view[off : off + n * seg.row_size] = rows.tobytes()
        else:
            copy_rows(seg.rows(w, w + n), rows)
        if h.writer_id != owner:  # a forked child took the end over meanwhile
            return False
        h.write = w + n
        h.rows_written += n
        h.blocks_written += 1
        h.last_write_ns = time.monotonic_ns()
        fence()
        if h.sleepers:
            self._wake_readers()
        return True

    def _wake_readers(self) -> None:
        """Under the mutex: wake the readers asleep on their doorbells."""
        seg = self._role.seg
        try:
            seg.acquire()
            h = seg.header
            owners = [int(h.readers[i].owner) for i in ring.wake_readers(h)]
        finally:
            seg.release()
        for owner in owners:
            self._role.ring_owner(owner)

    async def _sleep(self) -> None:
        """Wait for a reader to make room (its doorbell ring); every LIVENESS_PERIOD without
        one, release readers that died, and warn once per blocked episode longer than
        ``slow_reader_warning`` seconds, naming the reader that holds the writer back.
        Cancelled, the blocked episode ends."""
        bell = self._role.bell
        assert bell is not None
        try:
            rang = await bell.wait(LIVENESS_PERIOD)
        except asyncio.CancelledError:  # the write gave up: it no longer counts as blocked
            seg = self._role.seg
            try:
                h = self._enter()
                ring.writer_unblocked(h, time.monotonic_ns())
            finally:
                seg.release()
            raise
        if not rang:
            seg = self._role.seg
            try:
                h = self._enter()
                self._role.reap(h)
                since = int(h.writer_blocked_since)
                slot = ring.slowest_reader(h)
                limit = self.slow_reader_warning
                if (since and since != self._warned_episode and slot is not None
                        and limit is not None
                        and time.monotonic_ns() - since >= limit * 1e9):
                    self._warned_episode = since
                    r = h.readers[slot]
                    log.warning(
                        "pipe %r: the writer (pid %d) has been blocked for %.1f s by a slow "
                        "reader: pid %d is %d rows behind (the ring holds %d)",
                        self.name, os.getpid(), (time.monotonic_ns() - since) / 1e9,
                        r.pid, h.write - r.cursor, h.capacity)
            finally:
                seg.release()

    # ----------------------------------------------------------------- write hooks
    def _chunk(self, remaining: int) -> int:
        """Rows to wait for before copying: the whole block when it fits the ring; for larger
        blocks, pieces of at least a quarter ring (fewer, bigger hand-offs)."""
        cap = self._role.seg.capacity
        return remaining if remaining <= cap else max(1, cap // 4)

    async def _write_rows(self, rows: np.ndarray) -> None:
        """Copy ``rows`` into the ring once and publish them.

        A block that fits the ring is published at once (readers never see part of it);
        a larger block streams through in pieces as readers consume. Waits while the ring is
        full (backpressure), without polling. If cancelled while waiting, the rows published
        before the cancellation (a prefix of the block, whole rows) stay written; the rest
        is not.
        """
        n = len(rows)
        if n <= self._role.seg.capacity and self._publish(n, rows):
            return
        self._reserved = 0  # a write replaces an uncommitted reservation
        i = 0
        while i < n:
            k = self._put(self._chunk(n - i), n - i, _copier(rows[i:]))
            if k == 0:
                await self._sleep()
            i += k

    def _write_rows_nowait(self, rows: np.ndarray) -> None:
        n = len(rows)
        seg = self._role.seg
        try:
            h = self._enter()
            free = ring.free_rows(h)
        finally:
            seg.release()
        if free < n:
            raise PipeError(
                f"pipe {self.name!r} has room for {free} rows, the block has {n}: "
                "nothing written; use await write() to wait for readers"
            )
        self._reserved = 0
        if self._put(n, n, _copier(rows)) != n:  # pragma: no cover
            raise PipeError(f"pipe {self.name!r}: room for {n} rows vanished")

    async def _close_interval(self) -> None:
        while not self._add_boundary():
            await self._sleep()

    async def _write_rows_then_break(self, rows: np.ndarray) -> None:
        """Rows and the break after them in one critical section (when the block fits)."""
        n = len(rows)
        if n > self._role.seg.capacity:
            await self._write_rows(rows)
            await self._close_interval()
            return
        self._reserved = 0
        self._break_owed = False
        while not self._put(n, n, _copier(rows), then_break=True):
            await self._sleep()
        if self._break_owed:  # the boundary table was full: wait for room like any break
            await self._close_interval()

    def _close_interval_nowait(self) -> None:
        if not self._add_boundary():
            raise PipeError(
                f"pipe {self.name!r}: a reader has not passed the interval break "
                f"{MAX_BOUNDARIES} breaks back; nothing recorded"
            )

    def _add_boundary(self) -> bool:
        seg = self._role.seg
        try:
            h = self._enter()
            woken = ring.writer_break(h, time.monotonic_ns())
            if woken is None:
                fence()  # readers pass boundaries without the mutex: look once more
                woken = ring.writer_break(h, time.monotonic_ns())
            if woken is None:
                return False
            owners = [int(h.readers[i].owner) for i in woken]
        finally:
            seg.release()
        for owner in owners:
            self._role.ring_owner(owner)
        return True

    async def write(self, data: Any) -> None:
        """Write rows (see :meth:`Pipe.write`), copying them into the ring exactly once.

        A 2-D array is converted straight into the ring when it fits and no cache or
        subscriber needs the rows; otherwise as :meth:`Pipe.write`. Waits while the ring is
        full (backpressure, no polling). If cancelled while waiting, the rows published before
        the cancellation (a prefix of the block, whole rows) stay written; the rest is not.
        Raises PipeError for bad input (nothing written), or if this end no longer owns the
        pipe (handed over, or taken over by a forked child).
        """
        if (isinstance(data, np.ndarray) and self._cache is None and not self.subscribers
                and not self.check_timestamps and not self.closed and not self._failed):
            dtype, given = self._dtype, data.dtype
            if (given is dtype or given == dtype) and data.ndim == 1:  # a block of rows
                n = len(data)
                if n and n <= self._role.seg.capacity:
                    if not self._publish(n, data):
                        await self._write_rows(data)
                    return
            elif data.dtype.names is None:
                self._check_writable()
                arr = validate(data, self.dtype)
                if arr is None:
                    return
                n = len(arr)
                if n <= self._role.seg.capacity:
                    if self._publish(n, None, arr):
                        return
                    self._reserved = 0
                    while not self._put(n, n, lambda view, k: fill(view, arr)):
                        await self._sleep()
                    return
        await super().write(data)

    # ----------------------------------------------------------------- zero-copy writes
    async def reserve(self, n: int) -> np.ndarray:
        """Wait for room for ``n`` rows and return a writable structured view of them in the
        ring (zero-copy). Fill it, then ``await commit(n)``; until then readers see nothing.

        While rows are reserved, no other process may take this end over (a forked child's
        first use raises PipeError instead). Raises PipeError unless
        ``1 <= n <= capacity``. A later ``reserve`` or ``write`` replaces an uncommitted
        reservation. Cancelling the wait reserves nothing.
        """
        self._check_writable()
        cap = self._role.seg.capacity
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= cap:
            raise PipeError(f"reserve expects 1..{cap} rows, got {n!r}")
        n = int(n)
        await self.flush_cache()
        self._reserved = 0
        while True:
            seg = self._role.seg
            owners: list[int] = []
            try:
                h = self._enter()
                free, woken = ring.writer_wait(h, n, time.monotonic_ns())
                if free < n:
                    fence()  # as in _put: readers store their cursors without the mutex
                    free = ring.writer_recheck(h, n)
                owners = [int(h.readers[i].owner) for i in woken]
                if free >= n:
                    ring.reserve(h, self._role.owner, n)
                    w = int(h.write)
            finally:
                seg.release()
            for owner in owners:
                self._role.ring_owner(owner)
            if free >= n:
                break
            await self._sleep()
        self._reserved, self._reserved_at = n, w
        return seg.rows(w, w + n)

    async def commit(self, n: int | None = None) -> None:
        """Publish the first ``n`` reserved rows (default: all of them) to the readers.

        Subscribers receive a copy. Raises PipeError unless ``0 <= n <=`` rows reserved (or,
        with ``check_timestamps``, if their timestamps do not increase); nothing is published
        then and the reservation stays. Raises PipeError if this end no longer owns the pipe.
        """
        self._check_writable()
        n = self._reserved if n is None else n
        if (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                or not 0 <= n <= self._reserved):
            raise PipeError(f"commit expects 0..{self._reserved} reserved rows, got {n!r}")
        n = int(n)
        if n == 0:
            self._reserved = 0
            return
        rows = self._role.seg.rows(self._reserved_at, self._reserved_at + n)
        if self.check_timestamps:
            check_increasing(rows["timestamp"], self._last_timestamp)
        for pipe in self.subscribers:
            await pipe.write(clone(rows))
        seg = self._role.seg
        try:
            h = self._enter()
            if h.write != self._reserved_at or h.reserved < h.write + n:
                raise PipeError(f"pipe {self.name!r}: the reservation was lost "
                                "(the pipe was written or taken over meanwhile)")
            woken = ring.commit(h, n, time.monotonic_ns())
            owners = [int(h.readers[i].owner) for i in woken]
        finally:
            seg.release()
        self._reserved = 0
        for owner in owners:
            self._role.ring_owner(owner)
        self._note_written(rows)

    # ----------------------------------------------------------------- closing
    async def _close(self) -> None:
        self._finish()


def _copier(rows: np.ndarray) -> Callable[[np.ndarray, int], None]:
    """A ``put`` for :meth:`ShmOutputPipe._put` that copies the first rows of ``rows``."""
    def put(view: np.ndarray, k: int) -> None:
        copy_rows(view, rows[:k])
    return put


def _reopen_output(name: str, layout: str, mode: int, owner: int | str | None, check: bool,
                   inherited: int, last_ts: int | None) -> ShmOutputPipe:
    out = ShmOutputPipe(name, layout, mode=mode, owner=owner, check_timestamps=check,
                        _handover=inherited)
    out._last_timestamp = last_ts
    return out
