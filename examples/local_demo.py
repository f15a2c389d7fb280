"""Push a sensor-like stream through a chain of LocalPipes and print what arrived.

    python examples/local_demo.py
"""

from __future__ import annotations

import asyncio

import numpy as np

import shmpipe


async def sensor(out: shmpipe.Pipe, blocks: int, rows: int) -> None:
    t0 = 1_700_000_000_000_000
    for b in range(blocks):
        ts = t0 + np.arange(b * rows, (b + 1) * rows) * 1000
        data = np.sin(ts[:, None] / 1e6 + np.arange(3)).astype(np.float32)
        await out.write(np.column_stack([ts, data]))
        if b == blocks // 2:
            await out.close_interval()  # a gap in the data
    await out.close()


async def mean_filter(inp: shmpipe.Pipe, out: shmpipe.Pipe) -> None:
    while True:
        try:
            data = await inp.read()
        except shmpipe.EmptyPipeError:
            break
        inp.consume(len(data))
        result = np.empty(len(data), out.dtype)
        result["timestamp"] = data["timestamp"]
        result["data"][:, 0] = data["data"].mean(axis=1)
        await out.write(result)
        if data.end_of_interval:
            await out.close_interval()
    await out.close()


async def main() -> None:
    raw = shmpipe.LocalPipe("float32_3", name="raw")
    filtered = shmpipe.LocalPipe("float32_1", name="filtered")
    tasks = [asyncio.create_task(sensor(raw, blocks=10, rows=100)),
             asyncio.create_task(mean_filter(raw, filtered))]
    intervals, total = 1, 0
    while True:
        try:
            data = await filtered.read()
        except shmpipe.EmptyPipeError:
            break
        filtered.consume(len(data))
        total += len(data)
        if data.end_of_interval:
            intervals += 1
    await asyncio.gather(*tasks)
    print(f"received {total} rows in {intervals} intervals through 2 LocalPipes")


if __name__ == "__main__":
    asyncio.run(main())
