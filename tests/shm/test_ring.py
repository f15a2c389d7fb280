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
from shmpipe.shm.header import MAX_BOUNDARIES, Header


def new_header(capacity: int) -> Header:
    h = Header.from_buffer(bytearray(ctypes.sizeof(Header)))
    h.capacity = capacity
    return h


class Reader:
    def __init__(self, slot: int, h: Header) -> None:
        s = h.readers[slot]
        self.slot = slot
        self.start = int(s.cursor)
        self.cursor = ReadCursor(int(s.cursor))
        self.bseq = int(s.bseq)
        self.delivered = int(s.cursor)  # next row this reader must consume


class RingMachine(RuleBasedStateMachine):
    readers = Bundle("readers")

    @initialize(capacity=st.integers(1, 40))
    def setup(self, capacity: int) -> None:
        self.h = new_header(capacity)
        self.cap = capacity
        self.data = np.full(capacity, -1, np.int64)  # row i lives at i % capacity
        self.boundaries: list[int] = []  # every boundary ever recorded
        self.live: dict[int, Reader] = {}
        self.retained = 0
        self.pid = 100

    @rule(n=st.integers(1, 50))
    def write(self, n: int) -> None:
        k = min(n, ring.free_rows(self.h))
        if k == 0:
            with pytest.raises(PipeError):
                ring.commit(self.h, 1)
            return
        w = int(self.h.write)
        idx = np.arange(w, w + k)
        self.data[idx % self.cap] = idx
        ring.commit(self.h, k)

    @rule()
    def close_interval(self) -> None:
        before = int(self.h.boundary_count)
        if ring.add_boundary(self.h) is None:
            assert before - ring.tail(self.h)[1] >= MAX_BOUNDARIES
        else:
            self.boundaries.append(int(self.h.write))

    @precondition(lambda self: len(self.live) < 4)
    @rule(target=readers)
    def attach(self):  # type: ignore[no-untyped-def]
        alone = not self.live
        self.pid += 1
        slot = ring.attach(self.h, self.pid, 1)
        r = Reader(slot, self.h)
        assert r.start == (self.retained if alone else int(self.h.write))
        self.live[slot] = r
        return r

    @rule(r=consumes(readers))
    def detach(self, r: Reader) -> None:
        if self.live.get(r.slot) is not r:
            return
        ring.publish(self.h, r.slot, r.cursor.consumed, r.bseq)
        self.retained = max(self.retained, r.cursor.consumed)
        ring.detach(self.h, r.slot)
        del self.live[r.slot]

    @rule(r=readers)
    def read(self, r: Reader) -> None:
        if self.live.get(r.slot) is not r:
            return
        h = self.h
        ring.publish(h, r.slot, r.cursor.consumed, r.bseq)
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
        assert sorted(ring.active_slots(h)) == sorted(self.live)


TestRing = RingMachine.TestCase
TestRing.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


def test_attach_refuses_beyond_max_readers() -> None:
    h = new_header(10)
    for i in range(ring.MAX_READERS):
        ring.attach(h, 1000 + i, 1)
    with pytest.raises(PipeError, match="maximum"):
        ring.attach(h, 1, 1)


def test_publish_refuses_moving_back_or_past_write() -> None:
    h = new_header(10)
    slot = ring.attach(h, 1, 1)
    ring.commit(h, 5)
    ring.publish(h, slot, 3, 0)
    with pytest.raises(PipeError, match="bad position"):
        ring.publish(h, slot, 2, 0)
    with pytest.raises(PipeError, match="bad position"):
        ring.publish(h, slot, 6, 0)


def test_sleeping_readers_are_woken_once() -> None:
    h = new_header(10)
    a, b = ring.attach(h, 1, 1), ring.attach(h, 2, 1)
    ring.sleep(h, a)
    assert ring.commit(h, 1) == [a]
    assert ring.commit(h, 1) == []  # no syscall for readers that are awake
    ring.sleep(h, b)
    assert ring.add_boundary(h) == [b]


def test_reap_releases_dead_readers() -> None:
    h = new_header(4)
    a, b = ring.attach(h, 1, 1), ring.attach(h, 2, 1)
    ring.commit(h, 4)
    ring.publish(h, b, 4, 0)
    assert ring.free_rows(h) == 0  # reader a holds the ring
    assert ring.reap(h, lambda pid, st: pid == 2) == [a]
    assert ring.free_rows(h) == 4
    assert h.readers_reaped == 1
