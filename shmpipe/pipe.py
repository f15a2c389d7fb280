"""The pipe API shared by every transport (Joule 1.0.1's ``Pipe`` names and behaviour).

:class:`Pipe` implements ``read / consume / write / close_interval / cache / subscribe`` once, on
top of a few transport hooks (``_source``, ``_rows``, ``_wait_for_news``, ``_write_rows``...).
Read semantics live in :mod:`shmpipe.buffer`; turning user data into rows lives in
:mod:`shmpipe.layout`. A transport subclasses :class:`InputPipe`, :class:`OutputPipe` or
:class:`Pipe` (two-way) and fills in the hooks.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import numpy as np

from .buffer import PipeData, ReadCursor, Span, tag
from .errors import EmptyPipeError, PipeError
from .layout import check_increasing, coerce, compute_dtype, concat, copy_rows, flatten

log = logging.getLogger("shmpipe")

CloseCallback = Callable[[], Awaitable[Any]]


class Pipe:
    """A stream of ``(timestamp, data[width])`` rows, read and written with Joule's API.

    A bare ``Pipe`` is abstract: its transport methods raise PipeError. Direction is enforced:
    reading or consuming an output pipe, writing or closing an interval on an input pipe, and
    subscribing to an input pipe raise PipeError.
    """

    class DIRECTION(enum.Enum):
        INPUT = enum.auto()
        OUTPUT = enum.auto()
        TWOWAY = enum.auto()

    def __init__(
        self,
        name: str | None = None,
        direction: Pipe.DIRECTION | None = None,
        module: Any = None,
        stream: Any = None,
        layout: str | None = None,
        *,
        close_cb: CloseCallback | None = None,
        check_timestamps: bool = False,
    ) -> None:
        self.name = name
        self.direction = direction
        self.module = module
        self.stream = stream
        self._layout = layout  # checked when the dtype is first needed (as Joule does)
        self.close_cb = close_cb
        self.closed = False
        self.decimation_level = 1
        self.subscribers: list[Pipe] = []
        self.check_timestamps = check_timestamps
        self._last_timestamp: int | None = None
        self._failed = False
        self._cursor = ReadCursor()
        self._dtype: np.dtype | None = None
        self._cache: np.ndarray | None = None
        self._cache_bytes = memoryview(b"")
        self._cache_index = 0

    def __repr__(self) -> str:
        direction = self.direction.name if self.direction is not None else None
        layout = self._layout if self._layout is not None else getattr(self.stream, "layout", None)
        return f"<{type(self).__name__} name={self.name!r} direction={direction} layout={layout!r}>"

    # ----------------------------------------------------------------- description
    @property
    def layout(self) -> str:
        """The layout string, e.g. ``float32_8``; ValueError if the pipe has none."""
        if self._layout is not None:
            return self._layout
        if self.stream is not None:
            return str(self.stream.layout)
        raise ValueError("pipe has no layout")

    @property
    def dtype(self) -> np.dtype:
        """The structured row dtype of the layout."""
        if self._layout is not None:
            if self._dtype is None:
                self._dtype = compute_dtype(self._layout)
            return self._dtype
        return compute_dtype(self.layout)

    @property
    def width(self) -> int:
        """Number of data columns."""
        return int(self.dtype["data"].shape[0])

    @property
    def decimated(self) -> bool:
        return self.decimation_level > 1

    def change_layout(self, layout: str) -> None:
        raise PipeError("layout cannot be changed")

    def fail(self) -> None:
        """Mark the pipe failed: later reads and writes raise PipeError."""
        self._failed = True

    # ----------------------------------------------------------------- checks
    def _check_readable(self, what: str = "read from") -> None:
        if self.direction == Pipe.DIRECTION.OUTPUT:
            raise PipeError(f"cannot {what} an output pipe")
        if self._failed:
            raise PipeError("pipe failed")

    def _check_writable(self, what: str = "write to") -> None:
        if self.direction == Pipe.DIRECTION.INPUT:
            raise PipeError(f"cannot {what} an input pipe")
        if self._failed:
            raise PipeError("pipe failed")
        if self.closed:
            raise PipeError("Cannot write to a closed pipe")
        if not self._has_writer():
            raise self._abstract()

    # ----------------------------------------------------------------- transport hooks
    def _abstract(self) -> PipeError:
        return PipeError("abstract method must be implemented by child")

    def _has_reader(self) -> bool:
        """Whether a transport implements reading (a bare Pipe does not)."""
        return type(self)._source is not Pipe._source

    def _has_writer(self) -> bool:
        """Whether a transport implements writing (a bare Pipe does not)."""
        cls = type(self)
        return cls._write_rows is not Pipe._write_rows or cls.write is not Pipe.write

    def _check_nowait(self) -> None:
        """Raise PipeError unless this pipe can take rows without waiting (a subscriber of a
        ``write_nowait`` must): by default, unless it has no transport."""
        cls = type(self)
        if (cls._write_rows_nowait is Pipe._write_rows_nowait
                and cls.write_nowait is Pipe.write_nowait):
            raise self._abstract()

    def _apply_dtype(self, data: Any) -> np.ndarray | None:
        """``data`` as rows of this pipe's dtype, or None if empty (Joule's name for
        :func:`shmpipe.layout.coerce`). Raises PipeError for data of another shape."""
        return coerce(data, self.dtype)

    def _source(self) -> tuple[int, int | None, bool, bool]:
        """(rows written, next unpassed boundary or None, stream ended, reader stalls the
        writer): see :meth:`ReadCursor.next_read`."""
        raise self._abstract()

    def _rows(self, span: Span) -> np.ndarray:
        """The rows of ``span`` as one structured array."""
        raise self._abstract()

    def _pass_boundary(self) -> None:
        """Drop the boundary the last read stopped at."""
        raise self._abstract()

    async def _wait_for_news(self) -> None:
        """Wait until ``_source`` may have changed (rows, a boundary, the end)."""
        raise self._abstract()

    def _wait_for_news_sync(self, timeout: float | None) -> bool:
        """Block until news or ``timeout``; return False on timeout."""
        raise self._abstract()

    def _before_read(self) -> None:
        """Called before each read: a transport may release consumed rows here."""

    async def _write_rows(self, rows: np.ndarray) -> None:
        raise self._abstract()

    def _write_rows_nowait(self, rows: np.ndarray) -> None:
        raise self._abstract()

    async def _close_interval(self) -> None:
        raise self._abstract()

    def _close_interval_nowait(self) -> None:
        raise self._abstract()

    async def _close(self) -> None:
        """Release the transport's resources (called once, by ``close``)."""

    # ----------------------------------------------------------------- reading
    def _format(self, rows: np.ndarray, eoi: bool, flat: bool) -> np.ndarray:
        return tag(flatten(rows) if flat else rows, eoi)

    def _read_span(self, span: Span) -> np.ndarray:
        rows = self._rows(span)
        if span.passed:
            self._pass_boundary()
        return rows

    @property
    def ended(self) -> bool:
        """True when the last read returned the last rows of a stream that has ended (its
        writer closed): no row will come after them, so a filter that needs more rows (a
        window) knows to finish with these instead of waiting; the next read raises
        EmptyPipeError once they are consumed. False until then, and after a read that
        stopped at an interval boundary before the end."""
        return bool(self._cursor.ended)

    async def read(self, flatten: bool = False) -> np.ndarray:
        """Return every unconsumed row up to the next interval boundary.

        Waits until something new arrives since the last read: rows, an interval boundary or
        the end of the stream (it does not return the same rows twice without news, unless
        ``reread_last`` was called). Rows returned and not consumed are returned again in front
        of new ones. Sets ``end_of_interval`` (on the pipe and on the returned array) when the
        read stops at a boundary. ``flatten=True`` returns a 2-D copy with timestamps in column
        0. Raises EmptyPipeError once the stream has ended and every row is consumed, PipeError
        on an output pipe. Cancelling a waiting read loses nothing.
        """
        if self.direction is _OUTPUT or self._failed:
            self._check_readable()
        cursor = self._cursor
        if not cursor.reread:
            self._before_read()
        while True:
            span = cursor.next_read(*self._source(), wait=True)
            if span is not None:
                break
            await self._wait_for_news()
        rows = self._rows(span)
        if span.passed:
            self._pass_boundary()
        return self._format(rows, span.end_of_interval, flatten)

    def read_nowait(self, flatten: bool = False) -> np.ndarray:
        """Like :meth:`read` but never waits: without news it returns the unconsumed rows
        (possibly none). Raises EmptyPipeError once the stream has ended and is drained."""
        if self.direction is _OUTPUT or self._failed:
            self._check_readable()
        cursor = self._cursor
        if not cursor.reread:
            self._before_read()
        span = cursor.next_read(*self._source(), wait=False)
        assert span is not None
        rows = self._rows(span)
        if span.passed:
            self._pass_boundary()
        return self._format(rows, span.end_of_interval, flatten)

    def read_sync(self, timeout: float | None = None, flatten: bool = False) -> np.ndarray:
        """Blocking :meth:`read` for code without an event loop.

        Blocks the calling thread until news or ``timeout`` seconds (None: no limit). On timeout
        it returns the unconsumed rows (possibly none) like :meth:`read_nowait`.
        """
        self._check_readable()
        if not self._cursor.reread:
            self._before_read()
        while True:
            span = self._cursor.next_read(*self._source(), wait=True)
            if span is not None:
                break
            if not self._wait_for_news_sync(timeout):
                span = self._cursor.next_read(*self._source(), wait=False)
                assert span is not None
                break
        return self._format(self._read_span(span), span.end_of_interval, flatten)

    async def read_all(
        self, flatten: bool = False, maxrows: int = 100000, error_on_overflow: bool = False
    ) -> np.ndarray:
        """Read until the stream ends, then close the pipe and return every row (a copy).

        At most ``maxrows`` rows are returned; with ``error_on_overflow`` more rows raise
        PipeError. Raises PipeError("No data in pipe") if the stream held no row.
        """
        self._check_readable()
        maxrows = int(maxrows)
        blocks: list[np.ndarray] = []
        total = 0
        overflow = False
        while True:
            try:
                block = await self.read(flatten)
            except EmptyPipeError:
                break
            self.consume(len(block))
            if total + len(block) > maxrows:
                blocks.append(np.array(block[: maxrows - total]))
                total = maxrows
                overflow = True
                break
            blocks.append(np.array(block))
            total += len(block)
        await self.close()
        if overflow and error_on_overflow:
            raise PipeError(
                f"More than [{maxrows}] rows, increase maxrows or disable error_on_overflow"
            )
        if total == 0 and not overflow:
            raise PipeError("No data in pipe")
        if len(blocks) == 1:
            data = blocks[0]
        elif blocks[0].dtype.names:
            data = concat(blocks, blocks[0].dtype)
        else:
            data = np.concatenate(blocks)
        return np.asarray(data)

    def consume(self, num_rows: int) -> None:
        """Drop ``num_rows`` rows from the front of the last read.

        Raises PipeError (and drops nothing) unless ``0 <= num_rows <=`` rows unconsumed.
        The array returned by the last read stays valid until the next read.
        """
        cursor = self._cursor
        if (type(num_rows) is int and 0 <= num_rows <= cursor.read_end - cursor.consumed
                and self.direction is not _OUTPUT and not self._failed and self._has_reader()):
            cursor.consumed += num_rows  # the common case, checked as ReadCursor.consume does
            return
        self._check_readable("consume from")
        if not self._has_reader():
            raise self._abstract()
        cursor.consume(num_rows)

    def consume_all(self) -> None:
        """Consume every row of the last read."""
        self._check_readable("consume from")
        if not self._has_reader():
            raise self._abstract()
        self._cursor.consume_all()

    def reread_last(self) -> None:
        """Make the next read return the unconsumed rows of the last read, and nothing new."""
        self._check_readable()
        self._cursor.reread = True

    async def is_empty(self) -> bool:
        """True when the stream has ended and every row is consumed.

        Otherwise waits for rows like :meth:`read`, then returns False and guarantees that the
        next read returns them at once (it reads and sets ``reread_last``).
        """
        self._check_readable("check for empty condition on")
        if self._cursor.reread:
            return False
        try:
            await self.read()
        except EmptyPipeError:
            return True
        self.reread_last()
        return False

    async def not_empty(self) -> bool:
        """``not await is_empty()``."""
        return not await self.is_empty()

    @property
    def end_of_interval(self) -> bool:
        """True when the last read stopped at an interval boundary."""
        return self._cursor.end_of_interval

    # ----------------------------------------------------------------- writing
    def _prepare(self, data: Any) -> np.ndarray | None:
        rows = coerce(data, self.dtype)
        if rows is not None and self.check_timestamps:
            check_increasing(rows["timestamp"], self._last_timestamp)
        return rows

    def _note_written(self, rows: np.ndarray) -> None:
        if self.check_timestamps:
            self._last_timestamp = int(rows["timestamp"][-1])

    async def write(self, data: Any) -> None:
        """Write rows: a structured array of the pipe's dtype, or a 2-D array or nested list
        with timestamps in column 0 and ``width`` data columns.

        An empty input does nothing. Bad input raises PipeError saying what was expected and
        what came, and nothing of it is written. With a cache enabled, rows are sent when the
        cache is full. Waits while the transport has no room (backpressure); see the
        transport's docstring for what a cancelled write leaves behind.
        """
        self._check_writable()
        rows = self._prepare(data)
        if rows is None:
            return
        cache = self._cache
        if cache is None:
            await self._send(rows)
        elif self._cache_index + len(rows) < len(cache):
            self._fill_cache(rows, 0)  # the common case: no flush, no nested coroutine
        else:
            await self._cached_write(rows)
        self._note_written(rows)

    def write_nowait(self, data: Any) -> None:
        """Write without waiting (subscribers must support ``write_nowait`` too).

        Raises PipeError if the transport cannot take the rows at once (nothing is written).
        """
        self._check_writable()
        rows = self._prepare(data)
        if rows is None:
            return
        if self._cache is not None:
            if self._cache_index + len(rows) >= len(self._cache):  # a flush is coming: can it?
                for pipe in (self, *self.subscribers):
                    pipe._check_nowait()
            self._cached_write_nowait(rows)
        else:
            self._send_nowait(rows)
        self._note_written(rows)

    async def _send(self, rows: np.ndarray) -> None:
        for pipe in self.subscribers:
            await pipe.write(rows)
        await self._write_rows(rows)

    def _send_nowait(self, rows: np.ndarray) -> None:
        for pipe in self.subscribers:  # a subscriber that would have to wait: nothing written
            pipe._check_nowait()
        self._write_rows_nowait(rows)  # first: if this pipe is full, nothing is written
        for pipe in self.subscribers:
            pipe.write_nowait(rows)

    def _fill_cache(self, rows: np.ndarray, start: int) -> int:
        assert self._cache is not None
        i = self._cache_index
        take = min(len(self._cache) - i, len(rows) - start)
        if take <= 64:  # small blocks: a bytes copy costs less than a structured assignment
            part = rows if take == len(rows) else rows[start : start + take]
            size = self._cache.itemsize
            self._cache_bytes[i * size : (i + take) * size] = part.tobytes()
        else:
            copy_rows(self._cache[i : i + take], rows[start : start + take])
        self._cache_index = i + take
        return start + take

    async def _cached_write(self, rows: np.ndarray) -> None:
        assert self._cache is not None
        i = 0
        while i < len(rows):
            i = self._fill_cache(rows, i)
            if self._cache_index == len(self._cache):
                await self.flush_cache()

    def _cached_write_nowait(self, rows: np.ndarray) -> None:
        assert self._cache is not None
        i = 0
        while i < len(rows):
            i = self._fill_cache(rows, i)
            if self._cache_index == len(self._cache):
                self._flush_cache_nowait()

    def _take_cache(self) -> np.ndarray | None:
        if self._cache is None or self._cache_index == 0:
            return None
        rows = self._cache[: self._cache_index]
        self._new_cache(len(self._cache))  # sent rows may be kept by the transport
        return rows

    def enable_cache(self, lines: int) -> None:
        """Accumulate written rows and send them as one block once ``lines`` rows wait.

        ``flush_cache``, ``close_interval`` and ``close`` send what waits. Cannot be disabled.
        """
        if self.direction == Pipe.DIRECTION.INPUT:
            raise PipeError("cannot control cache on input pipes")
        self._check_writable("control cache on")
        if int(lines) < 1:
            raise PipeError(f"cache size must be at least 1 row, got {lines}")
        self._new_cache(int(lines))

    def _new_cache(self, lines: int) -> None:
        self._cache = np.empty(lines, self.dtype)
        self._cache_bytes = self._cache.view(np.uint8).data
        self._cache_index = 0

    async def flush_cache(self) -> None:
        """Send the cached rows now (nothing if the cache is empty or disabled)."""
        if self.direction == Pipe.DIRECTION.INPUT:
            raise PipeError("cannot control cache on input pipes")
        if self.closed:
            raise PipeError("Cannot write to a closed pipe")
        if not self._has_writer():
            raise self._abstract()
        rows = self._take_cache()
        if rows is not None:
            await self._send(rows)

    def _flush_cache_nowait(self) -> None:
        cache, index = self._cache, self._cache_index
        rows = self._take_cache()
        if rows is None:
            return
        try:
            self._send_nowait(rows)
        except BaseException:  # nothing sent: the cached rows stay cached
            assert cache is not None
            self._cache, self._cache_index = cache, index
            self._cache_bytes = cache.view(np.uint8).data
            raise

    async def close_interval(self) -> None:
        """Mark a break in the stream after the rows written so far (flushing the cache).

        Reads stop at the break and set ``end_of_interval``. Propagates to subscribers.
        """
        self._check_writable()
        rows = self._take_cache()
        if rows is None:
            await self._close_interval()
        else:  # the cached rows and the break in one step: a reader sees them in one read
            for pipe in self.subscribers:
                await pipe.write(rows)
            await self._write_rows_then_break(rows)
        for pipe in self.subscribers:
            await pipe.close_interval()

    async def _write_rows_then_break(self, rows: np.ndarray) -> None:
        """Transport hook: write ``rows`` and the break after them so that no read can
        return the rows without the break (a transport overrides it when the default, two
        steps, could let a reader in between)."""
        await self._write_rows(rows)
        await self._close_interval()

    def close_interval_nowait(self) -> None:
        """:meth:`close_interval` without waiting (flushes the cache without waiting)."""
        self._check_writable()
        self._flush_cache_nowait()
        self._close_interval_nowait()
        for pipe in self.subscribers:
            pipe.close_interval_nowait()

    def subscribe(self, pipe: Pipe) -> Callable[[], None]:
        """Copy every later write, interval break and close to ``pipe`` (any writable pipe).

        Returns a callable that unsubscribes.
        """
        if self.direction == Pipe.DIRECTION.INPUT:
            raise PipeError("cannot subscribe to an input pipe")
        if not isinstance(pipe, Pipe) or pipe.direction == Pipe.DIRECTION.INPUT:
            raise PipeError(f"a subscriber must be a writable pipe, got {pipe!r}")
        self.subscribers.append(pipe)

        def unsubscribe() -> None:
            if pipe in self.subscribers:
                self.subscribers.remove(pipe)

        return unsubscribe

    add_subscriber = subscribe

    # ----------------------------------------------------------------- closing
    async def close(self) -> None:
        """Close the pipe: flush the cache, run ``close_cb``, close subscribers.

        Idempotent. On a writable pipe this ends the stream: readers drain what is left, then
        get EmptyPipeError.
        """
        if self.closed:
            return
        try:
            if self.direction != Pipe.DIRECTION.INPUT and not self._failed:
                await self.flush_cache()
        finally:
            self.closed = True
            try:
                await self._close()
            finally:
                if self.close_cb is not None:
                    cb, self.close_cb = self.close_cb, None
                    await cb()
                if self.direction != Pipe.DIRECTION.INPUT:
                    for pipe in self.subscribers:
                        await pipe.close()

    async def __aenter__(self) -> Pipe:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


_OUTPUT = Pipe.DIRECTION.OUTPUT


class InputPipe(Pipe):
    """The reading end of a pipe whose writer is elsewhere (another process or host).

    Constructed as Joule's: with a ``reader`` (an asyncio StreamReader, or anything with an
    awaitable ``read(n)`` returning bytes, ``b""`` at the end) or a ``reader_factory`` (a
    coroutine function returning a reader, or ``(reader, close)``, as
    :func:`shmpipe.reader_factory` makes), it is a *stream pipe*: rows arrive in Joule's wire
    format (raw rows; an all-zero row is an interval break) and at most ``buffer_size``
    unconsumed rows are held (a read then returns them without waiting for more). A waiting
    read wakes when bytes arrive; after the end of the stream the remaining rows are
    returned, then EmptyPipeError. ``read_nowait`` returns only rows already received.
    Transports (shared memory, network) subclass it instead.
    """

    def __init__(
        self,
        name: str | None = None,
        stream: Any = None,
        layout: str | None = None,
        reader: Any = None,
        reader_factory: Any = None,
        close_cb: CloseCallback | None = None,
        buffer_size: int = 10000,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            name=name, direction=Pipe.DIRECTION.INPUT, stream=stream, layout=layout,
            close_cb=close_cb, **kwargs,
        )
        self.reader = reader
        self.reader_factory = reader_factory
        self.buffer_size = buffer_size
        self._wire_in: Any = None

    def _wire(self) -> Any:
        if self._wire_in is None:
            if self.reader is None and self.reader_factory is None:
                raise self._abstract()
            from .stream.ends import WireIn

            self._wire_in = WireIn(self.dtype, self.buffer_size, self.reader,
                                   self.reader_factory, self.name)
        return self._wire_in

    def _source(self) -> tuple[int, int | None, bool, bool]:
        return self._wire().source(self._cursor)

    def _before_read(self) -> None:
        self._wire().drop_consumed(self._cursor.consumed)

    def _rows(self, span: Span) -> np.ndarray:
        return self._wire().rows(span)

    def _pass_boundary(self) -> None:
        self._wire().pass_boundary()

    async def _wait_for_news(self) -> None:
        await self._wire().pull(self._cursor)

    def _wait_for_news_sync(self, timeout: float | None) -> bool:
        if self.reader is None and self.reader_factory is None:
            raise self._abstract()
        raise PipeError("a stream pipe reads in its event loop: use await read()")

    async def _close(self) -> None:
        if self._wire_in is not None:
            self._wire_in.close()


class OutputPipe(Pipe):
    """The writing end of a pipe whose readers are elsewhere (other processes or hosts).

    Constructed as Joule's: with a ``writer`` (an asyncio StreamWriter) or a
    ``writer_factory`` (a coroutine function returning one, as :func:`shmpipe.writer_factory`
    makes; it runs at the first awaited write), it is a *stream pipe* writing Joule's wire
    format. ``write`` waits while the stream's buffer is above its high-water mark
    (backpressure). A row with timestamp 0 and all-zero data is the wire's break token, so
    writing one raises PipeError (nothing of the block is written). Transports (shared
    memory, network) subclass it instead.
    """

    def __init__(
        self,
        name: str | None = None,
        stream: Any = None,
        layout: str | None = None,
        close_cb: CloseCallback | None = None,
        writer: Any = None,
        writer_factory: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            name=name, direction=Pipe.DIRECTION.OUTPUT, stream=stream, layout=layout,
            close_cb=close_cb, **kwargs,
        )
        self.writer = writer
        self.writer_factory = writer_factory
        self._wire_out: Any = None

    def _wire(self) -> Any:
        if self._wire_out is None:
            if self.writer is None and self.writer_factory is None:
                raise self._abstract()
            from .stream.ends import WireOut

            self._wire_out = WireOut(self.dtype, self.writer, self.writer_factory, self.name)
        return self._wire_out

    def _prepare(self, data: Any) -> np.ndarray | None:
        rows = super()._prepare(data)
        if rows is not None and (self.writer is not None or self.writer_factory is not None):
            from .stream.codec import check

            check(rows)
        return rows

    async def _write_rows(self, rows: np.ndarray) -> None:
        await self._wire().send(rows)

    async def _write_rows_then_break(self, rows: np.ndarray) -> None:
        if type(self)._write_rows is OutputPipe._write_rows:  # the stream transport
            await self._wire().send(rows, then_break=True)
        else:
            await super()._write_rows_then_break(rows)

    def _check_nowait(self) -> None:
        cls = type(self)
        if cls.write_nowait is not Pipe.write_nowait:  # it writes its own way
            return
        if cls._write_rows_nowait is OutputPipe._write_rows_nowait:  # a stream pipe
            self._wire().ready()

    def _write_rows_nowait(self, rows: np.ndarray) -> None:
        self._wire().send_nowait(rows)

    async def _close_interval(self) -> None:
        await self._wire().send_break()

    def _close_interval_nowait(self) -> None:
        self._wire().send_break_nowait()

    async def _close(self) -> None:
        if self._wire_out is not None:
            await self._wire_out.close()


__all__ = ["InputPipe", "OutputPipe", "Pipe", "PipeData"]
