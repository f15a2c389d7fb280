"""The small interface every contender implements.

A :class:`Channel` is one one-way link for one repetition. It is made in the parent (where it
creates whatever must exist before the workers start: a FIFO, a queue, a name), pickled into
the spawned workers, and opened there with :meth:`Channel.sender` / :meth:`Channel.receiver`.

* ``sender.send(block)`` sends a structured block; ``sender.close()`` ends the stream.
* ``receiver.recv()`` returns the rows that arrived (a view is fine) and raises one of
  ``receiver.end`` once the sender has closed and everything was received;
  ``receiver.release(n)`` says the first ``n`` returned rows are done with.

For an ``is_async`` channel ``send``, ``recv`` and both ``close`` are coroutines and the ends
are made inside the worker's event loop. Ends may simply bind a library's own methods
(``recv = pipe.read``) so the benchmark adds no call layer of its own.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from typing import Any, ClassVar

import numpy as np

from bench.harness import row_dtype

IN_FLIGHT_BYTES = 64 * 2**20  # bounded queues and rings are sized to hold about this much

THROUGHPUT, LATENCY, IDLE, FANOUT, SCALING = "throughput", "latency", "idle", "fanout", "scaling"


class End:
    """A sender or receiver: bound methods set by each contender."""

    end: tuple[type[BaseException], ...] = (EOFError,)
    send: Any
    recv: Any
    release: Any
    close: Any


class Channel:
    """Base class: one link for one repetition of one measurement."""

    label: ClassVar[str] = "?"
    is_async: ClassVar[bool] = False
    multi_reader: ClassVar[bool] = False  # several receivers may share one channel
    kind: ClassVar[str] = "pair"  # "pair": two processes; "local": one process
    suites: ClassVar[frozenset[str]] = frozenset({THROUGHPUT, LATENCY, IDLE})

    def __init__(self, layout: str, block: int) -> None:
        self.layout = layout
        self.block = block
        self.dtype = row_dtype(layout)

    @classmethod
    def probe(cls) -> str | None:
        """Why this contender cannot run here, or None if it can."""
        return None

    @property
    def block_bytes(self) -> int:
        return self.block * self.dtype.itemsize

    def slots(self, cap: int = 1024) -> int:
        """How many blocks a bounded queue may hold: about IN_FLIGHT_BYTES, at least 2."""
        return max(2, min(cap, IN_FLIGHT_BYTES // max(1, self.block_bytes)))

    def sender(self) -> End:
        raise NotImplementedError

    def receiver(self) -> End:
        raise NotImplementedError

    def local_pair(self, capacity: int) -> tuple[End, End]:
        """Both ends in this process, holding at least ``capacity`` rows (scaling suite)."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Remove what the parent created (called in the parent, after the workers ended)."""


_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other channel of this run uses."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


class FifoChannel(Channel):
    """A channel over a named OS pipe (a FIFO) that spawned workers open by path."""

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        self.dir = tempfile.mkdtemp(prefix="shmpipe-bench-")
        self.path = os.path.join(self.dir, "fifo")
        os.mkfifo(self.path)

    def open_write(self) -> int:
        return os.open(self.path, os.O_WRONLY)

    def open_read(self) -> int:
        return os.open(self.path, os.O_RDONLY)

    def cleanup(self) -> None:
        os.unlink(self.path)
        os.rmdir(self.dir)


def read_exact(file: io.RawIOBase, view: memoryview) -> bool:
    """Fill ``view`` from ``file``; False on end of file before the first byte."""
    got, size = 0, len(view)
    while got < size:
        n = file.readinto(view[got:])
        if not n:
            if got:
                raise EOFError(f"stream ended inside a block ({got} of {size} bytes)")
            return False
        got += n
    return True


def write_all(fd: int, view: memoryview) -> None:
    """``os.write`` until every byte is out."""
    sent, size = 0, len(view)
    while sent < size:
        sent += os.write(fd, view[sent:])


def byte_view(block: np.ndarray) -> memoryview:
    """The bytes of a contiguous block, without a copy."""
    return block.view(np.uint8).data
