"""The two ends of a shared-memory pipe: :func:`open_output` and :func:`open_input`.

Ownership rules (how ends move between processes)
--------------------------------------------------
* An end belongs to the process that last used it. Ends pickle: unpickling re-attaches by
  name, so an end can be passed to ``multiprocessing.Process`` under any start method. An end
  that already holds a writer registration or a reader slot hands it over: the child takes it
  (same stream position, no gap, no duplicate) and the parent's copy raises PipeError if used
  again. With ``fork`` the same happens when the child first uses the inherited end.
* An input end takes its reader slot (its cursor in the header) when it is opened: it
  receives every row written from then on (or, if it is the only reader, from the oldest row
  no reader has consumed). Handing it to a child moves the slot with it, so the parent keeps
  no phantom reader that would stall the writer.
* The writer registers when it opens: a second ``open_output`` while the first writer's
  process lives raises PipeError naming its pid. A writer that replaces a dead (or closed) one
  takes over, and its first row starts a new interval.
* The segment and its semaphore and doorbells are unlinked when the last end closes, unless
  rows remain that no reader has consumed: then the pipe stays in /dev/shm, and the next reader
  to attach gets them (``shmpipe.unlink(name)`` removes it for good).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import numpy as np

from ..buffer import Span
from ..errors import PipeError
from ..layout import check_increasing, clone, copy_rows, fill, validate
from ..pipe import InputPipe, OutputPipe
from . import liveness, names, ring
from .doorbell import Doorbell, Ringer
from .header import NO_WRITER, WRITER_CLOSED, WRITER_DEAD, WRITER_OPEN, Header
from .segment import DEFAULT_MODE, Segment, open_segment
from .segment import unlink as _unlink_segment

log = logging.getLogger("shmpipe")

LIVENESS_PERIOD = 0.5  # a sleeping end checks its peer's process this often (seconds)
SPIN_MAX = 200e-6  # adaptive polling before sleeping never exceeds this (seconds)


def _writer_gone(h: Header) -> bool:
    """With the lock held: True if no live writer is attached (marking a dead one dead).

    Reads /proc: call it when deciding to sleep or to unlink, not on every read.
    """
    if h.writer_state == WRITER_OPEN and not liveness.alive(h.writer_pid, h.writer_started):
        h.writer_state = WRITER_DEAD
    return h.writer_state != WRITER_OPEN


def _stream_ended(h: Header) -> bool:
    """With the lock held: True if the writer closed or was found dead."""
    return h.writer_state in (WRITER_CLOSED, WRITER_DEAD)


def _release_if_last(seg: Segment, h: Header) -> bool:
    """With the lock held: True if no end is attached and no row waits (unlink the pipe)."""
    return _writer_gone(h) and not ring.active_slots(h) and ring.unconsumed(h) == 0


def _reap_dead(seg: Segment) -> None:
    """Release the slots of readers whose process is gone.

    Liveness is read from /proc outside the lock; under it, a slot is released only if it
    still belongs to a process found dead.
    """
    h = seg.header
    readers = {(int(h.readers[i].pid), int(h.readers[i].started)) for i in ring.active_slots(h)}
    dead = {r for r in readers if not liveness.alive(*r)}
    if not dead:
        return
    seg.acquire()
    try:
        ring.reap(h, lambda pid, started: (pid, started) not in dead)
    finally:
        seg.release()


def _finish(seg: Segment, remove: bool) -> None:
    """Release the lock, unlinking the pipe first if ``remove``."""
    if remove:
        seg.unlink()
    seg.release()


class _ShmEnd:
    """What both ends of a shared-memory pipe share."""

    _seg: Segment
    closed: bool
    name: str | None

    @property
    def capacity(self) -> int:
        """Rows the ring holds."""
        return self._seg.capacity

    def stats(self) -> dict[str, int]:
        """A snapshot of the pipe's counters and cursors (read without the lock)."""
        return _stats(self._seg.header)

    def _refuse_if_closed(self) -> None:
        if self.closed:
            raise PipeError(f"cannot hand over closed pipe {self.name!r}")


class ShmOutputPipe(_ShmEnd, OutputPipe):
    """The writing end of a shared-memory pipe (see :func:`open_output`)."""

    def __init__(
        self,
        name: str,
        layout: str,
        capacity: int | None = None,
        *,
        mode: int = DEFAULT_MODE,
        check_timestamps: bool = False,
        _handover: int | None = None,
    ) -> None:
        super().__init__(name=name, layout=layout, check_timestamps=check_timestamps)
        seg, created = open_segment(name, layout, capacity, mode)
        if not created and capacity is not None and seg.capacity < capacity:
            log.warning(
                "pipe %r exists with a ring of %d rows; the %d rows asked for are ignored "
                "(capacity is set by the end that creates the pipe)", name, seg.capacity, capacity,
            )
        try:
            h = seg.header
            handover = _handover is not None and h.writer_gen == _handover
            if h.writer_state == WRITER_OPEN and not handover and not _writer_gone(h):
                raise PipeError(
                    f"pipe {name!r} already has a writer: pid {h.writer_pid} "
                    "(one live writer per pipe)"
                )
            if h.writer_state != NO_WRITER and not handover:
                h.takeovers += 1
                if h.write > 0 and ring.last_boundary(h) != h.write:
                    ring.add_boundary(h)  # the new writer's rows start a new interval
            self._register(h)
            self._w = int(h.write)
        except BaseException:
            seg.release()
            seg.close()
            raise
        seg.release()
        self._seg = seg
        self._mode = mode
        self._free = 0
        self._reserved = 0
        self._ringer = Ringer()
        try:
            self._bell = Doorbell(names.writer_bell(name), mode)
        except BaseException:
            with seg.locked() as h:  # give the registration back
                if h.writer_gen == self._gen:
                    h.writer_state = WRITER_CLOSED
            seg.close()
            raise

    def _register(self, h: Header) -> None:
        h.writer_pid, h.writer_started = liveness.me()
        h.writer_gen += 1
        self._gen = int(h.writer_gen)
        self._pid = os.getpid()
        h.writer_sleeping = 0
        h.writer_state = WRITER_OPEN

    def __reduce__(self) -> tuple[Any, ...]:
        self._refuse_if_closed()
        if self._cache_index or self._reserved:
            raise PipeError("flush the cache and commit reserved rows before handing over")
        return (_reopen_output, (self.name, self.layout, self._mode, self.check_timestamps,
                                 self._gen, self._last_timestamp))

    # ----------------------------------------------------------------- locking helpers
    def _lock(self, closing: bool = False) -> Header:
        """Take the header lock and check this end still owns the writer registration."""
        if self.closed and not closing:
            raise PipeError(f"pipe {self.name!r} is closed")
        seg = self._seg
        seg.acquire()
        h = seg.header
        if h.writer_gen != self._gen:
            seg.release()
            raise PipeError(
                f"this output end of pipe {self.name!r} now belongs to pid {h.writer_pid}"
            )
        if self._pid != os.getpid():  # inherited through fork: the child takes it over
            self._register(h)
            self._w, self._free, self._reserved = int(h.write), 0, 0
        return h

    def _check_owner(self) -> None:
        """Raise PipeError before touching the ring if another end took this one over."""
        h = self._seg.header
        if h.writer_gen != self._gen or self._pid != os.getpid():
            self._lock()  # raises, or registers a forked child as the writer
            self._seg.release()

    def _ring(self, slots: list[int]) -> None:
        for slot in slots:
            self._ringer.ring(names.reader_bell(self.name or "", slot))

    def _refresh_free(self, need: int) -> bool:
        """Recompute free space; if short, mark the writer asleep. True if ``need`` rows fit."""
        h = self._lock()
        try:
            self._free = ring.free_rows(h)
            if self._free >= need:
                return True
            h.writer_sleeping = 1
            h.writer_waits += 1
            # readers holding unconsumed rows wait for news that only their consuming can
            # bring: wake them so they see the writer waiting (see ShmInputPipe._source)
            woken = ring.wake_readers(h)
        finally:
            self._seg.release()
        self._ring(woken)
        return False

    async def _wait_space(self, need: int) -> None:
        while self._free < need and not self._refresh_free(need):
            if not await self._bell.wait(LIVENESS_PERIOD):
                _reap_dead(self._seg)  # a reader that died must not block us forever

    def _publish(self, n: int) -> None:
        h = self._lock()
        try:
            woken = ring.commit(h, n)
        finally:
            self._seg.release()
        self._w += n
        self._free -= n
        self._ring(woken)

    # ----------------------------------------------------------------- write hooks
    def _chunk(self, remaining: int) -> int:
        """Rows to wait for before copying: the whole block when it fits the ring; for larger
        blocks, pieces of at least a quarter ring (fewer, bigger hand-offs)."""
        cap = self._seg.capacity
        return remaining if remaining <= cap else max(1, cap // 4)

    async def _write_rows(self, rows: np.ndarray) -> None:
        """Copy ``rows`` into the ring once and publish them.

        A block that fits the ring is published at once (readers never see part of it);
        a larger block streams through in pieces as readers consume. Waits while the ring is
        full (backpressure), without polling. If cancelled while waiting, the rows published
        before the cancellation (a prefix of the block, whole rows) stay written; the rest
        is not.
        """
        self._reserved = 0  # a write replaces an uncommitted reservation
        i, n = 0, len(rows)
        while i < n:
            self._check_owner()
            await self._wait_space(self._chunk(n - i))
            self._check_owner()
            k = min(self._free, n - i)
            copy_rows(self._seg.rows(self._w, self._w + k), rows[i : i + k])
            self._publish(k)
            i += k

    def _write_rows_nowait(self, rows: np.ndarray) -> None:
        n = len(rows)
        self._check_owner()
        self._reserved = 0
        if self._free < n and not self._refresh_free(n):
            raise PipeError(
                f"pipe {self.name!r} has room for {self._free} rows, the block has {n}: "
                "nothing written; use await write() to wait for readers"
            )
        copy_rows(self._seg.rows(self._w, self._w + n), rows)
        self._publish(n)

    async def _close_interval(self) -> None:
        while not self._add_boundary():
            if not await self._bell.wait(LIVENESS_PERIOD):
                _reap_dead(self._seg)

    def _close_interval_nowait(self) -> None:
        if not self._add_boundary():
            raise PipeError(
                f"pipe {self.name!r}: a reader has not passed the interval break "
                f"{ring.MAX_BOUNDARIES} breaks back; nothing recorded"
            )

    def _add_boundary(self) -> bool:
        h = self._lock()
        try:
            woken = ring.add_boundary(h)
            if woken is None:
                h.writer_sleeping = 1
                return False
        finally:
            self._seg.release()
        self._ring(woken)
        return True

    async def write(self, data: Any) -> None:
        """Write rows (see :meth:`Pipe.write`), copying them into the ring exactly once.

        A 2-D array is converted straight into the ring when it fits and no cache or
        subscriber needs the rows; otherwise as :meth:`Pipe.write`. Waits while the ring is
        full (backpressure, no polling). If cancelled while waiting, the rows published before
        the cancellation (a prefix of the block, whole rows) stay written; the rest is not.
        """
        if (isinstance(data, np.ndarray) and data.dtype.names is None and self._cache is None
                and not self.subscribers):
            self._check_writable()
            arr = validate(data, self.dtype)
            if arr is None:
                return
            if len(arr) <= self._seg.capacity:
                rows = await self.reserve(len(arr))
                fill(rows, arr)
                try:
                    await self.commit(len(arr))
                except PipeError:
                    self._reserved = 0
                    raise
                return
        await super().write(data)

    # ----------------------------------------------------------------- zero-copy writes
    async def reserve(self, n: int) -> np.ndarray:
        """Wait for room for ``n`` rows and return a writable structured view of them in the
        ring (zero-copy). Fill it, then ``await commit(n)``; until then readers see nothing.

        Raises PipeError unless ``1 <= n <= capacity``. A later ``reserve`` replaces an
        uncommitted one. Cancelling the wait reserves nothing.
        """
        self._check_writable()
        if not isinstance(n, (int, np.integer)) or not 1 <= n <= self._seg.capacity:
            raise PipeError(f"reserve expects 1..{self._seg.capacity} rows, got {n!r}")
        await self.flush_cache()
        self._reserved = 0
        self._check_owner()
        await self._wait_space(int(n))
        self._check_owner()
        self._reserved = int(n)
        return self._seg.rows(self._w, self._w + int(n))

    async def commit(self, n: int | None = None) -> None:
        """Publish the first ``n`` reserved rows (default: all of them) to the readers.

        Subscribers receive a copy. Raises PipeError unless ``0 <= n <=`` rows reserved (or,
        with ``check_timestamps``, if their timestamps do not increase); nothing is published
        then and the reservation stays.
        """
        self._check_writable()
        n = self._reserved if n is None else n
        if not isinstance(n, (int, np.integer)) or not 0 <= n <= self._reserved:
            raise PipeError(f"commit expects 0..{self._reserved} reserved rows, got {n!r}")
        if n == 0:
            self._reserved = 0
            return
        self._check_owner()
        rows = self._seg.rows(self._w, self._w + int(n))
        if self.check_timestamps:
            check_increasing(rows["timestamp"], self._last_timestamp)
        for pipe in self.subscribers:
            await pipe.write(clone(rows))
        self._reserved = 0
        self._publish(int(n))
        self._note_written(rows)

    # ----------------------------------------------------------------- closing
    async def _close(self) -> None:
        seg = self._seg
        remove = False
        _reap_dead(seg)
        try:
            if self._pid != os.getpid():
                raise PipeError("inherited and never used here: the stream is not ours")
            h = self._lock(closing=True)
        except PipeError:
            pass  # handed over or the lock is gone: just drop our handles
        else:
            try:
                h.writer_state = WRITER_CLOSED
                woken = ring.wake_readers(h)
                remove = _release_if_last(seg, h)
            finally:
                _finish(seg, remove)
            self._ring(woken)
        self._bell.close()
        self._ringer.close()
        seg.close()



def _stats(h: Header) -> dict[str, int]:
    keys = ["write", "capacity", "boundary_count", "retained", "rows_written",
            "blocks_written", "wakeups", "writer_waits", "takeovers", "readers_reaped",
            "lock_recoveries", "writer_state", "writer_pid"]
    out = {k: int(getattr(h, k)) for k in keys}
    out["readers"] = len(ring.active_slots(h))
    return out


def _reopen_output(
    name: str, layout: str, mode: int, check: bool, gen: int, last_ts: int | None
) -> ShmOutputPipe:
    out = ShmOutputPipe(name, layout, mode=mode, check_timestamps=check, _handover=gen)
    out._last_timestamp = last_ts
    return out


class ShmInputPipe(_ShmEnd, InputPipe):
    """The reading end of a shared-memory pipe (see :func:`open_input`)."""

    def __init__(
        self,
        name: str,
        layout: str | None = None,
        *,
        capacity: int | None = None,
        mode: int = DEFAULT_MODE,
        spin: float | None = None,
        _handover: tuple[int, int, int, int] | None = None,
    ) -> None:
        seg, _ = open_segment(name, layout, capacity if layout else None, mode)
        seg.release()
        super().__init__(name=name, layout=seg.layout)
        self._seg = seg
        self._mode = mode
        self.spin = None if spin is None else float(spin)
        self._gap = LIVENESS_PERIOD  # typical wait for news (seconds), for adaptive spinning
        self._quiet_since = 0.0
        self._slot = -1
        self._slot_gen = 0
        self._pid = os.getpid()
        self._bseq = 0
        self._publish_due = False
        self._seen: tuple[int, int, int] = (0, 0, 0)
        self._bell: Doorbell | None = None
        self._ringer = Ringer()
        try:
            if _handover is not None:
                self._take_over(*_handover)
            else:
                self._attach()
        except BaseException:
            if self._bell is not None:
                self._bell.close()
            self._seg.close()
            raise

    def __reduce__(self) -> tuple[Any, ...]:
        self._refuse_if_closed()
        handover = (self._slot, self._slot_gen, self._cursor.consumed, self._bseq)
        return (_reopen_input, (self.name, self.layout, self._mode, self.spin, handover))

    # ----------------------------------------------------------------- slot management
    def _take_over(self, slot: int, gen: int, consumed: int, bseq: int) -> None:
        seg = self._seg
        seg.acquire()
        try:
            h = seg.header
            s = h.readers[slot]
            if s.state != ring.ACTIVE or s.gen != gen:
                raise PipeError(f"reader slot {slot} of pipe {self.name!r} is no longer ours")
            self._own_slot(h, slot)
            if not (s.cursor <= consumed <= h.write and s.bseq <= bseq <= h.boundary_count):
                raise PipeError(f"pipe {self.name!r}: handed-over position is out of range")
            self._cursor.reset(consumed)
            self._bseq = bseq
            self._publish_due = True
        finally:
            seg.release()

    def _own_slot(self, h: Header, slot: int) -> None:
        s = h.readers[slot]
        s.pid, s.started = liveness.me()
        h.reader_gen += 1
        s.gen = h.reader_gen
        self._slot, self._slot_gen, self._pid = slot, int(s.gen), os.getpid()
        if self._bell is not None:
            self._bell.close()
        self._bell = Doorbell(names.reader_bell(self.name or "", slot), self._mode)

    def _attach(self) -> None:
        """Take a reader slot: from now on we receive every row written.

        First release the slots of dead readers (so a restarted consumer starts where the dead
        one stopped), and follow the pipe if its name was unlinked since we opened it (every
        attached end closed meanwhile).
        """
        _reap_dead(self._seg)
        if os.fstat(self._seg.fd).st_nlink == 0:
            seg, _ = open_segment(self.name or "", self.layout, None, self._mode)
            seg.release()
            self._seg, old = seg, self._seg
            old.close()
        with self._seg.locked() as h:
            slot = ring.attach(h, *liveness.me())
            self._own_slot(h, slot)
            self._cursor.reset(int(h.readers[slot].cursor))
            self._bseq = int(h.readers[slot].bseq)

    def _lock(self) -> Header:
        """Take the header lock and check this end still owns its reader slot."""
        if self.closed:
            raise PipeError(f"pipe {self.name!r} is closed")
        seg = self._seg
        seg.acquire()
        h = seg.header
        try:
            if (h.readers[self._slot].gen != self._slot_gen
                    or h.readers[self._slot].state != ring.ACTIVE):
                if self._pid != os.getpid():
                    raise PipeError(f"input end of pipe {self.name!r} was handed over")
                raise PipeError(
                    f"reader slot of pipe {self.name!r} was taken by pid "
                    f"{h.readers[self._slot].pid} (handed over, or released as dead)"
                )
            elif self._pid != os.getpid():  # inherited through fork: the child takes it
                self._own_slot(h, self._slot)
                self._cursor.read_end = self._cursor.consumed  # as after unpickling
                self._cursor.reread = False
        except BaseException:
            seg.release()
            raise
        return h

    # ----------------------------------------------------------------- read hooks
    def _before_read(self) -> None:
        self._publish_due = True

    def _source(self) -> tuple[int, int | None, bool, bool]:
        h = self._lock()
        try:
            wake = False
            if self._publish_due:
                wake = ring.publish(h, self._slot, self._cursor.consumed, self._bseq)
                self._publish_due = False
            w = int(h.write)
            boundary = ring.next_boundary(h, self._bseq, self._cursor.read_end)
            ended = _stream_ended(h)
            self._seen = (w, int(h.boundary_count), int(h.writer_state))
            stalled = self._stalls_writer(h)
        finally:
            self._seg.release()
        if wake:
            self._ringer.ring(names.writer_bell(self.name or ""))
        # a ring full of our unconsumed rows: nothing can arrive before we consume, so the
        # read must return now rather than wait (same as Joule's full input buffer)
        full = w - self._cursor.consumed >= self._seg.capacity
        return w, boundary, ended, stalled or full

    def _stalls_writer(self, h: Header) -> bool:
        """With the lock held: the writer waits for room that only our consuming can make,
        so a read must return what we hold rather than wait for rows that cannot come."""
        return (
            bool(h.writer_sleeping)
            and self._cursor.unconsumed > 0
            and ring.tail(h)[0] == self._cursor.consumed
        )

    def _rows(self, span: Span) -> np.ndarray:
        rows = self._seg.rows(span.start, span.stop)
        rows.flags.writeable = False
        return rows

    def _pass_boundary(self) -> None:
        self._bseq += 1

    def _news(self, h: Header) -> bool:
        return (int(h.write), int(h.boundary_count), int(h.writer_state)) != self._seen

    def _check_writer(self) -> None:
        """After a quiet period: mark the writer dead if its process is gone.

        Reads /proc outside the lock; the lock is taken only to record a death.
        """
        h = self._seg.header
        pid, started = int(h.writer_pid), int(h.writer_started)
        if h.writer_state != WRITER_OPEN or liveness.alive(pid, started):
            return
        h = self._lock()
        try:
            if h.writer_state == WRITER_OPEN and (h.writer_pid, h.writer_started) == (pid, started):
                h.writer_state = WRITER_DEAD
        finally:
            self._seg.release()

    def _spin_budget(self, others_ready: bool) -> float:
        """Seconds to poll before sleeping: ``spin`` if set, else adaptive (see open_input)."""
        if self.spin is not None:
            return self.spin
        if others_ready or self._gap >= SPIN_MAX:
            return 0.0
        return min(2.0 * self._gap, SPIN_MAX)

    def _note_gap(self, since: float) -> None:
        """Record how long news took to come after a read found none."""
        self._gap = 0.7 * self._gap + 0.3 * (time.perf_counter() - since)

    def _prepare_sleep(self, others_ready: bool = False) -> bool:
        """Spin if worthwhile, then mark ourselves asleep; False if news arrived meanwhile."""
        h = self._seg.header
        self._quiet_since = start = time.perf_counter()
        budget = self._spin_budget(others_ready)
        if budget > 0:
            deadline = start + budget
            while True:
                if self._news(h):
                    self._note_gap(start)
                    return False
                if time.perf_counter() >= deadline:
                    break
                os.sched_yield()  # polite when processes outnumber cores
        h = self._lock()
        try:
            if self._news(h) or self._stalls_writer(h):
                return False
            ring.sleep(h, self._slot)
            return True
        finally:
            self._seg.release()

    async def _wait_for_news(self) -> None:
        loop = asyncio.get_running_loop()
        others_ready = bool(getattr(loop, "_ready", None))  # never spin while others could run
        if self._prepare_sleep(others_ready):
            assert self._bell is not None
            if await self._bell.wait(LIVENESS_PERIOD):
                self._note_gap(self._quiet_since)
            else:
                self._gap = LIVENESS_PERIOD
                self._check_writer()  # quiet for a while: is the writer still there?

    def _wait_for_news_sync(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._prepare_sleep():
                return True
            left = LIVENESS_PERIOD if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            assert self._bell is not None
            if self._bell.wait_sync(min(left, LIVENESS_PERIOD)):
                self._note_gap(self._quiet_since)
                return True
            self._gap = LIVENESS_PERIOD
            self._check_writer()

    # ----------------------------------------------------------------- closing
    async def _close(self) -> None:
        seg = self._seg
        _reap_dead(seg)
        if self._pid == os.getpid():  # an inherited end never used here owns nothing
            seg.acquire()
            remove = wake = False
            try:
                h = seg.header
                if h.readers[self._slot].gen == self._slot_gen:
                    wake = ring.publish(h, self._slot, self._cursor.consumed, self._bseq)
                    ring.detach(h, self._slot)
                    if h.writer_sleeping:
                        h.writer_sleeping = 0
                        wake = True
                remove = _release_if_last(seg, h)
            finally:
                _finish(seg, remove)
            if wake:
                self._ringer.ring(names.writer_bell(self.name or ""))
        if self._bell is not None:
            self._bell.close()
        self._ringer.close()
        seg.close()



def _reopen_input(
    name: str, layout: str, mode: int, spin: float | None, handover: tuple[int, int, int, int],
) -> ShmInputPipe:
    return ShmInputPipe(name, layout, mode=mode, spin=spin, _handover=handover)


def open_output(
    name: str,
    layout: str,
    capacity: int | None = None,
    *,
    mode: int = DEFAULT_MODE,
    check_timestamps: bool = False,
) -> ShmOutputPipe:
    """Open the writing end of shared-memory pipe ``name``, creating the pipe if needed.

    ``capacity`` is the ring size in rows (rounded up to whole pages); by default the ring
    holds 16 MiB of rows whatever the row width. If the pipe exists, its capacity is kept
    (a smaller one than asked for is logged as a warning): the end that creates a pipe sets
    its size, so give the capacity to whichever end may come first.
    ``mode`` is the permission of the /dev/shm objects (default 0600).
    Raises PipeError if the name is invalid, if the pipe exists with another layout (naming
    both), if another live process is its writer (naming its pid), or if the segment is
    corrupted or foreign; ValueError for a bad layout. Does not block beyond taking the
    header lock.
    """
    return ShmOutputPipe(name, layout, capacity, mode=mode, check_timestamps=check_timestamps)


def open_input(
    name: str, layout: str | None = None, *, capacity: int | None = None,
    mode: int = DEFAULT_MODE, spin: float | None = None,
) -> ShmInputPipe:
    """Open a reading end of shared-memory pipe ``name``.

    With ``layout``, creates the pipe if it does not exist yet (with ``capacity`` rows, as
    :func:`open_output`) and checks it otherwise; without, the pipe must exist. The end
    joins the stream now: at the oldest row no reader has consumed if it is the only reader,
    else at the write position. Raises PipeError when the pipe already has MAX_READERS (64)
    readers.

    ``spin``: seconds to poll the header before sleeping on the doorbell when a read finds
    nothing new. ``None`` (default) adapts: it polls only while news has recently come within
    ``SPIN_MAX`` (200 µs) of a read finding none, for at most twice that typical gap, and never
    while other tasks of the event loop are ready to run; an idle pipe never polls. ``0``
    never polls; a number polls that long every time (lowest latency, more CPU).
    Raises PipeError as :func:`open_output` does.
    """
    return ShmInputPipe(name, layout, capacity=capacity, mode=mode, spin=spin)


def unlink(name: str) -> None:
    """Remove pipe ``name`` from /dev/shm. Attached ends keep working until they close."""
    _unlink_segment(name)


__all__ = ["ShmInputPipe", "ShmOutputPipe", "open_input", "open_output", "unlink"]


