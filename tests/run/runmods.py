"""Modules the pipeline tests run (imported by name in the pipelines' worker processes)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import numpy as np

import shmpipe

LAYOUT = "float32_2"
DTYPE = shmpipe.compute_dtype(LAYOUT)


def rows(start: int, stop: int) -> np.ndarray:
    """Rows ``start..stop-1`` of the reference stream: timestamp = row number."""
    r = np.empty(stop - start, DTYPE)
    r["timestamp"] = np.arange(start, stop)
    r["data"][:, 0] = r["timestamp"] * 0.5
    r["data"][:, 1] = -r["timestamp"]
    return r


async def counter(inputs: dict, outputs: dict, n: int = 1000, block: int = 100,
                  breaks_every: int = 0) -> None:
    """Write rows 0..n-1 in blocks, with a break after every ``breaks_every`` blocks."""
    out = outputs["output"]
    for k, start in enumerate(range(0, n, block)):
        await out.write(rows(start, min(n, start + block)))
        if breaks_every and (k + 1) % breaks_every == 0:
            await out.close_interval()


async def forever(inputs: dict, outputs: dict, block: int = 10) -> None:
    """Write rows until asked to stop (then return), one block per millisecond."""
    out = outputs["output"]
    stop = shmpipe.stop_event()
    start = 0
    while not stop.is_set():
        await out.write(rows(start, start + block))
        start += block
        await asyncio.sleep(0.001)


async def passthrough(inputs: dict, outputs: dict) -> None:
    """Copy rows and breaks from input to output."""
    inp, out = inputs["input"], outputs["output"]
    while True:
        data = await inp.read()
        await out.write(data)
        inp.consume(len(data))
        if inp.end_of_interval:
            await out.close_interval()


async def crash_once(inputs: dict, outputs: dict, marker: str, after: int = 300) -> None:
    """Copy rows like passthrough; in the first run (no ``marker`` file yet) raise once at
    least ``after`` rows are copied and consumed (before passing on a break the last read
    ended at), writing the row count it failed at into ``marker``."""
    await _copy_then(inputs, outputs, marker, after, _raise)


def _raise() -> None:
    raise RuntimeError("crash_once: failing on purpose")


async def _copy_then(inputs: dict, outputs: dict, marker: str, after: int,
                     fail: Callable[[], None]) -> None:
    inp, out = inputs["input"], outputs["output"]
    copied = 0
    while True:
        data = await inp.read()
        await out.write(data)
        inp.consume(len(data))
        copied += len(data)
        if copied >= after and not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(str(copied))
            fail()  # before passing on a break it read: the failure leaves one there
        if inp.end_of_interval:
            await out.close_interval()


async def collect(inputs: dict, outputs: dict, path: str) -> None:
    """Save every row read and the row counts at which breaks came to ``path`` (.npz),
    once the input ends."""
    inp = inputs["input"]
    got: list[np.ndarray] = []
    breaks: list[int] = []
    count = 0
    try:
        while True:
            data = await inp.read()
            got.append(data.copy())
            count += len(data)
            inp.consume(len(data))
            if inp.end_of_interval:
                breaks.append(count)
    except shmpipe.EmptyPipeError:
        pass
    finally:
        rows_ = np.concatenate(got) if got else np.empty(0, DTYPE)
        tmp = path + ".tmp.npz"
        np.savez(tmp, rows=rows_, breaks=np.array(breaks, dtype=np.int64))
        os.replace(tmp, path)


class Doubler(shmpipe.FilterModule):
    """A class filter: doubles the data, keeps timestamps and breaks."""

    def custom_args(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--factor", type=float, default=2.0)

    async def run(self, parsed_args, inputs, outputs):  # type: ignore[no-untyped-def]
        inp, out = inputs["input"], outputs["output"]
        while not self.stop_requested:
            data = await inp.read()
            res = data.copy()
            res["data"] *= parsed_args.factor
            await out.write(res)
            inp.consume(len(data))
            if inp.end_of_interval:
                await out.close_interval()


class Ticker(shmpipe.ReaderModule):
    """A class source: rows until stop_requested."""

    async def run(self, parsed_args, output):  # type: ignore[no-untyped-def]
        start = 0
        while not self.stop_requested:
            await output.write(rows(start, start + 10))
            start += 10
            await asyncio.sleep(0.001)


async def die_once(inputs: dict, outputs: dict, marker: str, after: int = 300) -> None:
    """crash_once, but the process kills itself (SIGKILL) instead of raising."""
    await _copy_then(inputs, outputs, marker, after,
                     lambda: os.kill(os.getpid(), signal.SIGKILL))


async def always_fails(inputs: dict, outputs: dict) -> None:
    """Read one block, then raise (before writing anything to its output)."""
    out = outputs["output"]
    await inputs["input"].read()
    if out.closed:
        return
    raise ValueError("always_fails: failing on purpose")


async def stubborn(inputs: dict, outputs: dict) -> None:
    """Write rows and ignore stop requests (it is cancelled after the grace period) and
    cancellation (it goes on): only a kill stops it. Its input is never read."""
    out, _ = outputs["output"], inputs["input"]
    start = 0
    while True:
        try:
            await out.write(rows(start, start + 10))
            start += 10
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            continue


def noisy_rows(start: int, stop: int, seed: int = 7) -> np.ndarray:
    """Rows ``start..stop-1`` with seeded random data (the same for the same rows)."""
    r = np.empty(stop - start, DTYPE)
    r["timestamp"] = np.arange(start, stop)
    rng = np.random.default_rng(seed)
    r["data"] = rng.normal(size=(stop, 2))[start:].astype(np.float32)
    return r


async def noisy(inputs: dict, outputs: dict, n: int = 1000, block: int = 100,
                breaks_every: int = 0) -> None:
    """counter's blocks and breaks, with noisy data (:func:`noisy_rows` of all n rows)."""
    out = outputs["output"]
    every = noisy_rows(0, n)
    for k, start in enumerate(range(0, n, block)):
        await out.write(every[start:start + block])
        if breaks_every and (k + 1) % breaks_every == 0:
            await out.close_interval()


class SubscribingFanout(shmpipe.CompositeModule):
    """Copies its input to every output by subscribing the others to the first in setup
    (the pattern of Joule's documentation), and fails once, after ``after`` rows, the first
    time (no ``marker`` file yet)."""

    def custom_args(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--marker", required=True)
        parser.add_argument("--after", type=int, default=300)

    async def setup(self, parsed_args, inputs, outputs):  # type: ignore[no-untyped-def]
        first, *others = outputs.values()
        for other in others:
            first.subscribe(other)
        return [self.copy(parsed_args, inputs["input"], first)]

    async def copy(self, args, inp, out):  # type: ignore[no-untyped-def]
        copied = 0
        while True:
            data = await inp.read()
            await out.write(data)
            inp.consume(len(data))
            copied += len(data)
            if copied >= args.after and not os.path.exists(args.marker):
                with open(args.marker, "w") as f:
                    f.write(str(copied))
                raise RuntimeError("SubscribingFanout: failing on purpose")
            if inp.end_of_interval:
                await out.close_interval()


async def logging_passthrough(inputs: dict, outputs: dict) -> None:
    """passthrough, logging one warning first (the runner prefixes it with the module name)."""
    import logging

    logging.getLogger("somewhere").warning("a warning from the module's code")
    await passthrough(inputs, outputs)
