"""The pure ring core against a reference model (no processes, no shared memory)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from shmpipe.buffer import ReadCursor
from shmpipe.errors import PipeError
from shmpipe.shm import ring
from shmpipe.shm.header import MAX_BOUNDARIES, WRITER_DEAD, WRITER_OPEN, Header, check_cursors


def new_header(capacity: int) -> Header:
    h = Header.from_buffer(bytearray(ctypes.sizeof(Header)))
    h.capacity = capacity
    return h


class Reader:
    def __init__(self, slot: int, h: Header, owner: int) -> None:
        s = h.readers[slot]
        self.slot = slot
        self.owner = owner
        self.start = int(s.cursor)
        self.cursor = ReadCursor(int(s.cursor))
        self.bseq = int(s.bseq)
        self.published = int(s.cursor)  # the position last stored in the header
        self.delivered = int(s.cursor)  # next row this reader must consume


GRACE = 1000  # ns a hand-over stays in transit in the model's clock


class RingMachine(RuleBasedStateMachine):
    """Every protocol decision of ring.py against a model: rows, boundaries, readers that
    attach, detach, die, are reaped, handed over and taken over; writers that open, die,
    close, reserve, and are replaced or taken over through fork."""

    readers = Bundle("readers")

    @initialize(capacity=st.integers(1, 40))
    def setup(self, capacity: int) -> None:
        self.h = new_header(capacity)
        self.cap = capacity
        self.data = np.full(capacity, -1, np.int64)  # row i lives at i % capacity
        self.boundaries: list[int] = []  # every boundary ever recorded
        self.live: dict[int, Reader] = {}
        self.orphans: dict[int, Reader] = {}  # durable readers whose owner died, by slot
        self.retained = 0
        self.dead: set[int] = set()  # owner ids whose process died
        self.now = 0
        self.writer = 0  # the model's writer owner id (0: none registered)
        self.writer_state = "none"
        self.reserved = 0
        self.blocked_since = 0  # the model's blocked episode in progress (0: none)
        self.blocked_total = 0  # time of the episodes that ended

    def alive(self, owner: int) -> bool:
        return owner != 0 and owner not in self.dead

    # ------------------------------------------------------------------ the writer
    @rule()
    def open_writer(self) -> None:
        h = self.h
        me = ring.new_id(h)
        writer_alive = self.writer_state == "open" and (
            self.alive(self.writer) or self.now < h.writer_transit)
        if writer_alive:
            with pytest.raises(PipeError, match="already has a writer"):
                ring.claim_writer(h, me, 1, None, self.alive, self.now)
            return
        before = int(h.boundary_count)
        ring.claim_writer(h, me, 1, None, self.alive, self.now)
        if self.writer_state != "none":
            self.unblock()  # a replaced writer's episode ends with it
        if self.writer_state != "none" and self.boundaries_end() != int(h.write) and h.write:
            assert h.boundary_count == before + 1, "a replacing writer starts a new interval"
            self.boundaries.append(int(h.write))
        self.writer, self.writer_state, self.reserved = me, "open", 0
        assert h.reserved == 0

    def block(self) -> None:
        if not self.blocked_since:
            self.blocked_since = max(1, self.now)

    def unblock(self) -> None:
        if self.blocked_since:
            self.blocked_total += max(0, self.now - self.blocked_since)
            self.blocked_since = 0

    def boundaries_end(self) -> int | None:
        return self.boundaries[-1] if self.boundaries else None

    @precondition(lambda self: self.writer_state == "open")
    @rule()
    def fork_takes_writer_over(self) -> None:
        h = self.h
        me = ring.new_id(h)
        if self.reserved and self.alive(self.writer):
            with pytest.raises(PipeError, match="reserved rows"):
                ring.claim_writer(h, me, 2, self.writer, self.alive, self.now)
            return
        count = int(h.boundary_count)
        ring.claim_writer(h, me, 2, self.writer, self.alive, self.now)
        assert h.boundary_count == count, "a takeover continues the same interval"
        self.writer, self.reserved = me, 0

    @precondition(lambda self: self.writer_state == "open")
    @rule()
    def writer_dies(self) -> None:
        self.dead.add(self.writer)

    @precondition(lambda self: self.writer_state == "open")
    @rule()
    def close_writer(self) -> None:
        woken = ring.close_writer(self.h, self.writer, self.now)
        assert woken is not None
        assert ring.close_writer(self.h, self.writer, self.now) is None  # once only
        self.writer_state, self.reserved = "closed", 0
        self.unblock()

    @rule(n=st.integers(1, 50))
    def write(self, n: int) -> None:
        k = min(n, ring.free_rows(self.h))
        if k == 0:
            with pytest.raises(PipeError):
                ring.commit(self.h, 1, self.now)
            return
        w = int(self.h.write)
        idx = np.arange(w, w + k)
        self.data[idx % self.cap] = idx
        ring.commit(self.h, k, self.now)
        self.reserved = 0
        self.unblock()
        assert self.h.last_write_ns == self.now

    @precondition(lambda self: self.writer_state == "open" and self.alive(self.writer))
    @rule(n=st.integers(1, 10))
    def reserve(self, n: int) -> None:
        if n > ring.free_rows(self.h):
            with pytest.raises(PipeError):
                ring.reserve(self.h, self.writer, n)
            return
        ring.reserve(self.h, self.writer, n)
        self.reserved = int(self.h.write) + n
        with pytest.raises(PipeError):
            ring.reserve(self.h, self.writer + 1000, n)  # only the writer reserves

    @rule(need=st.integers(1, 45))
    def writer_waits(self, need: int) -> None:
        for r in self.live.values():
            ring.sleep(self.h, r.slot)
        free, woken = ring.writer_wait(self.h, need, self.now)
        assert free == ring.free_rows(self.h)
        if free < need:
            self.block()
            assert self.h.writer_sleeping == 1
            assert sorted(woken) == sorted(self.live), "readers must see the writer wait"
        else:
            assert woken == []
            for r in self.live.values():  # the model's sleepers stay asleep: wake them
                self.h.readers[r.slot].sleeping = 0
            self.h.sleepers = 0

    @rule()
    def close_interval(self) -> None:
        before = int(self.h.boundary_count)
        if ring.writer_break(self.h, self.now) is None:
            assert before - ring.tail(self.h)[1] >= MAX_BOUNDARIES
            assert self.h.writer_sleeping == 1
            self.block()
        else:
            self.boundaries.append(int(self.h.write))
            self.unblock()

    @rule(dt=st.sampled_from([1, 7, 100]))
    def time_passes(self, dt: int) -> None:
        before = ring.blocked_ns(self.h, self.now)
        self.now += dt
        after = ring.blocked_ns(self.h, self.now)
        assert after >= before
        if self.blocked_since and self.now - dt >= self.blocked_since:
            assert after == before + dt

    # ------------------------------------------------------------------ readers
    @precondition(lambda self: len(self.live) < 4)
    @rule(target=readers)
    def attach(self):  # type: ignore[no-untyped-def]
        alone = not self.live and not self.orphans
        me = ring.new_id(self.h)
        slot = ring.attach(self.h, me, 1)
        r = Reader(slot, self.h, me)
        assert r.start == (self.retained if alone else int(self.h.write))
        self.live[slot] = r
        return r

    def _gone(self, r: Reader) -> None:
        self.retained = max(self.retained, r.published)
        del self.live[r.slot]

    @rule(r=consumes(readers))
    def detach(self, r: Reader) -> None:
        if self.live.get(r.slot) is not r:
            return
        ring.close_reader(self.h, r.slot, r.owner, r.cursor.consumed, r.bseq)
        r.published = r.cursor.consumed
        assert not ring.owns(self.h, r.slot, r.owner)
        assert not ring.close_reader(self.h, r.slot, r.owner, 0, 0)  # a second close: nothing
        self._gone(r)

    @rule(r=readers)
    def reader_dies(self, r: Reader) -> None:
        if self.live.get(r.slot) is r:
            self.dead.add(r.owner)

    @rule(r=readers)
    def hand_over(self, r: Reader) -> None:
        """The owner hands its slot over and dies; a new owner may take it over."""
        if self.live.get(r.slot) is not r or not self.alive(r.owner):
            return
        ring.hand_over_reader(self.h, r.slot, r.owner, self.now + GRACE)
        self.dead.add(r.owner)  # the parent closed its copy: its lock is gone
        me = ring.new_id(self.h)
        ring.take_over_reader(self.h, r.slot, r.owner, me, 2, r.cursor.consumed, r.bseq)
        with pytest.raises(PipeError):  # the old owner's copy cannot take it back
            ring.take_over_reader(self.h, r.slot, r.owner, me + 1, 3, r.cursor.consumed, r.bseq)
        r.owner = me
        r.cursor.read_end = r.cursor.consumed  # as after unpickling
        r.cursor.reread = False

    @rule(r=readers)
    def hand_over_nobody_takes(self, r: Reader) -> None:
        """Handed over and the owner died: kept while in transit, reaped after."""
        if self.live.get(r.slot) is not r or not self.alive(r.owner):
            return
        ring.hand_over_reader(self.h, r.slot, r.owner, self.now + GRACE)
        self.dead.add(r.owner)
        s = self.h.readers[r.slot]
        assert ring.role_alive(int(s.owner), int(s.transit), self.alive, self.now)
        assert not ring.role_alive(int(s.owner), int(s.transit), self.alive, self.now + GRACE)

    @rule(dt=st.sampled_from([0, GRACE]))
    def reap(self, dt: int) -> None:
        self.now += dt
        h = self.h
        expect = sorted(
            slot for slot, r in self.live.items()
            if not self.alive(r.owner) and self.now >= h.readers[slot].transit)
        owners = [self.live[slot].owner for slot in expect]
        writer_was = int(h.writer_state)
        writer_dies = self.writer_state == "open" and not self.alive(self.writer) and (
            self.now >= h.writer_transit)
        if writer_dies:
            owners.append(self.writer)
        assert sorted(ring.reap(h, self.alive, self.now)) == sorted(owners)
        for slot in expect:
            self._gone(self.live[slot])
        if writer_dies:
            assert h.writer_state == WRITER_DEAD and writer_was == WRITER_OPEN
            self.writer_state, self.reserved = "dead", 0

    @rule(r=readers, locked=st.booleans())
    def read(self, r: Reader, locked: bool) -> None:
        """A read publishes under the mutex (``publish``) or, as the shell's hot path does,
        stores its position alone and then wakes the writer if it sleeps for room; it marks
        itself asleep first, then looks for news, and takes the mark back if there is some."""
        if self.live.get(r.slot) is not r:
            return
        h = self.h
        if locked:
            ring.publish(h, r.slot, r.cursor.consumed, r.bseq)
        else:
            sleeping = int(h.writer_sleeping)
            moved = ring.store_position(h, h.readers[r.slot], r.cursor.consumed, r.bseq)
            if moved:
                assert ring.writer_waits_for_room(h) == bool(sleeping)
                assert h.writer_sleeping == 0
        r.published = r.cursor.consumed
        boundary = ring.next_boundary(h, r.bseq, r.cursor.read_end)
        full = int(h.write) - r.cursor.consumed >= self.cap
        pending = r.bseq < len(self.boundaries)
        span = r.cursor.next_read(int(h.write), boundary, full, wait=False)
        assert span is not None
        assert span.start == r.delivered
        assert span.end_of_interval == pending
        if pending:
            assert span.stop == self.boundaries[r.bseq]
            r.bseq += 1
        rows = np.arange(span.start, span.stop)
        assert (self.data[rows % self.cap] == rows).all(), "a row was overwritten before use"
        seen = ring.snapshot(h)
        stalls = ring.stalls_writer(h, r.cursor.consumed, r.cursor.unconsumed)
        sleepers = int(h.sleepers)
        if not locked:
            ring.sleep(h, r.slot)  # the mark first, then the look
        slept = ring.reader_sleep(h, r.slot, seen, r.cursor.consumed, r.cursor.unconsumed)
        if not locked and not slept:
            ring.awake(h, r.slot)
            assert h.readers[r.slot].sleeping == 0 and h.sleepers == sleepers
        assert slept == (not stalls), "a reader sleeps unless it stalls the writer"
        if slept:
            assert h.readers[r.slot].sleeping == 1
            h.readers[r.slot].sleeping = 0
            h.sleepers -= 1

    @rule(r=readers, frac=st.sampled_from([0.0, 0.5, 1.0]))
    def consume(self, r: Reader, frac: float) -> None:
        if self.live.get(r.slot) is not r:
            return
        n = int(r.cursor.unconsumed * frac)
        r.cursor.consume(n)
        r.delivered += n

    @invariant()
    def cursors_in_bounds(self) -> None:
        if not hasattr(self, "h"):
            return
        h = self.h
        for slot in ring.active_slots(h):
            s = h.readers[slot]
            assert 0 <= h.write - s.cursor <= self.cap
            assert 0 <= h.boundary_count - s.bseq <= MAX_BOUNDARIES
        assert 0 <= ring.free_rows(h) <= self.cap
        assert sorted(ring.active_slots(h)) == sorted([*self.live, *self.orphans])
        assert all(ring.owns(h, slot, r.owner) for slot, r in self.live.items())
        assert int(h.reserved) == self.reserved
        check_cursors(h, "model")  # what every process re-checks after a recovery
        assert ring.blocked_ns(h, self.now) == self.blocked_total + (
            max(0, self.now - self.blocked_since) if self.blocked_since else 0)
        slowest = ring.slowest_reader(h)
        attached = [*self.live, *self.orphans]
        if attached:
            assert slowest in attached
            assert h.readers[slowest].cursor == min(int(h.readers[i].cursor) for i in attached)
        else:
            assert slowest is None
        assert ring.unused(h) == (
            self.writer_state != "open" and not attached
            and int(h.write) == self.retained)


TestRing = RingMachine.TestCase
TestRing.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


def test_attach_refuses_beyond_max_readers() -> None:
    h = new_header(10)
    for i in range(ring.MAX_READERS):
        ring.attach(h, 1000 + i, 1000 + i)
    with pytest.raises(PipeError, match="maximum"):
        ring.attach(h, 1, 1)


def test_publish_refuses_moving_back_or_past_write() -> None:
    h = new_header(10)
    slot = ring.attach(h, 1, 1)
    ring.commit(h, 5, 0)
    ring.publish(h, slot, 3, 0)
    with pytest.raises(PipeError, match="bad position"):
        ring.publish(h, slot, 2, 0)
    with pytest.raises(PipeError, match="bad position"):
        ring.publish(h, slot, 6, 0)


def test_sleeping_readers_are_woken_once() -> None:
    h = new_header(10)
    a, b = ring.attach(h, 1, 1), ring.attach(h, 2, 1)
    ring.sleep(h, a)
    assert ring.commit(h, 1, 0) == [a]
    assert ring.commit(h, 1, 0) == []  # no syscall for readers that are awake
    ring.sleep(h, b)
    assert ring.add_boundary(h) == [b]


def test_reap_releases_dead_readers() -> None:
    h = new_header(4)
    ring.attach(h, 1, 1)
    b = ring.attach(h, 2, 1)
    ring.commit(h, 4, 0)
    ring.publish(h, b, 4, 0)
    assert ring.free_rows(h) == 0  # reader a holds the ring
    assert ring.reap(h, lambda owner: owner == 2, 0) == [1]  # the owner id of slot a
    assert ring.free_rows(h) == 4
    assert h.readers_reaped == 1


def test_a_reader_storing_its_position_without_the_mutex_is_seen_by_a_writer_going_to_sleep(
) -> None:
    """The writer looks at the room, a reader consumes and stores its position alone (the
    writer is not marked asleep yet: no wake-up), the writer marks itself asleep: its second
    look (after a fence, in the shell) finds the room and it stays awake."""
    h = new_header(4)
    slot = ring.attach(h, 1, 1)
    ring.commit(h, 4, 0)
    free, _ = ring.writer_wait(h, 2, 0)
    assert free == 0 and h.writer_sleeping == 1
    assert ring.store_position(h, h.readers[slot], 3, 0)
    assert ring.writer_recheck(h, 2) == 3
    assert h.writer_sleeping == 0
    assert not ring.store_position(h, h.readers[slot], 3, 0)  # no move: nothing to tell
    ring.writer_wait(h, 4, 0)
    assert ring.writer_recheck(h, 4) == 3 and h.writer_sleeping == 1  # still short: asleep
    with pytest.raises(PipeError, match="bad position"):
        ring.store_position(h, h.readers[slot], 2, 0)


def test_a_reader_takes_back_its_sleep_mark() -> None:
    h = new_header(4)
    a, b = ring.attach(h, 1, 1), ring.attach(h, 2, 1)
    ring.sleep(h, a)
    ring.sleep(h, b)
    ring.awake(h, a)
    assert (h.readers[a].sleeping, h.readers[b].sleeping, h.sleepers) == (0, 1, 1)
    ring.awake(h, a)  # twice: nothing more
    assert h.sleepers == 1
    assert ring.commit(h, 1, 0) == [b]
