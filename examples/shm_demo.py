"""Three processes chained by shared-memory pipes: sensor -> mean filter -> sink.

    python examples/shm_demo.py [--blocks N]

The sensor fills rows in place in the ring (zero-copy reserve/commit), the filter reads
zero-copy views and writes its result, the sink checks every row and the main process prints
what arrived. Ctrl-C stops the three stages, removes the pipes and prints one line.
"""

from __future__ import annotations

import os
import signal


def interrupted_while_importing(signum: int, frame: object) -> None:
    print("interrupted: 0 rows reached the sink, nothing was started", flush=True)
    os._exit(130)


if __name__ == "__main__":  # imports take a while: a Ctrl-C until main() starts is one line
    signal.signal(signal.SIGINT, interrupted_while_importing)

# ruff: noqa: E402 (the imports below come after that handler on purpose)
import argparse
import asyncio
import contextlib
import multiprocessing as mp
import sys
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import wait
from typing import Any

import numpy as np

import shmpipe

ROWS = 5000  # rows per block
T0 = 1_700_000_000_000_000
ROWS_IN, INTERVALS_IN, NANOS = range(3)  # what the sink reports in its shared counters


async def sensor(raw: str, filtered: str, blocks: int, counters: Any) -> None:
    async with shmpipe.open_output(raw, "float32_8") as out:
        for b in range(blocks):
            rows = await out.reserve(ROWS)  # a writable view into the ring
            ts = T0 + np.arange(b * ROWS, (b + 1) * ROWS, dtype=np.int64) * 1000
            rows["timestamp"] = ts
            rows["data"] = (ts[:, None] % 1000).astype(np.float32)
            await out.commit(ROWS)
            if b == blocks // 2:
                await out.close_interval()  # a gap in the data
            await asyncio.sleep(0)  # let a SIGTERM in even while the ring never fills


async def mean_filter(raw: str, filtered: str, blocks: int, counters: Any) -> None:
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


async def sink(raw: str, filtered: str, blocks: int, counters: Any) -> None:
    """Checks every row; reports its counts in ``counters``, shared with the main process."""
    async with shmpipe.open_input(filtered, "float32_1") as inp:
        total, intervals, expected = 0, 1, T0
        start = time.perf_counter()
        while True:
            try:
                data = await inp.read()
            except shmpipe.EmptyPipeError:
                break
            ts = data["timestamp"]
            if len(ts) and not (ts[0] == expected and (np.diff(ts) == 1000).all()):
                raise RuntimeError(f"rows lost or out of order after timestamp {expected}")
            if not (data["data"][:, 0] == (ts % 1000)).all():
                raise RuntimeError(f"wrong values in the {len(ts)} rows from {ts[0]}")
            if total == 0 and len(ts):
                print(f"rows flowing through shared-memory pipes {raw} and {filtered}, "
                      "Ctrl-C stops", flush=True)
            expected += 1000 * len(ts)
            total += len(ts)
            intervals += bool(data.end_of_interval)
            counters[ROWS_IN], counters[INTERVALS_IN] = total, intervals
            inp.consume(len(data))
        counters[NANOS] = int((time.perf_counter() - start) * 1e9)


STAGES: dict[str, Callable[..., Coroutine[Any, Any, None]]] = {
    "sensor": sensor, "mean_filter": mean_filter, "sink": sink,
}


async def until_terminated(stage: Coroutine[Any, Any, None]) -> None:
    """Run ``stage``; SIGTERM cancels it, so that its ``async with`` closes its pipe ends."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await stage


def run(stage: str, *args: Any) -> None:
    """A child process. Ctrl-C is the main process's business: it stops us with SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # this drops a Ctrl-C pending since we
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # started (blocked till now)
    asyncio.run(until_terminated(STAGES[stage](*args)))


def start_with_sigint_blocked(procs: list[Any]) -> None:
    """Start ``procs`` with SIGINT blocked: a Ctrl-C waits in them until run() ignores it.

    A spawned child inherits the signal mask, not a handler: without this, a Ctrl-C while it
    imports would be a KeyboardInterrupt there. A Ctrl-C meanwhile here is raised afterwards.
    """
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # starting it unblocks SIGINT: get that done first
    caught: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for p in procs:
            p.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, handler)
    if caught:
        raise KeyboardInterrupt


def join_unless_one_fails(procs: list[Any]) -> None:
    """Wait until every stage has exited, or until one has failed."""
    running = list(procs)
    while running and not any(p.exitcode for p in procs):
        wait([p.sentinel for p in running])
        running = [p for p in running if p.is_alive()]


def stop(procs: list[Any]) -> None:
    """SIGTERM to the stages still running, then wait for them (SIGKILL after 5 s)."""
    procs = [p for p in procs if p.pid is not None]  # those started
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(5)
        if p.exitcode is None:
            p.kill()
            p.join()


def left_in_dev_shm(pipes: tuple[str, ...]) -> list[str]:
    """Entries of ``pipes`` still in /dev/shm: segment, semaphore, doorbells."""
    def of_ours(entry: str) -> bool:
        return any(entry in (f"shmpipe.{p}", f"sem.shmpipe.{p}.lock")
                   or entry.startswith(f"shmpipe.{p}.") for p in pipes)
    return sorted(e for e in os.listdir("/dev/shm") if of_ours(e))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=200,
                        help=f"blocks of {ROWS} rows the sensor sends (default: %(default)s)")
    blocks = parser.parse_args().blocks
    if blocks < 1:
        parser.error("--blocks must be at least 1")
    pipes = raw, filtered = f"demo-raw-{os.getpid()}", f"demo-filtered-{os.getpid()}"
    ctx = mp.get_context("spawn")
    counters = ctx.RawArray("q", 3)  # written by the sink, read here
    # start order does not matter: a pipe keeps its rows until its first reader attaches
    procs = [ctx.Process(target=run, args=(stage, raw, filtered, blocks, counters))
             for stage in ("sink", "mean_filter", "sensor")]
    started = time.perf_counter()
    interrupted = False
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: KeyboardInterrupt
        start_with_sigint_blocked(procs)
        join_unless_one_fails(procs)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        stop(procs)
        for name in pipes:
            shmpipe.unlink(name)
    if interrupted:
        print(f"interrupted: {counters[ROWS_IN]} rows reached the sink "
              f"in {time.perf_counter() - started:.1f} s", flush=True)
        sys.exit(130)
    if any(p.exitcode for p in procs):
        sys.exit("a stage failed")
    total, intervals, secs = counters[ROWS_IN], counters[INTERVALS_IN], counters[NANOS] / 1e9
    if total != blocks * ROWS:
        sys.exit(f"the sink received {total} rows, the sensor sent {blocks * ROWS}")
    print(f"sink received {total} rows in {intervals} intervals, all checked, "
          f"{total / secs / 1e6:.1f} M rows/s through 2 shared-memory pipes and 3 processes")
    print("left in /dev/shm:", left_in_dev_shm(pipes) or "nothing")


if __name__ == "__main__":
    main()
