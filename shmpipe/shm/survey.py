"""What the pipes of this host are doing, read from outside: :func:`survey`, :func:`clean`.

A survey reads a pipe's header (a copy, taken with ``pread``) without joining the pipe and
without taking its mutex, so watching a pipe never slows it down; liveness is asked of the
kernel (the ends' locks, see ``locks.py``). A copy taken while an end updates the header may be
torn; it is taken again (a few times) until it passes the header checks. A pipe that cannot be
read (corrupted, another format version, no permission, half removed) is reported with why.

:func:`clean` removes the pipes whose every end is gone, under each pipe's header mutex so
that no end can be opening it meanwhile, and never touches a pipe with a live end or a
/dev/shm object that is not a shmpipe pipe's.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import PipeError
from . import locks, names, ring
from .header import (
    HEADER_BYTES,
    MAGIC,
    NO_WRITER,
    VERSION,
    WRITER_CLOSED,
    WRITER_DEAD,
    WRITER_LOST,
    WRITER_OPEN,
    Header,
    read_snapshot,
    validate,
)
from .segment import remove_objects

# never follow a link, never block on a FIFO planted under a pipe's name
_RO = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
_RW = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
SNAPSHOT_TRIES = 5
CLEAN_LOCK_WAIT = 0.5  # seconds clean waits for a pipe's header mutex before leaving it be
_WRITER_STATES = {NO_WRITER: "none", WRITER_OPEN: "open", WRITER_CLOSED: "closed",
                  WRITER_DEAD: "dead", WRITER_LOST: "lost"}


@dataclass(frozen=True)
class ReaderInfo:
    """One attached reader: ``lag`` is rows written that it has not consumed."""

    slot: int
    pid: int
    alive: bool
    lag: int
    rows_read: int
    waited_s: float  # time spent waiting for rows (counted at its reads)
    asleep: bool  # waiting on its doorbell now


@dataclass(frozen=True)
class PipeInfo:
    """A pipe as a survey saw it. When ``problem`` is set the pipe could not be read and only
    ``name`` and ``bytes`` are meaningful."""

    name: str
    bytes: int  # space its /dev/shm objects take
    problem: str | None = None
    layout: str = ""
    capacity: int = 0  # rows
    unconsumed: int = 0  # rows the slowest reader (or the next to attach) has not consumed
    writer_pid: int = 0
    writer_state: str = "none"  # none | open | closed | dead
    writer_alive: bool = False
    writer_blocked_s: float = 0.0  # time the writer spent blocked on a full ring
    writer_blocked_now: bool = False
    rows_written: int = 0
    blocks_written: int = 0
    intervals: int = 0  # interval breaks recorded
    age_s: float = 0.0
    last_write_s: float | None = None  # seconds since the last write, None: never written
    readers: tuple[ReaderInfo, ...] = ()
    taken_ns: int = field(default=0, compare=False)  # CLOCK_MONOTONIC when it was taken

    @property
    def fill(self) -> float:
        """Fraction of the ring holding rows some reader still needs (0..1)."""
        return self.unconsumed / self.capacity if self.capacity else 0.0

    @property
    def alive(self) -> bool:
        """Whether any end of the pipe is alive."""
        return self.writer_alive or any(r.alive for r in self.readers)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the schema ``shmpipe ls --json`` prints)."""
        d = asdict(self)
        d.pop("taken_ns")
        d["fill"] = round(self.fill, 4)
        d["readers"] = [asdict(r) for r in self.readers]
        d["alive"] = self.alive
        return d


def _allocated(paths: list[str]) -> int:
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):
            total += os.lstat(p).st_blocks * 512
    return total


def _segment_path(name: str) -> str:
    return os.path.join(names.SHM_DIR, names.PREFIX + name)


def _snapshot(name: str) -> tuple[Header, int]:
    """A checked copy of pipe ``name``'s header and the segment's size; PipeError saying why
    it cannot be had."""
    try:
        fd = os.open(_segment_path(name), _RO)
    except FileNotFoundError:
        raise PipeError("no segment (only its semaphore or doorbells are left)") from None
    except PermissionError:
        raise PipeError("permission denied (it belongs to another user)") from None
    except OSError as e:
        raise PipeError(f"cannot open its segment: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PipeError("its segment is not a regular file")
        size = os.fstat(fd).st_size
        if size < 8 or os.pread(fd, 8, 0) != MAGIC:
            raise PipeError("not a shmpipe segment (wrong magic)")
        if size < HEADER_BYTES:
            raise PipeError(f"corrupted: {size} bytes, smaller than a header")
        error: PipeError | None = None
        for _ in range(SNAPSHOT_TRIES):
            h, write_now = read_snapshot(fd)
            if h.version != VERSION:
                raise PipeError(f"format version {h.version}, this shmpipe reads version "
                                f"{VERSION}")
            try:
                validate(h, size, name, write_now)
                h.write = max(int(h.write), write_now)  # no cursor ahead of it in the copy
                return h, size
            except PipeError as e:  # torn by a concurrent update, or really corrupted
                error = e
                time.sleep(0.001)
        assert error is not None
        raise PipeError(str(error).replace(f"segment of pipe {name!r} is ", ""))
    finally:
        os.close(fd)


def _liveness(name: str) -> tuple[int, Any]:
    """(descriptor of the pipe's lock file or -1, alive(owner) callable)."""
    try:
        fd = os.open(names.lock_path(name), _RO)
    except OSError:
        return -1, lambda owner: False
    return fd, lambda owner: locks.alive(fd, owner)


def survey(name: str) -> PipeInfo:
    """What pipe ``name`` is doing now. Never raises for a pipe that cannot be read: the
    returned info says why in ``problem``. Raises PipeError only for an invalid name."""
    names.validate(name)
    size = _allocated(names.entries_of(name))
    now = time.monotonic_ns()
    try:
        h, _ = _snapshot(name)
    except PipeError as e:
        return PipeInfo(name=name, bytes=size, problem=str(e), taken_ns=now)
    fd, alive = _liveness(name)
    try:
        def live(owner: int, transit: int) -> bool:
            return ring.role_alive(owner, transit, alive, now)

        writer_open = h.writer_state == WRITER_OPEN
        readers = []
        for i in ring.active_slots(h):
            s = h.readers[i]
            readers.append(ReaderInfo(
                slot=i, pid=int(s.pid), alive=bool(s.owner) and live(int(s.owner), int(s.transit)),
                lag=max(0, int(h.write - s.cursor)), rows_read=int(s.rows_read),
                waited_s=int(s.wait_ns) / 1e9, asleep=bool(s.sleeping)))
        return PipeInfo(
            name=name, bytes=size, layout=bytes(h.layout).decode(), capacity=int(h.capacity),
            unconsumed=max(0, min(ring.unconsumed(h), int(h.capacity))),
            writer_pid=int(h.writer_pid), writer_state=_WRITER_STATES[int(h.writer_state)],
            writer_alive=writer_open and live(int(h.writer_id), int(h.writer_transit)),
            writer_blocked_s=ring.blocked_ns(h, now) / 1e9,
            writer_blocked_now=bool(h.writer_blocked_since) and writer_open,
            rows_written=int(h.rows_written), blocks_written=int(h.blocks_written),
            intervals=int(h.boundary_count), age_s=max(0, now - int(h.created_ns)) / 1e9,
            last_write_s=(max(0, now - int(h.last_write_ns)) / 1e9 if h.last_write_ns
                          else None),
            readers=tuple(readers), taken_ns=now)
    finally:
        if fd >= 0:
            os.close(fd)


def survey_all() -> list[PipeInfo]:
    """:func:`survey` of every pipe with anything in /dev/shm, by name."""
    return [survey(name) for name in names.list_pipes()]


@dataclass(frozen=True)
class Cleaned:
    """What :func:`clean` did with one pipe: ``removed`` (or, in a dry run, would remove)
    ``bytes``; otherwise ``reason`` says why it was left."""

    name: str
    removed: bool
    bytes: int
    reason: str


def clean(dry_run: bool = False, only: Iterable[str] | None = None) -> list[Cleaned]:
    """Remove every pipe whose ends are all gone (dead, closed or never there), including one
    whose rows nobody consumed; return what was done with each pipe in /dev/shm.

    A pipe is left alone when an end of it is alive (its kernel lock is held, or it is being
    handed over), when its header mutex is held by a live process (it is being opened or
    used), when its segment is not a shmpipe segment of this format version, or when its
    objects belong to another user that this process may not remove. With ``dry_run``,
    nothing is removed and the result says what would be. ``only``: look at these pipe names
    only (PipeError for an invalid name; a name with nothing in /dev/shm is skipped).
    """
    pipes = names.list_pipes()
    if only is not None:
        wanted = {names.validate(n) for n in only}
        pipes = [p for p in pipes if p in wanted]
    return [_clean_one(name, dry_run) for name in pipes]


def _clean_one(name: str, dry_run: bool) -> Cleaned:
    paths = names.entries_of(name)
    size = _allocated(paths)

    def leave(reason: str) -> Cleaned:
        return Cleaned(name, False, size, reason)

    seg_exists = os.path.lexists(_segment_path(name))
    if seg_exists and not _has_magic(name):
        return leave("not a shmpipe segment (wrong magic, or unreadable)")
    try:
        fd = os.open(names.lock_path(name), _RW)
    except FileNotFoundError:
        if seg_exists:
            return leave("its semaphore is missing (removed by hand?): use shmpipe.unlink")
        fd = -1  # doorbells alone: nothing can use them
    except PermissionError:
        return leave("permission denied (it belongs to another user)")
    except OSError as e:
        return leave(f"cannot open its semaphore: {e.strerror}")
    try:
        if fd >= 0 and not stat.S_ISREG(os.fstat(fd).st_mode):
            return leave("its semaphore is not a regular file: not a shmpipe pipe")
        if fd >= 0:
            deadline = time.monotonic() + CLEAN_LOCK_WAIT
            while not locks.try_mutex(fd):
                if time.monotonic() > deadline:
                    return leave("in use: its header lock is held")
                time.sleep(0.01)
            if os.fstat(fd).st_nlink == 0:
                return leave("removed meanwhile")
            if locks.any_alive(fd):
                return leave(_who_lives(name))
        if seg_exists:
            try:
                h, _ = _snapshot(name)
            except PipeError as e:
                if "no segment" not in str(e):
                    return leave(f"cannot read it: {e}")
            else:
                pids = ring.live_pids(h, lambda owner: False, time.monotonic_ns())
                if pids:
                    return leave(f"being handed over to another process (pid {pids[0]})")
        if not dry_run:
            remove_objects(name)
            left = names.entries_of(name)
            if left:
                return Cleaned(name, False, size - _allocated(left),
                               f"{len(left)} objects belong to another user")
        return Cleaned(name, True, size, "every end is gone")
    finally:
        if fd >= 0:
            os.close(fd)  # drops the mutex with the description


def _has_magic(name: str) -> bool:
    try:
        fd = os.open(_segment_path(name), _RO)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.pread(fd, 8, 0) == MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def _who_lives(name: str) -> str:
    info = survey(name)
    pids = ([info.writer_pid] if info.writer_alive else []) + [
        r.pid for r in info.readers if r.alive]
    if not pids:
        return "an end is alive" + (f" ({info.problem})" if info.problem else "")
    return "alive: pid " + ", ".join(str(p) for p in pids)


def check_name(name: str) -> str:
    """``name`` if it is a valid pipe name with a segment in /dev/shm, else PipeError."""
    names.validate(name)
    if not os.path.lexists(_segment_path(name)):
        raise PipeError(f"no pipe named {name!r} in {names.SHM_DIR}")
    return name

