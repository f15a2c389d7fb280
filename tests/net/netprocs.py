"""Child-process entry points for the cross-process network tests (importable by ``spawn``).

Children report through ``multiprocessing`` queues or values; every wait in a child is bounded
so a hang becomes a failed test, not a stuck one.
"""

from __future__ import annotations

import asyncio
import multiprocessing.sharedctypes
import os
import sys
from typing import Any

import numpy as np

import shmpipe
from shmpipe import EmptyPipeError

LAYOUT = "float32_2"
DTYPE = shmpipe.compute_dtype(LAYOUT)
T_CHILD = 30.0


def rows(start: int, n: int) -> np.ndarray:
    r = np.zeros(n, DTYPE)
    r["timestamp"] = np.arange(start, start + n) + 1
    r["data"] = (r["timestamp"] * 0.5)[:, None]
    return r


def send_forever(endpoint: str, start: int, block: int, written: Any, window_hint: int = 0
                 ) -> None:
    """Write blocks of consecutive rows from ``start`` until killed; count rows in
    ``written`` (a shared int) after each write returns."""
    from shmpipe.net import NetOutputPipe

    async def main() -> None:
        out = NetOutputPipe(endpoint, LAYOUT, timeout=T_CHILD, heartbeat=0.1)
        i = start
        blk = rows(0, block)
        while True:
            blk["timestamp"] = np.arange(i, i + block) + 1
            await out.write(blk)
            i += block
            written.value = i - start

    asyncio.run(main())


def send_n(endpoint: str, start: int, n: int, block: int) -> None:
    """Write rows ``start..start+n`` in blocks, then close (the end of the stream)."""
    from shmpipe.net import NetOutputPipe

    async def main() -> None:
        out = NetOutputPipe(endpoint, LAYOUT, timeout=T_CHILD, heartbeat=0.1)
        for i in range(start, start + n, block):
            await out.write(rows(i, min(block, start + n - i)))
        await out.close()

    asyncio.run(main())


def receive(endpoint: str, q: Any, window: int = 2**24, stall_after: int | None = None
            ) -> None:
    """Bind ``endpoint`` and put ``(timestamps, end_of_interval)`` of every read on ``q``,
    then ``None`` at the end of the stream. With ``stall_after``, stop reading (and wait to be
    killed) once that many rows were read."""
    from shmpipe.net import NetInputPipe

    async def main() -> None:
        inp = NetInputPipe(endpoint, LAYOUT, window=window)
        n = 0
        try:
            while True:
                if stall_after is not None and n >= stall_after:
                    await asyncio.sleep(T_CHILD)
                    break
                try:
                    d = await asyncio.wait_for(inp.read(), T_CHILD)
                except EmptyPipeError:
                    break
                q.put((np.array(d["timestamp"]), bool(d.end_of_interval)))
                inp.consume(len(d))
                n += len(d)
        finally:
            q.put(None)
            await inp.close()

    asyncio.run(main())


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def shared_counter() -> Any:
    return multiprocessing.get_context("spawn").Value("q", 0)


def run_bridge(argv: list[str]) -> None:
    """``shmpipe bridge ARGV...`` as the command runs it (exits with its code)."""
    import argparse
    import logging

    from shmpipe.cli import bridge as bridge_cli

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    parser = argparse.ArgumentParser(prog="shmpipe")
    bridge_cli.register(parser.add_subparsers())
    args = parser.parse_args(["bridge", *argv])
    sys.stdout.flush()
    os._exit(args.func(args))
