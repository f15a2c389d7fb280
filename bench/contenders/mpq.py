"""The standard library's multiprocessing.Queue and multiprocessing.Pipe."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.contenders.base import Channel, End, byte_view
from bench.harness import SPAWN


class _QueueReader(End):
    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def recv(self) -> np.ndarray:
        block: np.ndarray | None = self.queue.get()
        if block is None:
            raise EOFError
        return block

    def release(self, n: int) -> None:
        pass

    def close(self) -> None:
        self.queue.close()


class MpQueue(Channel):
    """``put(block)``/``get()``: pickled blocks through a feeder thread and an OS pipe."""

    label = "multiprocessing.Queue"

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        self.queue = SPAWN.Queue(maxsize=self.slots())

    def sender(self) -> End:
        tx = End()
        tx.send = self.queue.put

        def close() -> None:
            self.queue.put(None)
            self.queue.close()
            self.queue.join_thread()

        tx.close = close
        return tx

    def receiver(self) -> End:
        return _QueueReader(self.queue)

    def cleanup(self) -> None:
        self.queue.close()


class _ConnWriter(End):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def send(self, block: np.ndarray) -> None:
        self.conn.send_bytes(byte_view(block))

    def close(self) -> None:
        self.conn.send_bytes(b"")
        self.conn.close()


class _ConnReader(End):
    def __init__(self, conn: Any, dtype: np.dtype, rows: int) -> None:
        self.conn = conn
        self.buf = np.empty(rows, dtype)
        self.view = byte_view(self.buf)
        self.itemsize = dtype.itemsize

    def recv(self) -> np.ndarray:
        n = self.conn.recv_bytes_into(self.view)
        if not n:
            raise EOFError
        return self.buf[: n // self.itemsize]

    def release(self, n: int) -> None:
        pass

    def close(self) -> None:
        self.conn.close()


class MpPipe(Channel):
    """``send_bytes(block)``/``recv_bytes_into(buffer)`` on a one-way multiprocessing.Pipe."""

    label = "multiprocessing.Pipe"

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        self.rconn, self.wconn = SPAWN.Pipe(duplex=False)

    def sender(self) -> End:
        return _ConnWriter(self.wconn)

    def receiver(self) -> End:
        return _ConnReader(self.rconn, self.dtype, self.block)

    def cleanup(self) -> None:
        self.rconn.close()
        self.wconn.close()
