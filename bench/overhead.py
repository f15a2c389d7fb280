"""µs per call of the pipe API in one process (no wake-ups, no second process): what a call
itself costs. Every case runs once per round, the cases round-robin, so that a noisy moment of
the machine hits them all; the figure is the median over the rounds.

``python -m bench --suite overhead --no-write`` prints the table; ``python -m bench.overhead``
does the same without the rest of the harness.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

LAYOUT = "float32_8"
CALLS = 4_000  # calls per case and round (fewer when the ring could not hold the rows)
ROUNDS = 9
TARGETS = {  # case key -> µs per call this machine should reach (issue 12)
    "shm-write-1": 3.0,
    "shm-read-consume": 3.0,
    "local-write-read": 4.0,
}


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    make: Callable[[], Awaitable[Any]]  # -> (timed(calls) -> seconds, close())


def _dtype() -> np.dtype:
    from shmpipe.layout import compute_dtype

    return compute_dtype(LAYOUT)


def _block(n: int) -> np.ndarray:
    rows = np.zeros(n, _dtype())
    rows["timestamp"] = np.arange(n)
    return rows


async def _drain(inp: Any) -> None:
    while True:
        data = inp.read_nowait()
        if len(data) == 0:
            return
        inp.consume(len(data))


_serial = iter(range(1 << 30))


async def _shm_pair(cache: int | None = None) -> tuple[Any, Any, Callable[[], Awaitable[None]]]:
    import shmpipe

    name = f"overhead-{os.getpid()}-{next(_serial)}"
    out = shmpipe.open_output(name, LAYOUT)
    inp = shmpipe.open_input(name)
    if cache:
        out.enable_cache(cache)

    async def close() -> None:
        await inp.close()
        await out.close()
        shmpipe.unlink(name)

    return out, inp, close


def shm_write(n: int) -> Callable[[], Awaitable[Any]]:
    async def make() -> Any:
        out, inp, close = await _shm_pair()
        block = _block(n)
        calls = max(1, min(CALLS, out.capacity // (2 * n)))

        async def timed() -> tuple[float, int]:
            write = out.write
            start = time.perf_counter()
            for _ in range(calls):
                await write(block)
            took = time.perf_counter() - start
            await _drain(inp)
            return took, calls

        return timed, close

    return make


def shm_cached_write(cache: int) -> Callable[[], Awaitable[Any]]:
    async def make() -> Any:
        out, inp, close = await _shm_pair(cache)
        block = _block(1)

        async def timed() -> tuple[float, int]:
            write = out.write
            start = time.perf_counter()
            for _ in range(CALLS):
                await write(block)
            took = time.perf_counter() - start
            await out.flush_cache()
            await _drain(inp)
            return took, CALLS

        return timed, close

    return make


def _timer_cost() -> float:
    """Seconds one perf_counter pair adds to a measured interval."""
    clock = time.perf_counter
    n = 20_000
    start = clock()
    for _ in range(n):
        clock()
        clock()
    return (clock() - start) / n / 2  # a pair inside the loop costs about half of that


def shm_read(nowait: bool) -> Callable[[], Awaitable[Any]]:
    async def make() -> Any:
        out, inp, close = await _shm_pair()
        block = _block(1)
        clock = time.perf_counter
        overhead = _timer_cost()

        async def timed() -> tuple[float, int]:
            total = 0.0
            write, consume = out.write, inp.consume
            for _ in range(CALLS):
                await write(block)
                if nowait:
                    start = clock()
                    data = inp.read_nowait()
                    consume(len(data))
                else:
                    start = clock()
                    data = await inp.read()
                    consume(len(data))
                total += clock() - start
            return max(0.0, total - CALLS * overhead), CALLS

        return timed, close

    return make


def round_trip(make_pipes: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """write 1 row + read + consume on a pipe whose both ends are in this process."""

    async def make() -> Any:
        out, inp, close = await make_pipes()
        block = _block(1)

        async def timed() -> tuple[float, int]:
            write, read, consume = out.write, inp.read, inp.consume
            start = time.perf_counter()
            for _ in range(CALLS):
                await write(block)
                data = await read()
                consume(len(data))
            return time.perf_counter() - start, CALLS

        return timed, close

    return make


async def _local() -> Any:
    from shmpipe import LocalPipe

    pipe = LocalPipe(LAYOUT)

    async def close() -> None:
        await pipe.close()

    return pipe, pipe, close


async def _joule_local() -> Any:
    from joule.models.pipes import LocalPipe

    pipe = LocalPipe(LAYOUT)

    async def close() -> None:
        await pipe.close()

    return pipe, pipe, close


CASES = [
    Case("shm-write-1", "shm `write`, 1 row", shm_write(1)),
    Case("shm-write-10", "shm `write`, 10 rows", shm_write(10)),
    Case("shm-write-100", "shm `write`, 100 rows", shm_write(100)),
    Case("shm-read-consume", "shm `read` + `consume`, 1 row", shm_read(nowait=False)),
    Case("shm-read-nowait", "shm `read_nowait` + `consume`, 1 row", shm_read(nowait=True)),
    Case("shm-cached-write", "shm `write`, 1 row, `enable_cache(1000)`", shm_cached_write(1000)),
    Case("shm-round", "shm `write` + `read` + `consume`, 1 row", round_trip(_shm_pair)),
    Case("local-write-read", "LocalPipe `write` + `read` + `consume`, 1 row", round_trip(_local)),
    Case("joule-local-write-read", "joule 1.0.1 LocalPipe `write` + `read` + `consume`, 1 row",
         round_trip(_joule_local)),
]


async def measure(wanted: Callable[[str], bool], rounds: int = ROUNDS) -> dict[str, Any]:
    """{case key: list of µs per call, one per round, or the error that stopped it}."""
    made: dict[str, Any] = {}
    out: dict[str, Any] = {}
    try:
        for case in CASES:
            if not wanted(case.label):
                continue
            try:
                made[case.key] = await case.make()
                out[case.key] = []
            except Exception as exc:  # a missing peer (joule) is a table cell, not a crash
                out[case.key] = f"not available: {type(exc).__name__}: {exc}"
        for _ in range(rounds):
            for key, (timed, _) in made.items():
                took, calls = await timed()
                out[key].append(took / calls * 1e6)
    finally:
        for _, close in made.values():
            await close()
    return out


def main() -> None:
    res = asyncio.run(measure(lambda label: True))
    for case in CASES:
        runs = res.get(case.key)
        if isinstance(runs, list):
            target = TARGETS.get(case.key)
            goal = f" (target <= {target:g} µs)" if target else ""
            print(f"{case.label:<60} {statistics.median(runs):7.2f} µs{goal}")
        else:
            print(f"{case.label:<60} {runs}")


if __name__ == "__main__":
    main()
