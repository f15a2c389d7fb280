"""The protocol of a shared-memory pipe, as pure functions on its header.

Every decision lives here: who may write, who may read from where, when an end may sleep,
what a close releases, what a hand-over moves, when a role is dead. No locks, no OS calls, no
asyncio: liveness arrives as an ``alive(owner_id) -> bool`` callable and time as ``now``
(CLOCK_MONOTONIC ns), so the hypothesis state machine in the tests drives all of it. Callers
hold the header mutex around every function that changes the header, except the single-writer
stores of the hot path: the writer advancing ``write`` alone, a reader storing its own
position (:func:`store_position`). Each side then fences and looks at the other's sleep flag,
and a sleeper marks itself before it looks for news (:func:`writer_recheck`,
:func:`awake`), so a wake-up is never lost between the two.

Invariants (checked after every step of the state machine)::

    for each attached reader i:   0 <= write - cursor[i] <= capacity
                                  0 <= boundary_count - bseq[i] <= MAX_BOUNDARIES
    tail <= every attached cursor; rows [tail, write) are intact in the ring
    at most one writer registration; a role is taken over only from its owner id

Every loop over the reader table is bounded by MAX_READERS whatever ``readers_hi`` holds, so a
corrupted header gives PipeError (from ``header.check_cursors``) or a bounded scan, never an
IndexError.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import PipeError
from .header import (
    ACTIVE,
    DURABLE,
    FREE,
    MAX_BOUNDARIES,
    MAX_READERS,
    NO_WRITER,
    WRITER_CLOSED,
    WRITER_DEAD,
    WRITER_LOST,
    WRITER_OPEN,
    Header,
    ReaderSlot,
)

Alive = Callable[[int], bool]


def _hi(h: Header) -> int:
    return min(int(h.readers_hi), MAX_READERS)


def active_slots(h: Header) -> list[int]:
    return [i for i in range(_hi(h)) if h.readers[i].state == ACTIVE]


def new_id(h: Header) -> int:
    """A fresh owner id (never handed out before in this segment)."""
    h.next_id += 1
    return int(h.next_id)


# --------------------------------------------------------------------------- rows
def tail(h: Header) -> tuple[int, int]:
    """(oldest row still needed, oldest boundary still needed) by any reader, or retained."""
    cur = bseq = -1
    for i in range(_hi(h)):
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
    return max(0, int(h.capacity - (h.write - tail(h)[0])))


def unconsumed(h: Header) -> int:
    """Rows written that some reader (or the next reader to attach) has not consumed."""
    return int(h.write - tail(h)[0])


def commit(h: Header, n: int, now: int) -> list[int]:
    """Publish ``n`` rows already copied into the ring at time ``now``; return the slots to
    wake.

    Raises PipeError (and changes nothing) if ``n`` rows do not fit.
    """
    if not 0 < n <= free_rows(h):
        raise PipeError(f"cannot commit {n} rows: {free_rows(h)} free")
    h.write += n
    h.reserved = 0  # a commit (or a write) ends any reservation
    h.rows_written += n
    h.blocks_written += 1
    h.last_write_ns = now
    if h.writer_blocked_since:
        writer_unblocked(h, now)
    return wake_readers(h)


def writer_wait(h: Header, need: int, now: int) -> tuple[int, list[int]]:
    """The writer wants ``need`` rows of room at time ``now``: return (free rows, slots to
    wake).

    When fewer than ``need`` rows are free, the writer is marked asleep (the next reader to
    consume rings it) and blocked since ``now`` (unless already), and readers asleep are
    woken: a reader holding unconsumed rows waits for news that only its consuming can bring,
    so it must see that the writer waits.
    """
    free = free_rows(h)
    if free >= need:  # a blocked episode ends at the commit that follows
        return free, []
    writer_blocked(h, now)
    h.writer_waits += 1
    return free, wake_readers(h)


def writer_blocked(h: Header, now: int) -> None:
    """The writer cannot go on (no room, or no room for a break): it sleeps until a reader
    rings it, and a blocked episode starts at ``now`` unless one is in progress."""
    h.writer_sleeping = 1
    if not h.writer_blocked_since:
        h.writer_blocked_since = max(1, now)


def writer_unblocked(h: Header, now: int) -> None:
    """The blocked episode in progress (if any) ends at ``now``; its time is counted."""
    since = int(h.writer_blocked_since)
    if since:
        h.writer_blocked_ns += max(0, now - since)
        h.writer_blocked_since = 0


def blocked_ns(h: Header, now: int) -> int:
    """Total time the writer has been blocked on a full ring, up to ``now``."""
    since = int(h.writer_blocked_since)
    return int(h.writer_blocked_ns) + (max(0, now - since) if since else 0)


def slowest_reader(h: Header) -> int | None:
    """The attached reader furthest behind (the one a blocked writer waits for), or None."""
    slots = active_slots(h)
    if not slots:
        return None
    return min(slots, key=lambda i: (int(h.readers[i].cursor), i))


def reader_waited(h: Header, slot: int, ns: int) -> None:
    """Count ``ns`` of waiting for rows to reader ``slot``."""
    h.readers[slot].wait_ns += max(0, ns)


def reserve(h: Header, owner: int, n: int) -> None:
    """Record that writer ``owner`` handed out rows ``[write, write + n)`` for filling in
    place. Raises PipeError if it is not the writer or they are not free."""
    check_writer(h, owner)
    if not 0 < n <= free_rows(h):
        raise PipeError(f"cannot reserve {n} rows: {free_rows(h)} free")
    h.reserved = h.write + n


# --------------------------------------------------------------------------- boundaries
def writer_break(h: Header, now: int) -> list[int] | None:
    """The writer records an interval break at time ``now``: :func:`add_boundary`, and when
    the boundary table is full (None), the writer is blocked until a reader passes one."""
    woken = add_boundary(h)
    if woken is None:
        writer_blocked(h, now)
    else:
        writer_unblocked(h, now)
    return woken


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


# --------------------------------------------------------------------------- sleeping
def wake_readers(h: Header) -> list[int]:
    """Clear and return the slots of readers sleeping on their doorbells."""
    if not h.sleepers:
        return []
    woken = []
    for i in range(_hi(h)):
        s = h.readers[i]
        if s.sleeping:
            s.sleeping = 0
            if s.state == ACTIVE:
                woken.append(i)
    h.sleepers = 0
    h.wakeups += len(woken)
    return woken


def stalls_writer(h: Header, consumed: int, unconsumed_rows: int) -> bool:
    """The writer waits for room that only this reader's consuming can make (it holds rows
    and is the slowest), so its read must return what it holds rather than wait."""
    return bool(h.writer_sleeping) and unconsumed_rows > 0 and tail(h)[0] == consumed


def news(h: Header, seen: tuple[int, int, int]) -> bool:
    """Whether the write cursor, the boundaries or the writer state moved since ``seen``."""
    return (int(h.write), int(h.boundary_count), int(h.writer_state)) != seen


def snapshot(h: Header) -> tuple[int, int, int]:
    return int(h.write), int(h.boundary_count), int(h.writer_state)


def reader_sleep(h: Header, slot: int, seen: tuple[int, int, int], consumed: int,
                 unconsumed_rows: int) -> bool:
    """Reader ``slot`` found nothing new at ``seen``: mark it asleep and return True, unless
    news came meanwhile or it stalls the writer (return False: read again now)."""
    if news(h, seen) or stalls_writer(h, consumed, unconsumed_rows):
        return False
    s = h.readers[slot]
    if not s.sleeping:
        s.sleeping = 1
        h.sleepers += 1
    return True


def awake(h: Header, slot: int) -> None:
    """Undo :func:`sleep` for reader ``slot`` (it found news after marking itself asleep)."""
    s = h.readers[slot]
    if s.sleeping:
        s.sleeping = 0
        h.sleepers = max(0, h.sleepers - 1)


def sleep(h: Header, slot: int) -> None:
    """Mark reader ``slot`` as waiting on its doorbell (the next commit or boundary rings it)."""
    s = h.readers[slot]
    if not s.sleeping:
        s.sleeping = 1
        h.sleepers += 1


# --------------------------------------------------------------------------- liveness
def role_alive(owner: int, transit: int, alive: Alive, now: int) -> bool:
    """A role lives while its owner's lock is held, or while a hand-over is in transit."""
    return now < transit or alive(owner)


def writer_gone(h: Header, alive: Alive, now: int) -> bool:
    """True if no live writer is registered (marking a registered one that died as dead, or,
    in a durable pipe, as lost: a break at the write position, and readers wait for the
    writer that replaces it)."""
    if h.writer_state == WRITER_OPEN and not role_alive(
            int(h.writer_id), int(h.writer_transit), alive, now):
        h.reserved = 0
        if h.flags & DURABLE:
            h.writer_state = WRITER_LOST
            writer_unblocked(h, now)
            if h.write > 0 and last_boundary(h) != h.write:
                add_boundary(h)  # full table: the replacing writer adds it (claim_writer)
        else:
            h.writer_state = WRITER_DEAD
    return h.writer_state != WRITER_OPEN


def stream_ended(h: Header) -> bool:
    """True if the writer closed or was found dead (not lost: a durable pipe waits for a
    replacement)."""
    return h.writer_state in (WRITER_CLOSED, WRITER_DEAD)


def orphan(h: Header, slot: int) -> bool:
    """Whether reader ``slot`` is a durable reader waiting for its key's next owner."""
    s = h.readers[slot]
    return bool(s.state == ACTIVE and s.owner == 0 and s.key)


def reap(h: Header, alive: Alive, now: int) -> list[int]:
    """Detach the readers whose owner is gone (and no hand-over is in transit), and mark a
    registered writer that is gone dead (lost, in a durable pipe). In a durable pipe a keyed
    reader is not detached but orphaned: its cursor stays, holding its unconsumed rows.
    Returns the owner ids of the roles found dead (their doorbells can go)."""
    dead = [i for i in active_slots(h) if h.readers[i].owner
            and not role_alive(int(h.readers[i].owner), int(h.readers[i].transit), alive, now)]
    owners = [int(h.readers[i].owner) for i in dead]
    for i in dead:
        s = h.readers[i]
        if s.key and h.flags & DURABLE:
            if s.sleeping:
                s.sleeping = 0
                h.sleepers = max(0, h.sleepers - 1)
            s.owner = s.pid = s.transit = 0
        else:
            detach(h, i)
    h.readers_reaped += len(dead)
    if h.writer_state == WRITER_OPEN and writer_gone(h, alive, now):
        owners.append(int(h.writer_id))
    return owners


def live_pids(h: Header, alive: Alive, now: int) -> list[int]:
    """Pids of the registered roles (writer, readers) still alive or in transit at ``now``;
    changes nothing (a reap does that)."""
    pids = []
    if h.writer_state == WRITER_OPEN and role_alive(int(h.writer_id), int(h.writer_transit),
                                                    alive, now):
        pids.append(int(h.writer_pid))
    for i in active_slots(h):
        s = h.readers[i]
        if s.owner and role_alive(int(s.owner), int(s.transit), alive, now):
            pids.append(int(s.pid))
    return pids


def unused(h: Header) -> bool:
    """No end is registered and no row waits for a reader: the pipe may be unlinked.
    (Reap first: this trusts the registrations.)"""
    return h.writer_state != WRITER_OPEN and not active_slots(h) and unconsumed(h) == 0


# --------------------------------------------------------------------------- the writer
def check_writer(h: Header, owner: int) -> None:
    """Raise PipeError unless ``owner`` holds the writer registration."""
    if h.writer_id != owner or h.writer_state != WRITER_OPEN:
        raise PipeError(f"this output end no longer owns the pipe: it now belongs to pid "
                        f"{h.writer_pid} (handed over or taken over)")


def claim_writer(h: Header, owner: int, pid: int, inherited: int | None, alive: Alive,
                 now: int) -> None:
    """Register ``owner`` (of process ``pid``) as the writer.

    ``inherited`` is the owner id of the end this one continues (an end unpickled in, or
    inherited through fork by, another process), or None for a new end.
    A new end is refused while a live writer is registered; it replaces a dead or closed
    one, and its rows start a new interval. A continuing end must come from the registered
    writer, and may not take over while that writer, still alive, holds reserved rows
    (its views into the ring would overwrite ours).
    """
    if inherited is not None:
        if h.writer_id != inherited or h.writer_state != WRITER_OPEN:
            raise PipeError(f"the output end was taken over meanwhile (the pipe's writer is "
                            f"now pid {h.writer_pid})" if h.writer_state == WRITER_OPEN
                            else "the output end was closed or released meanwhile")
        if h.reserved and alive(inherited):
            raise PipeError(
                f"the writer (pid {h.writer_pid}) holds reserved rows {h.write}..{h.reserved} "
                "not yet committed: commit them before another process takes the end over"
            )
    else:
        if not writer_gone(h, alive, now):
            raise PipeError(f"pipe already has a writer: pid {h.writer_pid} "
                            "(one live writer per pipe)")
        if h.writer_state != NO_WRITER:
            h.takeovers += 1
            writer_unblocked(h, now)  # the old writer's episode ends with it
            if h.write > 0 and last_boundary(h) != h.write:
                add_boundary(h)  # the new writer's rows start a new interval
    h.reserved = 0
    h.writer_id = owner
    h.writer_pid = pid
    h.writer_transit = 0
    h.writer_sleeping = 0
    h.writer_state = WRITER_OPEN


def hand_over_writer(h: Header, owner: int, deadline: int) -> None:
    """Writer ``owner`` is being handed to another process, which has until ``deadline``
    (CLOCK_MONOTONIC ns) to take it over before the registration counts as dead."""
    check_writer(h, owner)
    if h.reserved:
        raise PipeError("commit the reserved rows before handing the output end over")
    h.writer_transit = deadline


def close_writer(h: Header, owner: int, now: int) -> list[int] | None:
    """Writer ``owner`` ends the stream at time ``now``; return the readers to wake, or None
    (and change nothing) if it no longer owns the registration."""
    if h.writer_id != owner or h.writer_state != WRITER_OPEN:
        return None
    writer_unblocked(h, now)
    h.writer_state = WRITER_CLOSED
    h.writer_transit = 0
    h.reserved = 0
    return wake_readers(h)


# --------------------------------------------------------------------------- readers
def attach(h: Header, owner: int, pid: int, key: int = 0) -> int:
    """Take a reader slot for ``owner`` (of process ``pid``); return its index.

    With no reader attached, the new reader starts at ``retained`` (the oldest row no reader
    has consumed); otherwise at the write position. A reader with a ``key`` (nonzero) in a
    durable pipe adopts the orphaned slot of that key, if there is one, and continues at its
    cursor. Raises PipeError when all ``MAX_READERS`` slots are taken, or when a live reader
    holds the key (reap first: an owner that died is then an orphan).
    """
    if key:
        for i in active_slots(h):
            s = h.readers[i]
            if s.key == key:
                if s.owner:
                    raise PipeError(f"a reader with this key is already attached: pid {s.pid}")
                s.owner, s.pid, s.transit, s.sleeping = owner, pid, 0, 0
                return i
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
    s.owner, s.pid, s.transit, s.sleeping = owner, pid, 0, 0
    s.rows_read = s.reads = s.wait_ns = 0
    s.key = key
    s.state = ACTIVE
    h.readers_hi = max(_hi(h), i + 1)
    return i


def make_durable(h: Header, keys: list[int]) -> None:
    """Make the pipe durable and give each key in ``keys`` without a slot an orphaned slot at
    the oldest row no reader has consumed (so its reader, attaching later, misses nothing).
    Raises PipeError (changing nothing) if the slots do not fit."""
    have = {int(h.readers[i].key) for i in active_slots(h)}
    new = [k for k in dict.fromkeys(keys) if k and k not in have]
    free = sum(1 for i in range(MAX_READERS) if h.readers[i].state == FREE)
    if len(new) > free:
        raise PipeError(f"{len(new)} durable readers do not fit: {free} reader slots free")
    h.flags |= DURABLE
    start, bseq = tail(h)
    for k in new:
        i = attach(h, 0, 0, k)
        h.readers[i].cursor, h.readers[i].bseq = start, bseq


def owns(h: Header, slot: int, owner: int) -> bool:
    """Whether reader ``slot`` is attached and held by ``owner``."""
    if not 0 <= slot < MAX_READERS:
        return False
    s = h.readers[slot]
    return bool(s.state == ACTIVE and s.owner == owner)


def check_reader(h: Header, slot: int, owner: int) -> None:
    """Raise PipeError unless ``owner`` holds reader ``slot``."""
    if not owns(h, slot, owner):
        s = h.readers[slot] if 0 <= slot < MAX_READERS else None
        who = f"pid {s.pid}" if s is not None and s.state == ACTIVE else "nobody"
        raise PipeError(f"this input end no longer owns its reader slot {slot}: it is held by "
                        f"{who} (handed over, or released as dead)")


def detach(h: Header, slot: int) -> None:
    """Release reader ``slot``; its position becomes ``retained`` if it is the furthest."""
    s = h.readers[slot]
    if s.state != ACTIVE:
        return
    if s.cursor > h.retained or (s.cursor == h.retained and s.bseq > h.retained_bseq):
        h.retained, h.retained_bseq = s.cursor, s.bseq
    if s.sleeping:
        s.sleeping = 0
        h.sleepers = max(0, h.sleepers - 1)
    s.state = FREE
    s.owner = s.pid = s.transit = s.key = 0
    while h.readers_hi and h.readers[_hi(h) - 1].state == FREE:
        h.readers_hi = _hi(h) - 1


def publish(h: Header, slot: int, cursor: int, bseq: int) -> bool:
    """Store a reader's consumed position; return True if the writer should be woken.

    Raises PipeError if the position would move back or past the write cursor.
    """
    moved = store_position(h, h.readers[slot], cursor, bseq)
    if moved and h.writer_sleeping:
        h.writer_sleeping = 0
        return True
    return False


def store_position(h: Header, s: ReaderSlot, cursor: int, bseq: int) -> bool:
    """Store the consumed position of reader slot ``s`` (an element of ``h.readers``);
    return True if it moved. Only the reader holding the slot stores into it, so this needs
    no mutex: the hot path calls it alone, then (after a fence) looks whether the writer
    sleeps (:func:`writer_waits_for_room`). Raises PipeError (changing nothing) if the
    position would move back or past the write cursor."""
    old, old_bseq = s.cursor, s.bseq
    if not (old <= cursor <= h.write and old_bseq <= bseq <= h.boundary_count):
        raise PipeError(
            f"reader slot: bad position {cursor}/{bseq} (was {old}/{old_bseq}, "
            f"write {h.write}, boundaries {h.boundary_count})"
        )
    s.reads += 1
    if cursor == old and bseq == old_bseq:
        return False
    s.rows_read += cursor - old
    s.cursor, s.bseq = cursor, bseq
    return True


def writer_waits_for_room(h: Header) -> bool:
    """With the mutex held, after a reader stored a new position without it: True if the
    writer sleeps waiting for room (it is then marked awake: the caller rings it)."""
    if h.writer_sleeping:
        h.writer_sleeping = 0
        return True
    return False


def writer_recheck(h: Header, need: int) -> int:
    """The writer found less than ``need`` rows free and was marked asleep
    (:func:`writer_wait`); the caller made that mark visible (a fence) and looks again,
    because readers store their positions without the mutex: one may have made room just
    before it could see the mark. Returns the free rows; if there are enough now, the writer
    is marked awake again (its blocked episode ends at the commit that follows)."""
    free = free_rows(h)
    if free >= need:
        h.writer_sleeping = 0
    return free


def hand_over_reader(h: Header, slot: int, owner: int, deadline: int) -> None:
    """Reader ``slot`` is being handed to another process, which has until ``deadline``
    (CLOCK_MONOTONIC ns) to take it over before the slot counts as dead."""
    check_reader(h, slot, owner)
    h.readers[slot].transit = deadline


def take_over_reader(h: Header, slot: int, inherited: int, owner: int, pid: int,
                     consumed: int, bseq: int) -> None:
    """``owner`` continues the end that held ``slot`` as ``inherited``, at position
    ``consumed``/``bseq``. Raises PipeError if the slot moved on or the position is out of
    range (changing nothing)."""
    check_reader(h, slot, inherited)
    s = h.readers[slot]
    if not (s.cursor <= consumed <= h.write and s.bseq <= bseq <= h.boundary_count):
        raise PipeError("the handed-over position is out of range")
    s.owner, s.pid, s.transit = owner, pid, 0


def close_reader(h: Header, slot: int, owner: int, consumed: int, bseq: int) -> bool:
    """Reader ``owner`` leaves: publish its position and free its slot. Returns True if the
    writer must be woken. Does nothing (False) if it no longer owns the slot."""
    if not owns(h, slot, owner):
        return False
    wake = publish(h, slot, consumed, bseq)
    detach(h, slot)
    if h.writer_sleeping:  # the tail may have moved: let the writer look again
        h.writer_sleeping = 0
        wake = True
    return wake
