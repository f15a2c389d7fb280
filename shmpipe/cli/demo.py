"""``shmpipe demo [--seconds N]``: three processes chained by shared-memory pipes.

A sensor -> mean filter -> sink pipeline: the sensor fills rows in place in the ring (zero-copy
reserve/commit) and breaks the interval every second, the filter reads zero-copy views and
writes its result, the sink checks every row. The main process shows rows/s, fill and lag of
both pipes while it runs (read from the pipes' headers), then checks that every row arrived
once and in order. Ctrl-C stops the three stages, removes the pipes and prints one line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import wait
from typing import Any

import numpy as np

import shmpipe

from ..shm import survey
from . import show

ROWS = 5000  # rows per block
T0 = 1_700_000_000_000_000
ROWS_IN, INTERVALS_IN, NANOS, SENT = range(4)  # the stages' shared counters


async def sensor(raw: str, filtered: str, seconds: float, counters: Any) -> None:
    """Send blocks for ``seconds``, an interval break every second; count them in SENT."""
    out = shmpipe.open_output(raw, "float32_8")
    async with out:
        start = time.monotonic()
        next_break = start + 1.0
        b = 0
        while time.monotonic() - start < seconds:
            rows = await out.reserve(ROWS)  # a writable view into the ring
            ts = T0 + np.arange(b * ROWS, (b + 1) * ROWS, dtype=np.int64) * 1000
            rows["timestamp"] = ts
            rows["data"] = (ts[:, None] % 1000).astype(np.float32)
            await out.commit(ROWS)
            b += 1
            counters[SENT] = b * ROWS
            if time.monotonic() >= next_break:
                next_break += 1.0
                await out.close_interval()  # a gap in the data
            await asyncio.sleep(0)  # let a SIGTERM in even while the ring never fills


async def mean_filter(raw: str, filtered: str, seconds: float, counters: Any) -> None:
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
            if getattr(data, "end_of_interval", False):
                await out.close_interval()


async def sink(raw: str, filtered: str, seconds: float, counters: Any) -> None:
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
            expected += 1000 * len(ts)
            total += len(ts)
            intervals += bool(getattr(data, "end_of_interval", False))
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


def watch(procs: list[Any], pipes: tuple[str, ...], counters: Any, started: float) -> None:
    """Until every stage has exited (or one failed): every second, show rows/s through the
    pipeline and each pipe's fill and reader lag (read from the pipes' headers)."""
    live = sys.stdout.isatty()
    running = list(procs)
    last, last_rows = time.monotonic(), 0
    seen: set[str] = set()  # the pipes that existed once (gone again at the end)
    while running and not any(p.exitcode for p in procs):
        wait([p.sentinel for p in running], timeout=max(0.0, last + 1.0 - time.monotonic()))
        running = [p for p in running if p.is_alive()]
        now = time.monotonic()
        if now - last < 1.0 or not running:
            continue
        rows = counters[ROWS_IN]
        parts = [f"{now - started:5.1f} s  {show.count((rows - last_rows) / (now - last))}"
                 " rows/s"]
        for name, info in zip(pipes, (survey(n) for n in pipes), strict=True):
            short = name.split("-")[1]
            if not info.problem:
                seen.add(name)
                lag = max((r.lag for r in info.readers), default=0)
                parts.append(f"{short}: fill {info.fill:4.0%} lag {lag:>6}")
            elif not info.bytes and name not in seen:  # its processes are still starting
                parts.append(f"{short}: starting")
        line = "  |  ".join(parts)
        print(("\r" + line + "\x1b[K") if live else line, end="" if live else "\n",
              flush=True)
        last, last_rows = now, rows
    if live:
        print()


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="three processes chained by shared-memory pipes, checked row by row",
        description=__doc__.splitlines()[0].split(": ", 1)[1].capitalize()
        + ": a sensor, a mean filter and a sink that checks every row; live rows/s, fill "
          "and lag, then a summary. Ctrl-C stops it with a one-line summary.")
    p.add_argument("--seconds", type=float, default=10.0, metavar="N",
                   help="how long the sensor sends (default: %(default)s)")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if not args.seconds > 0:
        raise shmpipe.PipeError(f"--seconds must be > 0, got {args.seconds}")
    pipes = raw, filtered = f"demo-raw-{os.getpid()}", f"demo-filtered-{os.getpid()}"
    ctx = mp.get_context("spawn")
    counters = ctx.RawArray("q", 4)  # written by the stages, read here
    # start order does not matter: a pipe keeps its rows until its first reader attaches
    procs = [ctx.Process(target=run, args=(stage, raw, filtered, args.seconds, counters))
             for stage in ("sink", "mean_filter", "sensor")]
    started = time.monotonic()
    interrupted = False
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: KeyboardInterrupt
        start_with_sigint_blocked(procs)
        print(f"sensor -> mean filter -> sink: 3 processes, shared-memory pipes {raw} and "
              f"{filtered}; Ctrl-C stops", flush=True)
        watch(procs, pipes, counters, started)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        stop(procs)
        for name in pipes:
            shmpipe.unlink(name)
    if interrupted:
        print(f"\ninterrupted: {counters[ROWS_IN]} rows reached the sink "
              f"in {time.monotonic() - started:.1f} s", flush=True)
        return 130
    if any(p.exitcode for p in procs):
        raise shmpipe.PipeError("a stage failed (its traceback is above)")
    total, intervals, secs = counters[ROWS_IN], counters[INTERVALS_IN], counters[NANOS] / 1e9
    if total != counters[SENT]:
        raise shmpipe.PipeError(f"the sink received {total} rows, the sensor sent "
                                f"{counters[SENT]}")
    print(f"sink received {total} rows in {intervals} intervals, each once and in order, "
          f"{total / secs / 1e6:.1f} M rows/s through 2 shared-memory pipes and 3 processes")
    print("left in /dev/shm:", left_in_dev_shm(pipes) or "nothing")
    return 0
