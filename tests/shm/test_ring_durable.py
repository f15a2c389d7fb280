"""Durable pipes in the pure ring core: a dead writer is a break, a keyed reader's slot
outlives its owner and is adopted by the next reader of its key (no process, no memory)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule
from test_ring import Reader, RingMachine, new_header

from shmpipe.errors import PipeError
from shmpipe.shm import names, ring
from shmpipe.shm.header import MAX_BOUNDARIES, WRITER_LOST, WRITER_OPEN

KEYS = (11, 12, 13)


class DurableRingMachine(RingMachine):
    """The ring machine on a durable pipe, plus keyed readers that die and are adopted."""

    @initialize(capacity=st.integers(1, 40))
    def setup(self, capacity: int) -> None:
        super().setup(capacity)
        ring.make_durable(self.h, [KEYS[0]])  # a reader reserved before any end opens
        self.keys: dict[int, int] = {}  # slot -> key, for keyed readers (live or orphaned)
        slot = ring.active_slots(self.h)[0]
        self.keys[slot] = KEYS[0]
        self.orphans[slot] = Reader(slot, self.h, 0)

    @rule(key=st.sampled_from(KEYS))
    def attach_keyed(self, key: int) -> None:
        h = self.h
        held = [slot for slot, k in self.keys.items() if k == key]
        me = ring.new_id(h)
        if held and held[0] in self.live:
            with pytest.raises(PipeError, match="already attached"):
                ring.attach(h, me, 1, key)
            return
        if held:  # adopt the orphan: continue at the position its last owner published
            old = self.orphans.pop(held[0])
            slot = ring.attach(h, me, 1, key)
            assert slot == old.slot
            r = Reader(slot, h, me)
            assert r.start == old.published, "the adopting reader starts at the orphan's cursor"
            assert r.bseq == int(h.readers[slot].bseq)
            self.live[slot] = r
            return
        if len(self.live) + len(self.orphans) >= 4:
            return
        alone = not self.live and not self.orphans
        slot = ring.attach(h, me, 1, key)
        r = Reader(slot, h, me)
        assert r.start == (self.retained if alone else int(h.write))
        self.live[slot] = r
        self.keys[slot] = key

    def _gone(self, r: Reader) -> None:
        super()._gone(r)
        self.keys.pop(r.slot, None)

    @rule(dt=st.sampled_from([0, 1000]))
    def reap(self, dt: int) -> None:  # type: ignore[override]
        self.now += dt
        h = self.h
        dead = sorted(slot for slot, r in self.live.items()
                      if not self.alive(r.owner) and self.now >= h.readers[slot].transit)
        owners = [self.live[slot].owner for slot in dead]
        lost = self.writer_state == "open" and not self.alive(self.writer) and (
            self.now >= h.writer_transit)
        if lost:
            owners.append(self.writer)
        before = int(h.boundary_count)
        table_full = before - ring.tail(h)[1] >= MAX_BOUNDARIES
        assert sorted(ring.reap(h, self.alive, self.now)) == sorted(owners)
        for slot in dead:
            r = self.live.pop(slot)
            if slot in self.keys:  # keyed: kept with its cursor for the next owner
                assert ring.orphan(h, slot)
                assert int(h.readers[slot].cursor) == r.published
                self.orphans[slot] = r
            else:
                self.retained = max(self.retained, r.published)
                self.keys.pop(slot, None)
        if lost:
            assert h.writer_state == WRITER_LOST
            assert not ring.stream_ended(h), "a lost writer is not the end of the stream"
            assert ring.writer_gone(h, self.alive, self.now)
            self.unblock()
            w = int(h.write)
            if w and self.boundaries_end() != w and not table_full:
                assert h.boundary_count == before + 1, "a lost writer leaves a break"
                self.boundaries.append(w)
            self.writer_state, self.reserved = "lost", 0

    @precondition(lambda self: self.writer_state == "open")
    @rule()
    def writer_dies(self) -> None:
        super().writer_dies()
        assert self.h.writer_state == WRITER_OPEN  # nothing changes until someone looks


TestDurableRing = DurableRingMachine.TestCase
TestDurableRing.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


def test_make_durable_refuses_more_readers_than_slots_and_changes_nothing() -> None:
    h = new_header(8)
    for i in range(60):
        ring.attach(h, 100 + i, 1)
    with pytest.raises(PipeError, match="5 durable readers do not fit: 4 reader slots free"):
        ring.make_durable(h, [1, 2, 3, 4, 5])
    assert h.flags == 0 and len(ring.active_slots(h)) == 60


def test_make_durable_keeps_existing_keys_and_starts_new_ones_at_the_tail() -> None:
    h = new_header(8)
    ring.make_durable(h, [7])
    ring.claim_writer(h, ring.new_id(h), 1, None, lambda o: True, 0)
    ring.commit(h, 5, 0)
    ring.make_durable(h, [7, 9])
    slots = {int(h.readers[i].key): i for i in ring.active_slots(h)}
    assert set(slots) == {7, 9}
    assert h.readers[slots[9]].cursor == 0  # the oldest row nobody consumed


def test_key_hash_is_nonzero_and_stable() -> None:
    assert names.key("median.input") == names.key("median.input") != names.key("median.x")
    assert names.key("a") & 1
    with pytest.raises(PipeError, match="non-empty string"):
        names.key("")
