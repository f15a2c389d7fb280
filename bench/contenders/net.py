"""shmpipe's network pipes (ZeroMQ) over loopback TCP and ``ipc://``, raw pyzmq over TCP for
comparison (the ipc one is in ``zeromq.py``), and the bridge: shm -> tcp -> shm."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
from typing import Any

from bench.contenders.base import IDLE, LATENCY, THROUGHPUT, Channel, End, unique
from bench.contenders.shm import _import_shmpipe, _reader, _writer
from bench.contenders.zeromq import Zmq
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
