"""Open OS-pipe file descriptors as streams (Joule's ``reader_factory`` and
``writer_factory``: the same call shapes, so Joule's pipes and ours accept either)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Awaitable, Callable

PIPE_BYTES = 1 << 20  # ask the kernel for 1 MiB OS-pipe buffers (the unprivileged maximum)


def _grow(fd: int) -> None:
    """Enlarge the OS pipe behind ``fd`` (fewer system calls per block); not a pipe or not
    allowed: nothing happens."""
    with contextlib.suppress(OSError, AttributeError):
        if fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < PIPE_BYTES:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


class FdReader:
    """A non-blocking file descriptor read in the event loop, straight into the caller's
    buffer. Quacks like the part of a StreamReader that pipes use (``read``, ``at_eof``)."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        _grow(fd)
        self.fd = fd
        self._eof = False
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        fd = self.fd

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(fd, ready)
        self._waiter = (loop, fut)
        try:
            await fut
        finally:
            self._waiter = None
            if self.fd == fd:  # else close() unregistered it before closing the descriptor
                loop.remove_reader(fd)

    async def readinto(self, view: memoryview) -> int:
        """Read up to ``len(view)`` bytes into ``view``, waiting (in the event loop) until
        some are there; 0 at the end of the stream. Cancelling the wait reads nothing."""
        while True:
            if self.fd < 0:  # closed (maybe while we waited): the end of the stream
                self._eof = True
                return 0
            try:
                n = os.readv(self.fd, [view])
            except BlockingIOError:
                await self._readable()
                continue
            if n == 0:
                self._eof = True
            return n

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (``b""`` at the end of the stream)."""
        buf = bytearray(max(1, n))
        k = await self.readinto(memoryview(buf))
        return bytes(buf[:k])

    def at_eof(self) -> bool:
        return self._eof

    def close(self) -> None:
        """Close the descriptor; a read waiting on it returns the end of the stream."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            if self._waiter is not None:
                loop, fut = self._waiter
                loop.remove_reader(fd)
                if not fut.done():
                    fut.set_result(None)
            os.close(fd)


def reader_factory(fd: int) -> Callable[[], Awaitable[tuple[FdReader, Callable[[], None]]]]:
    """A coroutine function that opens ``fd`` (the read end of an OS pipe, or any readable
    descriptor the event loop can watch) for reading in the event loop. It returns
    ``(reader, close)`` like Joule's; ``close()`` closes the descriptor, which the reader
    owns from then on."""

    async def open_reader() -> tuple[FdReader, Callable[[], None]]:
        reader = FdReader(fd)
        return reader, reader.close

    return open_reader


def writer_factory(fd: int) -> Callable[[], Awaitable[asyncio.StreamWriter]]:
    """A coroutine function that opens ``fd`` (the write end of an OS pipe, or any writable
    descriptor the event loop can watch) as a StreamWriter. Closing the writer closes
    the descriptor."""

    async def open_writer() -> asyncio.StreamWriter:
        loop = asyncio.get_running_loop()
        _grow(fd)
        dest = open(fd, "wb", 0, closefd=True)  # noqa: SIM115 (the transport owns it)
        protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader())
        transport, _ = await loop.connect_write_pipe(lambda: protocol, dest)
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        writer.copies_unsent = True  # type: ignore[attr-defined]  # a pipe transport copies
        return writer

    return open_writer
