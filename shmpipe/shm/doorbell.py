"""Doorbells: FIFOs in /dev/shm that wake a sleeping end.

The sleeper opens its FIFO read-write and non-blocking (so the FIFO never reports end of file
and opening never blocks) and waits for it to become readable, in the event loop with
``loop.add_reader`` or in a thread with ``poll``. The other side writes one byte. A full FIFO
already means "wake up", so a failed write is ignored. Spurious wake-ups are harmless: the
sleeper re-checks the header before sleeping again.

Each registration of an end (an owner id, see header.py) has a FIFO of its own, created with
the segment's mode so that every user who may use the pipe may ring it. The ringing side
opens the FIFO read-write: a FIFO with a reader never raises EPIPE, so ringing the doorbell of
a reader that died can never raise SIGPIPE, whatever that signal's disposition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import stat

from ..errors import PipeError

log = logging.getLogger("shmpipe")


class Doorbell:
    """The sleeping side of a doorbell FIFO at ``path`` (created with ``mode`` if missing;
    an existing one must be a FIFO owned by a user in ``trusted``, else PipeError)."""

    def __init__(self, path: str, mode: int, trusted: frozenset[int] = frozenset()) -> None:
        made = False
        try:
            os.mkfifo(path, mode)
            made = True
        except FileExistsError:
            pass
        except OSError as e:
            raise PipeError(f"cannot create the doorbell {path}: {e.strerror}") from None
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as e:
            raise PipeError(f"cannot open the doorbell {path}: {e.strerror}") from None
        try:
            st = os.fstat(self.fd)
            if not stat.S_ISFIFO(st.st_mode):
                raise PipeError(f"{path} exists and is not a FIFO: remove it")
            if not made and trusted and st.st_uid not in trusted:
                raise PipeError(f"doorbell {path} belongs to uid {st.st_uid}: refusing it")
            if made:
                os.fchmod(self.fd, mode)  # exactly ``mode``, whatever the umask
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            if made:
                os.unlink(path)
            raise
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[bool] | None = None

    def drain(self) -> None:
        """Swallow pending rings."""
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def wait_sync(self, timeout: float | None) -> bool:
        """Block the thread until rung or ``timeout`` seconds; False on timeout."""
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        events = p.poll(None if timeout is None else max(0, int(timeout * 1000)))
        self.drain()
        return bool(events)

    async def wait(self, timeout: float) -> bool:
        """Wait in the event loop until rung or ``timeout`` seconds; False on timeout.

        The FIFO stays registered with the loop between waits (one ``epoll_ctl`` per loop,
        not per wait); rings that come while nobody waits are swallowed. Cancellation leaves
        nothing behind.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._unregister()
            loop.add_reader(self.fd, self._on_ring)
            self._loop = loop
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiter = fut
        timer = loop.call_later(timeout, _settle, fut, False)
        try:
            return await fut
        finally:
            timer.cancel()
            self._waiter = None

    def _on_ring(self) -> None:
        self.drain()
        if self._waiter is not None:
            _settle(self._waiter, True)

    def _unregister(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.fd)

    def close(self, unlink: bool = True) -> None:
        """Stop watching and close the FIFO; with ``unlink``, remove it too."""
        if self.fd >= 0:
            self._unregister()
            os.close(self.fd)
            self.fd = -1
        if unlink:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def after_fork(self) -> None:
        """In a forked child: close the inherited descriptor without touching the event loop
        (its epoll set is shared with the parent's loop: removing our fd there would remove
        the parent's registration)."""
        self._loop = None
        self._waiter = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _settle(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class Ringer:
    """Rings other ends' doorbells, keeping their FIFOs open between rings."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._refused: set[str] = set()

    def ring(self, path: str) -> None:
        fd = self._fds.get(path)
        if fd is None:
            if path in self._refused:
                return
            try:
                # read-write: the FIFO always has a reader, so a write never raises EPIPE
                # (nor SIGPIPE) even when its owner died
                fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:
                return  # its end is gone: nobody to wake
            except OSError as e:
                self._refused.add(path)
                log.warning("cannot ring doorbell %s (%s): that end will notice new data only "
                            "every 0.5 s", path, e.strerror)
                return
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):  # never write into anything else
                os.close(fd)
                self._refused.add(path)
                return
            if len(self._fds) >= 256:
                self.close()
            self._fds[path] = fd
        with contextlib.suppress(BlockingIOError):  # full of rings already: awake anyway
            os.write(fd, b"\x01")

    def forget(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)

    def after_fork(self) -> None:
        """In a forked child: close the inherited descriptors."""
        self.close()

    def close(self) -> None:
        for path in list(self._fds):
            self.forget(path)
