"""Ring operations on a header: pure and synchronous (no locks, no OS calls, no asyncio).

Callers hold the header lock around every function here that changes the header. The
functions keep these invariants (checked by the hypothesis state machine in the tests)::

    for each attached reader i:   0 <= write - cursor[i] <= capacity
                                  0 <= boundary_count - bseq[i] <= MAX_BOUNDARIES
    tail <= every attached cursor; rows [tail, write) are intact in the ring
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import PipeError
from .header import ACTIVE, FREE, MAX_BOUNDARIES, MAX_READERS, Header


def active_slots(h: Header) -> list[int]:
    return [i for i in range(h.readers_hi) if h.readers[i].state == ACTIVE]


def tail(h: Header) -> tuple[int, int]:
    """(oldest row still needed, oldest boundary still needed) by any reader, or retained."""
    cur = bseq = -1
    for i in range(h.readers_hi):
        s = h.readers[i]
        if s.state == ACTIVE:
            if cur < 0 or s.cursor < cur:
                cur = s.cursor
            if bseq < 0 or s.bseq < bseq:
                bseq = s.bseq
    if cur < 0:
        return int(h.retained), int(h.retained_bseq)
    return int(cur), int(bseq)


def free_rows(h: Header) -> int:
    """Rows the writer may add now without overwriting a row some reader still needs."""
    return int(h.capacity - (h.write - tail(h)[0]))


def commit(h: Header, n: int) -> list[int]:
    """Publish ``n`` rows already copied into the ring; return the slots to wake.

    Raises PipeError (and changes nothing) if ``n`` rows do not fit.
    """
    if not 0 < n <= free_rows(h):
        raise PipeError(f"cannot commit {n} rows: {free_rows(h)} free")
    h.write += n
    h.rows_written += n
    h.blocks_written += 1
    return wake_readers(h)


def add_boundary(h: Header) -> list[int] | None:
    """Record an interval boundary at the write position; return the slots to wake.

    Returns None (and changes nothing) when the boundary table is full: the slowest reader has
    not yet passed the boundary ``MAX_BOUNDARIES`` places back.
    """
    if h.boundary_count - tail(h)[1] >= MAX_BOUNDARIES:
        return None
    h.boundaries[h.boundary_count % MAX_BOUNDARIES] = h.write
    h.boundary_count += 1
    return wake_readers(h)


def last_boundary(h: Header) -> int | None:
    if h.boundary_count == 0:
        return None
    return int(h.boundaries[(h.boundary_count - 1) % MAX_BOUNDARIES])


def next_boundary(h: Header, bseq: int, read_end: int) -> int | None:
    """The first boundary a reader that passed ``bseq`` boundaries has not passed, or None.

    Raises PipeError if the table holds a position outside ``[read_end, write]``.
    """
    if bseq >= h.boundary_count:
        return None
    pos = int(h.boundaries[bseq % MAX_BOUNDARIES])
    if not read_end <= pos <= h.write:
        raise PipeError(f"corrupted boundary {bseq} at row {pos} (rows {read_end}..{h.write})")
    return pos


def wake_readers(h: Header) -> list[int]:
    """Clear and return the slots of readers sleeping on their doorbells."""
    if not h.sleepers:
        return []
    woken = []
    for i in range(h.readers_hi):
        s = h.readers[i]
        if s.sleeping:
            s.sleeping = 0
            if s.state == ACTIVE:
                woken.append(i)
    h.sleepers = 0
    h.wakeups += len(woken)
    return woken


def sleep(h: Header, slot: int) -> None:
    """Mark reader ``slot`` as waiting on its doorbell (the next commit or boundary rings it)."""
    s = h.readers[slot]
    if not s.sleeping:
        s.sleeping = 1
        h.sleepers += 1


def attach(h: Header, pid: int, started: int) -> int:
    """Take a reader slot for process ``pid``; return its index.

    With no reader attached, the new reader starts at ``retained`` (the oldest row no reader
    has consumed); otherwise at the write position. Raises PipeError when all
    ``MAX_READERS`` slots are taken.
    """
    others = active_slots(h)
    for i in range(MAX_READERS):
        s = h.readers[i]
        if s.state == FREE:
            break
    else:
        raise PipeError(f"pipe has {MAX_READERS} readers already (the maximum)")
    if others:
        s.cursor, s.bseq = h.write, h.boundary_count
    else:
        s.cursor, s.bseq = h.retained, h.retained_bseq
    s.pid, s.started, s.sleeping = pid, started, 0
    s.rows_read = s.reads = 0
    h.reader_gen += 1
    s.gen = h.reader_gen
    s.state = ACTIVE
    h.readers_hi = max(h.readers_hi, i + 1)
    return i


def detach(h: Header, slot: int) -> None:
    """Release reader ``slot``; its position becomes ``retained`` if it is the furthest."""
    s = h.readers[slot]
    if s.state != ACTIVE:
        return
    if s.cursor > h.retained or (s.cursor == h.retained and s.bseq > h.retained_bseq):
        h.retained, h.retained_bseq = s.cursor, s.bseq
    if s.sleeping:
        s.sleeping = 0
        h.sleepers -= 1
    s.state = FREE
    s.pid = 0
    h.reader_gen += 1
    s.gen = h.reader_gen  # an end that still thinks it owns the slot will notice
    while h.readers_hi and h.readers[h.readers_hi - 1].state == FREE:
        h.readers_hi -= 1


def publish(h: Header, slot: int, cursor: int, bseq: int) -> bool:
    """Store a reader's consumed position; return True if the writer should be woken.

    Raises PipeError if the position would move back or past the write cursor.
    """
    s = h.readers[slot]
    if not (s.cursor <= cursor <= h.write and s.bseq <= bseq <= h.boundary_count):
        raise PipeError(
            f"reader slot {slot}: bad position {cursor}/{bseq} (was {s.cursor}/{s.bseq}, "
            f"write {h.write}, boundaries {h.boundary_count})"
        )
    moved = cursor != s.cursor or bseq != s.bseq
    s.rows_read += cursor - s.cursor
    s.cursor, s.bseq = cursor, bseq
    s.reads += 1
    if moved and h.writer_sleeping:
        h.writer_sleeping = 0
        return True
    return False


def reap(h: Header, alive: Callable[[int, int], bool]) -> list[int]:
    """Detach the readers whose process is gone; return their slots."""
    dead = [i for i in active_slots(h) if not alive(h.readers[i].pid, h.readers[i].started)]
    for i in dead:
        detach(h, i)
    h.readers_reaped += len(dead)
    return dead


def unconsumed(h: Header) -> int:
    """Rows written that some reader (or the next reader to attach) has not consumed."""
    return int(h.write - tail(h)[0])
