"""faster-fifo: a pickling queue over a shared-memory circular buffer."""

from __future__ import annotations

from queue import Empty
from typing import Any

import numpy as np

from bench.contenders.base import IN_FLIGHT_BYTES, Channel, End
from bench.harness import describe

FOREVER = 1e9  # faster-fifo's calls time out after 10 s unless told otherwise


class _Reader(End):
    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def recv(self) -> np.ndarray:
        while True:
            try:
                block: np.ndarray | None = self.queue.get(timeout=1.0)
            except Empty:
                continue
            if block is None:
                raise EOFError
            return block

    def release(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class FasterFifo(Channel):
    """``put(block)``/``get()`` on a faster_fifo.Queue holding about 64 MiB."""

    label = "faster-fifo"

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        import faster_fifo

        size = max(IN_FLIGHT_BYTES, 2 * self.block_bytes + 2**16)
        self.queue = faster_fifo.Queue(max_size_bytes=size)

    @classmethod
    def probe(cls) -> str | None:
        try:
            import faster_fifo  # noqa: F401
        except Exception as exc:
            return describe(exc, where=False)
        return None

    def sender(self) -> End:
        tx = End()
        queue = self.queue

        def send(block: np.ndarray) -> None:
            queue.put(block, timeout=FOREVER)

        def close() -> None:
            queue.put(None, timeout=FOREVER)

        tx.send, tx.close = send, close
        return tx

    def receiver(self) -> End:
        return _Reader(self.queue)
