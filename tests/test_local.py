"""LocalPipe: an in-process pipe between coroutines (shmpipe/local.py)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

import shmpipe
from shmpipe import EmptyPipeError, LocalPipe, Pipe, PipeError

LAYOUT = "float32_2"
DTYPE = shmpipe.compute_dtype(LAYOUT)


def block(*ts: int) -> np.ndarray:
    """A 2-D block: timestamps in column 0, then two data columns derived from them."""
    t = np.array(ts, dtype=np.float64)
    return np.column_stack([t, t + 0.5, t + 0.25])


def structured(*ts: int) -> np.ndarray:
    rows = np.empty(len(ts), DTYPE)
    rows["timestamp"] = ts
    rows["data"] = np.column_stack([np.array(ts) + 0.5, np.array(ts) + 0.25])
    return rows


def stamps(data: np.ndarray) -> list[int]:
    return [int(t) for t in data["timestamp"]]


def check_rows(data: np.ndarray, *ts: int) -> None:
    """``data`` holds exactly the rows ``block(*ts)`` wrote, values included."""
    assert data.dtype == DTYPE
    assert stamps(data) == list(ts)
    assert np.array_equal(data["data"], block(*ts)[:, 1:].astype(np.float32))


async def settle(steps: int = 5) -> None:
    """Let every ready task run (a few event-loop iterations, no timers)."""
    for _ in range(steps):
        await asyncio.sleep(0)


async def blocked(coro: Awaitable[Any]) -> asyncio.Task[Any]:
    """Start ``coro`` as a task and check that it waits."""
    task = asyncio.ensure_future(coro)
    await settle()
    assert not task.done(), "expected the call to wait"
    return task


async def released(task: asyncio.Task[Any]) -> Any:
    """Check that ``task`` finishes within a few loop iterations (no polling), return its
    result."""
    await settle()
    assert task.done(), "expected the call to be released at once"
    return await asyncio.wait_for(task, 0.1)


# ----------------------------------------------------------------------------- construction
def test_constructor_keywords_of_joule() -> None:
    sig = inspect.signature(LocalPipe.__init__)
    got = [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"][:6]
    assert got == [
        ("layout", inspect.Parameter.empty), ("name", None), ("close_cb", None),
        ("debug", False), ("stream", None), ("write_limit", 0),
    ]
    empty = inspect.Parameter.empty
    for name, args in [("read_nowait", [("flatten", False)]), ("write_nowait", [("data", empty)]),
                       ("close_nowait", []), ("add_subscriber", [("pipe", empty)]),
                       ("subscribe", [("pipe", empty)])]:
        method = getattr(LocalPipe, name)
        assert not inspect.iscoroutinefunction(method)
        params = [(p.name, p.default) for p in inspect.signature(method).parameters.values()
                  if p.name != "self"]
        assert params == args


def test_description() -> None:
    pipe = LocalPipe("int32_4", name="p", write_limit=3)
    assert isinstance(pipe, Pipe)
    assert pipe.name == "p"
    assert pipe.layout == "int32_4"
    assert pipe.dtype == shmpipe.compute_dtype("int32_4")
    assert pipe.width == 4
    assert pipe.direction == Pipe.DIRECTION.TWOWAY
    assert pipe.closed is False
    assert pipe.end_of_interval is False
    assert pipe.write_limit == 3
    assert pipe.subscribers == []


# ----------------------------------------------------------------------------- waking a reader
async def test_waiting_read_wakes_on_write() -> None:
    pipe = LocalPipe(LAYOUT)
    task = await blocked(pipe.read())
    await pipe.write(block(1, 2))
    check_rows(await released(task), 1, 2)
    assert pipe.end_of_interval is False


async def test_waiting_read_wakes_on_write_nowait() -> None:
    pipe = LocalPipe(LAYOUT)
    task = await blocked(pipe.read())
    pipe.write_nowait(block(1))
    check_rows(await released(task), 1)


@pytest.mark.parametrize("nowait", [False, True])
async def test_waiting_read_wakes_on_close_interval(nowait: bool) -> None:
    pipe = LocalPipe(LAYOUT)
    task = await blocked(pipe.read())
    if nowait:
        pipe.close_interval_nowait()
    else:
        await pipe.close_interval()
    data = await released(task)
    assert len(data) == 0
    assert data.end_of_interval is True
    assert pipe.end_of_interval is True


@pytest.mark.parametrize("nowait", [False, True])
async def test_waiting_read_wakes_on_close(nowait: bool) -> None:
    pipe = LocalPipe(LAYOUT)
    task = await blocked(pipe.read())
    if nowait:
        pipe.close_nowait()
    else:
        await pipe.close()
    await settle()
    assert task.done()
    with pytest.raises(EmptyPipeError):
        await task


async def test_waiting_read_with_unconsumed_rows_waits_for_news() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2))
    check_rows(await pipe.read(), 1, 2)
    pipe.consume(1)
    task = await blocked(pipe.read())  # no news: the unconsumed row alone does not return
    await pipe.write(block(3))
    check_rows(await released(task), 2, 3)


async def test_waiting_read_with_unconsumed_rows_returns_them_on_close() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2))
    await pipe.read()
    task = await blocked(pipe.read())
    await pipe.close()
    check_rows(await released(task), 1, 2)
    pipe.consume(2)
    with pytest.raises(EmptyPipeError):
        await pipe.read()


async def test_cancelled_read_loses_nothing() -> None:
    pipe = LocalPipe(LAYOUT)
    task = await blocked(pipe.read())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await pipe.write(block(1, 2))
    check_rows(await pipe.read(), 1, 2)


async def test_is_empty_waits_like_read() -> None:
    pipe = LocalPipe(LAYOUT)
    task = await blocked(pipe.is_empty())
    await pipe.write(block(1))
    assert await released(task) is False
    check_rows(await pipe.read(), 1)
    pipe.consume(1)
    task = await blocked(pipe.not_empty())
    await pipe.close()
    assert await released(task) is False


# ----------------------------------------------------------------------------- backpressure
async def test_write_limit_makes_write_wait_for_the_reader() -> None:
    pipe = LocalPipe(LAYOUT, write_limit=1)
    await pipe.write(block(1))
    task = await blocked(pipe.write(block(2)))
    check_rows(pipe.read_nowait(), 1)  # the reader takes the waiting block: room for one
    await released(task)
    pipe.consume(1)
    check_rows(pipe.read_nowait(), 2)


async def test_write_limit_counts_blocks() -> None:
    pipe = LocalPipe(LAYOUT, write_limit=2)
    await pipe.write(block(1, 2, 3))
    await pipe.write(block(4))
    task = await blocked(pipe.write(block(5)))
    data = await pipe.read()
    check_rows(data, 1, 2, 3, 4)
    pipe.consume(len(data))
    await released(task)
    check_rows(await pipe.read(), 5)


async def test_write_nowait_on_a_full_pipe_is_refused() -> None:
    pipe = LocalPipe(LAYOUT, write_limit=1)
    pipe.write_nowait(block(1))
    with pytest.raises(PipeError, match="full"):
        pipe.write_nowait(block(2))
    check_rows(pipe.read_nowait(), 1)  # nothing of the refused write arrived
    pipe.write_nowait(block(3))
    check_rows(pipe.read_nowait(), 1, 3)


async def test_write_nowait_on_a_full_pipe_writes_nothing_to_subscribers() -> None:
    pipe = LocalPipe(LAYOUT, write_limit=1)
    sub = LocalPipe(LAYOUT)
    pipe.subscribe(sub)
    pipe.write_nowait(block(1))
    with pytest.raises(PipeError, match="full"):
        pipe.write_nowait(block(2))
    check_rows(sub.read_nowait(), 1)
    check_rows(pipe.read_nowait(), 1)


async def test_close_releases_a_writer_waiting_for_room() -> None:
    pipe = LocalPipe(LAYOUT, write_limit=1)
    await pipe.write(block(1))
    task = await blocked(pipe.write(block(2)))
    await pipe.close()
    await settle()
    assert task.done(), "a writer waiting for room must not hang on a closed pipe"
    with pytest.raises(PipeError, match="closed"):
        await task
    check_rows(await pipe.read(), 1)


async def test_no_write_limit_never_waits() -> None:
    pipe = LocalPipe(LAYOUT)
    for t in range(100):
        pipe.write_nowait(block(t))
    await asyncio.wait_for(pipe.write(block(100)), 0.1)
    assert len(pipe.read_nowait()) == 101


# ----------------------------------------------------------------------------- what write accepts
@pytest.mark.parametrize(
    "make",
    [
        lambda ts: block(*ts),
        lambda ts: block(*ts).astype(np.float32),
        lambda ts: block(*ts).tolist(),
        lambda ts: tuple(tuple(r) for r in block(*ts).tolist()),
        lambda ts: structured(*ts),
        lambda ts: structured(*ts)[::-1][::-1],  # a strided view
    ],
    ids=["2d-float64", "2d-float32", "list", "tuple", "structured", "structured-view"],
)
@pytest.mark.parametrize("nowait", [False, True])
async def test_write_accepts(make: Callable[[list[int]], Any], nowait: bool) -> None:
    pipe = LocalPipe(LAYOUT)
    if nowait:
        pipe.write_nowait(make([10, 20, 30]))
    else:
        await pipe.write(make([10, 20, 30]))
    check_rows(await pipe.read(), 10, 20, 30)


async def test_write_accepts_integer_2d_data() -> None:
    pipe = LocalPipe("int64_2")
    await pipe.write(np.array([[1, -5, 7], [2, 9, 2**40]], dtype=np.int64))
    await pipe.write([[3, 0, 1]])
    data = await pipe.read()
    assert stamps(data) == [1, 2, 3]
    assert data["data"].tolist() == [[-5, 7], [9, 2**40], [0, 1]]


@pytest.mark.parametrize(
    "empty", [[], np.empty((0, 3)), np.empty(0, DTYPE), np.empty(0)], ids=repr
)
async def test_empty_write_is_a_logged_no_op(
    empty: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pipe = LocalPipe(LAYOUT)
    sub = LocalPipe(LAYOUT)
    pipe.subscribe(sub)
    with caplog.at_level(logging.INFO, logger="shmpipe"):
        await pipe.write(empty)
        pipe.write_nowait(empty)
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "no data" in r.message]
    assert len(infos) == 2
    task = await blocked(pipe.read())  # nothing arrived: no news
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(sub.read_nowait()) == 0
    await pipe.write(block(1))
    check_rows(await pipe.read(), 1)


BAD_WRITES = [
    (np.zeros((2, 2)), "got 2 columns"),
    (np.zeros((2, 4)), "got 4 columns"),
    ([[1, 2]], "got 2 columns"),
    (np.zeros(2, shmpipe.compute_dtype("float32_3")), "structured array of dtype"),
    (np.zeros(2, shmpipe.compute_dtype("float64_2")), "structured array of dtype"),
    (np.zeros(2, shmpipe.compute_dtype("int32_2")), "structured array of dtype"),
    (np.arange(3.0), "1-D"),
    (np.zeros((2, 3, 1)), "3-D"),
    (np.array(4.0), "0-D"),
    ("1,2,3", "str"),
    (b"123", "bytes"),
    (None, "None"),
    (5, "int"),
    (np.array([["1", "2", "3"]]), "<U1"),
    (np.array([[1, 2, None]], dtype=object), "object"),
    ([[1, 2, 3], [4, 5]], "not rectangular"),
    ([[1, 2, 3], [4, 5, [6]]], "not rectangular"),
    ([[1, 2, None]], "object"),
    ([[np.nan, 1, 2]], "NaN or infinite"),
    ([[1, 1, 2], [np.inf, 1, 2]], "row 1"),
    ([[-np.inf, 1, 2]], "NaN or infinite"),
]


@pytest.mark.parametrize(("bad", "says"), BAD_WRITES, ids=repr)
@pytest.mark.parametrize("nowait", [False, True])
async def test_bad_write_is_refused_and_changes_nothing(
    bad: Any, says: str, nowait: bool
) -> None:
    pipe = LocalPipe(LAYOUT)
    sub = LocalPipe(LAYOUT)
    pipe.subscribe(sub)
    await pipe.write(block(1, 2))
    with pytest.raises(PipeError) as info:
        if nowait:
            pipe.write_nowait(bad)
        else:
            await pipe.write(bad)
    message = str(info.value)
    assert "expected" in message
    assert "3 columns" in message  # what was expected
    assert says in message  # what came
    # nothing written, prior data intact, pipe still usable
    assert pipe.closed is False
    check_rows(pipe.read_nowait(), 1, 2)
    await pipe.write(block(3))
    check_rows(await pipe.read(), 1, 2, 3)
    check_rows(sub.read_nowait(), 1, 2, 3)


async def test_bad_write_with_a_cache_changes_nothing() -> None:
    pipe = LocalPipe(LAYOUT)
    pipe.enable_cache(3)
    await pipe.write(block(1))
    with pytest.raises(PipeError):
        await pipe.write(block(2)[:, :2])
    await pipe.write(block(2, 3))
    check_rows(pipe.read_nowait(), 1, 2, 3)


@pytest.mark.parametrize(
    ("first", "second", "says"),
    [
        ([1, 2, 2], None, "row 2 has 2"),
        ([1, 3, 2], None, "row 2 has 2"),
        ([5, 4, 6], None, "row 1 has 4"),
        ([1, 2, 3], [3, 4], "row 0 has 3, not after the last row already written \\(3\\)"),
        ([1, 2, 3], [0], "row 0 has 0"),
        ([1, 2, 3], [4, 5, 5], "row 2 has 5"),
    ],
)
@pytest.mark.parametrize("nowait", [False, True])
async def test_check_timestamps(
    first: list[int], second: list[int] | None, says: str, nowait: bool
) -> None:
    pipe = LocalPipe(LAYOUT, check_timestamps=True)
    bad = block(*first) if second is None else block(*second)
    if second is not None:
        await pipe.write(block(*first))
    with pytest.raises(PipeError, match=says):
        if nowait:
            pipe.write_nowait(bad)
        else:
            await pipe.write(bad)
    if second is None:
        assert len(pipe.read_nowait()) == 0
        await pipe.write(block(1))
        check_rows(pipe.read_nowait(), 1)
    else:
        check_rows(pipe.read_nowait(), *first)
        await pipe.write(block(first[-1] + 1))  # still usable, the last row is still the limit
        check_rows(pipe.read_nowait(), *first, first[-1] + 1)


async def test_check_timestamps_is_off_by_default() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(3, 2, 2))
    await pipe.write(block(1))
    check_rows(await pipe.read(), 3, 2, 2, 1)


async def test_check_timestamps_spans_cached_writes() -> None:
    pipe = LocalPipe(LAYOUT, check_timestamps=True)
    pipe.enable_cache(10)
    await pipe.write(block(1))
    await pipe.write(block(2))
    with pytest.raises(PipeError, match="strictly increasing"):
        await pipe.write(block(2))
    await pipe.flush_cache()
    check_rows(pipe.read_nowait(), 1, 2)


# ----------------------------------------------------------------------------- reads and intervals
async def test_read_stops_at_interval_boundaries() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2))
    await pipe.write(block(3))
    await pipe.close_interval()
    await pipe.write(block(4, 5))
    data = await pipe.read()
    check_rows(data, 1, 2, 3)
    assert data.end_of_interval is True
    assert pipe.end_of_interval is True
    pipe.consume(len(data))
    data2 = await pipe.read()
    check_rows(data2, 4, 5)
    assert data2.end_of_interval is False
    assert pipe.end_of_interval is False
    assert data.end_of_interval is True  # the earlier array keeps its own flag


async def test_unconsumed_rows_come_again_even_across_a_boundary() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2, 3))
    await pipe.close_interval()
    await pipe.write(block(4))
    data = await pipe.read()
    check_rows(data, 1, 2, 3)
    assert data.end_of_interval
    pipe.consume(1)
    data = await pipe.read()
    check_rows(data, 2, 3, 4)
    assert not data.end_of_interval
    pipe.consume(0)
    await pipe.write(block(5))
    await pipe.close_interval()
    data = await pipe.read()
    check_rows(data, 2, 3, 4, 5)
    assert data.end_of_interval


async def test_consecutive_boundaries_and_empty_intervals() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.close_interval()
    await pipe.write(block(1))
    await pipe.close_interval()
    await pipe.close_interval()
    data = await pipe.read()
    assert len(data) == 0 and data.end_of_interval
    data = await pipe.read()
    check_rows(data, 1)
    assert data.end_of_interval
    pipe.consume_all()
    data = await pipe.read()
    assert len(data) == 0 and data.end_of_interval
    task = await blocked(pipe.read())  # every boundary passed: nothing new
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_rows_after_an_empty_interval_survive_close() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2, 3))
    await pipe.close_interval()
    await pipe.close_interval()
    await pipe.write(block(4, 5))
    await pipe.close()
    got: list[int] = []
    while True:
        try:
            data = await pipe.read()
        except EmptyPipeError:
            break
        got.extend(stamps(data))
        pipe.consume(len(data))
    assert got == [1, 2, 3, 4, 5]


async def test_rows_remain_readable_after_close_then_empty() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2, 3))
    await pipe.close_interval()
    await pipe.write(block(4))
    await pipe.close()
    assert pipe.closed
    data = await pipe.read()
    check_rows(data, 1, 2, 3)
    assert data.end_of_interval
    pipe.consume(2)
    check_rows(await pipe.read(), 3, 4)
    check_rows(pipe.read_nowait(), 3, 4)  # still unconsumed
    pipe.consume(2)
    for _ in range(2):
        with pytest.raises(EmptyPipeError):
            await pipe.read()
        with pytest.raises(EmptyPipeError):
            pipe.read_nowait()
    assert await pipe.is_empty() is True
    assert await pipe.not_empty() is False


async def test_closed_pipe_refuses_writes() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.close()
    with pytest.raises(PipeError, match="closed"):
        await pipe.write(block(1))
    with pytest.raises(PipeError, match="closed"):
        pipe.write_nowait(block(1))
    with pytest.raises(PipeError, match="closed"):
        await pipe.close_interval()
    with pytest.raises(PipeError, match="closed"):
        pipe.close_interval_nowait()
    with pytest.raises(PipeError, match="closed"):
        pipe.enable_cache(4)
    with pytest.raises(EmptyPipeError):
        pipe.read_nowait()


async def test_read_nowait_without_news_returns_unconsumed_rows() -> None:
    pipe = LocalPipe(LAYOUT)
    assert len(pipe.read_nowait()) == 0
    assert pipe.read_nowait().dtype == DTYPE
    pipe.write_nowait(block(1, 2))
    check_rows(pipe.read_nowait(), 1, 2)
    check_rows(pipe.read_nowait(), 1, 2)
    pipe.consume(2)
    assert len(pipe.read_nowait()) == 0


async def test_reread_last() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2, 3))
    await pipe.close_interval()
    await pipe.read()
    pipe.consume(1)
    await pipe.write(block(4))
    pipe.reread_last()
    data = await pipe.read()  # the unconsumed rows of the last read, nothing new
    check_rows(data, 2, 3)
    assert data.end_of_interval is True
    assert pipe.end_of_interval is True
    data = await pipe.read()
    check_rows(data, 2, 3, 4)
    assert data.end_of_interval is False
    pipe.reread_last()
    check_rows(pipe.read_nowait(), 2, 3, 4)


async def test_is_empty_then_read_returns_the_same_data() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2))
    await pipe.close_interval()
    assert await pipe.is_empty() is False
    assert await pipe.is_empty() is False  # asking again changes nothing
    assert await pipe.not_empty() is True
    await pipe.write(block(3))  # arrives after the check: not in the next read
    data = await pipe.read()
    check_rows(data, 1, 2)
    assert data.end_of_interval is True
    pipe.consume(2)
    check_rows(await pipe.read(), 3)
    pipe.consume(1)
    await pipe.close()
    assert await pipe.is_empty() is True


@pytest.mark.parametrize("bad", [-1, 3, 100, 1.0, "1", None, True], ids=repr)
async def test_consume_bounds(bad: Any) -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2))
    await pipe.read()
    with pytest.raises(PipeError):
        pipe.consume(bad)
    check_rows(pipe.read_nowait(), 1, 2)  # nothing consumed
    pipe.consume(np.int64(2))
    assert len(pipe.read_nowait()) == 0


async def test_consume_messages_and_consume_all() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2))
    await pipe.read()
    with pytest.raises(PipeError, match="negative"):
        pipe.consume(-1)
    with pytest.raises(PipeError, match="only 2 available"):
        pipe.consume(3)
    pipe.consume(0)
    pipe.consume_all()
    assert len(pipe.read_nowait()) == 0
    with pytest.raises(PipeError, match="only 0 available"):
        pipe.consume(1)


async def test_consume_before_any_read() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1))
    with pytest.raises(PipeError, match="only 0 available"):
        pipe.consume(1)
    check_rows(await pipe.read(), 1)


@pytest.mark.parametrize(("layout", "dtype"), [("float32_2", np.float64), ("int16_2", np.int64),
                                              ("float64_2", np.float64)])
async def test_read_flatten(layout: str, dtype: Any) -> None:
    pipe = LocalPipe(layout)
    await pipe.write([[1, 10, 11], [2, 20, 21]])
    await pipe.close_interval()
    flat = await pipe.read(flatten=True)
    assert flat.shape == (2, 3)
    assert flat.dtype == dtype
    assert flat.tolist() == [[1, 10, 11], [2, 20, 21]]
    assert flat.end_of_interval is True
    pipe.reread_last()
    again = pipe.read_nowait(flatten=True)
    assert again.tolist() == flat.tolist()
    structured_rows = pipe.read_nowait()
    assert structured_rows.dtype == pipe.dtype


async def test_read_concatenates_blocks() -> None:
    pipe = LocalPipe(LAYOUT)
    for t in range(1, 6):
        pipe.write_nowait(structured(t))
    data = await pipe.read()
    check_rows(data, 1, 2, 3, 4, 5)


async def test_read_all() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2))
    await pipe.close_interval()
    await pipe.write(block(3))
    await pipe.close()
    data = await pipe.read_all()
    check_rows(data, 1, 2, 3)
    assert pipe.closed


async def test_read_all_waits_for_the_writer_to_close() -> None:
    pipe = LocalPipe(LAYOUT)
    task = await blocked(pipe.read_all(flatten=True))
    await pipe.write(block(1))
    await settle()
    assert not task.done()
    await pipe.write(block(2))
    await pipe.close()
    flat = await released(task)
    assert flat[:, 0].tolist() == [1, 2]
    assert flat.shape == (2, 3)


async def test_read_all_maxrows() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2, 3))
    await pipe.close_interval()
    await pipe.write(block(4, 5))
    await pipe.close()
    check_rows(await pipe.read_all(maxrows=4), 1, 2, 3, 4)

    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2, 3))
    await pipe.close()
    check_rows(await pipe.read_all(maxrows=3, error_on_overflow=True), 1, 2, 3)

    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1, 2, 3))
    await pipe.write(block(4))
    with pytest.raises(PipeError, match=r"More than \[2\] rows"):
        await pipe.read_all(maxrows=2, error_on_overflow=True)
    assert pipe.closed


async def test_read_all_without_data() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.close()
    with pytest.raises(PipeError, match="No data in pipe"):
        await pipe.read_all()


async def test_read_sync_does_not_block_a_local_pipe() -> None:
    pipe = LocalPipe(LAYOUT)
    with pytest.raises(PipeError, match="cannot block"):
        pipe.read_sync()
    await pipe.write(block(1))
    check_rows(pipe.read_sync(), 1)


async def test_failed_pipe() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1))
    pipe.fail()
    with pytest.raises(PipeError, match="failed"):
        await pipe.read()
    with pytest.raises(PipeError, match="failed"):
        pipe.read_nowait()
    with pytest.raises(PipeError, match="failed"):
        await pipe.write(block(2))
    with pytest.raises(PipeError, match="failed"):
        await pipe.close_interval()


# ----------------------------------------------------------------------------- closing
async def test_close_runs_close_cb_once_and_is_idempotent() -> None:
    calls: list[str] = []

    async def cb() -> None:
        calls.append("closed")

    pipe = LocalPipe(LAYOUT, close_cb=cb)
    assert pipe.close_cb is cb
    with pytest.raises(PipeError, match="close_cb"):
        pipe.close_nowait()
    assert pipe.closed is False
    await pipe.close()
    await pipe.close()
    assert calls == ["closed"]
    assert pipe.closed is True


async def test_async_context_manager_closes() -> None:
    async with LocalPipe(LAYOUT) as pipe:
        await pipe.write(block(1))
    assert pipe.closed
    check_rows(await pipe.read(), 1)


async def test_close_nowait() -> None:
    pipe = LocalPipe(LAYOUT)
    pipe.enable_cache(10)
    pipe.write_nowait(block(1, 2))
    pipe.close_nowait()
    assert pipe.closed
    check_rows(pipe.read_nowait(), 1, 2)  # the cache was flushed
    pipe.consume(2)
    with pytest.raises(EmptyPipeError):
        pipe.read_nowait()


async def test_close_nowait_refuses_subscribers() -> None:
    pipe = LocalPipe(LAYOUT)
    pipe.subscribe(LocalPipe(LAYOUT))
    with pytest.raises(PipeError, match="subscribers"):
        pipe.close_nowait()
    assert pipe.closed is False
    await pipe.write(block(1))


async def test_debug_prints(capsys: pytest.CaptureFixture[str]) -> None:
    pipe = LocalPipe(LAYOUT, name="dbg", debug=True)
    await pipe.write(block(1, 2))
    await pipe.close_interval()
    await pipe.read()
    out = capsys.readouterr().out
    assert "[dbg:write]" in out
    assert "[dbg:read]" in out
    quiet = LocalPipe(LAYOUT, name="quiet")
    await quiet.write(block(1))
    await quiet.read()
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------- subscriptions
async def test_subscription_scenario() -> None:
    p1, p2 = LocalPipe(LAYOUT, name="p1"), LocalPipe(LAYOUT, name="p2")
    p1.subscribe(p2)
    await p1.write(block(1, 2, 3))
    data = await p1.read()
    check_rows(data, 1, 2, 3)
    p1.consume(len(data))
    check_rows(await p2.read(), 1, 2, 3)
    p2.consume(2)
    await p1.write(block(4, 5, 6))
    check_rows(await p1.read(), 4, 5, 6)
    check_rows(await p2.read(), 3, 4, 5, 6)


async def test_subscriber_waiting_read_wakes() -> None:
    p1, p2 = LocalPipe(LAYOUT), LocalPipe(LAYOUT)
    p1.subscribe(p2)
    task = await blocked(p2.read())
    await p1.write(block(1))
    check_rows(await released(task), 1)


async def test_subscribers_get_intervals_and_close() -> None:
    p1, p2, p3 = LocalPipe(LAYOUT), LocalPipe(LAYOUT), LocalPipe(LAYOUT)
    p1.subscribe(p2)
    p1.add_subscriber(p3)
    assert p1.subscribers == [p2, p3]
    await p1.write(block(1))
    await p1.close_interval()
    p1.write_nowait(block(2))
    p1.close_interval_nowait()
    await p1.write(block(3))
    await p1.close()
    for pipe in (p1, p2, p3):
        assert pipe.closed
        data = await pipe.read()
        check_rows(data, 1)
        assert data.end_of_interval
        pipe.consume_all()
        data = await pipe.read()
        check_rows(data, 2)
        assert data.end_of_interval
        pipe.consume_all()
        data = await pipe.read()
        check_rows(data, 3)
        assert not data.end_of_interval
        pipe.consume_all()
        with pytest.raises(EmptyPipeError):
            await pipe.read()


async def test_unsubscribe() -> None:
    p1, p2 = LocalPipe(LAYOUT), LocalPipe(LAYOUT)
    unsubscribe = p1.subscribe(p2)
    await p1.write(block(1))
    unsubscribe()
    assert p1.subscribers == []
    await p1.write(block(2))
    await p1.close_interval()
    await p1.close()
    check_rows(p2.read_nowait(), 1)
    assert p2.end_of_interval is False
    assert p2.closed is False
    check_rows(p1.read_nowait(), 1, 2)


async def test_subscriber_attached_later_gets_later_rows_only() -> None:
    p1, p2 = LocalPipe(LAYOUT), LocalPipe(LAYOUT)
    await p1.write(block(1))
    p1.subscribe(p2)
    await p1.write(block(2))
    check_rows(p2.read_nowait(), 2)
    check_rows(p1.read_nowait(), 1, 2)


async def test_subscription_chain() -> None:
    p1, p2, p3 = LocalPipe(LAYOUT), LocalPipe(LAYOUT), LocalPipe(LAYOUT)
    p1.subscribe(p2)
    p2.subscribe(p3)
    await p1.write(block(1, 2))
    await p1.close()
    assert p3.closed
    check_rows(await p3.read(), 1, 2)


# ----------------------------------------------------------------------------- caching
class BlockCounter(LocalPipe):
    """A LocalPipe subscriber that records the size of each block written to it."""

    def __init__(self) -> None:
        super().__init__(LAYOUT, name="counter")
        self.blocks: list[int] = []

    async def write(self, data: Any) -> None:
        self.blocks.append(len(data))
        await super().write(data)

    def write_nowait(self, data: Any) -> None:
        self.blocks.append(len(data))
        super().write_nowait(data)


@pytest.mark.parametrize("nowait", [False, True])
async def test_cache_sends_one_block_when_full(nowait: bool) -> None:
    pipe = LocalPipe(LAYOUT)
    counter = BlockCounter()
    pipe.subscribe(counter)
    pipe.enable_cache(4)
    for t in (1, 2, 3):
        if nowait:
            pipe.write_nowait(block(t))
        else:
            await pipe.write(block(t))
    assert len(pipe.read_nowait()) == 0  # nothing visible before 4 rows
    assert counter.blocks == []
    if nowait:
        pipe.write_nowait(block(4, 5))
    else:
        await pipe.write(block(4, 5))
    assert counter.blocks == [4]
    check_rows(pipe.read_nowait(), 1, 2, 3, 4)
    check_rows(counter.read_nowait(), 1, 2, 3, 4)


async def test_cache_waiting_reader_wakes_only_when_full() -> None:
    pipe = LocalPipe(LAYOUT)
    pipe.enable_cache(2)
    task = await blocked(pipe.read())
    await pipe.write(block(1))
    await settle()
    assert not task.done()
    await pipe.write(block(2))
    check_rows(await released(task), 1, 2)


async def test_flush_cache() -> None:
    pipe = LocalPipe(LAYOUT)
    counter = BlockCounter()
    pipe.subscribe(counter)
    pipe.enable_cache(10)
    await pipe.write(block(1, 2))
    await pipe.write(block(3))
    await pipe.flush_cache()
    assert counter.blocks == [3]
    check_rows(await pipe.read(), 1, 2, 3)
    await pipe.flush_cache()  # nothing cached: nothing sent
    assert counter.blocks == [3]


async def test_flush_cache_without_cache_is_harmless() -> None:
    pipe = LocalPipe(LAYOUT)
    await pipe.write(block(1))
    await pipe.flush_cache()
    check_rows(pipe.read_nowait(), 1)


@pytest.mark.parametrize("nowait", [False, True])
async def test_close_interval_flushes_the_cache_before_the_boundary(nowait: bool) -> None:
    pipe = LocalPipe(LAYOUT)
    sub = LocalPipe(LAYOUT)
    pipe.subscribe(sub)
    pipe.enable_cache(10)
    await pipe.write(block(1, 2))
    if nowait:
        pipe.close_interval_nowait()
    else:
        await pipe.close_interval()
    await pipe.write(block(3))
    for p in (pipe, sub):
        data = p.read_nowait()
        check_rows(data, 1, 2)
        assert data.end_of_interval


async def test_close_flushes_the_cache() -> None:
    pipe = LocalPipe(LAYOUT)
    sub = LocalPipe(LAYOUT)
    pipe.subscribe(sub)
    pipe.enable_cache(10)
    await pipe.write(block(1, 2))
    await pipe.close()
    for p in (pipe, sub):
        check_rows(await p.read(), 1, 2)
        p.consume(2)
        with pytest.raises(EmptyPipeError):
            await p.read()


async def test_single_row_writes_with_cache() -> None:
    pipe = LocalPipe(LAYOUT)
    counter = BlockCounter()
    pipe.subscribe(counter)
    pipe.enable_cache(100)
    for t in range(1, 1001):
        await pipe.write([[t, t + 0.5, t + 0.25]])
    assert counter.blocks == [100] * 10
    check_rows(await pipe.read(), *range(1, 1001))


@pytest.mark.parametrize("bad", [0, -1])
def test_enable_cache_bad_size(bad: int) -> None:
    pipe = LocalPipe(LAYOUT)
    with pytest.raises(PipeError, match="at least 1"):
        pipe.enable_cache(bad)


async def test_close_interval_sends_cached_rows_and_the_break_in_one_read() -> None:
    """A reader waiting while close_interval flushes the cache sees the rows and the break
    in one read (two steps would let it read the rows, then an empty read for the break)."""
    import shmpipe as _shmpipe

    pipe = _shmpipe.LocalPipe("float32_2")
    pipe.enable_cache(10)
    await pipe.write([[1, 0.0, 0.0], [2, 0.0, 0.0]])
    reader = asyncio.ensure_future(pipe.read())
    await asyncio.sleep(0)  # the reader waits
    await pipe.close_interval()
    data = await reader
    assert list(data["timestamp"]) == [1, 2] and data.end_of_interval


async def test_write_nowait_refuses_when_a_subscriber_would_have_to_wait() -> None:
    import shmpipe as _shmpipe

    pipe = _shmpipe.LocalPipe("float32_2")
    pipe.subscribe(_shmpipe.OutputPipe())  # no transport: it cannot take rows at once
    with pytest.raises(_shmpipe.PipeError, match="abstract"):
        pipe.write_nowait([[1, 0.0, 0.0]])
    assert len(pipe.read_nowait()) == 0, "the pipe kept rows of a refused write"


async def test_a_write_yields_when_a_task_is_ready_and_every_32_writes_otherwise() -> None:
    """A write passes through the event loop when another task is ready to run (here the
    reader its rows wake: it has its rows when the write returns) and at least every
    YIELD_EVERY writes (a due timer runs then, not at the first writes); otherwise not."""
    from shmpipe import local

    pipe = LocalPipe(LAYOUT)
    reader = asyncio.ensure_future(pipe.read())
    await settle()
    await pipe.write(structured(1))
    assert reader.done() and stamps(reader.result()) == [1]
    pipe.consume(1)
    await settle()  # the count of writes since the last yield starts again at the next yield
    fired: list[int] = []
    asyncio.get_running_loop().call_later(0, fired.append, 1)
    for t in range(2, 2 + 2 * local.YIELD_EVERY):
        await pipe.write(structured(t))
        if fired:
            break
    assert fired == [1]
    # the timer is made ready by the YIELD_EVERY-th write's pass through the loop and runs
    # at the next write (a task is ready then): not at the first writes
    assert local.YIELD_EVERY <= t - 1 <= local.YIELD_EVERY + 1, f"ran after {t - 1} writes"
    assert stamps(await pipe.read()) == list(range(2, t + 1))
