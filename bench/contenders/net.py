"""shmpipe's network pipes (ZeroMQ) over loopback TCP and ``ipc://``, writing (a copy into
ZeroMQ) and lending (none); raw pyzmq over TCP, blocking and asyncio, for comparison (the ipc
one is in ``zeromq.py``); and the bridge: shm -> tcp -> shm."""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

from bench.contenders.base import IDLE, LATENCY, THROUGHPUT, Channel, End, byte_view, unique
from bench.contenders.shm import _import_shmpipe, _reader, _writer
from bench.contenders.zeromq import Zmq, _shut
from bench.harness import describe

_ports: set[int] = set()


def _free_port() -> int:
    """A loopback port nobody listens on, not handed out before in this run."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _ports:
            _ports.add(port)
            return port


def _probe() -> str | None:
    try:
        import shmpipe.net  # noqa: F401
    except Exception as exc:
        return describe(exc, where=False)
    return None


class NetTcp(Channel):
    """``NetOutputPipe(endpoint).write(block)`` / ``NetInputPipe(endpoint).read()`` over
    loopback TCP: the reader binds, the writer connects."""

    label = "shmpipe net (tcp)"
    is_async = True
    suites = frozenset({THROUGHPUT, LATENCY, IDLE})

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        self.endpoint = self._endpoint()

    def _endpoint(self) -> str:
        return f"tcp://127.0.0.1:{_free_port()}"

    @classmethod
    def probe(cls) -> str | None:
        return _probe()

    def sender(self) -> End:
        from shmpipe.net import NetOutputPipe

        return _writer(NetOutputPipe(self.endpoint, self.layout))

    def receiver(self) -> End:
        from shmpipe.net import NetInputPipe

        return _reader(NetInputPipe(self.endpoint, self.layout), _import_shmpipe())


class NetTcpNoPoll(NetTcp):
    """The same, the reader never polling before it sleeps (``spin=0``)."""

    label = "shmpipe net (tcp, spin=0)"
    suites = frozenset({LATENCY})

    def receiver(self) -> End:
        from shmpipe.net import NetInputPipe

        return _reader(NetInputPipe(self.endpoint, self.layout, spin=0), _import_shmpipe())


class NetIpc(NetTcp):
    """The same over a Unix socket (``ipc://``)."""

    label = "shmpipe net (ipc)"

    def _endpoint(self) -> str:
        self.dir = tempfile.mkdtemp(prefix="shmpipe-bench-")
        return f"ipc://{self.dir}/sock"

    def cleanup(self) -> None:
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


class _LendingWriter(End):
    """``await out.lend(block)``: the block goes to ZeroMQ without a copy, as pyzmq's
    ``copy=False``; the block never changes, so the loan is not waited for."""

    def __init__(self, pipe: Any) -> None:
        self.send, self.close = pipe.lend, pipe.close


class NetTcpLend(NetTcp):
    """``NetOutputPipe.lend(block)``: rows sent from the caller's memory, as raw pyzmq's
    ``send(copy=False)`` sends them."""

    label = "shmpipe net (tcp, lend)"
    suites = frozenset({THROUGHPUT})

    def sender(self) -> End:
        from shmpipe.net import NetOutputPipe

        return _LendingWriter(NetOutputPipe(self.endpoint, self.layout))


class NetIpcLend(NetIpc):
    label = "shmpipe net (ipc, lend)"
    suites = frozenset({THROUGHPUT})

    def sender(self) -> End:
        return NetTcpLend.sender(self)  # type: ignore[arg-type]


class ZmqTcp(Zmq):
    """Raw pyzmq PUSH/PULL over loopback TCP, the bytes of each block as one frame."""

    label = "pyzmq PUSH/PULL tcp"

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        os.rmdir(self.dir)
        self.dir = tempfile.mkdtemp(prefix="shmpipe-bench-")
        self.addr = f"tcp://127.0.0.1:{_free_port()}"


_BRIDGE = ("import asyncio, sys; from shmpipe.net import bridge; print('ready', flush=True); "
           "asyncio.run(bridge(sys.argv[1], sys.argv[2], layout=sys.argv[3]))")


class _BridgedWriter(End):
    def __init__(self, pipe: Any, proc: subprocess.Popen[bytes]) -> None:
        self.pipe = pipe
        self.proc = proc
        self.send = pipe.write

    async def close(self) -> None:
        await self.pipe.close()
        await _wait(self.proc)


class _BridgedReader(End):
    def __init__(self, pipe: Any, proc: subprocess.Popen[bytes]) -> None:
        import shmpipe

        self.pipe = pipe
        self.proc = proc
        self.recv, self.release = pipe.read, pipe.consume
        self.end = (shmpipe.EmptyPipeError,)

    async def close(self) -> None:
        await self.pipe.close()
        await _wait(self.proc)


async def _wait(proc: subprocess.Popen[bytes]) -> None:
    import asyncio

    try:
        await asyncio.to_thread(proc.wait, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class NetBridge(Channel):
    """Producer -> shm pipe a -> ``bridge(a, tcp)`` process -> TCP -> ``bridge(tcp, b)``
    process -> shm pipe b -> consumer: four processes, each bridge next to its end."""

    label = "shmpipe bridge shm>tcp>shm"
    is_async = True
    suites = frozenset({THROUGHPUT})

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        self.a, self.b = unique("bench-bridge-a"), unique("bench-bridge-b")
        self.endpoint = f"tcp://127.0.0.1:{_free_port()}"

    @classmethod
    def probe(cls) -> str | None:
        return _probe()

    def _capacity(self) -> int | None:
        return 2 * self.block if 2 * self.block_bytes > 16 * 2**20 else None

    def _bridge(self, src: str, dst: str) -> subprocess.Popen[bytes]:
        """Start a bridge process; return once it has imported everything (its start-up is
        not part of the measurement)."""
        proc = subprocess.Popen([sys.executable, "-c", _BRIDGE, src, dst, self.layout],
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            proc.kill()
            raise RuntimeError("the bridge process did not start")
        return proc

    def sender(self) -> End:
        import shmpipe

        out = shmpipe.open_output(self.a, self.layout, capacity=self._capacity())
        return _BridgedWriter(out, self._bridge(self.a, self.endpoint))

    def receiver(self) -> End:
        import shmpipe

        inp = shmpipe.open_input(self.b, self.layout, capacity=self._capacity())
        return _BridgedReader(inp, self._bridge(self.endpoint, self.b))

    def cleanup(self) -> None:
        import shmpipe

        for name in (self.a, self.b):
            with contextlib.suppress(Exception):
                shmpipe.unlink(name)


class _AsyncWriter(End):
    def __init__(self, sock: Any) -> None:
        self.sock = sock

    async def send(self, block: np.ndarray) -> None:
        await self.sock.send(byte_view(block), copy=False)

    async def close(self) -> None:
        await self.sock.send(b"")
        atexit.register(_shut, self.sock)


class _AsyncReader(End):
    def __init__(self, sock: Any, dtype: np.dtype) -> None:
        self.sock = sock
        self.dtype = dtype

    async def recv(self) -> np.ndarray:
        frame = await self.sock.recv(copy=False)
        if not len(frame):
            raise EOFError
        return np.frombuffer(frame.buffer, self.dtype)

    def release(self, n: int) -> None:
        pass

    async def close(self) -> None:
        self.sock.close(linger=0)
        self.sock.context.term()


class ZmqAsyncTcp(ZmqTcp):
    """pyzmq's asyncio sockets (``zmq.asyncio``), PUSH/PULL over loopback TCP: what an
    event loop adds to raw pyzmq, with no framing or flow control of ours."""

    label = "pyzmq asyncio PUSH/PULL tcp"
    is_async = True
    writer = _AsyncWriter
    reader = _AsyncReader

    def _context(self) -> Any:
        import zmq.asyncio

        return zmq.asyncio.Context()
