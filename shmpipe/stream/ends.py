"""The async shell of a stream pipe: the bytes of an asyncio stream in and out.

:class:`WireIn` feeds :class:`~shmpipe.buffer.ReadCursor` (the read semantics every pipe
shares) from a StreamReader through the :class:`~shmpipe.stream.codec.Decoder`;
:class:`WireOut` writes encoded rows and break tokens to a StreamWriter. The pipe classes
(:class:`shmpipe.InputPipe`, :class:`shmpipe.OutputPipe`) call them from their transport hooks.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from ..buffer import ReadCursor, Span
from ..errors import PipeError
from . import codec

log = logging.getLogger("shmpipe")

ReaderFactory = Callable[[], Awaitable[Any]]
WriterFactory = Callable[[], Awaitable[Any]]


class WireIn:
    """Rows received from a stream, kept until consumed (at most ``buffer_size`` unconsumed).

    The rows live in one array of ``2 * buffer_size`` rows: consuming moves an offset (O(1)),
    and the unconsumed rows move to the front only when new rows would not fit behind them,
    which happens at most once per ``buffer_size`` rows received (amortised O(1) per row).
    Rows returned by a read stay valid until the next read.
    """

    def __init__(self, dtype: np.dtype, buffer_size: int, reader: Any,
                 factory: ReaderFactory | None, name: str | None) -> None:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)) \
                or buffer_size < 1:
            raise PipeError(f"buffer_size must be at least 1 row, got {buffer_size!r}")
        self.name = name
        self.limit = int(buffer_size)
        self.decoder = codec.Decoder(dtype)
        self.buf = np.empty(2 * self.limit, dtype)
        self.raw = self.buf.view(np.uint8)  # byte copies: numpy copies structured rows slowly
        self.size = self.buf.dtype.itemsize
        self.lo = self.hi = 0  # rows buf[lo:hi] are rows [base, base + hi - lo) of the stream
        self.tail = 0  # bytes of an incomplete row at raw[hi * size:] (direct reads only)
        self.base = 0
        self.boundaries: collections.deque[int] = collections.deque()
        self.eof = False
        self.reader = reader
        self.factory = factory
        self.close_reader: Callable[[], Any] | None = None

    @property
    def written(self) -> int:
        return self.base + self.hi - self.lo

    def source(self, cursor: ReadCursor) -> tuple[int, int | None, bool, bool]:
        boundary = self.boundaries[0] if self.boundaries else None
        full = self.written - cursor.consumed >= self.limit
        return self.written, boundary, self.eof, full

    def drop_consumed(self, consumed: int) -> None:
        self.lo += consumed - self.base
        self.base = consumed

    def rows(self, span: Span) -> np.ndarray:
        return self.buf[self.lo + span.start - self.base : self.lo + span.stop - self.base]

    def _append(self, rows: np.ndarray) -> None:
        n, size = len(rows), self.size
        if self.hi + n > len(self.buf):  # move the unconsumed rows to the front
            kept = self.hi - self.lo
            self.raw[: kept * size] = self.raw[self.lo * size : self.hi * size]
            self.lo, self.hi = 0, kept
        if self.hi + n > len(self.buf):  # pragma: no cover (reads are sized to fit)
            raise PipeError(f"pipe {self.name!r}: {n} rows do not fit the read buffer")
        self.raw[self.hi * size : (self.hi + n) * size] = rows.view(np.uint8)
        self.hi += n

    async def pull(self, cursor: ReadCursor) -> None:
        """Wait for bytes from the stream and decode them (one read of the stream)."""
        if self.reader is None:
            if self.factory is None:
                raise PipeError(f"pipe {self.name!r} has no reader and no reader_factory")
            opened = await self.factory()
            self.reader, self.close_reader = (opened if isinstance(opened, tuple)
                                              else (opened, None))
        room = max(1, self.limit - (self.written - cursor.consumed))
        if hasattr(self.reader, "readinto"):
            await self._pull_into(room)
            return
        data = await self.reader.read(room * self.decoder.size)
        if not data:
            self.eof = True
            if self.decoder.pending:
                log.warning("pipe %r: the stream ended inside a row: %d trailing bytes of a "
                            "%d-byte row dropped", self.name, self.decoder.pending,
                            self.decoder.size)
            return
        for seg in self.decoder.feed(data):
            if len(seg.rows):
                self._append(seg.rows)
            if seg.brk:
                self.boundaries.append(self.written)

    async def _pull_into(self, room: int) -> None:
        """Read straight into the row buffer (one copy, kernel to rows), then take the break
        tokens out of the rows received."""
        size = self.size
        if self.hi + room + 1 > len(self.buf):  # move the unconsumed rows to the front
            kept = self.hi - self.lo
            self.raw[: kept * size + self.tail] = self.raw[self.lo * size :
                                                          self.hi * size + self.tail]
            self.lo, self.hi = 0, kept
        start = self.hi * size + self.tail
        n = await self.reader.readinto(self.raw[start : start + room * size - self.tail
                                                if room * size > self.tail else start + size])
        if n == 0:
            self.eof = True
            if self.tail:
                log.warning("pipe %r: the stream ended inside a row: %d trailing bytes of a "
                            "%d-byte row dropped", self.name, self.tail, size)
            return
        total = self.tail + n
        new, self.tail = divmod(total, size)
        region = self.buf[self.hi : self.hi + new]
        breaks = codec.break_rows(region)
        if len(breaks) == 0:
            self.hi += new
            return
        w = self.hi  # rows are moved down over each token
        prev = 0
        for b in [*breaks.tolist(), new]:
            k = b - prev
            if k and w != self.hi + prev:
                src = (self.hi + prev) * size
                self.raw[w * size : (w + k) * size] = self.raw[src : src + k * size].copy()
            w += k
            if b < new:
                self.boundaries.append(self.base + w - self.lo)
            prev = b + 1
        end = (self.hi + new) * size
        if self.tail:  # the incomplete row follows the last whole one
            self.raw[w * size : w * size + self.tail] = self.raw[end : end + self.tail].copy()
        self.hi = w

    def pass_boundary(self) -> None:
        self.boundaries.popleft()

    def close(self) -> None:
        if self.close_reader is not None:
            close, self.close_reader = self.close_reader, None
            close()


class WireOut:
    """Rows and break tokens out to a StreamWriter (opened by ``factory`` at the first use)."""

    def __init__(self, dtype: np.dtype, writer: Any, factory: WriterFactory | None,
                 name: str | None) -> None:
        self.token = codec.token(np.dtype(dtype))
        self.writer = writer
        self.factory = factory
        self.name = name
        self.sent = False

    async def _open(self) -> Any:
        if self.writer is None:
            if self.factory is None:
                raise PipeError(f"pipe {self.name!r} has no writer and no writer_factory")
            self.writer = await self.factory()
        self.sent = True
        return self.writer

    def ready(self) -> Any:
        if self.writer is None:
            raise PipeError(f"pipe {self.name!r} is not connected yet (its writer_factory "
                            "runs at the first awaited write): use await write()")
        return self.writer

    async def send(self, rows: np.ndarray, then_break: bool = False) -> None:
        """Write ``rows`` (already checked by the pipe: no break-like row), and the break
        token after them in the same write if ``then_break``; wait for the stream to drain
        below its high-water mark (backpressure)."""
        writer = await self._open()
        data = self._bytes(writer, rows)
        if then_break:
            data = bytes(data) + self.token
        writer.write(data)
        await writer.drain()

    def send_nowait(self, rows: np.ndarray) -> None:
        writer = self.ready()
        writer.write(self._bytes(writer, rows))

    @staticmethod
    def _bytes(writer: Any, rows: np.ndarray) -> bytes | memoryview:
        """A byte view of ``rows`` for a writer whose transport copies what it cannot send at
        once (OS pipes from writer_factory); a copy for others (socket transports may keep
        the view, and the caller may refill its array after ``write`` returns)."""
        if getattr(writer, "copies_unsent", False):
            return codec.view(rows)
        return codec.pack(rows)

    async def send_break(self) -> None:
        if self.writer is None and not self.sent:
            return  # nothing written yet, so no interval to close (as Joule's OutputPipe)
        writer = await self._open()
        writer.write(self.token)
        await writer.drain()

    def send_break_nowait(self) -> None:
        if self.writer is None and not self.sent:
            return
        self.ready().write(self.token)

    async def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the reader left
            await writer.wait_closed()
