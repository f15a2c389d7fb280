"""Network pipes across real processes: restarts of either side, a stalled reader."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from typing import Any

import netprocs
import numpy as np
from conftest import free_port
from netprocs import DTYPE, LAYOUT

from shmpipe import EmptyPipeError
from shmpipe.net import NetInputPipe, NetOutputPipe

SPAWN = multiprocessing.get_context("spawn")
B0 = 10**9  # the restarted writer's first timestamp: far above what the first one reaches


def start(target: Any, *args: Any) -> Any:
    p = SPAWN.Process(target=target, args=args, daemon=True)
    p.start()
    return p


def kill(p: Any) -> None:
    if p.is_alive():
        os.kill(p.pid, signal.SIGKILL)
    p.join(10)


async def read_until(inp: NetInputPipe, pred: Any, got: list[tuple[np.ndarray, bool]]
                     ) -> None:
    while not pred():
        d = await asyncio.wait_for(inp.read(), 30)
        got.append((np.array(d["timestamp"]), bool(d.end_of_interval)))
        inp.consume(len(d))


def stream(got: list[tuple[np.ndarray, bool]]) -> tuple[np.ndarray, list[int]]:
    """All timestamps, and the positions of the breaks in them."""
    ts, breaks, n = [], [], 0
    for t, eoi in got:
        ts.append(t)
        n += len(t)
        if eoi:
            breaks.append(n)
    return (np.concatenate(ts) if ts else np.empty(0, np.int64)), breaks


async def test_a_writer_killed_and_restarted_is_a_break_then_delivery_resumes() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)
    got: list[tuple[np.ndarray, bool]] = []
    written = netprocs.shared_counter()
    a = start(netprocs.send_forever, inp.endpoint, 0, 100, written)
    try:
        await read_until(inp, lambda: sum(len(t) for t, _ in got) >= 5000, got)
    finally:
        kill(a)  # SIGKILL: no end mark, no goodbye
    b = start(netprocs.send_n, inp.endpoint, B0, 3000, 100)
    try:
        while True:
            try:
                d = await asyncio.wait_for(inp.read(), 30)
            except EmptyPipeError:
                break
            got.append((np.array(d["timestamp"]), bool(d.end_of_interval)))
            inp.consume(len(d))
    finally:
        b.join(30)
        kill(b)
    await inp.close()
    ts, breaks = stream(got)
    assert np.all(np.diff(ts) > 0)  # in order, nothing twice
    first = ts[ts <= B0]
    np.testing.assert_array_equal(first, np.arange(1, len(first) + 1))  # no hole while alive
    np.testing.assert_array_equal(ts[len(first):], np.arange(B0 + 1, B0 + 3001))
    assert len(first) in breaks  # the restart is a break, right before the new writer's rows
    assert b.exitcode == 0


async def test_a_reader_killed_and_restarted_gets_the_rest_and_the_writer_never_hangs(
        ) -> None:
    ep = f"tcp://127.0.0.1:{free_port()}"
    q1: Any = SPAWN.Queue()
    window = 64 * 2**10
    # the first reader takes 2000 rows, then stops reading: the writer runs out of credit
    r1 = start(netprocs.receive, ep, q1, window, 2000)
    out = NetOutputPipe(ep, LAYOUT, timeout=20, heartbeat=0.1)
    total, block = 40_000, 200
    sent = [0]

    async def produce() -> None:
        for i in range(0, total, block):
            await out.write(netprocs.rows(i, block))
            sent[0] = i + block
        await out.close()

    writer = asyncio.create_task(produce())
    first: list[np.ndarray] = []
    try:
        while sum(len(t) for t in first) < 2000:
            item = await asyncio.to_thread(q1.get, timeout=30)
            first.append(item[0])
        stuck = sent[0]
        while True:  # the writer stops within a window of rows (nothing to wait on: poll)
            await asyncio.sleep(0.3)
            if sent[0] == stuck:
                break
            stuck = sent[0]
        assert stuck < total
    finally:
        kill(r1)
    q2: Any = SPAWN.Queue()
    r2 = start(netprocs.receive, ep, q2, window)
    second: list[tuple[np.ndarray, bool]] = []
    try:
        while True:
            item = await asyncio.to_thread(q2.get, timeout=30)
            if item is None:
                break
            second.append(item)
        await asyncio.wait_for(writer, 30)  # the end was confirmed by the new reader
    finally:
        kill(r2)
    with_r1 = np.concatenate(first)
    ts, _ = stream(second)
    assert len(ts) > 0 and np.all(np.diff(ts) > 0)
    assert not np.intersect1d(with_r1, ts).size  # nothing delivered twice
    assert ts[-1] == total  # delivery resumed to the end
    np.testing.assert_array_equal(ts, np.arange(ts[0], total + 1))  # no hole after rejoining
    assert ts[0] > stuck - window // DTYPE.itemsize - block  # lost: at most what was in flight


async def test_a_stalled_reader_bounds_memory_on_both_sides() -> None:
    window = 2 * 2**20
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT, window=window)
    written = netprocs.shared_counter()
    block = 1000  # 16 kB blocks, as fast as the writer can
    w = start(netprocs.send_forever, inp.endpoint, 0, block, written)
    try:
        first = await asyncio.wait_for(inp.read(), 30)  # connected and flowing
        base_rss = netprocs.rss_bytes(w.pid)
        mine = netprocs.rss_bytes(os.getpid())
        samples = []
        t = time.monotonic()
        while time.monotonic() - t < 3.0:  # the reader stalls (reads nothing) for 3 s
            await asyncio.sleep(0.25)  # sampling period, not synchronisation
            samples.append((written.value, netprocs.rss_bytes(w.pid)))
        held = inp._core.held_cost
        per_row = DTYPE.itemsize
        # the writer got no further than the window (plus the block being written)
        assert written.value * per_row <= window + 2 * block * per_row
        assert samples[-1][0] == samples[len(samples) // 2][0]  # and stays there
        assert max(r for _, r in samples) - base_rss < 4 * window + 8 * 2**20
        assert held <= window + 2**17
        assert netprocs.rss_bytes(os.getpid()) - mine < 4 * window + 8 * 2**20
        # then it reads again: everything arrives, in order
        got = [np.array(first["timestamp"])]
        inp.consume(len(first))
        target = written.value + 50 * block
        while got[-1][-1] < target:
            d = await asyncio.wait_for(inp.read(), 30)
            got.append(np.array(d["timestamp"]))
            inp.consume(len(d))
        ts = np.concatenate(got)
        np.testing.assert_array_equal(ts, np.arange(1, len(ts) + 1))
    finally:
        kill(w)
        await inp.close()

