"""``python -m bench.percall``: µs per 1-row ``write`` + ``read`` + ``consume`` through one
shm pipe, both ends in one process (no wake-ups: the cost of the calls themselves).

Prints the median of 5 rounds of 20k calls. Run it against two trees to compare them, e.g.
``PYTHONPATH=<tree> python -m bench.percall`` alternately for each.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import numpy as np

import shmpipe

CALLS, ROUNDS = 20_000, 5


async def per_call() -> float:
    name = f"percall-{os.getpid()}"
    out = shmpipe.open_output(name, "float32_8")
    inp = shmpipe.open_input(name)
    row = np.zeros(1, out.dtype)
    rounds = []
    try:
        for r in range(ROUNDS):
            start = time.perf_counter()
            for i in range(CALLS):
                row["timestamp"] = r * CALLS + i
                await out.write(row)
                data = await inp.read()
                inp.consume(len(data))
            rounds.append((time.perf_counter() - start) / CALLS * 1e6)
    finally:
        await inp.close()
        await out.close()
        shmpipe.unlink(name)
    return statistics.median(rounds)


if __name__ == "__main__":
    print(f"1-row write + read + consume, one process: {asyncio.run(per_call()):.2f} µs per call")
