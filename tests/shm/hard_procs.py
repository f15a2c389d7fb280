"""Child-process entry points for test_hardening.py (importable by spawn children)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any

import numpy as np
from procs import LAYOUT, T_CHILD, _report, data_of, read, rows

import shmpipe
from shmpipe import EmptyPipeError, PipeError

NOBODY = 65534


def _exit(q: Any) -> None:
    """Leave a forked child at once, after what it put on ``q`` has been sent."""
    q.close()
    q.join_thread()
    os._exit(0)


def become_nobody() -> None:
    """Drop root for the rest of this (forked) process."""
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)


def stopped_holder(name: str, inside: bool, ready: Any, q: Any) -> None:
    """Take the header mutex and stop (SIGSTOP) while holding it; when continued, release
    and report. With ``inside``, stop between taking the OFD mutex and the semaphore (the
    window where a pid-recording lock could not name its holder)."""
    try:
        inp = shmpipe.open_input(name)
        seg = inp.segment
        if inside:
            enter = seg._enter

            def stop_then_enter() -> None:
                seg._enter = enter  # type: ignore[method-assign]  # once
                ready.set()
                os.kill(os.getpid(), signal.SIGSTOP)
                enter()

            seg._enter = stop_then_enter  # type: ignore[method-assign]
            seg.acquire()
        else:
            seg.acquire()
            ready.set()
            os.kill(os.getpid(), signal.SIGSTOP)
        value = seg.sem.value
        seg.release()
        q.put(("ok", value))
        asyncio.run(inp.close())
    except BaseException as e:
        q.put(("error", repr(e)))


def signalled_writer(name: str, n: int, ready: Any, q: Any) -> None:
    """Write ``n`` rows in small blocks into a small ring while SIGUSR1 rains on us."""
    signal.signal(signal.SIGUSR1, lambda *a: None)

    async def main() -> int:
        out = shmpipe.open_output(name, LAYOUT, capacity=64)
        ready.set()
        i = 0
        while i < n:
            k = min(7, n - i)
            await asyncio.wait_for(out.write(rows(i, i + k)), T_CHILD)
            i += k
            if i % 700 == 0:
                await out.close_interval()
        await out.close()
        return i

    _report(q, main())
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # exiting would reset the handler to SIG_DFL


def signalled_reader(name: str, n: int, ready: Any, q: Any) -> None:
    """Read and check rows while SIGUSR1 rains on us; stop after ``n`` rows (closing)."""
    signal.signal(signal.SIGUSR1, lambda *a: None)

    async def main() -> int:
        inp = shmpipe.open_input(name, LAYOUT, capacity=64)
        ready.set()
        got = 0
        while got < n:
            d = await read(inp)
            np.testing.assert_array_equal(d["timestamp"], np.arange(got, got + len(d)))
            np.testing.assert_array_equal(d["data"], data_of(d["timestamp"]))
            got += len(d)
            inp.consume(len(d))
        await inp.close()
        return got

    _report(q, main())
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # exiting would reset the handler to SIG_DFL


def sigpipe_writer(name: str, step: Any, q: Any) -> None:
    """A writer with SIGPIPE at its default action (as CLI tools set it for ``| head``).
    Writes one row each time ``step`` is set (and cleared by the parent), 20 times."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    async def main() -> int:
        out = shmpipe.open_output(name, LAYOUT, capacity=1000)
        for i in range(20):
            while not step.is_set():
                await asyncio.sleep(0.005)
            step.clear()
            await out.write(rows(i, i + 1))
        await out.close()
        return 20

    _report(q, main())


def sleepy_reader(name: str, q: Any) -> None:
    """Read rows one by one (sleeping on the doorbell in between), reporting each."""

    async def main() -> None:
        inp = shmpipe.open_input(name, LAYOUT, capacity=1000)
        q.put(("attached", inp._role.slot))
        while True:
            d = await read(inp, 60)
            inp.consume(len(d))
            q.put(("row", int(d["timestamp"][-1])))

    try:
        asyncio.run(main())
    except BaseException as e:
        q.put(("error", repr(e)))


def latency_reader(inp: Any, n: int, q: Any) -> None:
    """Read ``n`` one-row blocks whose data[0] is the CLOCK_MONOTONIC time of the write;
    report each row's wake-up latency and our doorbell's path."""

    async def main() -> dict[str, Any]:
        lat = []
        q.put(("bell", inp._role.bell.path))
        for _ in range(n):
            d = await read(inp)
            now = time.monotonic()
            lat += [now - float(t) for t in d["data"][:, 0]]
            inp.consume(len(d))
        await inp.close()
        return {"latency": lat}

    _report(q, main())


def as_nobody_reader_then_wait(name: str, go: Any, q: Any) -> None:
    """As user nobody: read and consume everything of pipe ``name`` (root's), close it (the
    last end: the unlink is refused), report, then stay alive until ``go``."""
    try:
        become_nobody()

        async def main() -> int:
            inp = shmpipe.open_input(name)
            d = await read(inp)
            inp.consume(len(d))
            with contextlib.suppress(EmptyPipeError):
                await read(inp, 5)
            await inp.close()
            return len(d)

        q.put(("ok", asyncio.run(main())))
    except BaseException as e:
        q.put(("error", repr(e)))
    go.wait(30)
    _exit(q)


def as_nobody_writer(name: str, mode: int, step: Any, n: int, q: Any) -> None:
    """As user nobody: create pipe ``name`` with ``mode`` and write ``n`` rows whose data[0]
    is the write time, one each time ``step`` is set; then close."""
    try:
        become_nobody()

        async def main() -> None:
            out = shmpipe.open_output(name, LAYOUT, capacity=1000, mode=mode)
            q.put(("ok", "open"))
            for i in range(n):
                while not step.is_set():
                    await asyncio.sleep(0.002)
                step.clear()
                r = rows(i, i + 1)
                r["data"][:, 0] = time.monotonic()
                await out.write(r)
            await out.close()

        asyncio.run(main())
        q.put(("ok", "done"))
    except BaseException as e:
        q.put(("error", repr(e)))
    _exit(q)


def forked_write(out: Any, q: Any) -> None:
    """Inherit ``out`` through fork and try to write rows 100..103."""
    try:
        out.write_nowait(rows(100, 104))
        q.put(("ok", "wrote"))
    except PipeError as e:
        q.put(("ok", f"PipeError: {e}"))
    except BaseException as e:
        q.put(("error", repr(e)))
    _exit(q)


def forked_close(inp: Any, q: Any) -> None:
    """Inherit ``inp`` through fork, never use it, close it, exit."""
    try:
        asyncio.events._set_running_loop(None)
        asyncio.run(inp.close())
        q.put(("ok", None))
    except BaseException as e:
        q.put(("error", repr(e)))
    _exit(q)



# ----------------------------------------------------------------------------- the stress test
STRESS_RING = 256


def stress_writer(name: str, stop: Any, q: Any) -> None:
    """Write rows whose timestamp is their stream position (row ``p`` has timestamp ``p``)
    in random blocks, with interval breaks, until ``stop``; then close. A restarted writer
    takes over at the write position, so positions stay the timestamps."""
    import random

    async def main() -> int:
        out = shmpipe.open_output(name, LAYOUT, capacity=STRESS_RING)
        pos = out.stats()["write"]
        while not stop.is_set():
            k = random.randint(1, 60)
            await asyncio.wait_for(out.write(rows(pos, pos + k)), 60)
            pos += k
            if random.random() < 0.05:
                await out.close_interval()
            if random.random() < 0.1:
                await asyncio.sleep(0.001)
        await out.close()
        return pos

    _report(q, main())


def stress_reader(name: str, stop: Any, q: Any) -> None:
    """Read and check every row (consecutive timestamps, data derived from them) until the
    stream ends after ``stop``; reopen whenever the stream ends before (the writer died).
    Reports (rows checked, last timestamp of the last session or None)."""

    async def main() -> tuple[int, int | None]:
        total = 0
        last: int | None = None
        while True:
            try:
                inp = shmpipe.open_input(name, wait=20)
            except PipeError:
                if stop.is_set():
                    return total, None
                raise
            last = None
            try:
                while True:
                    d = await asyncio.wait_for(inp.read(), 60)
                    ts = d["timestamp"]
                    first = int(ts[0]) if len(ts) else None
                    if last is not None and first is not None and first != last + 1:
                        raise AssertionError(f"gap or duplicate: {last} then {first}")
                    np.testing.assert_array_equal(ts, np.arange(ts[0], ts[0] + len(ts))
                                                  if len(ts) else ts)
                    np.testing.assert_array_equal(d["data"], data_of(ts))
                    if len(ts):
                        last = int(ts[-1])
                    total += len(ts)
                    inp.consume(len(ts))
            except EmptyPipeError:
                pass
            finally:
                await inp.close()
            if stop.is_set():
                return total, last

    _report(q, main())


def forked_write_twice(out: Any, go: Any, q: Any) -> None:
    """Inherit ``out`` through fork: try to write rows 100..103, report; once ``go`` is set,
    try again and report."""
    for attempt in range(2):
        if attempt:
            go.wait(30)
        try:
            out.write_nowait(rows(100, 104))
            q.put(("ok", "wrote"))
        except PipeError as e:
            q.put(("ok", f"PipeError: {e}"))
        except BaseException as e:
            q.put(("error", repr(e)))
    _exit(q)


def reader_that_dies(name: str, q: Any) -> None:
    """Open an input end (which makes its doorbell), report the doorbell, die unclosed."""
    try:
        inp = shmpipe.open_input(name)
        q.put(("ok", inp._role.bell.path))
    except BaseException as e:
        q.put(("error", repr(e)))
    _exit(q)


def lock_churner(name: str, stop: Any, ready: Any) -> None:
    """Hold pipe ``name``'s header mutex 2 ms out of every 3 until ``stop``, so that the ends
    of the pipe keep waiting for it (the slow path where a signal used to surface)."""
    from shmpipe.shm import segment

    seg, _ = segment.open_segment(name, None, None)
    seg.release()
    ready.set()
    while not stop.is_set():
        seg.acquire()
        time.sleep(0.002)
        seg.release()
        time.sleep(0.001)
    seg.close()
