"""shmpipe itself: the shared-memory pipe (copy and zero-copy writes), the stream pipe over an
OS pipe, and the in-process LocalPipe."""

from __future__ import annotations

import contextlib
import os
from typing import Any, ClassVar

import numpy as np

from bench.contenders.base import (
    FANOUT,
    IDLE,
    IN_FLIGHT_BYTES,
    LATENCY,
    SCALING,
    THROUGHPUT,
    Channel,
    End,
    FifoChannel,
    unique,
)
from bench.harness import describe


def _import_shmpipe() -> Any:
    import shmpipe

    return shmpipe


def _reader(pipe: Any, shmpipe: Any) -> End:
    rx = End()
    rx.recv, rx.release, rx.close = pipe.read, pipe.consume, pipe.close
    rx.end = (shmpipe.EmptyPipeError,)
    return rx


def _writer(pipe: Any) -> End:
    tx = End()
    tx.send, tx.close = pipe.write, pipe.close
    return tx


class ShmCopy(Channel):
    """``await out.write(block)`` into a shared-memory ring; readers get views of the ring."""

    label = "shmpipe shm (copy)"
    is_async = True
    multi_reader = True
    suites = frozenset({THROUGHPUT, LATENCY, IDLE, FANOUT, SCALING})

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        self.name = unique("bench")

    @classmethod
    def probe(cls) -> str | None:
        try:
            shmpipe = _import_shmpipe()
        except Exception as exc:
            return f"import shmpipe failed: {describe(exc, where=False)}"
        missing = [f for f in ("open_output", "open_input", "unlink") if not hasattr(shmpipe, f)]
        return f"shmpipe has no {', '.join(missing)} yet" if missing else None

    def capacity(self) -> int | None:
        """The default ring unless it would not hold two blocks."""
        return 2 * self.block if 2 * self.block_bytes > IN_FLIGHT_BYTES else None

    def _output(self, capacity: int | None = None) -> Any:
        return _import_shmpipe().open_output(self.name, self.layout, capacity=capacity)

    def sender(self) -> End:
        return _writer(self._output(self.capacity()))

    def receiver(self) -> End:
        shmpipe = _import_shmpipe()
        return _reader(shmpipe.open_input(self.name, layout=self.layout), shmpipe)

    def local_pair(self, capacity: int) -> tuple[End, End]:
        self.name = unique("bench-scale")
        tx = _writer(self._output(capacity))
        return tx, self.receiver()

    def cleanup(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            _import_shmpipe().unlink(self.name)


class ShmBusyPoll(ShmCopy):
    """``open_input(..., spin=math.inf)``: a waiting read polls the header instead of sleeping
    (one core at 100 % while it waits), so the writer never rings a doorbell."""

    label = "shmpipe shm (busy-poll)"
    suites = frozenset({LATENCY})

    def receiver(self) -> End:
        import math

        shmpipe = _import_shmpipe()
        return _reader(shmpipe.open_input(self.name, layout=self.layout, spin=math.inf), shmpipe)


class ShmZeroCopy(ShmCopy):
    """``rows = await out.reserve(n)``, the producer fills the columns in place, ``commit(n)``."""

    label = "shmpipe shm (zero-copy)"
    suites = frozenset({THROUGHPUT})

    def sender(self) -> End:
        return _ReserveWriter(self._output(self.capacity()))


class ShmFillThenCopy(ShmCopy):
    """The producer fills its own block from its columns, then ``await out.write(block)``:
    what the zero-copy path saves is this copy, so this is the row to compare it with."""

    label = "shmpipe shm (fill, then copy)"
    suites = frozenset({THROUGHPUT})

    def sender(self) -> End:
        return _FillingWriter(self._output(self.capacity()))


class _FillingWriter(End):
    def __init__(self, out: Any) -> None:
        self.out = out
        self.close = out.close
        self.source: np.ndarray | None = None
        self.columns: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))
        self.block = np.empty(0)

    async def send(self, block: np.ndarray) -> None:
        if block is not self.source:
            self.source = block
            self.columns = (block["timestamp"].copy(), block["data"].copy())
            self.block = np.empty_like(block)
        ts, data = self.columns
        self.block["timestamp"] = ts  # the same work the zero-copy producer does in the ring
        self.block["data"] = data
        await self.out.write(self.block)


class _ReserveWriter(End):
    def __init__(self, out: Any) -> None:
        self.out = out
        self.close = out.close
        self.source: np.ndarray | None = None
        self.columns: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))

    async def send(self, block: np.ndarray) -> None:
        if block is not self.source:  # the producer's columns, as it would generate them
            self.source = block
            self.columns = (block["timestamp"].copy(), block["data"].copy())
        ts, data = self.columns
        n, step = len(block), self.out.capacity
        for i in range(0, n, step):  # a block larger than the ring goes in pieces
            k = min(step, n - i)
            rows = await self.out.reserve(k)
            rows["timestamp"] = ts[i : i + k]
            rows["data"] = data[i : i + k]
            await self.out.commit(k)


class ShmStream(FifoChannel):
    """shmpipe's stream pipes (Joule's wire format) over an OS pipe, as between two modules
    joined by jouled: the same construction as the joule contender's."""

    label = "shmpipe stream (os pipe)"
    is_async = True
    suites = frozenset({THROUGHPUT, LATENCY, IDLE, FANOUT, SCALING})

    @classmethod
    def probe(cls) -> str | None:
        try:
            _import_shmpipe().reader_factory  # noqa: B018
        except Exception as exc:
            return f"shmpipe has no stream pipes: {describe(exc, where=False)}"
        return None

    def sender(self) -> End:
        shmpipe = _import_shmpipe()
        return _writer(shmpipe.OutputPipe(
            layout=self.layout, writer_factory=shmpipe.writer_factory(self.open_write())))

    def receiver(self) -> End:
        shmpipe = _import_shmpipe()
        return _reader(shmpipe.InputPipe(
            layout=self.layout, reader_factory=shmpipe.reader_factory(self.open_read())),
            shmpipe)

    def local_pair(self, capacity: int) -> tuple[End, End]:
        shmpipe = _import_shmpipe()
        rfd, wfd = os.pipe()
        out = shmpipe.OutputPipe(layout=self.layout, writer_factory=shmpipe.writer_factory(wfd))
        # the default buffer (10000 rows) could never hold `capacity` unconsumed rows
        inp = shmpipe.InputPipe(layout=self.layout, reader_factory=shmpipe.reader_factory(rfd),
                                buffer_size=capacity)
        return _writer(out), _reader(inp, shmpipe)


class ShmLocal(Channel):
    """shmpipe.LocalPipe: producer and consumer coroutines in one event loop."""

    label = "shmpipe LocalPipe (1 process)"
    is_async = True
    kind = "local"
    suites = frozenset({THROUGHPUT, SCALING})
    write_limit: ClassVar[int] = 0

    @classmethod
    def probe(cls) -> str | None:
        try:
            _import_shmpipe().LocalPipe  # noqa: B018
        except Exception as exc:
            return describe(exc, where=False)
        return None

    def local_pair(self, capacity: int) -> tuple[End, End]:
        shmpipe = _import_shmpipe()
        pipe = shmpipe.LocalPipe(self.layout)
        return _writer(pipe), _reader(pipe, shmpipe)
