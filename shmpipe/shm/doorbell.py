"""Doorbells: FIFOs in /dev/shm that wake a sleeping end.

The sleeper opens its FIFO read-write and non-blocking (so the FIFO never reports end of file
and opening never blocks) and waits for it to become readable, in the event loop with
``loop.add_reader`` or in a thread with ``poll``. The other side writes one byte. A full FIFO
already means "wake up", so a failed write is ignored. Spurious wake-ups are harmless: the
sleeper re-checks the header before sleeping again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import stat

from ..errors import PipeError


class Doorbell:
    """The sleeping side of a doorbell FIFO at ``path`` (created if missing)."""

    def __init__(self, path: str, mode: int) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, mode)
            os.chmod(path, mode)  # exactly ``mode``, whatever the umask
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        if not stat.S_ISFIFO(os.fstat(self.fd).st_mode):
            os.close(self.fd)
            self.fd = -1
            raise PipeError(f"{path} exists and is not a FIFO: remove it")
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

    def close(self) -> None:
        if self.fd >= 0:
            self._unregister()
            os.close(self.fd)
            self.fd = -1


def _settle(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class Ringer:
    """Rings other ends' doorbells, keeping their FIFOs open between rings."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def ring(self, path: str) -> None:
        fd = self._fds.get(path)
        if fd is None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:  # no FIFO, or nobody listens: nobody to wake
                return
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):  # never write into anything else
                os.close(fd)
                return
            self._fds[path] = fd
        try:
            os.write(fd, b"\x01")
        except BlockingIOError:
            pass  # already full of rings
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.EBADF):
                self.forget(path)

    def forget(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for path in list(self._fds):
            self.forget(path)
