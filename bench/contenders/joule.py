"""joule 1.0.1's pipes: InputPipe/OutputPipe over an OS pipe, and LocalPipe in one process."""

from __future__ import annotations

import os
from typing import Any

from bench.contenders.base import (
    FANOUT,
    IDLE,
    LATENCY,
    SCALING,
    THROUGHPUT,
    Channel,
    End,
    FifoChannel,
)
from bench.harness import describe

VERSION = "1.0.1"


def _pipes() -> Any:
    from joule.models import pipes

    return pipes


def _probe() -> str | None:
    try:
        from importlib.metadata import version

        found = version("joule")
        _pipes()
    except Exception as exc:
        return f"joule=={VERSION} is not importable: {describe(exc, where=False)}"
    return None if found == VERSION else f"joule {found} is installed, not {VERSION}"


def _reader(pipe: Any) -> End:
    from joule.errors import EmptyPipeError

    rx = End()
    rx.recv, rx.release, rx.close = pipe.read, pipe.consume, pipe.close
    rx.end = (EmptyPipeError,)
    return rx


def _writer(pipe: Any) -> End:
    tx = End()
    tx.send, tx.close = pipe.write, pipe.close
    return tx


def _ends(layout: str, rfd: int, wfd: int, buffer_size: int | None = None) -> tuple[End, End]:
    pipes = _pipes()
    extra = {} if buffer_size is None else {"buffer_size": buffer_size}
    out = pipes.OutputPipe(layout=layout, writer_factory=pipes.writer_factory(wfd))
    inp = pipes.InputPipe(layout=layout, reader_factory=pipes.reader_factory(rfd), **extra)
    return _writer(out), _reader(inp)


class JoulePipe(FifoChannel):
    """joule's InputPipe/OutputPipe over an OS pipe, as between two joule modules."""

    label = "joule 1.0.1 pipes (os pipe)"
    is_async = True
    suites = frozenset({THROUGHPUT, LATENCY, IDLE, FANOUT, SCALING})

    @classmethod
    def probe(cls) -> str | None:
        return _probe()

    def sender(self) -> End:
        pipes = _pipes()
        out = pipes.OutputPipe(
            layout=self.layout, writer_factory=pipes.writer_factory(self.open_write())
        )
        return _writer(out)

    def receiver(self) -> End:
        pipes = _pipes()
        inp = pipes.InputPipe(
            layout=self.layout, reader_factory=pipes.reader_factory(self.open_read())
        )
        return _reader(inp)

    def local_pair(self, capacity: int) -> tuple[End, End]:
        rfd, wfd = os.pipe()
        # the default buffer (10000 rows) could never hold `capacity` unconsumed rows
        return _ends(self.layout, rfd, wfd, buffer_size=capacity)


class JouleLocal(Channel):
    """joule's LocalPipe: producer and consumer coroutines in one event loop."""

    label = "joule 1.0.1 LocalPipe (1 process)"
    is_async = True
    kind = "local"
    suites = frozenset({THROUGHPUT, SCALING})

    @classmethod
    def probe(cls) -> str | None:
        return _probe()

    def local_pair(self, capacity: int) -> tuple[End, End]:
        pipe = _pipes().LocalPipe(self.layout)
        return _writer(pipe), _reader(pipe)
