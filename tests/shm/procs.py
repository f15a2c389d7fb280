"""Child-process entry points and shared helpers for the cross-process shm tests.

Every entry point is a module-level function so that ``spawn`` and ``forkserver`` children can
import it. A child reports through a ``multiprocessing`` queue: ``("ok", result)`` or
``("error", traceback)``; every wait inside a child is bounded, so a hang becomes a reported
error instead of a stuck test.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import queue
import time
import traceback
from collections.abc import Coroutine
from typing import Any

import numpy as np

import shmpipe
from shmpipe import EmptyPipeError, PipeError

LAYOUT = "float64_2"
DTYPE = shmpipe.compute_dtype(LAYOUT)
T_CHILD = 20.0  # bound on any single wait inside a child (seconds)
T_PARENT = 30.0  # bound on waiting for a child's result or signal (seconds)
PARK = 120.0  # a child that waits to be killed sleeps at most this long


# ----------------------------------------------------------------------------- the stream
def data_of(ts: np.ndarray) -> np.ndarray:
    """The data columns of the rows with timestamps ``ts``: derived from them, never constant."""
    t = np.asarray(ts, dtype=np.float64)
    return np.stack([t * 0.5 + 0.25, -t], axis=1)


def rows(start: int, stop: int) -> np.ndarray:
    """Rows ``start..stop-1`` of the reference stream (timestamp = row number)."""
    r = np.empty(stop - start, DTYPE)
    r["timestamp"] = np.arange(start, stop, dtype=np.int64)
    r["data"] = data_of(r["timestamp"])
    return r


def fill(view: np.ndarray, start: int) -> None:
    """Fill a reserved structured view in place with the reference rows from ``start``."""
    ts = np.arange(start, start + len(view), dtype=np.int64)
    view["timestamp"] = ts
    view["data"] = data_of(ts)


def check_stream(res: dict[str, Any], start: int, stop: int) -> None:
    """``res`` (a consumer's report) holds exactly rows ``start..stop-1``, in order, intact."""
    ts, data = res["ts"], res["data"]
    assert len(ts) == stop - start, f"got {len(ts)} rows, expected {stop - start}"
    np.testing.assert_array_equal(ts, np.arange(start, stop, dtype=np.int64))
    np.testing.assert_array_equal(data, data_of(ts))


# ----------------------------------------------------------------------------- plumbing
def _report(q: Any, coro: Coroutine[Any, Any, Any]) -> None:
    try:
        result = asyncio.run(coro)
    except BaseException:
        q.put(("error", traceback.format_exc()))
    else:
        q.put(("ok", result))


def result(q: Any, timeout: float = T_PARENT) -> Any:
    """The result a child put on ``q``; AssertionError with the child's traceback if it
    failed, or if nothing came within ``timeout`` seconds."""
    try:
        kind, payload = q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no result from the child within {timeout} s") from None
    if kind == "error":
        raise AssertionError("the child failed:\n" + payload)
    return payload


async def aresult(q: Any, timeout: float = T_PARENT) -> Any:
    """:func:`result` without blocking the event loop."""
    return await asyncio.to_thread(result, q, timeout)


def wait(ev: Any, what: str, timeout: float = T_PARENT) -> None:
    """Wait for a multiprocessing Event; AssertionError naming ``what`` on timeout."""
    if not ev.wait(timeout):
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def await_event(ev: Any, what: str, timeout: float = T_PARENT) -> None:
    """:func:`wait` without blocking the event loop."""
    await asyncio.to_thread(wait, ev, what, timeout)


async def read(inp: Any, timeout: float = T_CHILD) -> np.ndarray:
    """``await inp.read()`` bounded by ``timeout`` (TimeoutError names the position)."""
    try:
        return await asyncio.wait_for(inp.read(), timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"read() still waiting after {timeout} s") from None


def cpu_ticks(pid: int) -> int:
    """utime + stime of process ``pid`` in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def ring_rows(requested: int) -> int:
    """The capacity a pipe of LAYOUT gets when ``requested`` rows are asked (whole pages)."""
    size = DTYPE.itemsize
    return -(-requested * size // mmap.PAGESIZE) * mmap.PAGESIZE // size


def shm_entries(name: str) -> list[str]:
    """Entries of /dev/shm whose names contain pipe ``name``."""
    return sorted(e for e in os.listdir("/dev/shm") if name in e)


# ----------------------------------------------------------------------------- writers
async def _run_plan(out: Any, plan: list[tuple[Any, ...]], events: list[Any]) -> dict[str, Any]:
    """Run a writer's plan. Steps:

    ("write", start, stop, block)    write rows start..stop-1 in blocks of ``block``
    ("reserve", start, stop, block)  the same through reserve(block) + fill + commit(k)
    ("reserve_only", start, n)       reserve and fill n rows, never commit them
    ("interval",)                    close_interval()
    ("expect_full", ts)              write_nowait(one row) must be refused (noted)
    ("set", i) / ("wait", i)         set / wait for events[i]
    ("stats",)                       note a stats() snapshot
    ("close",)                       close the end
    ("park",)                        sleep until killed
    """
    notes: list[Any] = []
    for step in plan:
        op = step[0]
        if op == "write":
            _, start, stop, block = step
            for i in range(start, stop, block):
                await asyncio.wait_for(out.write(rows(i, min(i + block, stop))), T_CHILD)
        elif op == "reserve":
            _, start, stop, block = step
            for i in range(start, stop, block):
                k = min(block, stop - i)
                view = await asyncio.wait_for(out.reserve(block), T_CHILD)
                fill(view[:k], i)
                await out.commit(k)
        elif op == "reserve_only":
            _, start, n = step
            view = await asyncio.wait_for(out.reserve(n), T_CHILD)
            fill(view, start)
        elif op == "interval":
            await asyncio.wait_for(out.close_interval(), T_CHILD)
        elif op == "expect_full":
            try:
                out.write_nowait(rows(step[1], step[1] + 1))
            except PipeError as e:
                notes.append(("refused", str(e)))
            else:
                notes.append(("accepted", None))
        elif op == "set":
            events[step[1]].set()
        elif op == "wait":
            if not await asyncio.to_thread(events[step[1]].wait, T_CHILD):
                raise TimeoutError(f"writer: event {step[1]} not set within {T_CHILD} s")
        elif op == "stats":
            notes.append(("stats", out.stats()))
        elif op == "close":
            await out.close()
        elif op == "park":
            time.sleep(PARK)
        else:
            raise ValueError(f"unknown plan step {step!r}")
    return {"pid": os.getpid(), "notes": notes, "capacity": out.capacity}


def producer(
    name: str, capacity: int | None, plan: list[tuple[Any, ...]], events: list[Any], q: Any
) -> None:
    """Open the output end of ``name`` (creating the pipe) and run ``plan``."""

    async def main() -> dict[str, Any]:
        out = shmpipe.open_output(name, LAYOUT, capacity)
        return await _run_plan(out, plan, events)

    _report(q, main())


def producer_with(out: Any, plan: list[tuple[Any, ...]], events: list[Any], q: Any) -> None:
    """Run ``plan`` on an output end handed over by the parent."""
    _report(q, _run_plan(out, plan, events))


# ----------------------------------------------------------------------------- readers
async def _consume(
    inp: Any,
    *,
    piece: int | None = None,
    expect: int | None = None,
    pause: float = 0.0,
    timeout: float = T_CHILD,
    took: Any = None,
    checkpoint: tuple[int, Any, Any] | None = None,
) -> dict[str, Any]:
    """Read until EmptyPipeError (or ``expect`` rows), consuming at most ``piece`` rows of
    each read. Records the rows, where reads ended with end_of_interval (rows consumed then;
    only when the whole read was consumed), where reads ended, and the largest distance
    between the write cursor and this reader's published position.

    ``took`` is set after the first read. ``checkpoint=(n, reached, resume)``: once exactly
    ``n`` rows are consumed, set ``reached`` and wait for ``resume`` before reading on.
    """
    blocks: list[np.ndarray] = []
    eoi: list[int] = []
    read_ends: list[int] = []
    got = max_lag = 0
    ended = False
    while expect is None or got < expect:
        if checkpoint is not None and got == checkpoint[0]:
            checkpoint[1].set()
            if not await asyncio.to_thread(checkpoint[2].wait, T_CHILD):
                raise TimeoutError("reader: resume event not set")
            checkpoint = None
        start = got
        try:
            d = await read(inp, timeout)
        except EmptyPipeError:
            ended = True
            break
        max_lag = max(max_lag, inp.stats()["write"] - start)
        n = len(d)
        k = n if piece is None else min(n, piece)
        if expect is not None:
            k = min(k, expect - got)
        if checkpoint is not None:
            k = min(k, checkpoint[0] - got)
        blocks.append(np.array(d[:k]))
        inp.consume(k)
        got += k
        if k == n:
            read_ends.append(got)
            if d.end_of_interval:
                eoi.append(got)
        if took is not None:
            took.set()
            took = None
        if pause:
            await asyncio.sleep(pause)
    cat = np.concatenate(blocks) if blocks else np.empty(0, DTYPE)
    return {
        "pid": os.getpid(),
        "ts": cat["timestamp"].copy(),
        "data": cat["data"].copy(),
        "eoi": eoi,
        "read_ends": read_ends,
        "ended": ended,
        "max_lag": max_lag,
        "stats": inp.stats(),
        "capacity": inp.capacity,
    }


def consumer(
    name: str,
    q: Any,
    *,
    layout: str | None = None,
    attach: bool = False,
    ready: Any = None,
    go: Any = None,
    piece: int | None = None,
    expect: int | None = None,
    pause: float = 0.0,
    timeout: float = T_CHILD,
    checkpoint: tuple[int, Any, Any] | None = None,
) -> None:
    """Open an input end of ``name`` and consume the stream (see :func:`_consume`).

    ``attach``: take the reader slot at once with ``read_nowait()`` (its row count is
    reported as ``attach_rows``; those rows, unconsumed, come again with the first read).
    ``ready`` is set once the end is open (and attached); ``go`` is awaited before reading.
    """

    async def main() -> dict[str, Any]:
        inp = shmpipe.open_input(name, layout)
        attach_rows = len(inp.read_nowait()) if attach else None
        if ready is not None:
            ready.set()
        if go is not None and not await asyncio.to_thread(go.wait, T_CHILD):
            raise TimeoutError("reader: go event not set")
        res = await _consume(
            inp, piece=piece, expect=expect, pause=pause, timeout=timeout, checkpoint=checkpoint
        )
        res["attach_rows"] = attach_rows
        await inp.close()
        return res

    _report(q, main())


def first_reader(name: str, q: Any, before: int, extra: int) -> None:
    """Consume whole reads until at least ``before`` rows, then read once more and consume only
    ``extra`` rows of it, then close: a reader that stops part-way."""

    async def main() -> dict[str, Any]:
        inp = shmpipe.open_input(name)
        res = await _consume(inp, expect=before)
        got = len(res["ts"])
        d = await read(inp)
        k = min(extra, len(d))
        tail = np.array(d[:k])
        inp.consume(k)
        await inp.close()
        res["ts"] = np.concatenate([res["ts"], tail["timestamp"]])
        res["data"] = np.concatenate([res["data"], tail["data"]])
        res["last_read"] = (got, len(d))
        return res

    _report(q, main())


def idle_reader(name: str, ready: Any, q: Any, sync: bool) -> None:
    """Attach, signal, then wait in one ``read()`` (or ``read_sync``) on an empty pipe."""

    async def main() -> int:
        inp = shmpipe.open_input(name)
        assert len(inp.read_nowait()) == 0
        ready.set()
        if sync:
            d = inp.read_sync(timeout=T_CHILD)
        else:
            d = await read(inp)
        n = len(d)
        inp.consume(n)
        await inp.close()
        return n

    _report(q, main())


def stuck_reader(name: str, ready: Any) -> None:
    """Attach a reader slot, signal, and never consume (until killed)."""
    inp = shmpipe.open_input(name)
    inp.read_nowait()
    ready.set()
    time.sleep(PARK)


def lock_holder(name: str, ready: Any) -> None:
    """Take the pipe's header lock, signal, and keep it (until killed)."""
    inp = shmpipe.open_input(name)
    inp.segment.acquire()
    ready.set()
    time.sleep(PARK)


# ----------------------------------------------------------------------------- handed-over ends
def filter_child(inp_a: Any, out_b: Any, n: int, offset: int, took: Any, q: Any,
                 checked: Any) -> None:
    """A module between two pipes, with both ends handed over by the parent: read ``n`` rows of
    A, check them, and write them to B with timestamps shifted by ``offset``. ``took`` is set
    after the first write to B (both ends used); the ends are closed once ``checked`` is set
    (the parent has looked at the pipes while the child held them)."""

    async def main() -> dict[str, Any]:
        got = 0
        first = True
        while got < n:
            d = await read(inp_a)
            k = min(len(d), n - got)
            block = np.array(d[:k])
            np.testing.assert_array_equal(block["timestamp"], np.arange(got, got + k))
            np.testing.assert_array_equal(block["data"], data_of(block["timestamp"]))
            await asyncio.wait_for(out_b.write(rows(offset + got, offset + got + k)), T_CHILD)
            inp_a.consume(k)
            got += k
            if first:
                took.set()
                first = False
        stats = inp_a.stats()
        await await_event(checked, "the parent to look at the pipes")
        await inp_a.close()
        await out_b.close()
        return {"pid": os.getpid(), "a_stats": stats}

    _report(q, main())


def handed_reader(inp: Any, n: int, took: Any, q: Any) -> None:
    """Consume ``n`` rows from a handed-over input end; ``took`` is set after the first read."""

    async def main() -> dict[str, Any]:
        res = await _consume(inp, expect=n, took=took)
        await inp.close()
        return res

    _report(q, main())


def durable_writer(name: str, start: int, stop: int, wrote: Any, close: bool) -> None:
    """Write rows ``start..stop-1`` into durable pipe ``name``, set ``wrote``, then close
    (``close``) or wait to be killed."""
    async def main() -> None:
        out = shmpipe.open_output(name, LAYOUT)
        await out.write(rows(start, stop))
        wrote.set()
        if close:
            await out.close()
        else:
            await asyncio.sleep(PARK)

    asyncio.run(main())


def durable_reader(name: str, key: str, consume: int, q: Any) -> None:
    """Open ``name`` as durable reader ``key``, read, consume ``consume`` rows, report the
    first timestamp it saw and what it consumed, then wait to be killed."""
    async def main() -> None:
        inp = shmpipe.open_input(name, LAYOUT, key=key)
        data = await read(inp)
        inp.consume(consume)
        inp.read_nowait()  # publishes the consumed position (as the next read does)
        q.put(("ok", (int(data["timestamp"][0]), consume)))
        await asyncio.sleep(PARK)

    asyncio.run(main())
