"""One pipe's OS objects: the shared-memory segment, its header semaphore, its mapping.

The header mutex
----------------
Mutual exclusion on the header is an OFD lock on byte 0 of the semaphore's file (locks.py),
taken by each end on a descriptor of its own; the POSIX semaphore records whether somebody is
*inside* the critical section::

    acquire:  OFD lock byte 0 (spin, then back off; PipeError after LOCK_GIVE_UP seconds)
              sem_trywait: 1 -> 0 ...... the previous holder left cleanly
                           already 0 ... the previous holder died (or was interrupted) inside:
                                         recovered, the header is re-checked
    release:  sem_post 0 -> 1, then OFD unlock

The kernel drops the OFD lock of a process that dies, whatever its PID namespace, and never
of one that is merely stopped, so the lock is recovered exactly when its holder is gone and
a live holder is never robbed. Releasing is idempotent and unlocking a byte not held is a
no-op, so ``with seg.locked():`` cannot be split by a signal or KeyboardInterrupt into a lock
that stays held: at worst the semaphore stays 0 and the next holder counts a recovery.

Opening
-------
:func:`open_segment` creates the segment or attaches to it and returns holding the mutex, so
the caller registers itself atomically. Creating reserves the whole ring in /dev/shm at once
(``posix_fallocate``): a ring that does not fit fails here with PipeError, never later with
SIGBUS. A failed open leaves nothing behind, and objects owned by a user other than this
process's (or root, or the ``owner`` given) are refused, so a planted segment is never used.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pwd
import stat
import time
from collections.abc import Iterator
from typing import cast

import numpy as np
import posix_ipc

from ..buffer import PipeData
from ..errors import PipeError
from ..layout import compute_dtype
from . import locks, names
from .header import (
    HEADER_BYTES,
    Header,
    check_cursors,
    initialize,
    read_snapshot,
    ring_geometry,
    validate,
)
from .mirror import map_mirrored

log = logging.getLogger("shmpipe")

DEFAULT_RING_BYTES = 16 << 20  # fits a server L3 with room to spare: see bench/FINDINGS.md
MAX_RING_BYTES = 1 << 44  # 16 TiB: beyond any /dev/shm, far from overflowing 64-bit cursors
DEFAULT_MODE = 0o600
LOCK_SPINS = 100  # attempts with sched_yield before backing off
LOCK_GIVE_UP = 30.0  # a mutex held this long by a live holder is an error
OPEN_POLL = 0.02  # seconds between looks for a pipe that does not exist yet

_pid = os.getpid()  # this process's pid, kept current by a fork hook (no getpid per call)


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """This process's pid, without a system call (a fork hook keeps it current)."""
    return _pid


def trusted_uids(owner: int | str | None) -> frozenset[int]:
    """The users whose pipe objects an end may use: this process's, root's, and ``owner``."""
    uids = {os.geteuid(), 0}
    if isinstance(owner, str):
        try:
            uids.add(pwd.getpwnam(owner).pw_uid)
        except KeyError:
            raise PipeError(f"owner {owner!r} is not a user of this host") from None
    elif owner is not None:
        if isinstance(owner, bool) or not isinstance(owner, int) or owner < 0:
            raise PipeError(f"owner must be a user name or uid, got {owner!r}")
        uids.add(owner)
    return frozenset(uids)


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_owner(st: os.stat_result, what: str, trusted: frozenset[int]) -> None:
    """Raise PipeError if ``st`` (of a pipe object) belongs to a user not in ``trusted``."""
    if st.st_uid not in trusted:
        raise PipeError(
            f"{what} belongs to {_user(st.st_uid)}, not to you or root: refusing to use it "
            "(pass owner=... to share pipes between users)"
        )


def ring_bytes_for(name: str, capacity: object, row_size: int) -> int:
    """Validate ``capacity`` (rows, or None for the default) and return the ring's bytes."""
    if capacity is None:
        capacity = max(1, DEFAULT_RING_BYTES // row_size)
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
        raise PipeError(f"capacity must be a whole number of rows, got {capacity!r}")
    rows = int(capacity)
    if rows < 1:
        raise PipeError(f"capacity must be at least 1 row, got {rows}")
    if rows * row_size > MAX_RING_BYTES:
        raise PipeError(
            f"pipe {name!r}: a ring of {rows} rows of {row_size} bytes needs "
            f"{rows * row_size} bytes, more than the largest ring ({MAX_RING_BYTES} bytes)"
        )
    return ring_geometry(row_size, rows)[0]


def shm_free_bytes() -> int:
    """Bytes /dev/shm can still hold for this process."""
    st = os.statvfs(names.SHM_DIR)
    return st.f_bavail * st.f_frsize


class Segment:
    """An attached pipe segment and this end's descriptor of its lock file.

    Use :func:`open_segment`. ``lock_fd`` is this end's own open file description: the mutex
    and the end's liveness lock are taken on it (see the module docstring).
    """

    def __init__(self, name: str, lock_fd: int, sem: posix_ipc.Semaphore, shm_fd: int) -> None:
        self.name = name
        self.lock_fd = lock_fd
        self.lock_ino = os.fstat(lock_fd).st_ino
        self.sem = sem
        self._sem_owed = False
        self.recovered = False
        st = os.fstat(shm_fd)
        self.mode = stat.S_IMODE(st.st_mode)
        if st.st_size < HEADER_BYTES:
            raise PipeError(
                f"segment of pipe {name!r} is corrupted or not a shmpipe pipe: "
                f"{st.st_size} bytes, smaller than a header ({HEADER_BYTES})"
            )
        snapshot, write_now = read_snapshot(shm_fd)
        self.layout = validate(snapshot, st.st_size, name, write_now)
        self.dtype = compute_dtype(self.layout)
        self.row_size = int(snapshot.row_size)
        self.capacity = int(snapshot.capacity)
        self.ring_bytes = int(snapshot.ring_bytes)
        self.mapping = map_mirrored(shm_fd, HEADER_BYTES, self.ring_bytes)
        self.header = Header.from_buffer(self.mapping)
        self._ring = np.frombuffer(memoryview(self.mapping).cast("B"), np.uint8,
                                   2 * self.ring_bytes, HEADER_BYTES)
        # bytes of the ring (twice, see mirror.py): small blocks are copied in through it
        self.ring_view = memoryview(self.mapping).cast("B")[
            HEADER_BYTES : HEADER_BYTES + 2 * self.ring_bytes]
        self._phases: dict[int, PipeData] = {}  # read-only row views, by byte phase

    # ------------------------------------------------------------------ rows
    def read_rows(self, start: int, stop: int) -> PipeData:
        """A read-only :class:`PipeData` view of rows ``[start, stop)`` (as :meth:`rows`),
        made with one slice of a view kept per byte phase of the ring (a row starts at
        ``start * row_size % ring_bytes``, so after each pass of the ring the rows may sit
        at another offset modulo the row size: one view per such offset, made at first use)."""
        n = stop - start
        if not 0 <= n <= self.capacity or start < 0:
            self.rows(start, stop)  # raises
        size = self.row_size
        off = (start * size) % self.ring_bytes
        phase = off % size
        view = self._phases.get(phase)
        if view is None:
            count = (2 * self.ring_bytes - phase) // size
            raw = self._ring[phase : phase + count * size].view(self.dtype)
            view = raw.view(PipeData)
            view.flags.writeable = False
            self._phases[phase] = view
        i = off // size
        return cast(PipeData, view[i : i + n])

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

    # ------------------------------------------------------------------ the mutex
    def acquire(self) -> None:
        """Take the header mutex (see the module docstring). Blocks while another end holds
        it, at most LOCK_GIVE_UP seconds, then raises PipeError naming the holder. If the last
        holder died inside, counts a recovery and re-checks the header (PipeError if it is
        corrupted; the mutex is then released)."""
        take_mutex(self.lock_fd, self.name, self.header)
        self._enter()
        h = self.header
        h.lock_pid = _pid
        if self.recovered:
            self.recovered = False
            h.lock_recoveries += 1
            try:
                check_cursors(h, self.name)
            except BaseException:
                self.release()
                raise

    def _enter(self) -> None:
        """With the OFD mutex held: take the semaphore, or note that the last holder died
        inside (the semaphore is then 0 already and counts as ours)."""
        try:
            self.sem.acquire(0)
        except posix_ipc.BusyError:
            self.recovered = True
        self._sem_owed = True

    def release(self) -> None:
        """Leave the critical section. Idempotent; safe to call without holding it."""
        try:
            if self._sem_owed:
                self._sem_owed = False
                self.sem.release()
        finally:
            if self.lock_fd >= 0:
                locks.drop_mutex(self.lock_fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[Header]:
        """``with seg.locked() as h:`` holds the header mutex around the block."""
        try:
            self.acquire()
            yield self.header
        finally:
            self.release()

    # ------------------------------------------------------------------ liveness
    def alive(self, owner: int) -> bool:
        """Whether the end registered as ``owner`` is alive (its kernel lock is held)."""
        return locks.alive(self.lock_fd, owner)

    def hold(self, owner: int) -> None:
        """Take the liveness lock of ``owner`` for this end (a new id: always free)."""
        if not locks.hold(self.lock_fd, owner):
            raise PipeError(f"pipe {self.name!r}: owner id {owner} is already held")

    def drop(self, owner: int) -> None:
        if self.lock_fd >= 0 and owner:
            locks.drop(self.lock_fd, owner)

    def linked(self) -> bool:
        """Whether the pipe still has its name (it was not unlinked since we opened it)."""
        return os.fstat(self.lock_fd).st_nlink > 0

    # ------------------------------------------------------------------ lifetime
    def remove(self) -> None:
        """With the mutex held: remove every /dev/shm object of the pipe. Objects another user
        owns (which this process may not remove) are left for their owner."""
        remove_objects(self.name)

    def after_fork(self) -> None:
        """In a forked child: drop the inherited lock descriptor (the parent's locks stay the
        parent's: closing a copy does not release them)."""
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1
        self._sem_owed = False

    def reopen_lock(self) -> None:
        """Open a lock descriptor of this process's own (after a fork)."""
        if self.lock_fd >= 0:
            return
        try:
            fd = os.open(names.lock_path(self.name), os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as e:
            raise PipeError(f"pipe {self.name!r} is gone: {e.strerror}") from None
        if os.fstat(fd).st_ino != self.lock_ino:
            os.close(fd)
            raise PipeError(f"pipe {self.name!r} was removed and created again meanwhile")
        self.lock_fd = fd

    def close(self) -> None:
        """Drop this end's handles: closing the lock descriptor releases every lock this end
        held. The mapping itself goes when no view refers to it."""
        self._sem_owed = False
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1
        with contextlib.suppress(posix_ipc.Error):
            self.sem.close()


def take_mutex(fd: int, name: str, h: Header | None) -> None:
    """Take the OFD mutex on ``fd``: spin briefly (holders keep it for microseconds), then
    back off up to 5 ms between tries. PipeError after LOCK_GIVE_UP seconds."""
    if locks.try_mutex(fd):
        return
    for _ in range(LOCK_SPINS):
        os.sched_yield()
        if locks.try_mutex(fd):
            return
    deadline = time.monotonic() + LOCK_GIVE_UP
    pause = 20e-6
    while not locks.try_mutex(fd):
        if time.monotonic() > deadline:
            holder = f" by pid {h.lock_pid}" if h is not None and h.lock_pid else ""
            raise PipeError(
                f"pipe {name!r}: header lock held for {LOCK_GIVE_UP:.0f} s{holder}, a process "
                "that is alive (stopped or stuck?)"
            )
        time.sleep(pause)
        pause = min(2 * pause, 5e-3)


def _open_lock_file(name: str, mode: int, create: bool) -> tuple[int, bool] | None:
    """(a descriptor of the pipe's lock file, whether we created it), or None if it does not
    exist and ``create`` is False. The file is the header semaphore's."""
    made = False
    if create:
        try:
            posix_ipc.Semaphore(names.lock_name(name), posix_ipc.O_CREX, mode, 1).close()
            made = True
        except posix_ipc.ExistentialError:
            pass
        except posix_ipc.PermissionsError as e:
            raise PipeError(f"pipe {name!r}: cannot create its semaphore: {e}") from None
    try:
        fd = os.open(names.lock_path(name), os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except PermissionError:
        st = os.stat(names.lock_path(name))
        raise PipeError(
            f"pipe {name!r} belongs to {_user(st.st_uid)} with mode "
            f"{stat.S_IMODE(st.st_mode):04o}: permission denied"
        ) from None
    if made:
        os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
    return fd, made


def _segment_exists(name: str) -> bool:
    return os.path.exists(os.path.join(names.SHM_DIR, names.PREFIX + name))


def open_segment(
    name: str, layout: str | None, capacity: object, mode: int = DEFAULT_MODE,
    owner: int | str | None = None, wait: float = 0.0,
) -> tuple[Segment, bool]:
    """Create or attach pipe ``name``; return (segment, created) with the header mutex HELD.

    Creating needs ``layout``; ``capacity`` is in rows (default: DEFAULT_RING_BYTES worth).
    Without ``layout``, waits up to ``wait`` seconds for another end to create the pipe
    (blocking the thread). Raises PipeError if the pipe does not exist (after ``wait``) and
    ``layout`` is None, if the existing segment's layout differs (naming both), if it is
    corrupted, not ours, or owned by an untrusted user, or if /dev/shm cannot hold the ring
    (naming the bytes asked and free). A failed open leaves nothing behind.
    """
    names.validate(name)
    trusted = trusted_uids(owner)
    ring_bytes = row_size = 0
    if layout is not None:
        row_size = compute_dtype(layout).itemsize
        ring_bytes = ring_bytes_for(name, capacity, row_size)
    give_up = time.monotonic() + wait
    for _ in range(1000):  # retries when the pipe is removed under our feet
        while layout is None and not _segment_exists(name):
            if time.monotonic() >= give_up:
                raise PipeError(f"no pipe named {name!r}: open its output first or pass a layout"
                                + (f" (waited {wait:g} s)" if wait else ""))
            time.sleep(OPEN_POLL)
        opened = _open_lock_file(name, mode, create=True)
        if opened is None:
            continue  # unlinked between our looks: start again
        fd, made_lock = opened
        sem = None
        created = creating = False
        try:
            check_owner(os.fstat(fd), f"the semaphore of pipe {name!r}", trusted)
            take_mutex(fd, name, None)
            if os.fstat(fd).st_nlink == 0:  # unlinked while we waited: start again
                locks.drop_mutex(fd)
                os.close(fd)
                continue
            sem = posix_ipc.Semaphore(names.lock_name(name))  # the file we hold: linked, ours
            try:
                shm = posix_ipc.SharedMemory(names.shm_name(name))
            except posix_ipc.ExistentialError:
                if layout is None:  # removed since we looked: nothing of ours to clean
                    raise _Retry() from None
                creating = True  # from here, a failure removes the pipe: it had no segment
                shm = _create(name, layout, capacity, ring_bytes, row_size, mode)
                created = True
            try:
                check_owner(os.fstat(shm.fd), f"the segment of pipe {name!r}", trusted)
                seg = Segment(name, fd, sem, shm.fd)
            finally:
                shm.close_fd()
            seg._enter()
            seg.header.lock_pid = _pid
            if seg.recovered:
                seg.recovered = False
                seg.header.lock_recoveries += 1
        except _Retry:
            _abandon(fd, sem, name, False, made_lock)
            continue
        except BaseException:
            _abandon(fd, sem, name, creating, made_lock)
            raise
        if layout is not None and seg.layout != layout:
            seg.release()
            seg.close()
            raise PipeError(f"pipe {name!r} carries layout {seg.layout}, this end asked for "
                            f"{layout}")
        return seg, created
    raise PipeError(f"pipe {name!r} kept disappearing while being opened")


def open_continued(name: str, layout: str, mode: int, owner: int | str | None) -> Segment:
    """Attach pipe ``name`` to continue an end handed over by another process (the mutex
    HELD on return). Never creates it: PipeError if it is gone or carries another layout."""
    try:
        seg, _ = open_segment(name, None, None, mode, owner, 0.0)
    except PipeError as e:
        if "no pipe named" not in str(e):
            raise
        raise PipeError(f"pipe {name!r} is gone: it was removed before the handed-over end "
                        "could be taken over") from None
    if seg.layout != layout:
        seg.release()
        seg.close()
        raise PipeError(f"pipe {name!r} carries layout {seg.layout}, the handed-over end "
                        f"had {layout}: it was removed and created again meanwhile")
    return seg


class _Retry(Exception):
    pass


def _abandon(fd: int, sem: posix_ipc.Semaphore | None, name: str, creating: bool,
             made_lock: bool) -> None:
    """Undo a failed open: remove the pipe if this open was creating it, else the semaphore
    if this open made it; then unlock and close."""
    try:
        if creating:
            remove_objects(name)
        elif made_lock:
            with contextlib.suppress(posix_ipc.Error):
                posix_ipc.unlink_semaphore(names.lock_name(name))
    finally:
        if sem is not None:
            with contextlib.suppress(posix_ipc.Error):
                sem.close()
        os.close(fd)  # drops the mutex with the description


def _create(name: str, layout: str, capacity: object, ring_bytes: int, row_size: int,
            mode: int) -> posix_ipc.SharedMemory:
    """Create the segment with its whole size reserved in /dev/shm and its header written.
    Raises PipeError if /dev/shm cannot hold it; then nothing of it remains."""
    total = HEADER_BYTES + ring_bytes
    free = shm_free_bytes()
    if total > free:
        raise _no_room(name, total, free)
    shm = posix_ipc.SharedMemory(names.shm_name(name), posix_ipc.O_CREX, mode)
    try:
        os.fchmod(shm.fd, mode)  # exactly ``mode``, whatever the umask
        try:
            os.posix_fallocate(shm.fd, 0, total)  # every page now, never SIGBUS later
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EFBIG, errno.ENOMEM):
                raise _no_room(name, total, shm_free_bytes()) from None
            raise
        buf = bytearray(HEADER_BYTES)
        hdr = Header.from_buffer(buf)
        initialize(hdr, layout, ring_bytes // row_size)
        del hdr
        os.pwrite(shm.fd, bytes(buf), 0)
    except BaseException:
        with contextlib.suppress(posix_ipc.Error):
            shm.unlink()
        shm.close_fd()
        raise
    return shm


def _no_room(name: str, total: int, free: int) -> PipeError:
    return PipeError(
        f"pipe {name!r}: /dev/shm cannot hold its ring: it needs {total} bytes "
        f"({total / 2**20:.1f} MiB) and {free} bytes ({free / 2**20:.1f} MiB) are free; "
        "pass a smaller capacity or make /dev/shm larger"
    )


def remove_objects(name: str) -> None:
    """Unlink every /dev/shm object of pipe ``name`` (missing ones, and ones another user
    owns that we may not remove, are skipped)."""
    with contextlib.suppress(posix_ipc.ExistentialError, posix_ipc.PermissionsError):
        posix_ipc.unlink_shared_memory(names.shm_name(name))
    for path in names.entries_of(name):
        if "/sem." not in path:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except PermissionError:
                log.debug("cannot remove %s: it belongs to another user", path)
    with contextlib.suppress(posix_ipc.ExistentialError, posix_ipc.PermissionsError):
        posix_ipc.unlink_semaphore(names.lock_name(name))


def unlink(name: str) -> None:
    """Remove every /dev/shm object of pipe ``name`` (missing ones are fine), under its
    header mutex so that no end is opening it meanwhile. Ends still attached keep working on
    their mappings until they close."""
    names.validate(name)
    opened = _open_lock_file(name, DEFAULT_MODE, create=False)
    if opened is None:
        remove_objects(name)
        return
    fd, _ = opened
    try:
        take_mutex(fd, name, None)
        remove_objects(name)
    finally:
        os.close(fd)
