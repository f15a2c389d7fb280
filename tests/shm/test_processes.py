"""Shared-memory pipes between real processes (shmpipe/shm/ends.py and below).

Children are started with ``multiprocessing`` (``spawn`` unless a test says otherwise); their
entry points live in ``procs.py``. Hand-shakes use multiprocessing Events and Queues, and every
wait is bounded, so a hang fails the test instead of blocking it. Capacities are small (about
a thousand rows) so that the ring wraps many times with little data.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from typing import Any

import numpy as np
import procs
import pytest
from procs import LAYOUT, T_PARENT, aresult, check_stream, result, rows, shm_entries, wait

import shmpipe
from shmpipe import PipeError

CAP = procs.ring_rows(1000)  # the ring a pipe opened with capacity=1000 gets


def ctx(method: str = "spawn") -> Any:
    return multiprocessing.get_context(method)


def events(n: int, method: str = "spawn") -> list[Any]:
    return [ctx(method).Event() for _ in range(n)]


def joined(p: Any, timeout: float = T_PARENT) -> int | None:
    """Join ``p`` (bounded) and return its exit code; AssertionError if it is still alive."""
    p.join(timeout)
    assert not p.is_alive(), f"child {p.pid} still running after {timeout} s"
    return p.exitcode


async def ajoined(p: Any, timeout: float = T_PARENT) -> int | None:
    return await asyncio.to_thread(joined, p, timeout)


def block_ends(plan: list[tuple[Any, ...]]) -> tuple[set[int], list[tuple[int, int]]]:
    """Where the plan's blocks end (a reader may stop there), and the blocks larger than
    the ring (which stream through in pieces, so a reader may stop inside them)."""
    ends: set[int] = {0}
    big: list[tuple[int, int]] = []
    for step in plan:
        if step[0] in ("write", "reserve"):
            _, start, stop, block = step
            for i in range(start, stop, block):
                j = min(i + block, stop)
                ends.add(j)
                if j - i > CAP:
                    big.append((i, j))
    return ends, big


def kill(p: Any) -> float:
    """SIGKILL child ``p``; return the time of the kill (time.monotonic)."""
    os.kill(p.pid, signal.SIGKILL)
    return time.monotonic()


# =============================================================================== 1. one to one
def test_producer_to_consumer_integrity(pipe_name: str, children: Any) -> None:
    """Every row arrives once, in order, intact, through a ring that wraps ~40 times: blocks
    that straddle the seam (sizes that do not divide the capacity), a block ~24 times the
    ring, the zero-copy reserve/commit path, and interval breaks at exactly their rows. A
    block that fits the ring is never seen in part."""
    plan = [
        ("set", 0),
        ("write", 0, 3000, 7),
        ("interval",),
        ("write", 3000, 10000, 333),
        ("write", 10000, 10001, 1),
        ("interval",),
        ("write", 10001, 35001, 25000),  # larger than the ring
        ("interval",),
        ("reserve", 35001, 40000, 999),  # zero-copy; the last commit is partial (4 of 999)
        ("write", 40000, 42002, 1001),
        ("close",),
    ]
    opened = events(1)
    qw, qr = ctx().Queue(), ctx().Queue()
    w = children.start(procs.producer, pipe_name, 1000, plan, opened, qw)
    wait(opened[0], "the writer to open the pipe")
    r = children.start(procs.consumer, pipe_name, qr)
    res = result(qr)
    wres = result(qw)
    assert joined(w) == 0 and joined(r) == 0

    assert res["capacity"] == wres["capacity"] == CAP
    check_stream(res, 0, 42002)
    assert res["ended"], "the stream must end with EmptyPipeError"
    assert res["eoi"] == [3000, 10001, 35001]
    ends, big = block_ends(plan)
    torn = [e for e in res["read_ends"] if e not in ends and not any(a < e < b for a, b in big)]
    assert not torn, f"reads ended inside blocks that fit the ring: {torn[:10]}"
    assert res["max_lag"] <= CAP
    assert res["stats"]["rows_written"] == 42002
    assert shm_entries(pipe_name) == [], "the pipe must be gone once both ends closed"


# =============================================================================== 2. many readers
@pytest.mark.parametrize("slowness", ["small_pieces", "pauses"])
def test_three_readers_each_get_every_row(
    pipe_name: str, children: Any, slowness: str
) -> None:
    """Three reader processes each receive every row; one is slow, and the writer, bounded
    by it, never overwrites a row it has not consumed."""
    n = 20 * CAP
    evs = events(4)  # 0..2: reader i attached; 3: the pipe exists
    plan = [
        ("set", 3),
        ("wait", 0), ("wait", 1), ("wait", 2),
        ("write", 0, n // 2, 100),
        ("interval",),
        ("write", n // 2, n, 250),
        ("stats",),
        ("close",),
    ]
    qw = ctx().Queue()
    w = children.start(procs.producer, pipe_name, 1000, plan, evs, qw)
    wait(evs[3], "the writer to open the pipe")
    slow = {"small_pieces": {"piece": 7}, "pauses": {"pause": 0.002}}[slowness]
    qs = [ctx().Queue() for _ in range(3)]
    rs = [
        children.start(
            procs.consumer, pipe_name, qs[i], attach=True, ready=evs[i], timeout=5,
            **(slow if i == 2 else {}),
        )
        for i in range(3)
    ]
    results = [result(q) for q in qs]
    wres = result(qw)
    assert all(joined(p) == 0 for p in [w, *rs])

    for i, res in enumerate(results):
        assert res["attach_rows"] == 0
        check_stream(res, 0, n)
        assert res["ended"], f"reader {i}: no EmptyPipeError at the end"
        assert res["max_lag"] <= CAP, f"reader {i}: the writer got {res['max_lag']} rows ahead"
        if i < 2 or slowness == "pauses":
            assert res["eoi"] == [n // 2], f"reader {i}"
    # the slow reader held the writer back: the ring was full of its rows at some point
    assert results[2]["max_lag"] > CAP // 2
    stats = dict(wres["notes"])["stats"]
    assert stats["writer_waits"] > 0
    assert shm_entries(pipe_name) == []


# =============================================================================== 3. late readers
def test_rows_written_before_any_reader_are_kept(pipe_name: str, children: Any) -> None:
    """With no reader attached the writer fills the ring (and no more); the first reader to
    attach gets every row from the oldest."""
    total = 3 * CAP + 5
    full = events(1)
    plan = [
        ("write", 0, CAP, CAP // 8),
        ("expect_full", CAP),
        ("stats",),
        ("set", 0),
        ("write", CAP, total, 100),
        ("close",),
    ]
    qw, qr = ctx().Queue(), ctx().Queue()
    w = children.start(procs.producer, pipe_name, 1000, plan, full, qw)
    wait(full[0], "the writer to fill the ring")
    r = children.start(procs.consumer, pipe_name, qr)
    res = result(qr)
    wres = result(qw)
    assert joined(w) == 0 and joined(r) == 0

    notes = wres["notes"]
    assert notes[0][0] == "refused", "write_nowait into a ring full of unread rows must fail"
    assert notes[1][1]["write"] == CAP and notes[1][1]["readers"] == 0
    check_stream(res, 0, total)
    assert res["ended"]
    assert shm_entries(pipe_name) == []


def test_rows_outlive_their_writer(pipe_name: str, children: Any) -> None:
    """Rows nobody consumed keep the pipe in /dev/shm after the writer's process is gone; a
    reader that comes later gets them (with the interval break), and its close removes the
    pipe."""
    plan = [("write", 0, 500, 50), ("interval",), ("write", 500, 700, 70), ("close",)]
    qw, qr = ctx().Queue(), ctx().Queue()
    w = children.start(procs.producer, pipe_name, 1000, plan, [], qw)
    result(qw)
    assert joined(w) == 0
    assert shm_entries(pipe_name), "unconsumed rows must keep the pipe"

    r = children.start(procs.consumer, pipe_name, qr)
    res = result(qr)
    assert joined(r) == 0
    check_stream(res, 0, 700)
    assert res["eoi"] == [500]
    assert res["ended"]
    assert shm_entries(pipe_name) == []


def test_restarted_reader_continues_where_the_last_one_stopped(
    pipe_name: str, children: Any
) -> None:
    """A reader process reads, consumes part of its last read, and closes; the next reader
    process continues exactly after the consumed rows: no loss, no duplicate."""
    total = 5000
    opened = events(1)
    plan = [("set", 0), ("write", 0, total, 77), ("close",)]
    qw, q1, q2 = ctx().Queue(), ctx().Queue(), ctx().Queue()
    w = children.start(procs.producer, pipe_name, 1000, plan, opened, qw)
    wait(opened[0], "the writer to open the pipe")

    r1 = children.start(procs.first_reader, pipe_name, q1, 1000, 17)
    first = result(q1)
    assert joined(r1) == 0
    got, last_len = first["last_read"]
    assert got == 1000 and last_len >= 17
    r2 = children.start(procs.consumer, pipe_name, q2)
    second = result(q2)
    result(qw)
    assert joined(r2) == 0 and joined(w) == 0

    assert len(first["ts"]) == 1017
    both = {
        "ts": np.concatenate([first["ts"], second["ts"]]),
        "data": np.concatenate([first["data"], second["data"]]),
    }
    check_stream(both, 0, total)
    assert second["ended"]
    assert shm_entries(pipe_name) == []


def test_reader_joining_an_attached_one_starts_at_the_write_position(
    pipe_name: str, children: Any
) -> None:
    """A second reader attaching while another is attached starts at the current write
    position; the first keeps receiving everything."""
    evs = events(6)  # 0 opened, 1 A attached, 2 go1, 3 first rows written, 4 B attached, 5 go2
    plan = [
        ("set", 0), ("wait", 2),
        ("write", 0, 500, 50),
        ("set", 3), ("wait", 5),
        ("write", 500, 1500, 100),
        ("close",),
    ]
    qw, qa, qb = ctx().Queue(), ctx().Queue(), ctx().Queue()
    w = children.start(procs.producer, pipe_name, 1000, plan, evs, qw)
    wait(evs[0], "the writer to open the pipe")
    a = children.start(procs.consumer, pipe_name, qa, attach=True, ready=evs[1])
    wait(evs[1], "reader A to attach")
    evs[2].set()
    wait(evs[3], "the first rows")
    b = children.start(procs.consumer, pipe_name, qb, attach=True, ready=evs[4])
    wait(evs[4], "reader B to attach")
    evs[5].set()
    ra, rb = result(qa), result(qb)
    result(qw)
    assert all(joined(p) == 0 for p in (w, a, b))

    assert rb["attach_rows"] == 0
    check_stream(rb, 500, 1500)
    check_stream(ra, 0, 1500)
    assert ra["ended"] and rb["ended"]
    assert shm_entries(pipe_name) == []


# =============================================================================== 4. opening
def test_reader_process_opens_the_pipe_first(pipe_names: Any, children: Any) -> None:
    """A reader process that opens (with a layout) before any writer exists creates the pipe;
    the writer process that comes later keeps it and the reader gets the whole stream."""
    name = pipe_names()
    with pytest.raises(PipeError, match="no pipe named"):
        shmpipe.open_input(pipe_names(), wait=0)  # no layout, no pipe: nothing to attach to

    ready = events(1)
    qr, qw = ctx().Queue(), ctx().Queue()
    r = children.start(procs.consumer, name, qr, layout=LAYOUT, attach=True, ready=ready[0])
    wait(ready[0], "the reader to create the pipe")
    plan = [("write", 0, 3000, 100), ("interval",), ("write", 3000, 3500, 100), ("close",)]
    w = children.start(procs.producer, name, 1000, plan, [], qw)
    res = result(qr)
    wres = result(qw)
    assert joined(r) == 0 and joined(w) == 0

    assert wres["capacity"] == res["capacity"], "the existing pipe's capacity is kept"
    assert res["attach_rows"] == 0
    check_stream(res, 0, 3500)
    assert res["eoi"] == [3000]
    assert res["ended"]
    assert shm_entries(name) == []


def test_layout_mismatch_with_another_process_names_both(pipe_name: str, children: Any) -> None:
    evs = events(2)
    qw = ctx().Queue()
    w = children.start(procs.producer, pipe_name, 1000, [("set", 0), ("wait", 1)], evs, qw)
    wait(evs[0], "the writer to open the pipe")
    try:
        with pytest.raises(PipeError) as err:
            shmpipe.open_input(pipe_name, "int32_3")
        assert "float64_2" in str(err.value) and "int32_3" in str(err.value)
        with pytest.raises(PipeError) as err:
            shmpipe.open_output(pipe_name, "uint8_1")
        assert "float64_2" in str(err.value) and "uint8_1" in str(err.value)
    finally:
        evs[1].set()
    result(qw)
    assert joined(w) == 0


def test_second_writer_refused_then_takes_over_from_a_dead_one(
    pipe_name: str, children: Any
) -> None:
    """While the writer's process lives, open_output elsewhere raises PipeError naming its pid;
    once it is SIGKILLed a new writer takes over, and its first row starts a new interval."""
    evs = events(3)  # 0 first rows written, 1 reader has them, 2 reader may go on
    q1, q2, qr = ctx().Queue(), ctx().Queue(), ctx().Queue()
    w1 = children.start(
        procs.producer, pipe_name, 1000, [("write", 0, 100, 25), ("set", 0), ("park",)], evs, q1
    )
    wait(evs[0], "the first writer's rows")
    r = children.start(procs.consumer, pipe_name, qr, checkpoint=(100, evs[1], evs[2]))
    wait(evs[1], "the reader to consume the first rows")

    with pytest.raises(PipeError, match=rf"pid {w1.pid}\b"):
        shmpipe.open_output(pipe_name, LAYOUT)

    kill(w1)
    assert joined(w1, 5) == -signal.SIGKILL
    plan = [("stats",), ("write", 100, 200, 50), ("close",)]
    w2 = children.start(procs.producer, pipe_name, 1000, plan, [], q2)
    wres = result(q2)
    assert joined(w2) == 0
    evs[2].set()
    res = result(qr)
    assert joined(r) == 0

    assert dict(wres["notes"])["stats"]["takeovers"] == 1
    check_stream(res, 0, 200)
    assert res["eoi"] == [100], "the new writer's rows must start a new interval"
    assert res["ended"]


# =============================================================================== 5. SIGKILL
async def test_reader_gets_every_committed_row_when_the_writer_is_killed(
    pipe_name: str, children: Any
) -> None:
    """SIGKILL of the writer: the reader gets every committed row (not the reserved,
    uncommitted ones), then EmptyPipeError within ~1 s, also while waiting in read()."""
    evs = events(5)  # 0 opened, 1 reader attached, 2 first rows, 3 go on, 4 done, parked
    plan = [
        ("set", 0), ("wait", 1),
        ("write", 0, 300, 50),
        ("set", 2), ("wait", 3),
        ("write", 300, 700, 100),
        ("reserve", 700, 720, 20),
        ("reserve_only", 720, 30),
        ("set", 4),
        ("park",),
    ]
    qw = ctx().Queue()
    w = children.start(procs.producer, pipe_name, 1000, plan, evs, qw)
    await procs.await_event(evs[0], "the writer to open the pipe")
    async with shmpipe.open_input(pipe_name) as inp:
        assert len(inp.read_nowait()) == 0
        evs[1].set()
        await procs.await_event(evs[2], "the first rows")
        first = await procs._consume(inp, expect=300, timeout=5)
        rest_task = asyncio.create_task(procs._consume(inp, timeout=5))
        evs[3].set()
        await procs.await_event(evs[4], "the writer to park")
        t_kill = kill(w)
        rest = await asyncio.wait_for(rest_task, 10)
        elapsed = time.monotonic() - t_kill
    assert await ajoined(w, 5) == -signal.SIGKILL

    both = {k: np.concatenate([first[k], rest[k]]) for k in ("ts", "data")}
    check_stream(both, 0, 720)
    assert rest["ended"]
    assert elapsed < 2.0, f"EmptyPipeError came {elapsed:.2f} s after the writer died"
    assert shm_entries(pipe_name) == []


async def test_killed_reader_does_not_block_the_writer(pipe_name: str, children: Any) -> None:
    """SIGKILL of a reader that never consumes: the writer, blocked on its cursor, is
    released (the dead reader is reaped) and writes several rings' worth to the other one."""
    n = 4 * CAP
    ready = events(2)
    qb = ctx().Queue()
    async with shmpipe.open_output(pipe_name, LAYOUT, 1000) as out:
        assert out.capacity == CAP
        a = children.start(procs.stuck_reader, pipe_name, ready[0])
        b = children.start(procs.consumer, pipe_name, qb, attach=True, ready=ready[1], expect=n)
        await procs.await_event(ready[0], "reader A to attach")
        await procs.await_event(ready[1], "reader B to attach")

        async def write_all() -> None:
            for i in range(0, n, CAP // 8):
                await out.write(rows(i, i + CAP // 8))

        task = asyncio.create_task(write_all())
        deadline = time.monotonic() + 10
        while out.stats()["write"] < CAP:  # observe: the writer filled the ring up to A
            assert time.monotonic() < deadline, f"writer stuck at {out.stats()['write']} rows"
            assert not task.done()
            await asyncio.sleep(0.01)
        assert not task.done(), "the writer got past a reader that never consumes"
        assert out.stats()["write"] == CAP
        t_kill = kill(a)
        await asyncio.wait_for(task, 10)
        elapsed = time.monotonic() - t_kill
        res = await aresult(qb)
        stats = out.stats()
    assert await ajoined(a, 5) == -signal.SIGKILL
    assert await ajoined(b) == 0

    check_stream(res, 0, n)
    assert stats["readers_reaped"] == 1
    assert elapsed < 3.0, f"the writer took {elapsed:.2f} s to get past the dead reader"


@pytest.mark.parametrize(("operation", "holder"), [("write", "zombie"), ("open", "reaped")])
async def test_lock_held_by_a_killed_process_is_recovered(
    pipe_name: str, children: Any, operation: str, holder: str
) -> None:
    """SIGKILL of the process holding the header lock: the next operation on the pipe (a
    write on an open end, or opening a new end) recovers the lock within a few seconds."""
    ready = events(1)
    async with shmpipe.open_output(pipe_name, LAYOUT, 1000) as out:
        p = children.start(procs.lock_holder, pipe_name, ready[0])
        await procs.await_event(ready[0], "the child to take the lock")
        kill(p)
        if holder == "reaped":
            assert await ajoined(p, 5) == -signal.SIGKILL
        t0 = time.monotonic()
        if operation == "write":
            out.write_nowait(rows(0, 10))
            inp = shmpipe.open_input(pipe_name)
        else:
            inp = shmpipe.open_input(pipe_name)
            out.write_nowait(rows(0, 10))
        elapsed = time.monotonic() - t0
        async with inp:
            data = inp.read_nowait()
            assert list(data["timestamp"]) == list(range(10))
            inp.consume(len(data))
        assert out.stats()["lock_recoveries"] == 1
    assert elapsed < 5.0, f"recovering the lock took {elapsed:.2f} s"
    assert await ajoined(p, 5) == -signal.SIGKILL


# =============================================================================== 6. handover
@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
async def test_ends_passed_to_a_child_process(
    pipe_names: Any, children: Any, method: str
) -> None:
    """A child receives an input end (opened, never read, in the parent) and an output end
    (already written to by the parent) as Process arguments and uses both: a filter from
    pipe A to pipe B. The parent's never-read input end is no phantom reader (the parent
    writes several rings' worth into A), and the parent's copy of the used output end raises
    PipeError once the child has taken it; the stream on B continues with no gap and no
    interval break at the handover."""
    a, b = pipe_names(), pipe_names()
    n = 5 * CAP
    offset = 100
    took, checked = ctx(method).Event(), ctx(method).Event()
    q = ctx(method).Queue()
    out_a = shmpipe.open_output(a, LAYOUT, 1000)
    inp_a = shmpipe.open_input(a)  # never read here
    out_b = shmpipe.open_output(b, LAYOUT, 1000)
    inp_b = shmpipe.open_input(b)
    await out_b.write(rows(0, offset))
    p = children.start(procs.filter_child, inp_a, out_b, n, offset, took, q, checked,
                       method=method)

    async def feed_a() -> None:
        for i in range(0, n, 50):
            await out_a.write(rows(i, i + 50))

    async def drain_b() -> dict[str, Any]:
        return await procs._consume(inp_b, timeout=10)

    async def check_handover() -> None:
        await procs.await_event(took, "the child to use both ends")
        with pytest.raises(PipeError):
            await out_b.write(rows(10**6, 10**6 + 1))
        assert out_a.stats()["readers"] == 1  # the child's, and no phantom of the parent's
        checked.set()  # (the child holds its ends until now: it may be done with A already)

    _, res, _ = await asyncio.wait_for(asyncio.gather(feed_a(), drain_b(), check_handover()), 30)
    child = await aresult(q)
    assert await ajoined(p) == 0
    for end in (inp_a, inp_b, out_a, out_b):
        await end.close()

    check_stream(res, 0, offset + n)
    assert res["eoi"] == [], "a handover is no takeover: no interval break"
    assert res["ended"]
    assert child["a_stats"]["readers"] == 1


@pytest.mark.parametrize("method", ["spawn", "fork"])
async def test_parent_copy_of_a_handed_over_output_end_changes_nothing(
    pipe_name: str, children: Any, method: str
) -> None:
    """Once a child has taken over an output end the parent had written with, every writing
    call on the parent's copy raises PipeError and leaves the stream as the child wrote it
    (the reader has not read the child's rows yet when the parent tries)."""
    evs = [ctx(method).Event() for _ in range(2)]  # 0 the child wrote, 1 it may close
    q = ctx(method).Queue()
    plan = [("write", 100, 200, 50), ("set", 0), ("wait", 1), ("close",)]
    async with shmpipe.open_output(pipe_name, LAYOUT, 1000) as out:
        inp = shmpipe.open_input(pipe_name)
        assert len(inp.read_nowait()) == 0
        await out.write(rows(0, 100))
        p = children.start(procs.producer_with, out, plan, evs, q, method=method)
        await procs.await_event(evs[0], "the child's rows")
        stale = rows(10**6, 10**6 + 1)
        calls = {
            "write": lambda: asyncio.wait_for(out.write(stale), 5),
            "write_nowait": lambda: asyncio.sleep(0, out.write_nowait(stale)),
            "reserve": lambda: asyncio.wait_for(out.reserve(1), 5),  # a view into live rows
            "close_interval": lambda: asyncio.wait_for(out.close_interval(), 5),
        }
        not_refused = []
        try:
            for what, call in calls.items():
                try:
                    await call()
                except PipeError:
                    pass
                else:
                    not_refused.append(what)
        finally:
            evs[1].set()
        res = await procs._consume(inp, timeout=5)
        await aresult(q)
        assert await ajoined(p) == 0
        await inp.close()
    wrong = np.flatnonzero(res["ts"] != np.arange(len(res["ts"])))
    assert not not_refused and not len(wrong), (
        f"calls on the stale copy that did not raise PipeError: {not_refused}; "
        f"rows changed: {[(int(i), int(res['ts'][i])) for i in wrong[:5]]}"
    )
    check_stream(res, 0, 200)
    assert res["eoi"] == []
    assert res["ended"]


@pytest.mark.parametrize("method", ["spawn", "fork"])
async def test_used_input_end_handed_over(pipe_name: str, children: Any, method: str) -> None:
    """An input end that already read (and consumed part of what it read) in the parent is
    handed to a child: the child continues right after the consumed rows, the reader slot
    moves with it (no second reader), and the parent's copy raises PipeError."""
    total = 4 * CAP
    took = ctx(method).Event()
    q = ctx(method).Queue()
    async with shmpipe.open_output(pipe_name, LAYOUT, 1000) as out:
        inp = shmpipe.open_input(pipe_name)
        await out.write(rows(0, 300))
        data = await asyncio.wait_for(inp.read(), 5)
        assert len(data) == 300
        inp.consume(120)
        p = children.start(procs.handed_reader, inp, total - 120, took, q, method=method)
        # new rows, so that the child's first read returns at once whatever it inherited
        # (with fork the end's whole state, including the last read, goes with it)
        await out.write(rows(300, 400))
        await procs.await_event(took, "the child's first read")
        with pytest.raises(PipeError):
            inp.read_nowait()
        assert out.stats()["readers"] == 1
        for i in range(400, total, 100):
            await asyncio.wait_for(out.write(rows(i, i + 100)), 10)
        res = await aresult(q)
        assert await ajoined(p) == 0
        await inp.close()
    check_stream(res, 120, total)


# =============================================================================== 7. lifecycle
@pytest.mark.parametrize("last", ["reader", "writer"])
def test_closing_ends_the_stream_and_removes_the_pipe(
    pipe_name: str, children: Any, last: str
) -> None:
    """Closing the writer ends the stream: the reader drains, then gets EmptyPipeError (while
    the writer's process still lives). Once the last end has closed with every row consumed,
    nothing of the pipe remains in /dev/shm, whichever end closes last."""
    evs = events(4)  # 0 opened, 1 rows written / writer closed, 2 reader done, 3 may exit
    qw, qr = ctx().Queue(), ctx().Queue()
    if last == "reader":  # the writer closes first; the reader waits for the end of stream
        plan = [("set", 0), ("write", 0, 2000, 100), ("interval",), ("write", 2000, 2500, 100),
                ("close",), ("set", 1), ("wait", 3)]
        reader_kwargs: dict[str, Any] = {"timeout": 5}
    else:  # the reader consumes everything and closes; then the writer closes
        plan = [("set", 0), ("write", 0, 2500, 100), ("set", 1), ("wait", 2),
                ("close",), ("set", 1), ("wait", 3)]
        reader_kwargs = {"expect": 2500}
    w = children.start(procs.producer, pipe_name, 1000, plan, evs, qw)
    try:
        wait(evs[0], "the writer to open the pipe")
        r = children.start(procs.consumer, pipe_name, qr, **reader_kwargs)
        res = result(qr)
        assert joined(r) == 0
        check_stream(res, 0, 2500)
        if last == "reader":
            assert res["ended"], "no EmptyPipeError after the writer closed"
            assert res["eoi"] == [2000]
        else:
            wait(evs[1], "the rows")
            evs[1].clear()
            evs[2].set()
            wait(evs[1], "the writer to close")
        assert w.is_alive()
        assert shm_entries(pipe_name) == [], "the last end closed: nothing may remain"
    finally:
        evs[3].set()
    result(qw)
    assert joined(w) == 0


def test_idle_ends_do_not_burn_cpu(pipe_names: Any, children: Any) -> None:
    """A reader waiting on an empty pipe (in read() and in read_sync()) and a writer waiting
    for room in a full ring sleep: each uses < 5% of a CPU over ~2 s of waiting."""
    a, b = pipe_names(), pipe_names()
    ready = events(3)
    qa, qs, qw = ctx().Queue(), ctx().Queue(), ctx().Queue()
    out_a = shmpipe.open_output(a, LAYOUT, 1000)
    idle_async = children.start(procs.idle_reader, a, ready[0], qa, False)
    idle_sync = children.start(procs.idle_reader, a, ready[1], qs, True)
    # no reader on b: the writer fills the ring, then waits for one
    blocked_plan = [("write", 0, CAP, CAP // 4), ("set", 0), ("write", CAP, CAP + 10, 10)]
    writer = children.start(procs.producer, b, 1000, blocked_plan, [ready[2]], qw)
    for i, what in enumerate(["the async reader", "the sync reader", "the writer"]):
        wait(ready[i], what)

    pids = {"read()": idle_async.pid, "read_sync()": idle_sync.pid, "blocked write()": writer.pid}
    before = {k: procs.cpu_ticks(pid) for k, pid in pids.items()}
    t0 = time.monotonic()
    time.sleep(2.0)  # the measuring window, not a hand-shake
    after = {k: procs.cpu_ticks(pid) for k, pid in pids.items()}
    window = time.monotonic() - t0
    hz = os.sysconf("SC_CLK_TCK")
    usage = {k: (after[k] - before[k]) / hz / window for k in pids}

    # let everybody finish
    out_a.write_nowait(rows(0, 1))
    assert result(qa) == 1 and result(qs) == 1
    inp_b = shmpipe.open_input(b)
    data = inp_b.read_nowait()
    assert len(data) == CAP
    inp_b.consume(len(data))
    inp_b.read_nowait()  # publishes the consumed position: the writer gets its room
    result(qw)
    for p in (idle_async, idle_sync, writer):
        assert joined(p) == 0
    asyncio.run(out_a.close())
    asyncio.run(inp_b.close())

    busy = {k: f"{u:.1%}" for k, u in usage.items() if u >= 0.05}
    assert not busy, f"waiting ends used CPU: {busy}"
