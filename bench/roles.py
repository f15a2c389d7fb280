"""What the spawned workers run. Each function takes the :class:`Worker` first.

Every loop exists twice, for plain and for ``async`` channels; they are kept line for line
alike so that neither kind pays for the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import numpy as np

from bench.contenders.base import Channel, End
from bench.harness import Failed, Meter, Plan, Worker, clock, make_block, median, percentiles, touch

MIN_BLOCKS = 4  # a repetition sends at least this many blocks, whatever the time budget
SCALE_CHUNK = 10_000  # rows per write while a backlog is built up
SCALE_WARMUP = 3  # untimed rounds before the timed ones


def _more(meter: Meter, n: int, plan: Plan) -> bool:
    rows = meter.total
    return rows < plan.max_rows and (
        rows < MIN_BLOCKS * n or meter.last - meter.start < plan.deadline
    )


def _send(txs: list[End], block: np.ndarray, plan: Plan) -> tuple[int, float]:
    """Send until the plan says stop, then close; (rows sent, rows/s after warm-up)."""
    meter, n = Meter(plan.warm), len(block)
    if len(txs) == 1:
        send = txs[0].send
        while _more(meter, n, plan):
            send(block)
            meter.add(n)
    else:
        while _more(meter, n, plan):
            for tx in txs:
                tx.send(block)
            meter.add(n)
    for tx in txs:
        tx.close()
    return meter.total, meter.rate()


async def _asend(txs: list[End], block: np.ndarray, plan: Plan) -> tuple[int, float]:
    meter, n = Meter(plan.warm), len(block)
    if len(txs) == 1:
        send = txs[0].send
        while _more(meter, n, plan):
            await send(block)
            meter.add(n)
    else:
        while _more(meter, n, plan):
            for tx in txs:
                await tx.send(block)
            meter.add(n)
    for tx in txs:
        await tx.close()
    return meter.total, meter.rate()


def _recv(rx: End, warm: float) -> tuple[float, int]:
    meter, recv, release = Meter(warm), rx.recv, rx.release
    with contextlib.suppress(*rx.end):
        while True:
            rows = recv()
            touch(rows)
            n = len(rows)
            meter.add(n)
            release(n)
    rx.close()
    return meter.rate(), meter.total


async def _arecv(rx: End, warm: float) -> tuple[float, int]:
    meter, recv, release = Meter(warm), rx.recv, rx.release
    with contextlib.suppress(*rx.end):
        while True:
            rows = await recv()
            touch(rows)
            n = len(rows)
            meter.add(n)
            release(n)
    await rx.close()
    return meter.rate(), meter.total


# ------------------------------------------------------------------------- throughput
def produce(w: Worker, reps: list[list[Channel]], plan: Plan) -> list[tuple[int, float]]:
    """Per repetition: send blocks to every channel of the list; (rows sent, rows/s)."""
    block = make_block(plan.layout, plan.block)
    if reps[0][0].is_async:
        return asyncio.run(_aproduce(w, reps, plan, block))
    sent: list[tuple[int, float]] = []
    for chans in reps:
        txs = [c.sender() for c in chans]
        w.sync()
        sent.append(_send(txs, block, plan))
        w.sync()  # stay connected until every reader has everything (zmq drops what is unread)
    return sent


async def _aproduce(
    w: Worker, reps: list[list[Channel]], plan: Plan, block: np.ndarray
) -> list[tuple[int, float]]:
    sent: list[tuple[int, float]] = []
    for chans in reps:
        txs = [c.sender() for c in chans]
        w.sync()
        sent.append(await _asend(txs, block, plan))
        w.sync()
    return sent


def consume(w: Worker, reps: list[Channel], plan: Plan) -> list[tuple[float, int]]:
    """Per repetition: receive and touch every row; (rows/s after warm-up, rows received)."""
    if reps[0].is_async:
        return asyncio.run(_aconsume(w, reps, plan))
    out = []
    for chan in reps:
        rx = chan.receiver()
        w.sync()
        out.append(_recv(rx, plan.warm))
        w.sync()
    return out


async def _aconsume(w: Worker, reps: list[Channel], plan: Plan) -> list[tuple[float, int]]:
    out = []
    for chan in reps:
        rx = chan.receiver()
        w.sync()
        out.append(await _arecv(rx, plan.warm))
        w.sync()
    return out


def local(w: Worker, reps: list[Channel], plan: Plan) -> list[tuple[float, int]]:
    """Producer and consumer coroutines sharing one in-process pipe."""
    block = make_block(plan.layout, plan.block)

    async def main() -> list[tuple[float, int]]:
        out = []
        for chan in reps:
            tx, rx = chan.local_pair(2 * plan.block)
            (rate, got), (sent, send_rate) = await asyncio.gather(
                _arecv(rx, plan.warm), _asend([tx], block, plan)
            )
            if got != sent:
                raise Failed(f"lost rows: sent {sent}, received {got}")
            out.append((min(rate, send_rate), got))
        return out

    return asyncio.run(main())


def memcpy(w: Worker, plan: Plan) -> list[tuple[float, int]]:
    """``np.copyto`` of the block's bytes into a second preallocated block, as fast as it goes."""
    block = make_block(plan.layout, plan.block)
    src, dst = block.view(np.uint8), np.empty_like(block).view(np.uint8)
    n, out = len(block), []
    for _ in range(plan.reps):
        end = clock() + plan.warm
        while clock() < end:
            np.copyto(dst, src)
        copied, start = 0, clock()
        end = start + plan.budget
        while copied < plan.max_rows and (copied < MIN_BLOCKS * n or clock() < end):
            np.copyto(dst, src)
            copied += n
        out.append((copied / (clock() - start), copied))
    return out


# ---------------------------------------------------------------------------- latency
def ping(
    w: Worker,
    reps: list[tuple[Channel, Channel]],
    layout: str,
    rounds: int,
    warmup: int,
    budget: float,
) -> list[list[float]]:
    """Per repetition: one-row round trips; [p50, p99, p99.9] in microseconds."""
    row = make_block(layout, 1)
    if reps[0][0].is_async:
        return asyncio.run(_aping(w, reps, row, rounds, warmup, budget))
    out = []
    for there, back in reps:
        tx, rx = there.sender(), back.receiver()
        w.sync()
        send, recv, release, rtts = tx.send, rx.recv, rx.release, []
        end = clock() + budget
        for i in range(warmup + rounds):
            t = clock()
            send(row)
            release(len(recv()))
            rtts.append(clock() - t)
            if i > 2 * warmup and clock() > end:
                break
        tx.close()
        out.append([v * 1e6 for v in percentiles(rtts[warmup:])])
    return out


async def _aping(
    w: Worker,
    reps: list[tuple[Channel, Channel]],
    row: np.ndarray,
    rounds: int,
    warmup: int,
    budget: float,
) -> list[list[float]]:
    out = []
    for there, back in reps:
        tx, rx = there.sender(), back.receiver()
        w.sync()
        send, recv, release, rtts = tx.send, rx.recv, rx.release, []
        end = clock() + budget
        for i in range(warmup + rounds):
            t = clock()
            await send(row)
            release(len(await recv()))
            rtts.append(clock() - t)
            if i > 2 * warmup and clock() > end:
                break
        await tx.close()
        # read the way back to its end: a transport whose close waits for the reader to
        # confirm (network pipes) needs this side to still be reading
        with contextlib.suppress(*rx.end, asyncio.TimeoutError):
            while True:
                release(len(await asyncio.wait_for(recv(), 10)))
        out.append([v * 1e6 for v in percentiles(rtts[warmup:])])
    return out


def pong(w: Worker, reps: list[tuple[Channel, Channel]]) -> int:
    """Send every row straight back until the pinger closes."""
    if reps[0][0].is_async:
        return asyncio.run(_apong(w, reps))
    for there, back in reps:
        rx, tx = there.receiver(), back.sender()
        w.sync()
        with contextlib.suppress(*rx.end):
            while True:
                rows = rx.recv()
                tx.send(rows)
                rx.release(len(rows))
        tx.close()
    return len(reps)


async def _apong(w: Worker, reps: list[tuple[Channel, Channel]]) -> int:
    for there, back in reps:
        rx, tx = there.receiver(), back.sender()
        w.sync()
        with contextlib.suppress(*rx.end):
            while True:
                rows = await rx.recv()
                await tx.send(rows)
                rx.release(len(rows))
        await tx.close()
    return len(reps)


# ------------------------------------------------------------------------------- idle
def idle_send(w: Worker, chan: Channel) -> None:
    """Open the sending end and never send."""
    if chan.is_async:

        async def hold() -> None:
            tx = chan.sender()
            w.sync()
            await asyncio.sleep(3600)
            await tx.close()

        asyncio.run(hold())
    else:
        tx = chan.sender()
        w.sync()
        time.sleep(3600)
        tx.close()


def idle_recv(w: Worker, chan: Channel) -> None:
    """Open the receiving end, say so, and wait for rows that never come."""
    if chan.is_async:

        async def wait() -> None:
            rx = chan.receiver()
            w.sync()
            w.note("waiting")
            await rx.recv()

        asyncio.run(wait())
    else:
        rx = chan.receiver()
        w.sync()
        w.note("waiting")
        rx.recv()


# ---------------------------------------------------------------------------- scaling
def scale(w: Worker, chan: Channel, levels: list[int], repeats: int) -> list[list[float]]:
    """Per backlog size n: [n, read µs, consume(1) µs, rows returned], medians of repeats.

    A backlog of n unconsumed rows is built up first; then, ``repeats`` times, one row is
    written, ``read()`` is timed (it returns the backlog plus the new row) and one row is
    consumed, so the backlog stays at n.
    """
    row = make_block(chan.layout, 1)
    chunk = make_block(chan.layout, SCALE_CHUNK)

    async def level(n: int) -> list[float]:
        tx, rx = chan.local_pair(n + SCALE_WARMUP + repeats + SCALE_CHUNK)

        async def fill() -> None:
            for start in range(0, n, SCALE_CHUNK):
                await tx.send(chunk[: min(SCALE_CHUNK, n - start)])

        async def backlog() -> None:
            while len(await rx.recv()) < n:
                await asyncio.sleep(0)

        await asyncio.gather(fill(), backlog())
        reads, consumes, sizes = [], [], []
        for i in range(SCALE_WARMUP + repeats):
            await tx.send(row)
            t0 = clock()
            rows = await rx.recv()
            t1 = clock()
            rx.release(1)
            t2 = clock()
            if i >= SCALE_WARMUP:
                reads.append(t1 - t0)
                consumes.append(t2 - t1)
                sizes.append(len(rows))
        await tx.close()
        await rx.close()
        with contextlib.suppress(Exception):
            chan.cleanup()
        return [n, median(reads) * 1e6, median(consumes) * 1e6, median(sizes)]

    async def main() -> list[list[float]]:
        return [await level(n) for n in levels]

    return asyncio.run(main())
