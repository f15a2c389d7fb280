"""The bridge, shm -> tcp -> shm across processes: exact delivery with breaks, the end carried
through, restarts of either bridge, nothing left in /dev/shm."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import signal
from collections.abc import Iterator
from typing import Any

import netprocs
import numpy as np
import pytest
from conftest import free_port
from netprocs import LAYOUT, rows

import shmpipe
from shmpipe import EmptyPipeError
from shmpipe.net import bridge
from shmpipe.shm import list_pipes

SPAWN = multiprocessing.get_context("spawn")
_n = itertools.count()


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    a, b = (f"nettest-{os.getpid()}-{next(_n)}" for _ in range(2))
    yield a, b
    for name in (a, b):
        shmpipe.unlink(name)


def start_bridge(*argv: str) -> Any:
    p = SPAWN.Process(target=netprocs.run_bridge, args=(list(argv),), daemon=True)
    p.start()
    return p


async def join(p: Any, timeout: float = 30) -> int:
    await asyncio.to_thread(p.join, timeout)
    if p.exitcode is None:
        os.kill(p.pid, signal.SIGKILL)
        p.join(5)
        raise AssertionError("bridge did not exit")
    return int(p.exitcode)


async def terminate(p: Any) -> int:
    os.kill(p.pid, signal.SIGTERM)
    return await join(p)


async def read_all(inp: Any, got: list[tuple[np.ndarray, bool]]) -> None:
    while True:
        try:
            d = await asyncio.wait_for(inp.read(), 30)
        except EmptyPipeError:
            return
        got.append((np.array(d["timestamp"]), bool(d.end_of_interval)))
        inp.consume(len(d))


def flat(got: list[tuple[np.ndarray, bool]]) -> tuple[np.ndarray, list[int]]:
    out, breaks, n = [], [], 0
    for t, eoi in got:
        out.append(t)
        n += len(t)
        if eoi:
            breaks.append(n)
    return (np.concatenate(out) if out else np.empty(0, np.int64)), breaks


async def test_shm_to_tcp_to_shm_keeps_rows_breaks_and_the_end(names: tuple[str, str]) -> None:
    a, b = names
    ep = f"tcp://127.0.0.1:{free_port()}"
    out = shmpipe.open_output(a, LAYOUT)
    inp = shmpipe.open_input(b, LAYOUT)
    recv = start_bridge(ep, b)  # binds, writes into b
    send = start_bridge(a, ep)  # reads a, connects
    for i in range(0, 30_000, 1000):
        await out.write(rows(i, 1000))
        if i % 7000 == 0:
            await out.close_interval()
    await out.close()
    got: list[tuple[np.ndarray, bool]] = []
    await read_all(inp, got)
    await inp.close()
    assert await join(send) == 0
    assert await join(recv) == 0
    ts, breaks = flat(got)
    np.testing.assert_array_equal(ts, np.arange(1, 30_001))
    assert breaks == [1000, 8000, 15000, 22000, 29000]
    assert a not in list_pipes() and b not in list_pipes()  # nothing left behind


async def test_a_pipe_destination_takes_its_layout_from_the_network() -> None:
    dst = f"nettest-{os.getpid()}-{next(_n)}"
    inp_ep = f"tcp://127.0.0.1:{free_port()}"
    try:
        task = asyncio.create_task(bridge(inp_ep, dst))
        out = shmpipe.net.NetOutputPipe(inp_ep, "int16_3", timeout=10)
        r = np.zeros(5, shmpipe.compute_dtype("int16_3"))
        r["timestamp"] = np.arange(1, 6)
        await out.write(r)
        await out.close()
        assert await asyncio.wait_for(task, 30) == 5
        assert dst in list_pipes()  # its rows wait for a reader (shm ownership rules)
        reader = shmpipe.open_input(dst)
        assert reader.layout == "int16_3"
        np.testing.assert_array_equal(await reader.read(), r)
        reader.consume(5)
        await reader.close()
    finally:
        shmpipe.unlink(dst)


async def test_restarting_the_sending_bridge_is_a_break_and_loses_nothing(
        names: tuple[str, str]) -> None:
    a, b = names
    ep = f"tcp://127.0.0.1:{free_port()}"
    out = shmpipe.open_output(a, LAYOUT)
    inp = shmpipe.open_input(b, LAYOUT)
    recv = start_bridge(ep, b)
    send = start_bridge(a, ep)
    got: list[tuple[np.ndarray, bool]] = []
    for i in range(0, 10_000, 500):
        await out.write(rows(i, 500))
    while sum(len(t) for t, _ in got) < 3000:
        d = await asyncio.wait_for(inp.read(), 30)
        got.append((np.array(d["timestamp"]), bool(d.end_of_interval)))
        inp.consume(len(d))
    assert await terminate(send) == 0  # Ctrl-C / SIGTERM: a clean stop
    for i in range(10_000, 20_000, 500):  # written while no bridge reads a
        await out.write(rows(i, 500))
    send = start_bridge(a, ep)
    await out.close()
    await read_all(inp, got)
    await inp.close()
    assert await join(send) == 0
    assert await join(recv) == 0
    ts, breaks = flat(got)
    np.testing.assert_array_equal(ts, np.arange(1, 20_001))  # a kept what was not sent
    assert len(breaks) == 1 and breaks[0] >= 3000  # the new sender's rows start an interval


async def test_restarting_the_receiving_bridge_resumes_delivery(names: tuple[str, str]) -> None:
    a, b = names
    ep = f"tcp://127.0.0.1:{free_port()}"
    out = shmpipe.open_output(a, LAYOUT)
    inp = shmpipe.open_input(b, LAYOUT)
    recv = start_bridge(ep, b)
    send = start_bridge(a, ep, "--timeout", "60")
    got: list[tuple[np.ndarray, bool]] = []
    for i in range(0, 10_000, 500):
        await out.write(rows(i, 500))
    while sum(len(t) for t, _ in got) < 3000:
        d = await asyncio.wait_for(inp.read(), 30)
        got.append((np.array(d["timestamp"]), bool(d.end_of_interval)))
        inp.consume(len(d))
    assert await terminate(recv) == 0
    await read_all(inp, got)  # b's writer closed: b's readers drain it and see the end
    await inp.close()
    first, _ = flat(got)
    recv = start_bridge(ep, b)
    inp = shmpipe.open_input(b, LAYOUT)
    for i in range(10_000, 20_000, 500):
        await out.write(rows(i, 500))
    await out.close()
    later: list[tuple[np.ndarray, bool]] = []
    await read_all(inp, later)
    await inp.close()
    assert send.is_alive() or send.exitcode == 0  # the sender waited for the new receiver
    assert await join(send) == 0
    assert await join(recv) == 0
    ts, _ = flat(later)
    assert np.all(np.diff(np.concatenate([first, ts])) > 0)  # in order, nothing twice
    np.testing.assert_array_equal(ts, np.arange(ts[0], 20_001))  # complete after rejoining
