"""Open OS-pipe file descriptors as asyncio streams (Joule's ``reader_factory`` and
``writer_factory``: the same call shapes, so Joule's pipes and ours accept either)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


def reader_factory(fd: int) -> Callable[[], Awaitable[tuple[asyncio.StreamReader,
                                                            Callable[[], None]]]]:
    """A coroutine function that opens ``fd`` (the read end of an OS pipe, or any readable
    file descriptor the event loop can watch) as a StreamReader. It returns
    ``(reader, close)``; ``close()`` closes the transport and the descriptor. The descriptor
    is owned by the stream from then on."""

    async def open_reader() -> tuple[asyncio.StreamReader, Callable[[], None]]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**17)  # pauses the fd beyond 256 KiB
        src = open(fd, "rb", 0, closefd=True)  # noqa: SIM115 (the transport owns it)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), src)
        return reader, transport.close

    return open_reader


def writer_factory(fd: int) -> Callable[[], Awaitable[asyncio.StreamWriter]]:
    """A coroutine function that opens ``fd`` (the write end of an OS pipe, or any writable
    file descriptor the event loop can watch) as a StreamWriter. Closing the writer closes
    the descriptor."""

    async def open_writer() -> asyncio.StreamWriter:
        loop = asyncio.get_running_loop()
        dest = open(fd, "wb", 0, closefd=True)  # noqa: SIM115 (the transport owns it)
        protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader())
        transport, _ = await loop.connect_write_pipe(lambda: protocol, dest)
        return asyncio.StreamWriter(transport, protocol, None, loop)

    return open_writer
