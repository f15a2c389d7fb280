"""The header at the start of every pipe segment.

All fields are little-endian 64/32-bit integers at fixed offsets (a ``ctypes.Structure``), so
the header is the same bytes in every process. Cursors are row counts since the pipe was
created; they only grow::

    rows ever written:  0 ........ tail ........... cursor[i] ........... write
                                   |<- kept in the ring (<= capacity) ->|
    tail  = min(cursor[i] of attached readers), or `retained` when none is attached
    free  = capacity - (write - tail)

    boundaries: a ring of ``MAX_BOUNDARIES`` row positions; boundary k (k < boundary_count)
    is ``boundaries[k % MAX_BOUNDARIES]``; reader i has passed boundaries ``< bseq[i]``.

Everything except the immutable description (magic ... max_boundaries) is changed only while
holding the header mutex (see segment.py), with two single-writer exceptions that make the hot
path a copy and a store: the writer alone advances ``write`` (and its counters) and each reader
alone stores its slot's ``cursor``/``bseq`` (and counters), without the mutex; each then
fences and looks at the other side's sleep flag (``sleepers``, ``writer_sleeping``), which
stay under the mutex (see output.py and input.py). Roles are held by *owner ids*: ``next_id`` hands
out a new one to every registration (a writer, a reader slot, a hand-over), never reused
while the segment lives; the end that owns id ``k`` holds the kernel lock on byte
``ID_BASE + k`` of the lock file (locks.py), which is how every other end knows it is alive.
Pids are kept for messages only::

    writer:   writer_state  writer_id  writer_pid  writer_transit  reserved
    reader k: state         owner      pid         transit         cursor  bseq ...

``transit`` is a CLOCK_MONOTONIC deadline (ns) while an end is being handed to another
process: the role counts as alive until then even if no process holds its lock.
``reserved`` is the end of the rows the writer has handed out with ``reserve()`` and not yet
committed (0: none): no other writer may take the pipe over while a live writer holds them.

A *durable* pipe (``flags & DURABLE``, made by a supervisor that restarts the processes at its
ends) outlives the deaths of those processes: a writer found dead leaves the state
``WRITER_LOST`` (a break at the write position; readers wait for a replacement instead of
seeing the end of the stream), and a reader slot with a ``key`` whose owner died stays
attached with owner 0 (an *orphan*: its cursor still holds the rows it has not consumed)
until a reader opening with the same key adopts it.

Counters (for monitoring: ``survey.py`` reads them without taking the mutex) are updated with
the fields they count: rows and blocks written, boundaries (intervals), rows read and
time spent waiting per reader, time the writer spent blocked on a full ring
(``writer_blocked_ns`` plus the episode in progress since ``writer_blocked_since``), the
creation and last-write times. Times are CLOCK_MONOTONIC ns, one clock for all processes of
the host.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import time

from ..errors import PipeError
from ..layout import compute_dtype
from .mirror import PAGE, page_round

MAGIC = b"SHMPIPE\x00"
VERSION = 4  # 3: counters for `shmpipe ls/stat/top`; 4: durable pipes (flags, reader keys)
MAX_READERS = 64
MAX_BOUNDARIES = 1024
LAYOUT_BYTES = 32

# writer_state
NO_WRITER, WRITER_OPEN, WRITER_CLOSED, WRITER_DEAD, WRITER_LOST = 0, 1, 2, 3, 4
# flags
DURABLE = 1  # a dead writer is a break, not the end; a keyed reader slot outlives its owner
# reader slot state
FREE, ACTIVE = 0, 1

u32, u64, i64 = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64


class ReaderSlot(ctypes.Structure):
    """One reader's cursor and liveness."""

    _fields_ = [
        ("state", u32),
        ("sleeping", u32),  # 1: waiting on its doorbell; the writer must ring it
        ("owner", u64),  # owner id of the end holding the slot (its liveness lock)
        ("pid", i64),  # for messages only
        ("transit", u64),  # CLOCK_MONOTONIC ns deadline of a hand-over in progress, or 0
        ("cursor", u64),  # rows consumed (published at each read)
        ("bseq", u64),  # boundaries passed
        ("rows_read", u64),
        ("reads", u64),
        ("wait_ns", u64),  # time spent waiting for rows (published at its next read)
        ("key", u64),  # a durable reader's name (a hash), or 0
    ]


class Header(ctypes.Structure):
    """The segment header; see the module docstring for what the cursors mean."""

    _fields_ = [
        ("magic", ctypes.c_char * 8),
        ("version", u32),
        ("header_bytes", u32),
        ("layout", ctypes.c_char * LAYOUT_BYTES),
        ("row_size", u64),
        ("capacity", u64),  # rows the ring holds
        ("ring_bytes", u64),  # a multiple of the page size, >= capacity * row_size
        ("max_readers", u32),
        ("max_boundaries", u32),
        ("lock_pid", i64),  # the mutex holder, for messages only
        ("next_id", u64),  # the last owner id handed out
        # the writer
        ("writer_state", u32),
        ("writer_sleeping", u32),
        ("writer_id", u64),
        ("writer_pid", i64),  # for messages only
        ("writer_transit", u64),
        ("reserved", u64),
        # cursors
        ("write", u64),
        ("boundary_count", u64),
        ("retained", u64),
        ("retained_bseq", u64),
        ("readers_hi", u32),  # 1 + highest slot index ever taken (bounds the slot scans)
        ("sleepers", u32),  # readers waiting on their doorbells
        # counters
        ("rows_written", u64),
        ("blocks_written", u64),
        ("wakeups", u64),
        ("writer_waits", u64),
        ("takeovers", u64),
        ("readers_reaped", u64),
        ("lock_recoveries", u64),
        # CLOCK_MONOTONIC ns (one clock for every process of the host)
        ("created_ns", u64),
        ("last_write_ns", u64),  # the last commit
        ("writer_blocked_ns", u64),  # time the writer waited for room, episodes that ended
        ("writer_blocked_since", u64),  # start of the episode in progress, or 0
        ("flags", u64),  # DURABLE
        ("readers", ReaderSlot * MAX_READERS),
        ("boundaries", u64 * MAX_BOUNDARIES),
    ]


HEADER_BYTES = page_round(ctypes.sizeof(Header))


def ring_geometry(row_size: int, capacity: int) -> tuple[int, int]:
    """(ring bytes, capacity in rows) for at least ``capacity`` rows of ``row_size`` bytes."""
    ring_bytes = page_round(max(1, capacity) * row_size)
    return ring_bytes, ring_bytes // row_size


def initialize(h: Header, layout: str, capacity: int) -> None:
    """Fill a zeroed header for a new pipe; the magic is written last."""
    row_size = compute_dtype(layout).itemsize
    ring_bytes, rows = ring_geometry(row_size, capacity)
    h.version = VERSION
    h.header_bytes = HEADER_BYTES
    h.layout = layout.encode()
    h.row_size = row_size
    h.capacity = rows
    h.ring_bytes = ring_bytes
    h.max_readers = MAX_READERS
    h.max_boundaries = MAX_BOUNDARIES
    h.created_ns = time.monotonic_ns()
    # owner ids start at a random point, so that ids (and the doorbell paths named after
    # them) of a pipe created again under the same name never meet the old ones
    h.next_id = secrets.randbits(40) << 8
    h.magic = MAGIC


def read_snapshot(fd: int) -> tuple[Header, int]:
    """A copy of the header of segment ``fd``, and its write cursor read after the copy (see
    :func:`check_cursors`: the cursors move while the copy is taken)."""
    snapshot = Header.from_buffer_copy(os.pread(fd, HEADER_BYTES, 0))
    write_now = int.from_bytes(os.pread(fd, 8, Header.write.offset), "little")
    return snapshot, write_now


def segment_bytes(h: Header) -> int:
    return int(h.header_bytes + h.ring_bytes)


def validate(h: Header, size: int, name: str, write_now: int = 0) -> str:
    """Check that ``h`` is a sane shmpipe header for an object of ``size`` bytes.

    Returns the layout. Raises PipeError naming the first field that is out of bounds, so a
    corrupted or foreign segment never leads to a read outside the mapping.
    """

    def bad(what: str) -> PipeError:
        return PipeError(f"segment of pipe {name!r} is corrupted or not a shmpipe pipe: {what}")

    if bytes(h.magic) != MAGIC.rstrip(b"\x00"):
        raise bad(f"magic is {bytes(h.magic)!r}, expected {MAGIC!r}")
    if h.version != VERSION:
        raise bad(f"format version {h.version}, this shmpipe reads version {VERSION}")
    if h.header_bytes != HEADER_BYTES:
        raise bad(f"header size {h.header_bytes}, expected {HEADER_BYTES}")
    try:
        layout = bytes(h.layout).decode("ascii")
        dtype = compute_dtype(layout)
    except (UnicodeDecodeError, ValueError):
        raise bad(f"layout field {bytes(h.layout)!r}") from None
    if h.row_size != dtype.itemsize:
        raise bad(f"row size {h.row_size} does not match layout {layout} ({dtype.itemsize})")
    if h.ring_bytes == 0 or h.ring_bytes % PAGE or h.header_bytes + h.ring_bytes != size:
        raise bad(f"ring of {h.ring_bytes} bytes in an object of {size} bytes")
    if h.capacity == 0 or h.capacity != h.ring_bytes // h.row_size:
        raise bad(f"capacity {h.capacity} rows for a ring of {h.ring_bytes} bytes")
    if h.max_readers != MAX_READERS or h.max_boundaries != MAX_BOUNDARIES:
        raise bad(f"table sizes {h.max_readers}/{h.max_boundaries}")
    check_cursors(h, name, write_now)
    return layout


def check_cursors(h: Header, name: str, write_now: int = 0) -> None:
    """Raise PipeError if the cursors or the role table break their invariants (see the
    module docstring): every field a ring operation indexes with or trusts is bounded here.

    The writer and the readers move their cursors without the mutex, so a reader's cursor
    (or ``retained``) read after ``write`` may be past it: such a value is checked against
    ``write`` read again (``h.write``, for a live header) or ``write_now`` (for a copy: the
    write cursor read after the copy was taken)."""
    w, cap = h.write, h.capacity
    if h.writer_state > WRITER_LOST:
        raise _corrupt(name, f"writer state {h.writer_state}")
    if h.writer_id > h.next_id:
        raise _corrupt(name, f"writer id {h.writer_id} beyond the last id {h.next_id}")
    if h.reserved and not w < h.reserved <= w + cap:
        raise _corrupt(name, f"reservation ending at row {h.reserved} for write {w}")
    if (h.retained > w and h.retained > max(h.write, write_now)) or (
            h.boundary_count - h.retained_bseq) > MAX_BOUNDARIES:
        raise _corrupt(name, f"retained position {h.retained} past write {w}")
    if h.readers_hi > MAX_READERS or h.sleepers > MAX_READERS:
        raise _corrupt(name, f"reader table bounds {h.readers_hi}/{h.sleepers}")
    tail = None
    for i in range(MAX_READERS):
        s = h.readers[i]
        if s.state == FREE:
            continue
        if s.state != ACTIVE or (s.cursor > w and s.cursor > max(h.write, write_now)) or (
                w - s.cursor > cap):
            raise _corrupt(name, f"reader slot {i} cursor {s.cursor} for write {w}, capacity {cap}")
        if s.bseq > h.boundary_count or h.boundary_count - s.bseq > MAX_BOUNDARIES:
            raise _corrupt(name, f"reader slot {i} boundary count {s.bseq}")
        if i >= h.readers_hi or s.owner > h.next_id:
            raise _corrupt(name, f"reader slot {i} outside the table ({h.readers_hi} slots) "
                                 f"or with an unknown owner {s.owner}")
        tail = s.cursor if tail is None else min(tail, s.cursor)
    if tail is None and w - h.retained > cap:
        raise _corrupt(name, f"write {w} is more than {cap} rows past retained {h.retained}")


def _corrupt(name: str, what: str) -> PipeError:
    return PipeError(f"segment of pipe {name!r} is corrupted: {what}")
