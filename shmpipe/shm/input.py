"""The reading end of a shared-memory pipe (the async shell around ``ring``'s reader rules)."""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any

import numpy as np

from ..buffer import PipeData, Span, tag
from ..errors import PipeError
from ..layout import flatten as flatten_rows
from ..pipe import InputPipe
from . import names, ring
from .end import LIVENESS_PERIOD, Role, ShmEnd
from .header import WRITER_OPEN, Header
from .locks import _barrier, fence
from .segment import DEFAULT_MODE, current_pid, open_continued, open_segment, trusted_uids

_fence_take, _fence_give = _barrier.acquire, _barrier.release  # locks.fence, inlined
SPIN_MAX = 200e-6  # adaptive polling before sleeping never exceeds this (seconds)
BUSY_PASS = 100e-6  # a busy-polling read lets its event loop make a pass this often (seconds)


def spin_budget(spin: float | None, gap: float, others_ready: bool,
                when: float = SPIN_MAX) -> float:
    """Seconds a waiting read polls before it sleeps: ``spin`` if set; else, adaptively,
    twice ``gap`` (how long news usually took to come), at most SPIN_MAX, when ``gap`` is
    under ``when`` and no other task is ready; else 0."""
    if spin is not None:
        return spin
    if others_ready or gap >= when:
        return 0.0
    return min(2.0 * gap, SPIN_MAX)


def next_gap(gap: float, since: float) -> float:
    """``gap`` updated with the wait for news that began at ``since`` (perf_counter)."""
    return 0.7 * gap + 0.3 * (time.perf_counter() - since)
OPEN_WAIT = 10.0  # default seconds open_input waits for a pipe that does not exist yet


class ShmInputPipe(ShmEnd, InputPipe):
    """The reading end of a shared-memory pipe (see :func:`shmpipe.open_input`)."""

    def __init__(
        self,
        name: str,
        layout: str | None = None,
        *,
        capacity: int | None = None,
        mode: int = DEFAULT_MODE,
        owner: int | str | None = None,
        spin: float | None = None,
        wait: float = OPEN_WAIT,
        key: str | None = None,
        _handover: tuple[int, int, int, int] | None = None,
    ) -> None:
        trusted = trusted_uids(owner)
        if spin is not None and not spin >= 0:
            raise PipeError(f"spin must be a number of seconds >= 0, got {spin!r}")
        if _handover is not None:  # continue an end: never create the pipe
            seg = open_continued(name, layout or "", mode, owner)
        else:
            seg, _ = open_segment(name, layout, capacity if layout else None, mode, owner, wait)
        super().__init__(name=name, layout=seg.layout)
        self._mode = mode
        self._owner_arg = owner
        self.spin = None if spin is None else float(spin)
        self._gap = LIVENESS_PERIOD  # typical wait for news (seconds), for adaptive spinning
        self._quiet_since = 0.0
        self._publish_due = False
        self._seen: tuple[int, int, int] = (0, 0, 0)
        self._wait_owed = 0  # ns spent waiting, not yet counted in the header
        self._durable = key is not None  # publish each consume: it must outlive the process
        role = Role(seg, trusted, reader=True)
        role.cursor = self._cursor
        try:
            h = seg.header
            role.reap(h)
            me = role.register(h)
            try:
                if _handover is not None:
                    slot, inherited, consumed, bseq = _handover
                    ring.take_over_reader(h, slot, inherited, me, current_pid(), consumed, bseq)
                    self._cursor.reset(consumed)
                    role.bseq = bseq
                    self._publish_due = True
                else:
                    slot = ring.attach(h, me, current_pid(),
                                       0 if key is None else names.key(key))
                    self._cursor.reset(int(h.readers[slot].cursor))
                    role.bseq = int(h.readers[slot].bseq)
            except BaseException:
                role.unregister(me)
                raise
            role.slot = slot
        except BaseException:
            try:
                role.remove_if_unused(seg.header)
            finally:
                seg.release()
                role.finish()
            raise
        self._slot = s = seg.header.readers[slot]  # this end's slot (a view into the header)
        self._header, self._segment, self._capacity = seg.header, seg, seg.capacity
        self._published, self._published_bseq = int(s.cursor), int(s.bseq)  # stored there
        seg.release()
        self._own(role)

    def __reduce__(self) -> tuple[Any, ...]:
        """Hand the end over (see ``shm/end.py``): the process that unpickles it continues
        at this end's consumed position; this end is retired."""
        role = self._role
        slot = role.slot
        self._hand_over(lambda h, owner, deadline: ring.hand_over_reader(h, slot, owner,
                                                                         deadline))
        handover = (slot, role.owner, self._cursor.consumed, self._role.bseq)
        return (_reopen_input, (self.name, self.layout, self._mode, self._owner_arg,
                                self.spin, handover))

    # ----------------------------------------------------------------- the critical section
    def _enter(self) -> Header:
        """Take the mutex and check this end still owns its slot (taking an inherited end
        over first). Call it inside ``try: ... finally: seg.release()``, so that nothing
        (not even KeyboardInterrupt) can leave the mutex held."""
        role = self._role
        if role.inherited or role.handed or self.closed:
            self._adopt()
        seg = role.seg
        seg.acquire()
        h = seg.header
        s = h.readers[role.slot]
        if s.owner != role.owner or s.state != ring.ACTIVE:
            seg.release()
            ring.check_reader(h, role.slot, role.owner)
        return h

    def _continue(self, h: Header, inherited: int) -> None:
        role = self._role
        ring.take_over_reader(h, role.slot, inherited, role.owner, current_pid(),
                              self._cursor.consumed, role.bseq)
        self._cursor.read_end = self._cursor.consumed  # as after unpickling
        self._cursor.reread = False
        self._publish_due = True

    def consume(self, num_rows: int) -> None:
        """As :meth:`Pipe.consume`; a durable reader (opened with ``key``) also publishes
        its position at once (one header lock round trip), so that a reader of its key
        taking over after this process dies starts exactly at the first unconsumed row."""
        cursor = self._cursor
        if (type(num_rows) is int and 0 <= num_rows <= cursor.read_end - cursor.consumed
                and not self._failed):
            cursor.consumed += num_rows  # the common case, checked as Pipe.consume does
        else:
            super().consume(num_rows)
        if self._durable and num_rows:
            self._publish()

    def consume_all(self) -> None:
        """As :meth:`Pipe.consume_all` (published at once for a durable reader)."""
        super().consume_all()
        if self._durable:
            self._publish()

    def _publish(self) -> None:
        seg = self._role.seg
        wake = 0
        try:
            h = self._enter()
            if ring.publish(h, self._role.slot, self._cursor.consumed, self._role.bseq):
                wake = int(h.writer_id)
            self._publish_due = False
            self._published, self._published_bseq = self._cursor.consumed, self._role.bseq
        finally:
            seg.release()
        if wake:
            self._role.ring_owner(wake)

    # ----------------------------------------------------------------- read hooks
    def _before_read(self) -> None:
        self._publish_due = True

    def _source(self) -> tuple[int, int | None, bool, bool]:
        """Publish what was consumed and look at the writer's cursor, both without the mutex
        (a reader alone stores its slot's position; the writer alone advances ``write``).

        Loads come in the order that keeps them consistent with the writer's stores (rows,
        then ``write``, then a boundary or the end): the writer state first, then the next
        boundary, then ``write``, so a boundary or the end seen is never ahead of the rows
        before it. After a store of a new position, a fence, then a look at whether the
        writer sleeps waiting for room (it marks itself, fences, then looks at the cursors:
        one side sees the other); if it does, it is woken under the mutex.
        """
        role = self._role
        h = self._header
        s = self._slot
        # a slot detached or taken over (by a forked child) no longer names our owner id
        if role.inherited or role.handed or self.closed or s.owner != role.owner:
            return self._source_locked()
        if self._wait_owed:
            s.wait_ns += max(0, self._wait_owed)
            self._wait_owed = 0
        cursor = self._cursor
        bseq = role.bseq
        if self._publish_due:
            self._publish_due = False
            consumed, published = cursor.consumed, self._published
            s.reads += 1
            if consumed != published or bseq != self._published_bseq:
                # ring.store_position without its checks: our own position only grows and
                # never passes what we read (consumed <= read_end <= write)
                s.rows_read += consumed - published
                s.cursor = self._published = consumed
                s.bseq = self._published_bseq = bseq
                _fence_take(False)  # locks.fence, inline: the writer may sleep for room
                _fence_give()
                if h.writer_sleeping:
                    self._wake_writer()
        state = h.writer_state
        ended = state != WRITER_OPEN and ring.stream_ended(h)  # an open writer: never ended
        count = h.boundary_count
        boundary = None if bseq >= count else ring.next_boundary(h, bseq, cursor.read_end)
        w = h.write
        self._seen = (w, count, state)
        consumed = cursor.consumed
        stalled = h.writer_sleeping and ring.stalls_writer(h, consumed, cursor.read_end - consumed)
        # a ring full of our unconsumed rows: nothing can arrive before we consume, so the
        # read must return now rather than wait (same as Joule's full input buffer)
        full = w - consumed >= self._capacity
        return w, boundary, ended, bool(stalled) or full

    def _wake_writer(self) -> None:
        """Under the mutex: ring the writer if it (still) sleeps waiting for room."""
        seg = self._role.seg
        wake = 0
        try:
            seg.acquire()
            h = seg.header
            if ring.writer_waits_for_room(h):
                wake = int(h.writer_id)
        finally:
            seg.release()
        if wake:
            self._role.ring_owner(wake)

    def _source_locked(self) -> tuple[int, int | None, bool, bool]:
        """:meth:`_source` under the mutex, for an end that must be taken over first (or
        whose slot is no longer its own: PipeError)."""
        seg = self._role.seg
        wake = 0
        try:
            h = self._enter()
            if self._wait_owed:
                ring.reader_waited(h, self._role.slot, self._wait_owed)
                self._wait_owed = 0
            if self._publish_due:
                if ring.publish(h, self._role.slot, self._cursor.consumed, self._role.bseq):
                    wake = int(h.writer_id)
                self._publish_due = False
            w = int(h.write)
            boundary = ring.next_boundary(h, self._role.bseq, self._cursor.read_end)
            ended = ring.stream_ended(h)
            self._seen = ring.snapshot(h)
            stalled = ring.stalls_writer(h, self._cursor.consumed, self._cursor.unconsumed)
            self._slot = s = h.readers[self._role.slot]
            self._published, self._published_bseq = int(s.cursor), int(s.bseq)
        finally:
            seg.release()
        if wake:
            self._role.ring_owner(wake)
        # a ring full of our unconsumed rows: nothing can arrive before we consume, so the
        # read must return now rather than wait (same as Joule's full input buffer)
        full = w - self._cursor.consumed >= seg.capacity
        return w, boundary, ended, stalled or full

    async def read(self, flatten: bool = False) -> np.ndarray:
        """See :meth:`Pipe.read`; returns a read-only view into the ring (no copy), valid
        until the rows are consumed and overwritten (``flatten=True``: a copy)."""
        cursor = self._cursor
        if cursor.reread or flatten or self._failed:
            return await super().read(flatten)
        self._publish_due = True  # _before_read, inline: Pipe.read's steps for the common case
        while True:
            span = cursor.next_read(*self._source(), wait=True)
            if span is not None:
                break
            await self._wait_for_news()
        rows = self._segment.read_rows(span[0], span[1])
        if span[3]:
            self._role.bseq += 1
        rows.end_of_interval = span[2]
        return rows

    def read_nowait(self, flatten: bool = False) -> np.ndarray:
        """See :meth:`Pipe.read_nowait`; a read-only view into the ring, as :meth:`read`."""
        cursor = self._cursor
        if cursor.reread or flatten or self._failed:
            return super().read_nowait(flatten)
        self._publish_due = True
        span = cursor.next_read(*self._source(), wait=False)
        assert span is not None
        rows = self._segment.read_rows(span[0], span[1])
        if span[3]:
            self._role.bseq += 1
        rows.end_of_interval = span[2]
        return rows

    def _rows(self, span: Span) -> np.ndarray:
        return self._role.seg.read_rows(span.start, span.stop)

    def _format(self, rows: np.ndarray, eoi: bool, flat: bool) -> np.ndarray:
        if flat:
            return tag(flatten_rows(rows), eoi)
        assert isinstance(rows, PipeData)  # a view made for this read (Segment.read_rows)
        rows.end_of_interval = eoi
        return rows

    def _pass_boundary(self) -> None:
        self._role.bseq += 1

    def _check_writer(self) -> None:
        """After a quiet period: mark the writer dead if it is gone (a kernel lock probe)."""
        h = self._role.seg.header
        if h.writer_state != WRITER_OPEN or self._role.seg.alive(int(h.writer_id)):
            return
        seg = self._role.seg
        try:
            h = self._enter()
            self._role.reap(h)
        finally:
            seg.release()

    def _spin_budget(self, others_ready: bool) -> float:
        """Seconds to poll before sleeping: ``spin`` if set, else adaptive (see open_input)."""
        return spin_budget(self.spin, self._gap, others_ready)

    def _note_gap(self, since: float) -> None:
        """Record how long news took to come after a read found none."""
        self._gap = next_gap(self._gap, since)

    def _prepare_sleep(self, others_ready: bool = False, limit: float = math.inf) -> bool:
        """Spin if worthwhile, then mark ourselves asleep; False if news arrived meanwhile."""
        h = self._role.seg.header
        self._quiet_since = start = time.perf_counter()
        budget = min(self._spin_budget(others_ready), limit)
        if budget > 0:
            deadline = start + budget
            seen = self._seen
            while True:
                if ring.news(h, seen):
                    self._note_gap(start)
                    return False
                if time.perf_counter() >= deadline:
                    break
                os.sched_yield()  # polite when processes outnumber cores
        seg = self._role.seg
        slot = self._role.slot
        try:
            h = self._enter()
            # mark first, fence, then look for news: the writer stores ``write``, fences,
            # then looks at the sleepers without the mutex (one side sees the other)
            ring.sleep(h, slot)
            fence()
            if ring.reader_sleep(h, slot, self._seen, self._cursor.consumed,
                                 self._cursor.unconsumed):
                return True
            ring.awake(h, slot)
            return False
        finally:
            seg.release()

    async def _poll(self) -> None:
        """Busy-poll mode (``spin=math.inf``): look at the header until news, or until the
        writer waits for room (this reader may be the one to make it), never sleeping on the
        doorbell; so the writer, which rings only readers marked asleep, never rings it.
        Between looks the event loop makes a pass when a task is ready and at least every
        BUSY_PASS (its due timers and I/O run then), else the CPU is offered with
        ``sched_yield``; the writer's liveness is checked every
        LIVENESS_PERIOD, as a sleeping reader does."""
        h = self._header
        w, count, state = self._seen
        loop = asyncio.get_running_loop()
        check = time.monotonic() + LIVENESS_PERIOD
        next_pass = 0.0
        while (h.write == w and h.boundary_count == count and h.writer_state == state
               and not h.writer_sleeping):
            now = time.perf_counter()
            if getattr(loop, "_ready", None) or now >= next_pass:
                await asyncio.sleep(0)  # one pass of the loop: ready tasks, due timers, I/O
                next_pass = now + BUSY_PASS
            else:
                os.sched_yield()
            if time.monotonic() >= check:
                self._check_writer()
                check = time.monotonic() + LIVENESS_PERIOD

    async def _wait_for_news(self) -> None:
        loop = asyncio.get_running_loop()
        others_ready = bool(getattr(loop, "_ready", None))  # never spin while others could run
        start = time.monotonic_ns()
        try:
            if self.spin == math.inf:
                await self._poll()
            elif self._prepare_sleep(others_ready):
                bell = self._role.bell
                assert bell is not None
                if await bell.wait(LIVENESS_PERIOD):
                    self._note_gap(self._quiet_since)
                else:
                    self._gap = LIVENESS_PERIOD
                    self._check_writer()  # quiet for a while: is the writer still there?
        finally:
            self._wait_owed += time.monotonic_ns() - start

    def _wait_for_news_sync(self, timeout: float | None) -> bool:
        start = time.monotonic_ns()
        try:
            return self._wait_sync(timeout)
        finally:
            self._wait_owed += time.monotonic_ns() - start

    def _wait_sync(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # spin (busy-poll mode included) at most until the deadline or a liveness check
            limit = LIVENESS_PERIOD if deadline is None else deadline - time.monotonic()
            if not self._prepare_sleep(limit=min(max(0.0, limit), LIVENESS_PERIOD)):
                return True
            left = LIVENESS_PERIOD if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            bell = self._role.bell
            assert bell is not None
            if bell.wait_sync(min(left, LIVENESS_PERIOD)):
                self._note_gap(self._quiet_since)
                return True
            self._gap = LIVENESS_PERIOD
            self._check_writer()

    # ----------------------------------------------------------------- closing
    async def _close(self) -> None:
        self._finish()


def _reopen_input(name: str, layout: str, mode: int, owner: int | str | None,
                  spin: float | None, handover: tuple[int, int, int, int]) -> ShmInputPipe:
    return ShmInputPipe(name, layout, mode=mode, owner=owner, spin=spin, _handover=handover)
