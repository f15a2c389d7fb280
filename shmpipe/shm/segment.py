"""One pipe's OS objects: the shared-memory segment, its header semaphore, its mapping.

:func:`open_segment` creates the segment or attaches to it (the first end creates it), and
returns holding the header lock so the caller can register itself atomically. The lock is a
POSIX semaphore whose holder is recorded in the header; a waiter that times out checks the
holder and, if that process is gone, releases the lock on its behalf (under an ``flock`` on
the segment, which the kernel drops when its holder dies, so only one waiter recovers it).
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import time
from collections.abc import Iterator

import numpy as np
import posix_ipc

from ..errors import PipeError
from ..layout import compute_dtype
from . import liveness, names
from .header import HEADER_BYTES, Header, initialize, ring_geometry, validate
from .mirror import map_mirrored

DEFAULT_RING_BYTES = 16 << 20  # fits a server L3 with room to spare: see bench/FINDINGS.md
DEFAULT_MODE = 0o600
LOCK_SPINS = 200  # non-blocking attempts before a blocking wait
LOCK_POLL = 0.25  # seconds between checks of a busy lock's holder
LOCK_GIVE_UP = 30.0  # a lock busy this long with no recoverable holder is an error


class Segment:
    """An attached pipe segment. Use :func:`open_segment`."""

    def __init__(self, name: str, sem: posix_ipc.Semaphore, fd: int, mode: int) -> None:
        self.name = name
        self.sem = sem
        self.fd = fd
        self.mode = mode
        size = os.fstat(fd).st_size
        if size < HEADER_BYTES:
            raise PipeError(
                f"segment of pipe {name!r} is corrupted or not a shmpipe pipe: "
                f"{size} bytes, smaller than a header ({HEADER_BYTES})"
            )
        raw = mmap.mmap(fd, HEADER_BYTES)
        try:
            snapshot = Header.from_buffer_copy(raw)
        finally:
            raw.close()
        self.layout = validate(snapshot, size, name)
        self.dtype = compute_dtype(self.layout)
        self.row_size = int(snapshot.row_size)
        self.capacity = int(snapshot.capacity)
        self.ring_bytes = int(snapshot.ring_bytes)
        self.mapping = map_mirrored(fd, HEADER_BYTES, self.ring_bytes)
        self.header = Header.from_buffer(self.mapping)
        self._ring = np.frombuffer(memoryview(self.mapping).cast("B"), np.uint8,
                                   2 * self.ring_bytes, HEADER_BYTES)
        self.held = False

    # ------------------------------------------------------------------ rows
    def rows(self, start: int, stop: int) -> np.ndarray:
        """A writable structured view of rows ``[start, stop)`` (contiguous even across the
        seam). Raises PipeError if the span is not within one ring's worth of rows."""
        n = stop - start
        if not 0 <= n <= self.capacity or start < 0:
            raise PipeError(
                f"pipe {self.name!r}: rows {start}..{stop} do not fit a ring of "
                f"{self.capacity} rows (corrupted cursor?)"
            )
        off = (start * self.row_size) % self.ring_bytes
        return self._ring[off : off + n * self.row_size].view(self.dtype)

    # ------------------------------------------------------------------ lock
    def acquire(self) -> None:
        """Take the header lock, recovering it from a dead holder. Raises PipeError if it stays
        busy for LOCK_GIVE_UP seconds with a live holder."""
        sem = self.sem
        for _ in range(LOCK_SPINS):  # holders keep it for microseconds: spin before sleeping
            try:
                sem.acquire(0)
                break
            except posix_ipc.BusyError:
                pass
        else:
            _acquire_slow(sem, self.name, self)
        self._mark_held()

    def _mark_held(self) -> None:
        h = self.header
        h.lock_pid, h.lock_started = liveness.me()
        h.lock_gen += 1
        self.held = True

    def release(self) -> None:
        h = self.header
        h.lock_pid = 0
        h.lock_started = 0
        self.held = False
        self.sem.release()

    @contextlib.contextmanager
    def locked(self) -> Iterator[Header]:
        """``with seg.locked() as h:`` holds the header lock around the block."""
        self.acquire()
        try:
            yield self.header
        finally:
            self.release()

    # ------------------------------------------------------------------ lifetime
    def unlink(self) -> None:
        """Remove the pipe's names from /dev/shm (attached ends keep their mappings)."""
        unlink(self.name)

    def close(self) -> None:
        """Drop this process's handles. The mapping itself goes when no view refers to it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(posix_ipc.Error):
            self.sem.close()


def _recover(sem: posix_ipc.Semaphore, h: Header, fd: int, seen: tuple[int, int, int]) -> bool:
    """Release the lock for a dead holder if nobody did since ``seen``; True if done."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        if (h.lock_pid, h.lock_started, h.lock_gen) != seen:
            return False
        h.lock_pid = 0
        h.lock_started = 0
        h.lock_gen += 1
        h.lock_recoveries += 1
        sem.release()
        return True
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _acquire_slow(sem: posix_ipc.Semaphore, name: str, seg: Segment | None) -> None:
    """Wait for the lock; every LOCK_POLL seconds check whether its holder died.

    ``seg`` is the attached segment, or None while opening (the header is then looked up).
    """
    deadline = time.monotonic() + LOCK_GIVE_UP
    last: tuple[int, int, int] | None = None
    while True:
        try:
            sem.acquire(LOCK_POLL)
            return
        except posix_ipc.BusyError:
            pass
        h: Header | None
        if seg is not None:
            h, fd, peeked = seg.header, seg.fd, None
        else:
            peeked = _peek_header(name)
            h, fd = peeked if peeked is not None else (None, -1)
        holder = int(h.lock_pid) if h is not None else 0
        try:
            if h is not None:
                seen = (int(h.lock_pid), int(h.lock_started), int(h.lock_gen))
                # no recorded holder twice in a row without progress: it died before recording
                dead = (not liveness.alive(seen[0], seen[1])) if seen[0] else seen == last
                if dead and _recover(sem, h, fd, seen):
                    continue
                if last != seen:
                    deadline = time.monotonic() + LOCK_GIVE_UP
                last = seen
        finally:
            if peeked is not None:
                del h
                os.close(fd)
        if time.monotonic() > deadline:
            raise PipeError(
                f"pipe {name!r}: header lock busy for {LOCK_GIVE_UP:.0f} s"
                + (f" (held by pid {holder})" if holder else "")
            )


def open_segment(
    name: str, layout: str | None, capacity: int | None, mode: int = DEFAULT_MODE
) -> tuple[Segment, bool]:
    """Create or attach pipe ``name``; return (segment, created) with the header lock HELD.

    Creating needs ``layout``; ``capacity`` is in rows (default: DEFAULT_RING_BYTES worth).
    Raises PipeError if the pipe does not exist and ``layout`` is None, if the existing
    segment's layout differs (naming both), or if the segment is corrupted or not ours.
    """
    names.validate(name)
    if layout is not None:
        row_size = compute_dtype(layout).itemsize
        if capacity is None:
            capacity = max(1, DEFAULT_RING_BYTES // row_size)
        if int(capacity) < 1:
            raise PipeError(f"capacity must be at least 1 row, got {capacity}")
    for _ in range(100):
        sem = posix_ipc.Semaphore(names.lock_name(name), posix_ipc.O_CREAT, mode, 1)
        try:
            ino = os.stat(names.lock_path(name)).st_ino
        except FileNotFoundError:
            sem.close()
            continue
        fd = -1
        try:
            try:
                sem.acquire(0)
            except posix_ipc.BusyError:
                _acquire_slow(sem, name, None)
            try:
                same = os.stat(names.lock_path(name)).st_ino == ino
            except FileNotFoundError:
                same = False
            if not same:  # the pipe was unlinked while we waited: start again
                sem.release()
                sem.close()
                continue
            created = False
            try:
                shm = posix_ipc.SharedMemory(names.shm_name(name))
            except posix_ipc.ExistentialError:
                if layout is None:
                    with contextlib.suppress(posix_ipc.ExistentialError):
                        sem.unlink()  # the semaphore we created for nothing
                    sem.release()
                    sem.close()
                    raise PipeError(
                        f"no pipe named {name!r}: open its output first or pass a layout"
                    ) from None
                assert capacity is not None
                ring_bytes, _ = ring_geometry(row_size, int(capacity))
                shm = posix_ipc.SharedMemory(
                    names.shm_name(name), posix_ipc.O_CREX, mode, HEADER_BYTES + ring_bytes
                )
                created = True
                os.fchmod(shm.fd, mode)  # exactly ``mode``, whatever the umask
                with contextlib.suppress(OSError):
                    os.chmod(names.lock_path(name), mode)
            fd = shm.fd
            if created:
                with mmap.mmap(fd, HEADER_BYTES) as raw:
                    h = Header.from_buffer(raw)
                    initialize(h, layout, int(capacity))  # type: ignore[arg-type]
                    del h
            seg = Segment(name, sem, fd, mode)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(posix_ipc.Error):
                sem.release()
            with contextlib.suppress(posix_ipc.Error):
                sem.close()
            raise
        seg._mark_held()
        if layout is not None and seg.layout != layout:
            seg.release()
            seg.close()
            raise PipeError(
                f"pipe {name!r} carries layout {seg.layout}, this end asked for {layout}"
            )
        return seg, created
    raise PipeError(f"pipe {name!r} kept disappearing while being opened")


def _peek_header(name: str) -> tuple[Header, int] | None:
    """(the live header, a new fd) of pipe ``name`` if a valid segment exists.

    The header's mapping is released when the returned header object is collected.
    """
    try:
        shm = posix_ipc.SharedMemory(names.shm_name(name))
    except posix_ipc.ExistentialError:
        return None
    try:
        size = os.fstat(shm.fd).st_size
        if size < HEADER_BYTES:
            return None
        raw = mmap.mmap(shm.fd, HEADER_BYTES)
        try:
            validate(Header.from_buffer_copy(raw), size, name)
        except PipeError:
            raw.close()
            return None
        return Header.from_buffer(raw), os.dup(shm.fd)
    finally:
        shm.close_fd()


def unlink(name: str) -> None:
    """Remove every /dev/shm object of pipe ``name`` (missing ones are fine).

    Ends still attached keep working on their mappings until they close.
    """
    names.validate(name)
    with contextlib.suppress(posix_ipc.ExistentialError):
        posix_ipc.unlink_shared_memory(names.shm_name(name))
    for path in names.entries_of(name):
        if not path.endswith(".lock") or "/sem." not in path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    with contextlib.suppress(posix_ipc.ExistentialError):
        posix_ipc.unlink_semaphore(names.lock_name(name))
