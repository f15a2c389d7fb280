"""Three processes chained by shared-memory pipes: sensor -> mean filter -> sink.

    python examples/shm_demo.py

The sensor fills rows in place in the ring (zero-copy reserve/commit), the filter reads
zero-copy views and writes its result, the sink checks every row and prints what arrived.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time

import numpy as np

import shmpipe

BLOCKS, ROWS = 200, 5000
T0 = 1_700_000_000_000_000


async def sensor(raw: str, filtered: str) -> None:
    async with shmpipe.open_output(raw, "float32_8") as out:
        for b in range(BLOCKS):
            rows = await out.reserve(ROWS)  # a writable view into the ring
            ts = T0 + np.arange(b * ROWS, (b + 1) * ROWS, dtype=np.int64) * 1000
            rows["timestamp"] = ts
            rows["data"] = (ts[:, None] % 1000).astype(np.float32)
            await out.commit(ROWS)
            if b == BLOCKS // 2:
                await out.close_interval()  # a gap in the data


async def mean_filter(raw: str, filtered: str) -> None:
    async with shmpipe.open_input(raw, "float32_8") as inp, \
            shmpipe.open_output(filtered, "float32_1") as out:
        while True:
            try:
                data = await inp.read()  # read-only view, no copy
            except shmpipe.EmptyPipeError:
                break
            result = np.empty(len(data), out.dtype)
            result["timestamp"] = data["timestamp"]
            result["data"][:, 0] = data["data"].mean(axis=1)
            inp.consume(len(data))
            await out.write(result)
            if data.end_of_interval:
                await out.close_interval()


async def sink(raw: str, filtered: str) -> None:
    async with shmpipe.open_input(filtered, "float32_1") as inp:
        total, intervals, expected = 0, 1, T0
        start = time.perf_counter()
        while True:
            try:
                data = await inp.read()
            except shmpipe.EmptyPipeError:
                break
            ts = data["timestamp"]
            assert len(ts) == 0 or (ts[0] == expected and (np.diff(ts) == 1000).all())
            assert (data["data"][:, 0] == (ts % 1000)).all()
            expected += 1000 * len(ts)
            total += len(ts)
            intervals += bool(data.end_of_interval)
            inp.consume(len(data))
        secs = time.perf_counter() - start
    print(f"sink received {total} rows in {intervals} intervals, all checked, "
          f"{total / secs / 1e6:.1f} M rows/s through 2 shared-memory pipes and 3 processes")


def run(fn_name: str, raw: str, filtered: str) -> None:
    asyncio.run(globals()[fn_name](raw, filtered))


def main() -> None:
    raw, filtered = f"demo-raw-{os.getpid()}", f"demo-filtered-{os.getpid()}"
    ctx = mp.get_context("spawn")
    # start order does not matter: a pipe keeps its rows until its first reader attaches
    stages = ("sink", "mean_filter", "sensor")
    procs = [ctx.Process(target=run, args=(f, raw, filtered)) for f in stages]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    finally:
        for name in (raw, filtered):
            shmpipe.unlink(name)
    if any(p.exitcode for p in procs):
        raise SystemExit("a stage failed")
    left = [e for e in os.listdir("/dev/shm") if "demo-" in e and str(os.getpid()) in e]
    print("left in /dev/shm:", left or "nothing")


if __name__ == "__main__":
    main()
