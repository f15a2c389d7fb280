"""Physical limits: one core's memcpy, and a bare shared-memory hand-off between two processes.

Both copy the rows' bytes (``uint8`` views): numpy copies a structured dtype field by field,
several times slower than a plain memcpy.

The hand-off has no pipe logic at all: two slots in a shared mapping, each with a flag in its own
cache line. The writer spins until a slot is free, copies the block in and sets the flag to the
row count; the reader spins on the flag, sums the rows and clears it. (x86 keeps stores in order,
which is all this needs.)
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from bench.contenders.base import LATENCY, THROUGHPUT, Channel, End, unique

SLOTS = 2
yield_cpu = os.sched_yield  # spin, but let a process sharing the core run
LINE = 64  # bytes: one flag per cache line


class _Slots(End):
    def __init__(self, path: str, dtype: np.dtype, rows: int, writer: bool) -> None:
        self.writer = writer
        fd = os.open(path, os.O_RDWR)
        try:
            self.map = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        self.flags = np.ndarray((SLOTS,), np.int64, self.map, 0, (LINE,))
        self.slots = [
            np.ndarray((rows,), dtype, self.map, SLOTS * LINE + i * rows * dtype.itemsize)
            for i in range(SLOTS)
        ]
        self.i = 0

    def send(self, block: np.ndarray) -> None:
        flags, i = self.flags, self.i
        while flags[i]:
            yield_cpu()
        np.copyto(self.slots[i][: len(block)].view(np.uint8), block.view(np.uint8))
        flags[i] = len(block)
        self.i = (i + 1) % SLOTS

    def recv(self) -> np.ndarray:
        flags, i = self.flags, self.i
        while not (n := flags[i]):
            yield_cpu()
        if n < 0:
            raise EOFError
        rows: np.ndarray = self.slots[i][:n]
        return rows

    def release(self, n: int) -> None:
        self.flags[self.i] = 0
        self.i = (self.i + 1) % SLOTS

    def close(self) -> None:
        if not self.writer:
            return
        while self.flags[self.i]:
            yield_cpu()
        self.flags[self.i] = -1


class BareShm(Channel):
    """The cross-core ceiling: what any shared-memory pipe could reach from Python."""

    label = "limit: bare shm hand-off"
    suites = frozenset({THROUGHPUT, LATENCY})

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        self.path = f"/dev/shm/{unique('shmpipe-bench-bare')}"
        with open(self.path, "wb") as f:
            f.truncate(SLOTS * (LINE + self.block_bytes))

    @classmethod
    def probe(cls) -> str | None:
        return None if os.path.isdir("/dev/shm") else "no /dev/shm"

    def sender(self) -> End:
        return _Slots(self.path, self.dtype, self.block, writer=True)

    def receiver(self) -> End:
        return _Slots(self.path, self.dtype, self.block, writer=False)

    def cleanup(self) -> None:
        os.unlink(self.path)


class Memcpy(Channel):
    """``np.copyto`` between byte views of two preallocated blocks: one core's bandwidth."""

    label = "limit: memcpy (1 core)"
    kind = "memcpy"
    suites = frozenset({THROUGHPUT})
