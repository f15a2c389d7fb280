"""Durable pipes across real processes: a writer that dies is a break and a replacement
writer carries on; a keyed reader that dies leaves its unconsumed rows to the next reader of
its key."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import numpy as np
import procs
import pytest
from procs import LAYOUT, T_PARENT, rows

import shmpipe
from shmpipe.shm import survey


def test_a_killed_writer_is_a_break_and_a_replacement_writer_carries_on(
        pipe_name: str, children: Any) -> None:
    shmpipe.shm.prepare(pipe_name, LAYOUT, readers=["sink"])
    ctx = children.ctx()
    wrote, wrote2 = ctx.Event(), ctx.Event()
    first = children.start(procs.durable_writer, pipe_name, 0, 100, wrote, False)
    procs.wait(wrote, "the first writer wrote")

    async def main() -> tuple[np.ndarray, list[int], bool]:
        inp = shmpipe.open_input(pipe_name, key="sink")
        got: list[np.ndarray] = []
        breaks: list[int] = []
        first.kill()  # SIGKILL: no close, the kernel drops its liveness lock
        while True:
            try:
                data = await asyncio.wait_for(inp.read(), T_PARENT)
            except shmpipe.EmptyPipeError:
                break
            got.append(data.copy())
            inp.consume(len(data))
            if inp.end_of_interval:
                breaks.append(sum(len(g) for g in got))  # rows before the break
                if len(breaks) == 1:  # the break the dead writer left: start its replacement
                    assert survey(pipe_name).writer_state == "lost"
                    children.start(procs.durable_writer, pipe_name, 100, 150, wrote2, True)
        await inp.close()
        return np.concatenate(got), breaks, inp.end_of_interval

    data, breaks, _ = asyncio.run(main())
    np.testing.assert_array_equal(data, rows(0, 150))
    assert breaks == [100], "the dead writer's rows end with a break, the stream goes on"
    first.join(5)
    assert first.exitcode == -signal.SIGKILL


def test_a_killed_keyed_reader_leaves_its_unconsumed_rows_to_the_next_of_its_key(
        pipe_name: str, children: Any) -> None:
    shmpipe.shm.prepare(pipe_name, LAYOUT, readers=["filter", "other"])
    ctx = children.ctx()

    async def write() -> None:
        async with shmpipe.open_output(pipe_name, LAYOUT) as out:
            await out.write(rows(0, 100))
            q = ctx.Queue()
            a = children.start(procs.durable_reader, pipe_name, "filter", 30, q)
            assert procs.result(q) == (0, 30)
            with pytest.raises(shmpipe.PipeError, match="already attached"):
                shmpipe.open_input(pipe_name, key="filter")  # a live end holds the key
            a.kill()
            a.join(10)
            q = ctx.Queue()  # a queue a killed child used may be left unusable
            b = children.start(procs.durable_reader, pipe_name, "filter", 10, q)
            assert procs.result(q) == (30, 10), "the next reader starts at the first unconsumed row"
            b.kill()
            b.join(10)
            info = survey(pipe_name)
            lags = sorted(r.lag for r in info.readers)
            assert lags == [60, 100], "'other' still holds every row, 'filter' the rest"

    asyncio.run(write())


def test_prepare_refuses_another_layout_and_a_bad_key(pipe_name: str) -> None:
    shmpipe.shm.prepare(pipe_name, LAYOUT, readers=["a"])
    with pytest.raises(shmpipe.PipeError, match="layout"):
        shmpipe.shm.prepare(pipe_name, "int32_1", readers=["b"])
    with pytest.raises(shmpipe.PipeError, match="non-empty string"):
        shmpipe.shm.prepare(pipe_name, LAYOUT, readers=[""])
    assert [r.slot for r in survey(pipe_name).readers] == [0]  # nothing changed
