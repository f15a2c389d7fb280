"""Shared-memory pipe ends within one process (cross-process cases are in test_processes.py)."""

from __future__ import annotations

import asyncio
import gc
import os
import stat
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import wraps
from typing import Any

import numpy as np
import pytest

import shmpipe
from shmpipe.shm import names, ring

LAYOUT = "float32_2"
DT = shmpipe.compute_dtype(LAYOUT)


def arun(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def rows(start: int, n: int) -> np.ndarray:
    r = np.zeros(n, DT)
    r["timestamp"] = np.arange(start, start + n)
    r["data"] = np.arange(start, start + n)[:, None] * [1, -1]
    return r


@pytest.fixture
def pname() -> Iterator[str]:
    name = "t-" + uuid.uuid4().hex[:12]
    yield name
    shmpipe.unlink(name)


def leftovers(name: str) -> list[str]:
    return names.entries_of(name)


@arun
async def test_open_either_end_first_and_layout_mismatch_names_both(pname: str) -> None:
    inp = shmpipe.open_input(pname, LAYOUT)  # the reader creates the pipe
    out = shmpipe.open_output(pname, LAYOUT)
    assert isinstance(out, shmpipe.OutputPipe) and isinstance(inp, shmpipe.InputPipe)
    with pytest.raises(shmpipe.PipeError, match=r"float32_2.*int16_3|int16_3.*float32_2"):
        shmpipe.open_input(pname, "int16_3")
    assert shmpipe.open_input(pname).layout == LAYOUT  # layout=None attaches
    await out.write(rows(0, 3))
    data = await inp.read()
    assert list(data["timestamp"]) == [0, 1, 2]
    await out.close()
    await inp.close()


def test_open_input_without_layout_needs_an_existing_pipe(pname: str) -> None:
    with pytest.raises(shmpipe.PipeError, match="no pipe named"):
        shmpipe.open_input(pname, wait=0)
    assert leftovers(pname) == []


@arun
async def test_second_writer_is_refused_naming_the_pid(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT):
        with pytest.raises(shmpipe.PipeError, match=f"pid {os.getpid()}"):
            shmpipe.open_output(pname, LAYOUT)


@pytest.mark.parametrize("bad", ["", "a/b", "../x", "x" * 65, "-x", "a b", 5])
def test_bad_names_are_refused(bad: Any) -> None:
    with pytest.raises(shmpipe.PipeError, match="name"):
        shmpipe.open_output(bad, LAYOUT)


def test_bad_layout_is_a_value_error(pname: str) -> None:
    with pytest.raises(ValueError, match="layout"):
        shmpipe.open_output(pname, "float33_2")


@arun
async def test_objects_are_private_prefixed_and_gone_after_last_close(pname: str) -> None:
    out = shmpipe.open_output(pname, LAYOUT, capacity=100)
    inp = shmpipe.open_input(pname)
    await out.write(rows(0, 10))
    await inp.read()
    found = leftovers(pname)
    assert any(p.endswith("shmpipe." + pname) for p in found)
    for p in found:
        assert os.path.basename(p).startswith(("shmpipe.", "sem.shmpipe."))
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    inp.consume(10)
    await out.close()
    with pytest.raises(shmpipe.EmptyPipeError):
        await inp.read()
    await inp.close()
    assert leftovers(pname) == []


@arun
async def test_mode_parameter(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT, mode=0o640):
        path = os.path.join(names.SHM_DIR, names.PREFIX + pname)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@arun
async def test_default_capacity_is_16_mib_whatever_the_width(pname: str) -> None:
    for layout in ("int8_1", "float64_64"):
        async with shmpipe.open_output(pname + layout, layout) as out:
            nbytes = out.capacity * out.dtype.itemsize
            assert nbytes + out.dtype.itemsize >= 16 << 20 and nbytes <= 17 << 20
        shmpipe.unlink(pname + layout)


@arun
async def test_read_is_a_read_only_view_into_the_ring_even_across_the_seam(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT, capacity=100) as out:
        cap = out.capacity  # rounded up to whole pages
        inp = shmpipe.open_input(pname)
        await out.write(rows(0, cap - 3))
        first = await inp.read()
        inp.consume(len(first))
        assert len(inp.read_nowait()) == 0  # publishes the consumption
        await out.write(rows(cap - 3, 10))  # wraps: 3 rows before the seam, 7 after
        data = await inp.read()
        assert list(data["timestamp"]) == list(range(cap - 3, cap + 7))
        assert not data.flags.writeable and not data.flags.owndata
        assert data.flags.c_contiguous
        with pytest.raises(ValueError):
            data["timestamp"][0] = 5
        # the rows after the seam are the same pages as the start of the ring
        start_of_ring = out.segment.rows(cap, cap + 7)  # writable, mapped at the first copy
        assert not np.shares_memory(data, start_of_ring)  # other addresses...
        start_of_ring["timestamp"][0] = -1
        assert data["timestamp"][3] == -1  # ...same memory
        await inp.close()


@arun
async def test_view_stays_valid_after_consume_until_next_read(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT, capacity=10) as out:
        cap = out.capacity
        inp = shmpipe.open_input(pname)
        await out.write(rows(0, cap))
        data = await inp.read()
        inp.consume(len(data))
        with pytest.raises(shmpipe.PipeError):
            out.write_nowait(rows(cap, 1))  # consumption is not published before the next read
        assert list(data["timestamp"]) == list(range(cap))
        await inp.close()


@arun
async def test_view_outliving_close_and_unlink_is_safe(pname: str) -> None:
    out = shmpipe.open_output(pname, LAYOUT, capacity=10)
    inp = shmpipe.open_input(pname)
    await out.write(rows(0, 5))
    data = await inp.read()
    inp.consume(5)
    await out.close()
    await inp.close()
    del out, inp
    gc.collect()
    assert leftovers(pname) == []
    assert list(data["timestamp"]) == [0, 1, 2, 3, 4]  # the mapping lives while the view does


@arun
async def test_unconsumed_rows_come_again_and_intervals_stop_reads(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT) as out, shmpipe.open_input(pname) as inp:
        await out.write(rows(0, 3))
        await out.close_interval()
        await out.write(rows(3, 2))
        d1 = await inp.read()
        assert list(d1["timestamp"]) == [0, 1, 2] and d1.end_of_interval and inp.end_of_interval
        inp.consume(1)
        d2 = await inp.read()
        assert list(d2["timestamp"]) == [1, 2, 3, 4] and not d2.end_of_interval
        inp.consume_all()
        # every value is legal: an all-zero row is data, not an interval token
        await out.write(np.zeros(2, DT))
        d3 = await inp.read()
        assert len(d3) == 2 and not d3.end_of_interval
        inp.consume_all()


@arun
async def test_reader_wakes_on_write_interval_and_close_without_polling(pname: str) -> None:
    out = shmpipe.open_output(pname, LAYOUT)
    inp = shmpipe.open_input(pname)
    for act in ("write", "interval", "close"):
        task = asyncio.create_task(inp.read())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()
        if act == "write":
            await out.write(rows(0, 2))
        elif act == "interval":
            await out.close_interval()
        else:
            await out.close()
        if act == "close":  # everything was consumed: the waiting read learns the end
            with pytest.raises(shmpipe.EmptyPipeError):
                await asyncio.wait_for(task, 0.2)
            break
        data = await asyncio.wait_for(task, 0.2)  # far below the 0.5 s liveness period
        inp.consume(len(data))
        assert data.end_of_interval == (act == "interval")
    await inp.close()


@arun
async def test_block_larger_than_the_ring_streams_through(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT, capacity=10) as out:
        cap = out.capacity
        n = cap * 7 + 5
        inp = shmpipe.open_input(pname)
        inp.read_nowait()  # attach before writing
        got: list[np.ndarray] = []

        async def consume() -> None:
            while True:
                try:
                    data = await inp.read()
                except shmpipe.EmptyPipeError:
                    return
                got.append(np.array(data))
                inp.consume(len(data))

        task = asyncio.create_task(consume())
        await out.write(rows(0, n))
        await out.close()
        await asyncio.wait_for(task, 10)
        allrows = np.concatenate(got)
        assert list(allrows["timestamp"]) == list(range(n))
        assert (allrows == rows(0, n)).all()
        assert max(len(g) for g in got) <= cap
        await inp.close()


@arun
async def test_reserve_and_commit_write_in_place(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT, capacity=50) as out, \
            shmpipe.open_input(pname) as inp:
        inp.read_nowait()
        view = await out.reserve(4)
        assert view.flags.writeable and view.dtype == DT
        view["timestamp"] = [10, 11, 12, 13]
        view["data"] = 7
        assert len(inp.read_nowait()) == 0  # nothing visible before commit
        await out.commit(3)
        data = await inp.read()
        assert list(data["timestamp"]) == [10, 11, 12] and (data["data"] == 7).all()
        view["data"][0] = 8  # the reader sees the very rows the writer filled
        assert (data["data"][0] == 8).all()
        with pytest.raises(shmpipe.PipeError, match="reserved"):
            await out.commit(1)
        with pytest.raises(shmpipe.PipeError, match="reserve expects"):
            await out.reserve(out.capacity + 1)
        inp.consume_all()


@arun
async def test_several_readers_each_get_every_row_and_late_reader_starts_at_write(
    pname: str,
) -> None:
    async with shmpipe.open_output(pname, LAYOUT, capacity=100) as out:
        a, b = shmpipe.open_input(pname), shmpipe.open_input(pname)
        a.read_nowait()
        b.read_nowait()
        await out.write(rows(0, 5))
        late = shmpipe.open_input(pname)
        late.read_nowait()  # joins now: starts at the write position
        await out.write(rows(5, 5))
        for r in (a, b):
            assert list((await r.read())["timestamp"]) == list(range(10))
        assert list((await late.read())["timestamp"]) == list(range(5, 10))
        # the slowest reader bounds the writer (consumption is published at the next read)
        for r in (a, late):
            r.consume_all()
            r.read_nowait()
        assert ring.free_rows(out.segment.header) == out.capacity - 10
        b.consume(3)
        b.read_nowait()
        assert ring.free_rows(out.segment.header) == out.capacity - 7
        for r in (a, b, late):
            await r.close()


@arun
async def test_rows_written_without_readers_are_kept_for_the_next_reader(pname: str) -> None:
    out = shmpipe.open_output(pname, LAYOUT, capacity=20)
    await out.write(rows(0, 6))
    r1 = shmpipe.open_input(pname)
    assert list((await r1.read())["timestamp"]) == list(range(6))
    r1.consume(4)
    await r1.close()  # a consumer that stops...
    r2 = shmpipe.open_input(pname)  # ...and restarts loses nothing
    assert list((await r2.read())["timestamp"]) == [4, 5]
    r2.consume_all()
    await out.close()
    with pytest.raises(shmpipe.EmptyPipeError):
        await r2.read()
    await r2.close()
    assert leftovers(pname) == []


@arun
async def test_unread_rows_keep_the_pipe_after_all_ends_close(pname: str) -> None:
    out = shmpipe.open_output(pname, LAYOUT)
    await out.write(rows(0, 3))
    await out.close()
    assert leftovers(pname)  # rows wait for a reader
    inp = shmpipe.open_input(pname)
    data = await inp.read()
    assert list(data["timestamp"]) == [0, 1, 2]
    inp.consume_all()
    with pytest.raises(shmpipe.EmptyPipeError):
        await inp.read()
    await inp.close()
    assert leftovers(pname) == []


@arun
async def test_bad_writes_are_refused_and_lose_nothing(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT) as out, shmpipe.open_input(pname) as inp:
        await out.write(rows(0, 2))
        bad: list[Any] = [
            None, "abc", np.zeros((2, 4)), np.zeros(3), np.zeros((2, 3, 3)),
            np.array([[1, 2, 3]], dtype=object), [[float("nan"), 1, 2]],
            np.zeros(2, shmpipe.compute_dtype("int16_2")),
        ]
        for b in bad:
            with pytest.raises(shmpipe.PipeError, match="expected"):
                await out.write(b)
        await out.write([[2, 0, 0]])
        data = await inp.read()
        assert list(data["timestamp"]) == [0, 1, 2]
        inp.consume_all()


@arun
async def test_direction_is_enforced(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT) as out, shmpipe.open_input(pname) as inp:
        with pytest.raises(shmpipe.PipeError, match="output pipe"):
            await out.read()
        with pytest.raises(shmpipe.PipeError, match="input pipe"):
            await inp.write(rows(0, 1))
        with pytest.raises(shmpipe.PipeError, match="input pipe"):
            inp.subscribe(shmpipe.LocalPipe(LAYOUT))


@arun
async def test_subscriber_of_an_shm_output_gets_a_copy(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT) as out, shmpipe.open_input(pname) as inp:
        local = shmpipe.LocalPipe(LAYOUT)
        out.subscribe(local)
        await out.write(rows(0, 3))
        await out.close_interval()
        d = await local.read()
        assert list(d["timestamp"]) == [0, 1, 2] and d.end_of_interval
        assert list((await inp.read())["timestamp"]) == [0, 1, 2]
        inp.consume_all()


def test_sync_variants_without_an_event_loop(pname: str) -> None:
    out = shmpipe.open_output(pname, LAYOUT, capacity=10)
    inp = shmpipe.open_input(pname)
    assert len(inp.read_sync(timeout=0.05)) == 0  # times out with nothing
    out.write_nowait(rows(0, 3))
    out.close_interval_nowait()
    data = inp.read_sync(timeout=1)
    assert list(data["timestamp"]) == [0, 1, 2] and data.end_of_interval
    inp.consume_all()
    with pytest.raises(shmpipe.PipeError, match="room"):
        out.write_nowait(rows(3, out.capacity + 1))
    assert len(inp.read_nowait()) == 0  # the refused block left nothing behind
    asyncio.run(out.close())
    with pytest.raises(shmpipe.EmptyPipeError):
        inp.read_sync(timeout=1)
    asyncio.run(inp.close())


@arun
async def test_cancelled_write_leaves_whole_rows(pname: str) -> None:
    out = shmpipe.open_output(pname, LAYOUT, capacity=10)
    cap = out.capacity
    inp = shmpipe.open_input(pname)
    inp.read_nowait()
    task = asyncio.create_task(out.write(rows(0, cap * 3)))
    for _ in range(10):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    data = await inp.read()
    assert list(data["timestamp"]) == list(range(len(data)))
    assert 0 < len(data) <= cap
    inp.consume_all()
    assert len(inp.read_nowait()) == 0  # publishes the consumption
    await out.write(rows(len(data), 2))  # the pipe is still usable
    assert list((await inp.read())["timestamp"]) == [len(data), len(data) + 1]
    inp.consume_all()
    await out.close()
    await inp.close()


@arun
async def test_cache_and_timestamps_check_on_shm(pname: str) -> None:
    out = shmpipe.open_output(pname, LAYOUT, check_timestamps=True)
    inp = shmpipe.open_input(pname)
    inp.read_nowait()
    out.enable_cache(4)
    for i in range(3):
        await out.write(rows(i, 1))
    assert len(inp.read_nowait()) == 0
    await out.write(rows(3, 2))
    assert list((await inp.read())["timestamp"]) == [0, 1, 2, 3]
    with pytest.raises(shmpipe.PipeError, match="increasing"):
        await out.write(rows(2, 1))
    await out.close()
    inp.consume_all()
    assert list((await inp.read())["timestamp"]) == [4]
    inp.consume_all()
    await inp.close()


@arun
async def test_2d_arrays_go_straight_into_the_ring(pname: str) -> None:
    out = shmpipe.open_output(pname, LAYOUT, check_timestamps=True)
    inp = shmpipe.open_input(pname)
    inp.read_nowait()
    block = np.column_stack([np.arange(5), np.arange(5) * 2.0, -np.arange(5.0)])
    await out.write(block)
    with pytest.raises(shmpipe.PipeError, match="increasing"):
        await out.write(block)  # refused: nothing published, the pipe stays usable
    with pytest.raises(shmpipe.PipeError, match="columns"):
        await out.write(block[:, :2])
    await out.write(block + np.array([5, 0, 0]))
    data = await inp.read()
    assert list(data["timestamp"]) == list(range(10))
    assert list(data["data"][:, 0]) == [2.0 * (i % 5) for i in range(10)]
    inp.consume_all()
    await out.close()
    await inp.close()


@arun
async def test_the_end_that_creates_the_pipe_sets_its_capacity(
    pname: str, caplog: pytest.LogCaptureFixture
) -> None:
    inp = shmpipe.open_input(pname, LAYOUT, capacity=5000)
    out = shmpipe.open_output(pname, LAYOUT, capacity=100_000)
    assert out.capacity == inp.capacity >= 5000
    assert out.capacity < 100_000 and "ignored" in caplog.text
    await out.close()
    await inp.close()


@arun
async def test_every_input_opened_before_a_write_receives_it(pname: str) -> None:
    out = shmpipe.open_output(pname, LAYOUT)
    ins = [shmpipe.open_input(pname) for _ in range(3)]
    await out.write(rows(0, 10))
    for inp in ins:
        assert list(inp.read_nowait()["timestamp"]) == list(range(10))
        inp.consume_all()
    await out.close()
    for inp in ins:
        await inp.close()


@arun
async def test_close_interval_sends_cached_rows_and_the_break_in_one_read(pname: str) -> None:
    async with shmpipe.open_output(pname, LAYOUT, capacity=100) as out:
        inp = shmpipe.open_input(pname)
        out.enable_cache(10)
        await out.write(rows(0, 3))
        assert len(inp.read_nowait()) == 0  # still in the cache
        await out.close_interval()
        data = inp.read_nowait()
        assert list(data["timestamp"]) == list(rows(0, 3)["timestamp"])
        assert data.end_of_interval
        await inp.close()


@arun
async def test_the_hot_path_takes_no_lock_and_asks_no_pid(pname: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A write, a read and a consume on a pipe where nobody sleeps are cursor stores and a
    copy: no header mutex, no getpid (a fork hook keeps the pid). Blocks of both write paths
    (a structured block, a 2-D array converted in place) arrive, across the ring's seam."""
    from shmpipe.shm import locks

    out = shmpipe.open_output(pname, LAYOUT, capacity=10)
    inp = shmpipe.open_input(pname)
    try:
        await out.write(rows(0, 3))
        assert len(await inp.read()) == 3  # the first read publishes nothing new

        def no_lock(fd: int) -> bool:
            raise AssertionError("the header mutex was taken on the hot path")

        def no_pid() -> int:
            raise AssertionError("getpid was called on the hot path")

        monkeypatch.setattr(locks, "try_mutex", no_lock)
        monkeypatch.setattr(os, "getpid", no_pid)
        inp.consume(3)
        got: list[int] = []
        for start in range(3, 600, 3):
            await out.write(rows(start, 2))
            await out.write(np.array([[start + 2, 0, 0]], np.float64))  # converted in place
            data = await inp.read()
            got += [int(t) for t in data["timestamp"]]
            assert not data.flags.writeable
            inp.consume(len(data))
        assert inp.read_nowait().size == 0
        monkeypatch.undo()
        assert got == list(range(3, 600))
        assert out.capacity < 600 and out.stats()["write"] == 600
    finally:
        monkeypatch.undo()
        await inp.close()
        await out.close()


@arun
async def test_a_busy_polling_read_lets_the_timers_of_its_loop_fire(pname: str) -> None:
    import math

    out = shmpipe.open_output(pname, LAYOUT, capacity=100)
    inp = shmpipe.open_input(pname, spin=math.inf)
    t = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(inp.read(), 0.3)  # nothing else is ready: the timer fires
    assert time.monotonic() - t < 3
    await out.close()
    with pytest.raises(shmpipe.EmptyPipeError):
        await asyncio.wait_for(inp.read(), 5)
    await inp.close()


@arun
async def test_busy_poll_mode_never_sleeps_so_the_writer_never_rings(pname: str) -> None:
    """``spin=math.inf``: a waiting read polls the header, letting the writer task of its own
    loop run between looks; it is never marked asleep, so no doorbell is rung, and it sees
    rows, a break and the end of the stream."""
    import math

    out = shmpipe.open_output(pname, LAYOUT, capacity=100)
    inp = shmpipe.open_input(pname, spin=math.inf)
    h = out.segment.header
    slot = h.readers[inp._role.slot]

    async def writer() -> None:
        for start in range(0, 30, 3):
            await asyncio.sleep(0)
            await out.write(rows(start, 3))
            assert slot.sleeping == 0 and h.sleepers == 0
        await out.close_interval()
        await out.close()

    task = asyncio.ensure_future(writer())
    got: list[int] = []
    breaks = 0
    try:
        while True:
            data = await inp.read()
            got += [int(t) for t in data["timestamp"]]
            breaks += data.end_of_interval
            inp.consume(len(data))
    except shmpipe.EmptyPipeError:
        pass
    await task
    assert got == list(range(30)) and breaks == 1
    assert out.stats()["wakeups"] == 0
    await inp.close()
