"""pyzmq PUSH/PULL over ``ipc://``, sending the block's buffer with ``copy=False``."""

from __future__ import annotations

import atexit
import os
import tempfile
from typing import Any

import numpy as np

from bench.contenders.base import Channel, End, byte_view
from bench.harness import describe


class _Writer(End):
    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def send(self, block: np.ndarray) -> None:
        self.sock.send(byte_view(block), copy=False)

    def close(self) -> None:
        self.sock.send(b"")  # the end of the stream
        # Closing now would drop whatever the reader's zmq has not pulled in from the socket
        # yet; the workers meet after each repetition, so close when this process ends.
        atexit.register(_shut, self.sock)


def _shut(sock: Any) -> None:
    sock.close(linger=-1)
    sock.context.term()  # waits until zmq is done with the blocks it references


class _Reader(End):
    def __init__(self, sock: Any, dtype: np.dtype) -> None:
        self.sock = sock
        self.dtype = dtype

    def recv(self) -> np.ndarray:
        frame = self.sock.recv(copy=False)
        if not len(frame):
            raise EOFError
        return np.frombuffer(frame.buffer, self.dtype)

    def release(self, n: int) -> None:
        pass

    def close(self) -> None:
        self.sock.close(linger=0)
        self.sock.context.term()


class Zmq(Channel):
    """A PUSH socket bound on a Unix socket path, a PULL socket connected to it."""

    label = "pyzmq PUSH/PULL ipc"

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        self.dir = tempfile.mkdtemp(prefix="shmpipe-bench-")
        self.addr = f"ipc://{self.dir}/sock"

    @classmethod
    def probe(cls) -> str | None:
        try:
            import zmq  # noqa: F401
        except Exception as exc:
            return describe(exc, where=False)
        return None

    writer: type[End] = _Writer
    reader: type[End] = _Reader

    def _context(self) -> Any:
        import zmq

        return zmq.Context()

    def _socket(self, kind: str) -> Any:
        import zmq

        sock = self._context().socket(getattr(zmq, kind))
        hwm = max(1, self.slots() // 2)  # queued on each side
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        return sock

    # The PUSH end binds: until a PULL end has connected, its sends wait. (The other way round,
    # blocks sent before the PULL end had bound could be lost.)
    def sender(self) -> End:
        sock = self._socket("PUSH")
        sock.bind(self.addr)
        return self.writer(sock)  # type: ignore[call-arg]

    def receiver(self) -> End:
        sock = self._socket("PULL")
        sock.connect(self.addr)
        return self.reader(sock, self.dtype)  # type: ignore[call-arg]

    def cleanup(self) -> None:
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)
