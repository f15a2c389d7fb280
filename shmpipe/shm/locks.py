"""Open-file-description locks: liveness the kernel keeps.

Every end of a pipe opens the pipe's lock file (the header semaphore's file in /dev/shm) once,
which gives it an *open file description* of its own, and takes ``fcntl`` OFD locks on single
bytes of it::

    byte 0                    the header mutex (see segment.py)
    byte ID_BASE + id         "owner ``id`` is alive": held by the end that registered as
                              writer or reader under that id, for as long as it owns the role

The kernel drops an OFD lock when the last descriptor of its open file description is closed,
which happens when the owning process dies, however it dies and whatever its PID namespace.
So "is owner ``id`` alive?" is a question to the kernel (``F_OFD_GETLK``), never a guess from a
pid. An OFD lock belongs to the open file description, not to the process: two ends in one
process exclude each other, and a forked child must not keep its inherited copy of the
descriptor (``ends.py`` closes it in the child right after ``fork``).
"""

from __future__ import annotations

import _thread
import errno
import fcntl
import os
import struct

MUTEX = 0  # the byte that is the header mutex
ID_BASE = 4096  # owner ids are locked at ID_BASE + id (beyond the file's bytes: allowed)

_FLOCK = "hhqqi4x"  # struct flock on Linux (x86-64, arm64): type, whence, start, len, pid
_SETLK = fcntl.F_OFD_SETLK
_GETLK = fcntl.F_OFD_GETLK
_BUSY = (errno.EAGAIN, errno.EACCES)


def _req(kind: int, offset: int) -> bytes:
    return struct.pack(_FLOCK, kind, os.SEEK_SET, offset, 1, 0)


_LOCK_MUTEX = _req(fcntl.F_WRLCK, MUTEX)
_UNLOCK_MUTEX = _req(fcntl.F_UNLCK, MUTEX)


def try_mutex(fd: int) -> bool:
    """Take the header mutex on ``fd``'s open file description without waiting; True if taken
    (also when this description already holds it)."""
    try:
        fcntl.fcntl(fd, _SETLK, _LOCK_MUTEX)
    except OSError as e:
        if e.errno in _BUSY:
            return False
        raise
    return True


def drop_mutex(fd: int) -> None:
    """Release the header mutex on ``fd`` (nothing happens if this description does not
    hold it)."""
    fcntl.fcntl(fd, _SETLK, _UNLOCK_MUTEX)


def hold(fd: int, owner: int) -> bool:
    """Take the liveness lock of ``owner`` on ``fd``; False if another description holds it."""
    try:
        fcntl.fcntl(fd, _SETLK, _req(fcntl.F_WRLCK, ID_BASE + owner))
    except OSError as e:
        if e.errno in _BUSY:
            return False
        raise
    return True


def drop(fd: int, owner: int) -> None:
    """Release the liveness lock of ``owner`` held on ``fd`` (no-op if not held there)."""
    fcntl.fcntl(fd, _SETLK, _req(fcntl.F_UNLCK, ID_BASE + owner))


def held_elsewhere(fd: int, offset: int) -> bool:
    """True if a description other than ``fd``'s holds a lock on byte ``offset``."""
    got = fcntl.fcntl(fd, _GETLK, _req(fcntl.F_WRLCK, offset))
    return struct.unpack(_FLOCK, got)[0] != fcntl.F_UNLCK


def alive(fd: int, owner: int) -> bool:
    """True if some end (other than one using ``fd``'s description) holds ``owner``'s lock."""
    return owner > 0 and held_elsewhere(fd, ID_BASE + owner)


def any_alive(fd: int) -> bool:
    """True if a description other than ``fd``'s holds the liveness lock of any owner id
    (a lock anywhere from ID_BASE to the end of the file)."""
    got = fcntl.fcntl(fd, _GETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, ID_BASE, 0, 0))
    return struct.unpack(_FLOCK, got)[0] != fcntl.F_UNLCK


_barrier = _thread.allocate_lock()


def fence() -> None:
    """A full memory barrier: stores made before it are visible to other CPUs before any load
    made after it.

    The hot paths publish cursors with plain stores into the shared header (no mutex) and
    then look at a flag the other side sets the same way ("the reader sleeps", "the writer
    waits for room"): each side stores, fences, then loads, so at least one of them sees the
    other's store and no wake-up is lost (Dekker's handshake). A process-private lock taken
    and released without contention is a locked read-modify-write in libc (``sem_trywait``,
    ``sem_post`` or an atomic exchange, depending on the Python version), which is a full
    barrier on x86-64; about 0.1 µs.
    """
    _barrier.acquire(False)
    _barrier.release()
