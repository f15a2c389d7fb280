"""Child processes for the command tests: a pipe pumped by a writer and read by a reader."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

import shmpipe

PARK = 120.0  # a child never outlives a test by more than this (seconds)


def pump(name: str, capacity: int, read_pause: float, ready: Any) -> None:
    """A writer and a reader of pipe ``name`` in one process; the reader sleeps
    ``read_pause`` seconds after each read (a slow consumer holds the writer back)."""

    async def main() -> None:
        out = shmpipe.open_output(name, "float32_1", capacity=capacity)
        inp = shmpipe.open_input(name)
        block = np.zeros((100, 2))

        async def write() -> None:
            t = 0
            while True:
                block[:, 0] = np.arange(t, t + 100)
                await out.write(block)
                t += 100

        async def read() -> None:
            while True:
                data = await inp.read()
                inp.consume(len(data))
                await asyncio.sleep(read_pause)

        tasks = [asyncio.ensure_future(write()), asyncio.ensure_future(read())]
        await asyncio.sleep(0.3)
        ready.set()
        await asyncio.wait(tasks, timeout=PARK)

    asyncio.run(main())


def orphan(name: str, ready: Any) -> None:
    """Write rows nobody reads, then wait to be killed (SIGKILL leaves the pipe behind)."""
    out = shmpipe.open_output(name, "float32_1")
    asyncio.run(out.write(np.zeros((10, 2))))
    ready.set()
    time.sleep(PARK)
