"""Plain OS pipes: numpy bytes through ``os.write``/``readinto``, and the 1-byte wake-up floor."""

from __future__ import annotations

import os

import numpy as np

from bench.contenders.base import (
    FANOUT,
    IDLE,
    LATENCY,
    THROUGHPUT,
    End,
    FifoChannel,
    byte_view,
    read_exact,
    write_all,
)


class _Writer(End):
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, block: np.ndarray) -> None:
        write_all(self.fd, byte_view(block))

    def close(self) -> None:
        os.close(self.fd)


class _Reader(End):
    """Reads exactly one block's bytes into a reusable numpy buffer."""

    def __init__(self, fd: int, dtype: np.dtype, rows: int) -> None:
        self.file = open(fd, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self.buf = np.empty(rows, dtype)
        self.view = byte_view(self.buf)

    def recv(self) -> np.ndarray:
        if not read_exact(self.file, self.view):
            raise EOFError
        return self.buf

    def release(self, n: int) -> None:
        pass

    def close(self) -> None:
        self.file.close()


class OsPipe(FifoChannel):
    """The same bytes through an OS pipe with numpy and no framing at all."""

    label = "os.pipe + numpy"
    suites = frozenset({THROUGHPUT, LATENCY, IDLE, FANOUT})

    def sender(self) -> End:
        return _Writer(self.open_write())

    def receiver(self) -> End:
        return _Reader(self.open_read(), self.dtype, self.block)


class _ByteWriter(_Writer):
    def send(self, block: np.ndarray) -> None:
        os.write(self.fd, b"x")


class _ByteReader(End):
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def recv(self) -> bytes:
        byte = os.read(self.fd, 1)
        if not byte:
            raise EOFError
        return byte

    def release(self, n: int) -> None:
        pass

    def close(self) -> None:
        os.close(self.fd)


class PipeFloor(FifoChannel):
    """One byte each way with blocking ``os.write``/``os.read``: the host's wake-up floor."""

    label = "floor: blocking os.pipe, 1 byte"
    suites = frozenset({LATENCY})

    def sender(self) -> End:
        return _ByteWriter(self.open_write())

    def receiver(self) -> End:
        return _ByteReader(self.open_read())
