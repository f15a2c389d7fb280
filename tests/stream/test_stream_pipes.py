"""Stream pipes over OS pipes and sockets: the shell around the codec."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shmpipe
from shmpipe import EmptyPipeError, InputPipe, OutputPipe, PipeError

LAYOUT = "float32_2"
DTYPE = shmpipe.compute_dtype(LAYOUT)


def rows(start: int, n: int) -> np.ndarray:
    r = np.zeros(n, DTYPE)
    r["timestamp"] = np.arange(start, start + n) + 1
    r["data"] = (r["timestamp"] * 0.5)[:, None]
    return r


def os_pipe_pair(**kw: Any) -> tuple[InputPipe, OutputPipe]:
    fd_r, fd_w = os.pipe()
    return (InputPipe(layout=LAYOUT, reader_factory=shmpipe.reader_factory(fd_r), **kw),
            OutputPipe(layout=LAYOUT, writer_factory=shmpipe.writer_factory(fd_w)))


async def drain(inp: InputPipe) -> tuple[np.ndarray, list[tuple[int, bool]]]:
    got, reads = [], []
    while True:
        try:
            d = await asyncio.wait_for(inp.read(), 5)
        except EmptyPipeError:
            break
        got.append(np.array(d))
        reads.append((len(d), d.end_of_interval))
        inp.consume(len(d))
    return (np.concatenate(got) if got else np.empty(0, DTYPE)), reads


async def test_rows_and_breaks_cross_an_os_pipe() -> None:
    inp, out = os_pipe_pair()
    await out.write(rows(0, 10))
    await out.close_interval()
    await out.close_interval()  # an empty interval: a read of 0 rows, never dropped
    await out.write(rows(10, 5))
    await out.close()
    data, reads = await drain(inp)
    np.testing.assert_array_equal(data, rows(0, 15))
    assert reads == [(10, True), (0, True), (5, False)]
    await inp.close()


async def test_rows_after_a_break_in_the_same_os_read_come_at_once() -> None:
    """Joule 1.0.1 holds them back until more bytes arrive; the writer here sends nothing
    more and does not close, so a stalled read would time out."""
    inp, out = os_pipe_pair()
    await out.write(rows(0, 3))
    await out.close_interval()
    await out.write(rows(3, 4))  # all three arrive in one OS read
    first = await asyncio.wait_for(inp.read(), 2)
    assert len(first) == 3 and first.end_of_interval
    inp.consume(3)
    second = await asyncio.wait_for(inp.read(), 0.5)
    np.testing.assert_array_equal(second, rows(3, 4))
    await out.close()
    await inp.close()


async def test_writing_the_break_token_as_data_is_refused_and_writes_nothing() -> None:
    inp, out = os_pipe_pair()
    sub = shmpipe.LocalPipe(LAYOUT)
    out.subscribe(sub)
    bad = rows(0, 4)
    bad[2] = np.zeros(1, DTYPE)[0]
    with pytest.raises(PipeError, match="row 2 has timestamp 0"):
        await out.write(bad)
    with pytest.raises(PipeError, match="row 2"):
        out.write_nowait(bad)
    assert len(sub.read_nowait()) == 0, "the subscriber got part of a refused block"
    await out.write(rows(0, 2))  # the pipe stays usable
    await out.close()
    data, _ = await drain(inp)
    np.testing.assert_array_equal(data, rows(0, 2))
    await inp.close()


async def test_eof_inside_a_row_delivers_whole_rows_then_warns(caplog: Any) -> None:
    fd_r, fd_w = os.pipe()
    inp = InputPipe(layout=LAYOUT, reader_factory=shmpipe.reader_factory(fd_r))
    os.write(fd_w, rows(0, 3).tobytes()[:-5])
    os.close(fd_w)
    with caplog.at_level(logging.WARNING, logger="shmpipe"):
        data, _ = await drain(inp)
    np.testing.assert_array_equal(data, rows(0, 2))
    assert f"{DTYPE.itemsize - 5} trailing bytes" in caplog.text
    with pytest.raises(EmptyPipeError):
        await inp.read()
    await inp.close()


async def test_a_full_buffer_returns_the_unconsumed_rows() -> None:
    inp, out = os_pipe_pair(buffer_size=100)
    await out.write(rows(0, 500))
    a = await asyncio.wait_for(inp.read(), 2)
    assert len(a) == 100
    b = await asyncio.wait_for(inp.read(), 0.5)  # nothing consumed: the same rows at once
    np.testing.assert_array_equal(a, b)
    inp.consume(96)
    c = await asyncio.wait_for(inp.read(), 2)
    np.testing.assert_array_equal(c[:4], a[-4:])
    assert len(c) <= 100
    await out.close()
    await inp.close()


async def test_memory_is_bounded_by_buffer_size_and_consume_is_cheap() -> None:
    """Reading 200k rows through a 1000-row buffer, consuming one row at a time: memory
    stays at the buffer and the time per consume does not grow with the buffer."""
    inp, out = os_pipe_pair(buffer_size=1000)
    total = 200_000

    async def write() -> None:
        for i in range(0, total, 5000):
            await out.write(rows(i, 5000))
        await out.close()

    writer = asyncio.ensure_future(write())
    tracemalloc.start()
    consumed = reads = peak = 0
    while True:
        try:
            d = await asyncio.wait_for(inp.read(), 5)
        except EmptyPipeError:
            break
        reads += 1
        assert len(d) <= 1000
        assert d["timestamp"][0] == consumed + 1
        k = 1 if reads % 2 and len(d) > 1 else len(d)  # often just one row
        inp.consume(k)
        consumed += k
        peak = max(peak, tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    await writer
    assert consumed == total
    assert peak < 2_000_000, f"peak {peak} bytes"
    await inp.close()


async def test_unix_socket_stream() -> None:
    a, b = socket.socketpair()
    reader, _a_writer = await asyncio.open_unix_connection(sock=a)
    _b_reader, writer = await asyncio.open_unix_connection(sock=b)
    inp = InputPipe(layout=LAYOUT, reader=reader)
    out = OutputPipe(layout=LAYOUT, writer=writer)
    out.enable_cache(7)
    for i in range(20):
        await out.write(rows(i, 1))
    await out.close_interval()  # flushes the cached rows and marks the break in one step
    await out.close()
    data, reads = await drain(inp)
    np.testing.assert_array_equal(data, rows(0, 20))
    assert reads[-1][1] is True
    await inp.close()


async def test_waiting_read_wakes_when_bytes_arrive() -> None:
    inp, out = os_pipe_pair()
    task = asyncio.ensure_future(inp.read())
    await asyncio.sleep(0.05)  # the read is waiting: nothing was written yet
    assert not task.done()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await out.write(rows(0, 1))
    d = await asyncio.wait_for(task, 1)
    assert loop.time() - t0 < 0.1, "the read slept instead of waking on the bytes"
    assert len(d) == 1
    await out.close()
    await inp.close()


def test_constructors_take_joules_positional_order() -> None:
    inp = InputPipe("in", None, LAYOUT, None, None, None, 50)
    assert inp.buffer_size == 50 and inp.layout == LAYOUT
    out = OutputPipe("out", None, LAYOUT, None, None, None)
    assert out.writer is None and out.writer_factory is None


def _wire(items: list[Any]) -> tuple[bytes, tuple[list[int], list[int]]]:
    """Wire bytes; the row timestamps; where the breaks are (the timestamp of the row
    before each, 0 at the start)."""
    parts, ts_list, breaks, ts = [], [], [], 1
    for item in items:
        if item == "break":
            parts.append(bytes(DTYPE.itemsize))
            breaks.append(ts - 1)
        else:
            r = rows(ts - 1, item)
            ts += item
            parts.append(r.tobytes())
            ts_list.extend(int(t) for t in r["timestamp"])
    return b"".join(parts), (ts_list, breaks)


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.one_of(st.integers(1, 40), st.just("break")), max_size=10),
    cuts=st.lists(st.integers(1, 200), max_size=30),
    buffer_size=st.integers(1, 50),
    direct=st.booleans(),
)
def test_any_cuts_any_buffer_through_a_real_pipe(items: list[Any], cuts: list[int],
                                                 buffer_size: int, direct: bool) -> None:
    """Bytes written in arbitrary pieces (rows split anywhere), read through a small buffer,
    by the direct-read path (reader_factory) or a StreamReader: the same rows and breaks."""
    wire, expected = _wire(items)

    async def run() -> tuple[list[int], list[int]]:
        fd_r, fd_w = os.pipe()
        if direct:
            inp = InputPipe(layout=LAYOUT, reader_factory=shmpipe.reader_factory(fd_r),
                            buffer_size=buffer_size)
        else:
            reader = asyncio.StreamReader()
            transport, _ = await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), open(fd_r, "rb", 0))  # noqa: SIM115
            inp = InputPipe(layout=LAYOUT, reader=reader, buffer_size=buffer_size)

        async def write() -> None:
            pos, i = 0, 0
            while pos < len(wire):
                n = cuts[i % len(cuts)] if cuts else len(wire)
                os.write(fd_w, wire[pos : pos + n])
                pos += n
                i += 1
                await asyncio.sleep(0)
            os.close(fd_w)

        writer = asyncio.ensure_future(write())
        got: list[int] = []
        breaks: list[int] = []
        while True:
            try:
                d = await asyncio.wait_for(inp.read(), 5)
            except EmptyPipeError:
                break
            if d.end_of_interval:  # a read stops at the break once
                breaks.append(int(d["timestamp"][-1]) if len(d) else (got[-1] if got else 0))
            k = max(1, len(d) // 2) if len(d) > 1 else len(d)  # consume part of each read
            got.extend(int(t) for t in d["timestamp"][:k])
            inp.consume(k)
        await writer
        await inp.close()
        if not direct:
            transport.close()
        return got, breaks

    assert asyncio.run(run()) == expected


async def test_tcp_loopback_stream() -> None:
    got: asyncio.Future[tuple[np.ndarray, list[tuple[int, bool]]]] = \
        asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        inp = InputPipe(layout=LAYOUT, reader=reader, buffer_size=64)
        got.set_result(await drain(inp))
        await inp.close()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = OutputPipe(layout=LAYOUT, writer=writer)
    await out.write(rows(0, 1000))
    await out.close_interval()
    await out.write(rows(1000, 10))
    await out.close()
    data, reads = await asyncio.wait_for(got, 10)
    np.testing.assert_array_equal(data, rows(0, 1010))
    assert sum(n for n, _ in reads) == 1010 and any(eoi for _, eoi in reads)
    server.close()
    await server.wait_closed()


async def test_closing_an_input_wakes_its_waiting_read_and_unregisters_the_fd() -> None:
    inp, out = os_pipe_pair()
    await out.write(rows(0, 1))
    assert len(await inp.read()) == 1
    inp.consume(1)
    task = asyncio.ensure_future(inp.read())
    await asyncio.sleep(0.02)  # the read waits on the descriptor
    assert not task.done()
    await inp.close()
    with pytest.raises((EmptyPipeError, PipeError)):
        await asyncio.wait_for(task, 1)
    fd_r, fd_w = os.pipe()  # the closed fd number may come back: it must be watched again
    again = InputPipe(layout=LAYOUT, reader_factory=shmpipe.reader_factory(fd_r))
    os.write(fd_w, rows(5, 2).tobytes())
    assert len(await asyncio.wait_for(again.read(), 1)) == 2
    os.close(fd_w)
    await again.close()
    await out.close()


async def test_a_refilled_array_is_sent_as_it_was_when_written_over_a_socket() -> None:
    a, b = socket.socketpair()
    reader, _a_writer = await asyncio.open_unix_connection(sock=a)
    _b_reader, writer = await asyncio.open_unix_connection(sock=b)
    inp = InputPipe(layout=LAYOUT, reader=reader, buffer_size=100_000)
    out = OutputPipe(layout=LAYOUT, writer=writer)
    received = asyncio.ensure_future(drain(inp))
    block = rows(0, 50_000)
    await out.write(block)
    block["timestamp"] += 1_000_000  # the producer reuses its array at once
    await out.close()
    data, _ = await received
    np.testing.assert_array_equal(data["timestamp"], rows(0, 50_000)["timestamp"])
    await inp.close()


async def test_write_nowait_with_a_cache_keeps_the_cached_rows_when_it_cannot_send() -> None:
    fd_r, fd_w = os.pipe()
    out = OutputPipe(layout=LAYOUT, writer_factory=shmpipe.writer_factory(fd_w))
    out.enable_cache(2)
    out.write_nowait(rows(0, 1))  # cached
    with pytest.raises(PipeError, match="not connected"):
        out.write_nowait(rows(1, 1))  # a flush is due and the writer is not open yet
    await out.write(rows(1, 1))  # now it opens: both rows go
    await out.close()
    inp = InputPipe(layout=LAYOUT, reader_factory=shmpipe.reader_factory(fd_r))
    data, _ = await drain(inp)
    np.testing.assert_array_equal(data, rows(0, 2))
    await inp.close()


async def test_a_break_before_any_write_is_a_no_op_as_in_joule() -> None:
    inp, out = os_pipe_pair()
    out.close_interval_nowait()
    await out.close_interval()
    await out.write(rows(0, 2))
    await out.close()
    _, reads = await drain(inp)
    assert reads == [(2, False)]
    await inp.close()


async def test_a_subscriber_with_its_own_write_nowait_is_accepted() -> None:
    class Recorder(OutputPipe):
        def __init__(self) -> None:
            super().__init__(layout=LAYOUT)
            self.got: list[int] = []

        def write_nowait(self, data: Any) -> None:
            self.got.extend(int(t) for t in data["timestamp"])

    pipe = shmpipe.LocalPipe(LAYOUT)
    sub = Recorder()
    pipe.subscribe(sub)
    pipe.write_nowait(rows(0, 2))
    assert sub.got == [1, 2]
