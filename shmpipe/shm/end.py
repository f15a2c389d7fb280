"""What both ends of a shared-memory pipe share: the role an end holds and its lifecycle.

A :class:`Role` owns every OS resource of one end: the segment (mapping, semaphore, the
end's own lock-file descriptor), the owner id it is registered under (and that id's kernel
liveness lock), its doorbell FIFO and the descriptors it rings others with. It is freed
exactly once, by whichever comes first:

* the end's ``close()``;
* a finalizer when the end is dropped without ``close()`` (garbage collection, or
  interpreter exit): the registration is given back as by ``close()``;
* the death of the process: the kernel drops the liveness lock, and the next end that looks
  releases the registration (``ring.reap``).

After ``fork`` (:func:`_after_fork`, run in the child) every inherited role closes its copies
of the descriptors without touching the parent's event loop or locks, and becomes
*inherited*: the child's first use takes the role over under a new owner id (or fails with
PipeError if the parent gave it up or handed it elsewhere meanwhile); a child that never uses
it changes nothing. Pickling an end *hands it over*: the role is marked in transit for
HANDOVER_GRACE seconds, the local end is retired (using it raises PipeError, closing it only
drops its handles) and the process that unpickles it takes it over under a new id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from typing import Any

from ..errors import PipeError
from . import names, ring
from .doorbell import Doorbell, Ringer
from .header import Header
from .segment import Segment

log = logging.getLogger("shmpipe")

LIVENESS_PERIOD = 0.5  # a sleeping end checks its peer's liveness this often (seconds)
HANDOVER_GRACE = 30.0  # seconds a handed-over end stays registered before it is taken over

_roles: weakref.WeakSet[Role] = weakref.WeakSet()


class Role:
    """The OS resources of one end and its registration (see the module docstring)."""

    def __init__(self, seg: Segment, trusted: frozenset[int], reader: bool) -> None:
        self.seg = seg
        self.trusted = trusted
        self.reader = reader
        self.slot = -1  # a reader's slot, once attached
        self.owner = 0
        self.bell: Doorbell | None = None
        self.ringer = Ringer()
        self.pid = os.getpid()
        self.inherited = False  # a fork child's copy, not taken over yet
        self.handed = False  # pickled for another process: retired here
        self.cursor: Any = None  # a reader's ReadCursor (what it consumed), not the end itself
        self.bseq = 0  # the boundaries a reader passed
        self.done = False
        _roles.add(self)

    @property
    def name(self) -> str:
        return self.seg.name

    def alive(self, owner: int) -> bool:
        """Liveness of a registration, as ring.* functions take it."""
        return owner == self.owner or self.seg.alive(owner)

    def register(self, h: Header) -> int:
        """With the mutex held: take a new owner id, its liveness lock and its doorbell.
        Returns the id (the caller records it in the header); on failure nothing is held."""
        owner = ring.new_id(h)
        self.seg.hold(owner)
        try:
            bell = Doorbell(names.bell(self.name, owner), self.seg.mode, self.trusted)
        except BaseException:
            self.seg.drop(owner)
            raise
        old, self.owner, self.bell = self.bell, owner, bell
        if old is not None:
            old.close()
        return owner

    def unregister(self, owner: int) -> None:
        """Give back a registration taken by :meth:`register` (the header update failed)."""
        if self.bell is not None and self.owner == owner:
            self.bell.close()
            self.bell = None
        self.seg.drop(owner)
        if self.owner == owner:
            self.owner = 0

    def reap(self, h: Header) -> None:
        """With the mutex held: release the roles found dead and remove their doorbells."""
        for owner in ring.reap(h, self.alive, time.monotonic_ns()):
            path = names.bell(self.name, owner)
            self.ringer.forget(path)
            with contextlib.suppress(OSError):  # gone, or another user's to remove
                os.unlink(path)

    def remove_if_unused(self, h: Header) -> None:
        """With the mutex held: unlink the pipe if no end is registered and no row waits,
        and if the name is still this pipe's (not a new pipe made after an unlink)."""
        if ring.unused(h) and self.seg.linked():
            self.seg.remove()

    def ring_owner(self, owner: int) -> None:
        if owner:
            self.ringer.ring(names.bell(self.name, owner))

    def check_usable(self) -> None:
        """Raise PipeError if the end was handed to another process."""
        if self.handed:
            raise PipeError(f"this end of pipe {self.name!r} was handed over to another "
                            "process: use it there")

    def after_fork(self) -> None:
        """In a forked child: close the copies of our descriptors, keep the parent's state."""
        self.inherited = True
        self.seg.after_fork()
        if self.bell is not None:
            self.bell.after_fork()
        self.ringer.after_fork()

    def adopt(self, h: Header) -> int:
        """With the mutex held (on a lock descriptor of this process): take a new owner id
        and doorbell for an inherited role. Returns the old id."""
        old = self.owner
        self.bell = None  # the parent's FIFO stays the parent's
        self.register(h)
        self.pid = os.getpid()
        self.inherited = False
        return old

    def finish(self) -> None:
        """Give the registration back (unless handed over or inherited and unused) and free
        every handle; unlink the pipe if it is now unused. Idempotent; never raises for a
        lock held by a stuck process (logged instead)."""
        if self.done:
            return
        self.done = True
        _roles.discard(self)
        seg = self.seg
        woken: list[int] = []
        woken_ids: list[int] = []
        wake_writer = 0
        try:
            if self.owner and not self.handed and not self.inherited and seg.lock_fd >= 0:
                try:
                    seg.acquire()
                    h = seg.header
                    self.reap(h)
                    if not self.reader:
                        woken = ring.close_writer(h, self.owner, time.monotonic_ns()) or []
                    elif ring.owns(h, self.slot, self.owner):
                        s = h.readers[self.slot]
                        consumed, bseq = int(s.cursor), int(s.bseq)
                        if self.cursor is not None:  # what the end consumed, even if dropped
                            consumed, bseq = self.cursor.consumed, self.bseq
                        if ring.close_reader(h, self.slot, self.owner, consumed, bseq):
                            wake_writer = int(h.writer_id)
                    woken_ids = [int(h.readers[i].owner) for i in woken]
                    self.remove_if_unused(h)
                finally:
                    seg.release()
                for owner in woken_ids:
                    self.ring_owner(owner)
                self.ring_owner(wake_writer)
        except PipeError as e:
            log.warning("closing an end of pipe %r: %s", self.name, e)
        finally:
            if self.bell is not None:
                self.bell.close(unlink=not self.inherited)
            self.ringer.close()
            seg.close()


def _after_fork() -> None:
    for role in list(_roles):
        role.after_fork()


os.register_at_fork(after_in_child=_after_fork)


class ShmEnd:
    """What both shm ends share (mixed into ShmOutputPipe and ShmInputPipe)."""

    _role: Role
    _finalizer: weakref.finalize
    closed: bool
    name: str | None

    def _own(self, role: Role) -> None:
        self._role = role
        self._finalizer = weakref.finalize(self, role.finish)

    @property
    def capacity(self) -> int:
        """Rows the ring holds."""
        return self._role.seg.capacity

    @property
    def segment(self) -> Segment:
        return self._role.seg

    def stats(self) -> dict[str, int]:
        """A snapshot of the pipe's counters and cursors (read without the lock)."""
        h = self._role.seg.header
        keys = ["write", "capacity", "boundary_count", "retained", "rows_written",
                "blocks_written", "wakeups", "writer_waits", "takeovers", "readers_reaped",
                "lock_recoveries", "writer_state", "writer_pid"]
        out = {k: int(getattr(h, k)) for k in keys}
        out["readers"] = len(ring.active_slots(h))
        return out

    def _hand_over(self, mark: Any) -> None:
        """Mark our registration in transit (``mark(h, owner, deadline)``) and retire."""
        if self.closed:
            raise PipeError(f"cannot hand over closed pipe {self.name!r}")
        role = self._role
        role.check_usable()
        if role.inherited:
            raise PipeError("an end inherited through fork must be used (or handed over) by "
                            "the process that forked it")
        seg = role.seg
        try:
            seg.acquire()
            mark(seg.header, role.owner,
                 time.monotonic_ns() + int(HANDOVER_GRACE * 1e9))
            role.handed = True
            seg.drop(role.owner)  # from now only the transit deadline keeps the role alive
        finally:
            seg.release()

    def _finish(self) -> None:
        self._finalizer()

    def _continue(self, h: Header, inherited: int) -> None:
        """With the mutex held: record this end (under its new owner id) in the header in
        place of ``inherited``; PipeError if that is not allowed (ring.py decides)."""
        raise NotImplementedError

    def _adopt(self) -> None:
        """Take over an end inherited through fork, or raise if this end is not usable.
        A refused takeover changes nothing and may be tried again."""
        if self.closed:
            raise PipeError(f"pipe {self.name!r} is closed")
        role = self._role
        role.check_usable()
        seg = role.seg
        seg.reopen_lock()
        try:
            seg.acquire()
            h = seg.header
            inherited = role.owner
            role.adopt(h)
            try:
                self._continue(h, inherited)
            except BaseException:
                role.unregister(role.owner)
                role.owner, role.inherited = inherited, True
                raise
        finally:
            seg.release()
