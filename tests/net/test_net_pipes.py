"""Network pipes, both ends in one event loop: delivery, the pipe API, bad peers, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import resource
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator

import numpy as np
import pytest
import zmq
import zmq.asyncio
from conftest import DTYPE, LAYOUT, free_port, rows

import shmpipe
from shmpipe import EmptyPipeError, PipeError
from shmpipe.net import NetInputPipe, NetOutputPipe
from shmpipe.net import frames as fr
from shmpipe.net.endpoint import normalise
from shmpipe.net.ends import SPIN_MAX, SPIN_WHEN


async def drain(inp: NetInputPipe, timeout: float = 10
                ) -> tuple[np.ndarray, list[tuple[int, bool]]]:
    got, reads = [], []
    while True:
        try:
            d = await asyncio.wait_for(inp.read(), timeout)
        except EmptyPipeError:
            break
        got.append(np.array(d))
        reads.append((len(d), d.end_of_interval))
        inp.consume(len(d))
    return (np.concatenate(got) if got else np.empty(0, DTYPE)), reads


async def test_rows_and_breaks_arrive_exactly(endpoint: str) -> None:
    inp = NetInputPipe(endpoint, LAYOUT)
    out = NetOutputPipe(endpoint, LAYOUT)
    await out.write(rows(0, 10))
    await out.close_interval()
    await out.close_interval()  # an empty interval: a read of 0 rows
    await out.write(rows(10, 5))
    await out.write(rows(15, 1))
    await out.close()
    data, reads = await drain(inp)
    np.testing.assert_array_equal(data, rows(0, 16))
    assert [(n, e) for n, e in reads] == [(10, True), (0, True), (6, False)]
    await inp.close()


async def test_large_blocks_split_to_the_window_and_every_value_is_legal(endpoint: str) -> None:
    inp = NetInputPipe(endpoint, LAYOUT, window=4096)
    out = NetOutputPipe(endpoint, LAYOUT)
    block = np.zeros(1000, DTYPE)  # all-zero rows: data here, not a break (unlike Joule's)
    block["timestamp"] = np.arange(1000)

    async def produce() -> None:
        await out.write(block)
        await out.close_interval()
        await out.write(block)
        await out.close()

    task = asyncio.create_task(produce())
    data, reads = await drain(inp)
    await task
    np.testing.assert_array_equal(data, np.concatenate([block, block]))
    assert sum(n for n, _ in reads[: [e for _, e in reads].index(True) + 1]) == 1000
    assert max(n for n, _ in reads) * DTYPE.itemsize <= 4096
    await inp.close()


@pytest.mark.parametrize("receiver_binds", [True, False])
@pytest.mark.parametrize("first", ["receiver", "sender"])
async def test_either_end_may_bind_and_either_may_start_first(
        receiver_binds: bool, first: str) -> None:
    ep = f"tcp://127.0.0.1:{free_port()}"

    def make_in() -> NetInputPipe:
        return NetInputPipe(ep, LAYOUT, bind=receiver_binds)

    def make_out() -> NetOutputPipe:
        return NetOutputPipe(ep, LAYOUT, bind=not receiver_binds, timeout=10)

    if first == "sender":
        out = make_out()
        write = asyncio.create_task(out.write(rows(0, 3)))
        await asyncio.sleep(0.2)  # the writer is waiting for a reader (nothing to wait on)
        assert not write.done()
        inp = make_in()
    else:
        inp = make_in()
        out = make_out()
        write = asyncio.create_task(out.write(rows(0, 3)))
    await write
    await out.close()
    data, _ = await drain(inp)
    np.testing.assert_array_equal(data, rows(0, 3))
    await inp.close()


async def test_a_reader_without_layout_takes_the_writers(endpoint: str) -> None:
    inp = NetInputPipe(endpoint)
    with pytest.raises(ValueError, match="no layout yet"):
        _ = inp.layout
    out = NetOutputPipe(endpoint, "int16_3")
    r = np.zeros(4, shmpipe.compute_dtype("int16_3"))
    r["timestamp"] = [1, 2, 3, 4]
    await out.write(r)
    await out.close()
    data = await inp.read()
    assert inp.layout == "int16_3" and data.dtype == r.dtype
    np.testing.assert_array_equal(data, r)
    await inp.close()


async def test_a_writer_of_another_layout_is_refused_and_the_reader_keeps_its_rows(
        endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    inp = NetInputPipe(endpoint, LAYOUT)
    good = NetOutputPipe(endpoint, LAYOUT)
    await good.write(rows(0, 5))
    data = await inp.read()
    bad = NetOutputPipe(endpoint, "float64_2", timeout=5)
    with pytest.raises(PipeError, match="expects layout 'float32_2', this pipe writes "
                                        "'float64_2'"):
        await bad.write(np.zeros((3, 3)))
    with pytest.raises(PipeError, match="expects layout"):  # and every later write
        await bad.write(np.zeros((3, 3)))
    await bad.close()
    np.testing.assert_array_equal(data, rows(0, 5))  # the view read before is intact
    await good.write(rows(5, 2))
    await good.close()
    inp.consume(0)
    rest, _ = await drain(inp)
    np.testing.assert_array_equal(rest, rows(0, 7))
    assert "expected layout 'float32_2', got 'float64_2'" in caplog.text
    await inp.close()


async def test_garbage_and_foreign_messages_are_dropped_and_rows_stay_intact(
        caplog: pytest.LogCaptureFixture) -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT, window=2**20)
    out = NetOutputPipe(inp.endpoint, LAYOUT)
    await out.write(rows(0, 5))
    first = await inp.read()
    ctx = zmq.asyncio.Context()
    raw = ctx.socket(zmq.DEALER)
    raw.linger = 0
    raw.connect(inp.endpoint)
    header = fr.encode(fr.Header(fr.Kind.DATA, 0, LAYOUT, 12345, 0, 0, 3))
    garbage: list[list[bytes]] = [
        [b"hello"],  # a stranger's text
        [b""],  # an empty frame
        [b"SHMN"],  # our magic, truncated
        [header[:40], b"x" * 24],  # a truncated header
        [header],  # DATA without its rows frame
        [header, b"x" * 23],  # a row count that does not match the payload
        [header, b"x" * 24, b"more"],  # one frame too many
        [header[:4] + b"\x07" + header[5:], b"x" * 24],  # another version
        [fr.encode(fr.Header(fr.Kind.ACK, 0, LAYOUT, 1))],  # a reader's message
    ]
    for msg in garbage:
        await raw.send_multipart(msg)
    replies = []
    for _ in range(5):  # truncated, frame counts (2), payload, version: a REFUSE each
        reply = await asyncio.wait_for(raw.recv_multipart(), 10)
        replies.append(fr.decode(reply[0]))
    await raw.send(b"\0" * (2**20 + 2**21))  # oversized: zmq drops the connection
    assert {(h.kind, h.flags) for h in replies} >= {
        (fr.Kind.REFUSE, fr.Refusal.VERSION), (fr.Kind.REFUSE, fr.Refusal.MALFORMED)}
    await out.write(rows(5, 3))
    await out.close()
    np.testing.assert_array_equal(first, rows(0, 5))  # read before the garbage: unchanged
    inp.consume(0)
    data, reads = await drain(inp)
    np.testing.assert_array_equal(data, rows(0, 8))
    assert all(not e for _, e in reads)  # strangers never break our writer's stream
    for text in ("expected a shmpipe header frame starting with b'SHMN', got b'hello'",
                 "expected a 72-byte header frame, got 40 bytes",
                 "expected 2 frame(s) for a DATA message, got 1",
                 "expected 3 rows of 16 bytes (48 bytes) in the rows frame, got 23 bytes",
                 "expected format version 1, got version 7",
                 "a reader takes DATA and PING only"):
        assert text in caplog.text
    raw.close()
    ctx.term()
    await inp.close()


async def test_a_write_modified_after_it_returns_is_received_as_written() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)
    out = NetOutputPipe(inp.endpoint, LAYOUT)
    block = rows(0, 20000)
    expected = block.copy()
    await out.write(block)
    block["data"] = -1  # the caller reuses its array at once
    await out.close()
    data, _ = await drain(inp)
    np.testing.assert_array_equal(data, expected)
    await inp.close()


async def test_lent_rows_arrive_exactly_and_each_loan_ends(endpoint: str) -> None:
    inp = NetInputPipe(endpoint, LAYOUT, window=2**20)
    out = NetOutputPipe(endpoint, LAYOUT)
    big, small = rows(0, 100_000), rows(100_000, 3)  # 1.6 MB, split to the window; 48 bytes
    task = asyncio.create_task(drain(inp))
    loans = [await out.lend(big)]
    await out.close_interval()
    loans.append(await out.lend(small))
    loans.append(await out.lend(np.array([[100_003, 1.0, 2.0]])))  # converted, then lent
    loans.append(await out.lend(np.empty(0, DTYPE)))  # nothing to lend: done at once
    assert loans[-1].done()
    await asyncio.wait_for(asyncio.gather(*loans), 10)
    await out.released()
    big["data"] = -1  # given back: the caller may change its rows now
    await out.close()
    data, reads = await task
    expected = np.concatenate([rows(0, 100_000), small, np.array([(100_003, (1.0, 2.0))], DTYPE)])
    np.testing.assert_array_equal(data, expected)
    assert sum(n for n, _ in reads[: [e for _, e in reads].index(True) + 1]) == 100_000
    await inp.close()


@contextlib.contextmanager
def _silent_listener() -> Iterator[str]:
    """A loopback endpoint that accepts connections but never speaks ZeroMQ: what a writer
    sends there stays in ZeroMQ's queue."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"


def _credited(endpoint: str) -> NetOutputPipe:
    """A writer given credit as if a reader had answered (none will)."""
    out = NetOutputPipe(endpoint, LAYOUT, timeout=0.3, heartbeat=0.1)
    out._core.on_reply([fr.HEADER_SIZE], fr.encode(fr.Header(
        fr.Kind.ACK, 0, LAYOUT, out._core.session, 7, 0, 0, 0, 2**24)))
    return out


async def test_lent_rows_stay_lent_until_zeromq_lets_go_of_them() -> None:
    with _silent_listener() as endpoint:
        out = _credited(endpoint)
        block = rows(0, 10_000)  # 160 kB: lent, not copied
        loan = await out.lend(block)
        await asyncio.sleep(0.2)  # (nothing can give it back: look a while that it is not)
        assert not loan.done()
        waiting = asyncio.create_task(out.released())
        await asyncio.sleep(0)
        assert not waiting.done()
        with pytest.raises(PipeError, match="did not confirm"):
            await out.close()  # the socket closes: ZeroMQ drops the message and lets go
        await asyncio.wait_for(loan, 5)
        await asyncio.wait_for(waiting, 5)


async def test_bad_rows_to_lend_are_refused_and_the_pipe_stays_usable() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)
    out = NetOutputPipe(inp.endpoint, LAYOUT)
    with pytest.raises(PipeError, match="expected"):
        await out.lend(np.zeros((3, 7)))
    await asyncio.wait_for(await out.lend(rows(0, 5)), 10)
    await out.close()
    data, _ = await drain(inp)
    np.testing.assert_array_equal(data, rows(0, 5))
    await inp.close()
    with pytest.raises(PipeError, match="closed pipe"):
        await out.lend(rows(5, 1))


async def test_large_writes_reuse_the_buffers_zeromq_gave_back() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT, window=2**20)
    out = NetOutputPipe(inp.endpoint, LAYOUT)
    reader = asyncio.create_task(drain(inp))
    block = rows(0, 20_000)  # 320 kB: copied into a pooled buffer
    for i in range(60):
        block["timestamp"] = np.arange(20_000) + 20_000 * i + 1
        await out.write(block)  # the block changes right after: each copy is its own
    await out.close()
    data, _ = await reader
    np.testing.assert_array_equal(data["timestamp"], np.arange(60 * 20_000) + 1)
    assert 0 < out._pool.made < 20  # not one per message: buffers came back, were reused
    await inp.close()


async def test_every_task_waiting_for_lent_rows_is_woken() -> None:
    with _silent_listener() as endpoint:
        out = _credited(endpoint)
        loan = await out.lend(rows(0, 10_000))
        waiting = [asyncio.create_task(out.released()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiting)
        with pytest.raises(PipeError, match="did not confirm"):
            await out.close()
        await asyncio.wait_for(asyncio.gather(loan, *waiting), 5)


async def test_a_lend_is_watched_whatever_pyzmq_copy_threshold_says(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zmq, "COPY_THRESHOLD", 1024)  # sockets made now send 1 kB+ lent
    with _silent_listener() as endpoint:
        out = _credited(endpoint)
        loan = await out.lend(rows(0, 2048))  # 32 kB: under the default threshold
        await asyncio.sleep(0.2)  # (nothing can give it back: look a while that it is not)
        assert not loan.done()
        with pytest.raises(PipeError, match="did not confirm"):
            await out.close()
        await asyncio.wait_for(loan, 5)


def test_lent_rows_given_back_after_their_loop_closed_are_counted() -> None:
    with _silent_listener() as endpoint:
        out = _credited(endpoint)

        async def lend() -> None:
            await out.lend(rows(0, 10_000))

        asyncio.run(lend())  # the loop that lent closes with the rows still lent
        with pytest.raises(PipeError, match="did not confirm"):
            asyncio.run(out.close())  # ZeroMQ drops the message: given back, no loop there
        asyncio.run(asyncio.wait_for(out.released(), 5))


def test_a_pipe_dropped_with_rows_lent_is_collected_and_gives_them_back() -> None:
    with _silent_listener() as endpoint:
        pipes = [_credited(endpoint)]
        block = rows(0, 10_000)

        async def lend() -> None:
            await pipes[0].lend(block)

        asyncio.run(lend())
        lent, sock = pipes[0]._lent, pipes[0]._link.sock
        gone = weakref.ref(pipes[0])
        pipes.clear()
        gc.collect()
        assert gone() is None  # nothing of the lend keeps the pipe alive
        assert sock.closed  # its finalizer closed the socket: ZeroMQ dropped the message
        deadline = time.monotonic() + 5
        while lent.count and time.monotonic() < deadline:  # pyzmq's gc thread gives it back
            time.sleep(0.01)
        assert lent.count == 0


async def test_reads_are_read_only_views(endpoint: str) -> None:
    inp = NetInputPipe(endpoint, LAYOUT)
    out = NetOutputPipe(endpoint, LAYOUT)
    await out.write(rows(0, 100))
    data = await inp.read()
    assert not data.flags.writeable
    with pytest.raises(ValueError):
        data["timestamp"][0] = 5
    await out.close()
    await inp.close()


async def test_cache_subscribe_nowait_is_empty_and_read_sync(endpoint: str) -> None:
    inp = NetInputPipe(endpoint, LAYOUT)
    out = NetOutputPipe(endpoint, LAYOUT)
    with pytest.raises(PipeError, match="no reader has granted credit yet"):
        out.write_nowait(rows(0, 1))
    local = shmpipe.LocalPipe(LAYOUT)
    out.subscribe(local)
    out.enable_cache(4)
    await out.write(rows(0, 3))  # cached
    assert inp.read_nowait().size == 0
    await out.write(rows(3, 3))  # 4 go, 2 wait
    assert not await inp.is_empty()
    np.testing.assert_array_equal(await inp.read(), rows(0, 4))
    inp.consume(4)
    await out.close_interval()  # the 2 cached rows and the break
    d = inp.read_sync(timeout=5)
    np.testing.assert_array_equal(d, rows(4, 2))
    assert d.end_of_interval
    inp.consume(2)
    out.write_nowait(rows(6, 1))  # credit is there now
    out.close_interval_nowait()  # cache flushed and the break, without waiting
    d = inp.read_sync(timeout=5)  # (two messages: the row may come first, alone)
    np.testing.assert_array_equal(d, rows(6, 1))
    if not d.end_of_interval:
        d = inp.read_sync(timeout=5)
    assert d.end_of_interval
    inp.consume(1)
    assert inp.read_sync(timeout=0.05).size == 0  # nothing new: times out
    await out.close()
    assert await inp.is_empty()
    with pytest.raises(EmptyPipeError):
        await inp.read()
    d = await local.read()  # the subscriber got the same rows and the break
    np.testing.assert_array_equal(d, rows(0, 6))
    assert d.end_of_interval
    await inp.close()
    with pytest.raises(PipeError, match="input pipe"):
        await inp.write(rows(0, 1))
    with pytest.raises(PipeError, match="closed pipe"):
        await out.write(rows(9, 1))


async def test_close_waits_until_the_reader_confirms() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)
    out = NetOutputPipe(inp.endpoint, LAYOUT, timeout=10)
    await out.write(rows(0, 100))
    await out.close()  # returns once the end mark is confirmed received
    assert inp._core.ended  # received, before this end read anything
    data, _ = await drain(inp)
    assert len(data) == 100
    await inp.close()


async def test_a_writer_never_waits_forever_for_a_reader_that_is_gone() -> None:
    out = NetOutputPipe(f"tcp://127.0.0.1:{free_port()}", LAYOUT, timeout=0.5, heartbeat=0.1)
    t = time.monotonic()
    with pytest.raises(PipeError, match=r"no reader answered at tcp://127\.0\.0\.1:.* for 0\.5 s"):
        await out.write(rows(0, 1))
    assert 0.4 < time.monotonic() - t < 3
    await out.close()  # nothing was sent: nothing to confirm

    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)
    out = NetOutputPipe(inp.endpoint, LAYOUT, timeout=0.5, heartbeat=0.1)
    await out.write(rows(0, 1))
    await inp.close()  # the reader goes away for good
    with pytest.raises(PipeError, match=r"did not confirm messages 0\.\.1 within 0\.5 s"):
        await out.close()


async def test_a_reader_that_answers_but_does_not_consume_is_waited_for() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT, window=64 * DTYPE.itemsize)
    out = NetOutputPipe(inp.endpoint, LAYOUT, timeout=0.3, heartbeat=0.05)
    write = asyncio.create_task(out.write(rows(0, 1000)))
    await asyncio.sleep(1.0)  # three timeouts long: the reader answers pings, so no error
    assert not write.done()
    assert inp._core.held_cost <= 64 * DTYPE.itemsize
    data, _ = await drain_n(inp, 1000)
    await write
    np.testing.assert_array_equal(data, rows(0, 1000))
    await out.close()
    await inp.close()


async def drain_n(inp: NetInputPipe, n: int) -> tuple[np.ndarray, int]:
    got, reads = [], 0
    while sum(len(g) for g in got) < n:
        d = await asyncio.wait_for(inp.read(), 10)
        got.append(np.array(d))
        reads += 1
        inp.consume(len(d))
    return np.concatenate(got), reads


async def test_disconnect_keeps_the_stream_open_and_a_new_writer_makes_a_break() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)
    out = NetOutputPipe(inp.endpoint, LAYOUT)
    await out.write(rows(0, 3))
    await out.disconnect()
    out2 = NetOutputPipe(inp.endpoint, LAYOUT)
    await out2.write(rows(3, 2))
    await out2.close()
    data, reads = await drain(inp)
    np.testing.assert_array_equal(data, rows(0, 5))
    assert reads == [(3, True), (2, False)]
    await inp.close()


async def test_an_idle_pipe_costs_no_cpu() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)
    out = NetOutputPipe(inp.endpoint, LAYOUT)
    await out.write(rows(0, 1))
    await inp.read()
    inp.consume(1)
    reader = asyncio.create_task(inp.read())
    before = resource.getrusage(resource.RUSAGE_SELF)
    t = time.monotonic()
    await asyncio.sleep(1.0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert used / (time.monotonic() - t) < 0.03  # heartbeats only: well under 3 % of a core
    await out.write(rows(1, 1))
    np.testing.assert_array_equal(await reader, rows(1, 1))
    await out.close()
    await inp.close()


def test_wildcard_hosts_bind_loopback_only() -> None:
    assert normalise("tcp://*:5601", bind=True) == "tcp://127.0.0.1:5601"
    assert normalise("tcp://:5601", bind=True) == "tcp://127.0.0.1:5601"
    assert normalise("tcp://0.0.0.0:5601", bind=True) == "tcp://0.0.0.0:5601"
    assert normalise("tcp://127.0.0.1:0", bind=True) == "tcp://127.0.0.1:*"
    assert normalise("ipc:///tmp/x", bind=False) == "ipc:///tmp/x"
    inp = NetInputPipe("tcp://*:*", LAYOUT)
    assert inp.endpoint.startswith("tcp://127.0.0.1:")
    asyncio.run(inp.close())


@pytest.mark.parametrize(("endpoint", "bind", "message"), [
    ("udp://127.0.0.1:5", True, "expected an endpoint like tcp://127.0.0.1:5601"),
    ("tcp://127.0.0.1", True, "expected an endpoint like"),
    ("127.0.0.1:5601", True, "expected an endpoint like"),
    ("tcp://127.0.0.1:*", False, "a connecting end needs a port number"),
    ("tcp://127.0.0.1:70000", True, "expected a port in 1..65535"),
    ("ipc://", True, "expected a socket path after ipc://"),
    ("inproc://x", True, "expected an endpoint like"),
])
def test_bad_endpoints_are_refused(endpoint: str, bind: bool, message: str) -> None:
    with pytest.raises(PipeError, match=message.replace(".", r"\.").replace("*", r"\*")):
        normalise(endpoint, bind)
    with pytest.raises(PipeError):
        if bind:
            NetInputPipe(endpoint, LAYOUT, bind=True)
        else:
            NetOutputPipe(endpoint, LAYOUT)


async def test_an_address_in_use_is_a_clear_error_and_leaves_nothing_open() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)
    with pytest.raises(PipeError, match=f"cannot bind {inp.endpoint}: Address already in use"):
        NetInputPipe(inp.endpoint, LAYOUT)
    await inp.close()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="layout"):
        NetOutputPipe("tcp://127.0.0.1:5", "float33_1")
    with pytest.raises(PipeError, match="timeout must be a positive number"):
        NetOutputPipe("tcp://127.0.0.1:5", LAYOUT, timeout=0)
    with pytest.raises(PipeError, match="window must be at least 72 bytes"):
        NetInputPipe("tcp://127.0.0.1:*", LAYOUT, window=10)
    for spin in (-1, float("nan"), "fast", True):
        with pytest.raises(PipeError, match=r"spin must be a number of seconds >= 0 or None, "
                                            f"got {spin!r}"):
            NetInputPipe("tcp://127.0.0.1:*", LAYOUT, spin=spin)  # type: ignore[arg-type]


def test_a_waiting_read_polls_only_while_news_comes_fast_and_nothing_else_is_ready() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)
    assert inp._spin_budget(False) == 0  # a new pipe: no sign yet that news comes fast
    inp._gap = 300e-6  # news has come within 300 µs: poll twice that, at most 200 µs
    assert inp._spin_budget(False) == SPIN_MAX == 200e-6
    inp._gap = 50e-6
    assert inp._spin_budget(False) == pytest.approx(100e-6)
    assert inp._spin_budget(True) == 0  # other tasks are ready: they run instead
    inp._gap = SPIN_WHEN
    assert inp._spin_budget(False) == 0  # slower news, or an idle pipe: sleep at once
    for spin in (0, 50e-6, math.inf):
        fixed = NetInputPipe("tcp://127.0.0.1:*", LAYOUT, spin=spin)
        assert fixed._spin_budget(False) == fixed._spin_budget(True) == spin
        fixed._link.close()
    inp._link.close()


async def _echo(there: str, back: str) -> None:
    inp, out = NetInputPipe(there, LAYOUT), NetOutputPipe(back, LAYOUT)
    with contextlib.suppress(EmptyPipeError):
        while True:
            r = await inp.read()
            inp.consume(len(r))
            await out.write(r)
    await out.close()
    await inp.close()


async def test_a_ping_pong_reader_comes_to_poll_and_finds_its_news_polling() -> None:
    there, back = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    inp = NetInputPipe(back, LAYOUT)
    out = NetOutputPipe(there, LAYOUT)
    echo = asyncio.create_task(asyncio.to_thread(asyncio.run, _echo(there, back)))
    found = []
    spin = inp._spin

    def spy(deadline: float) -> bool:
        found.append(spin(deadline))
        return found[-1]

    inp._spin = spy  # type: ignore[method-assign]
    for i in range(300):  # the echo runs in another thread: nothing else is ready here
        await out.write(rows(i, 1))
        r = await asyncio.wait_for(inp.read(), 10)
        np.testing.assert_array_equal(r, rows(i, 1))
        inp.consume(1)
    assert True in found  # news found by polling, not by sleeping on the socket
    closing = asyncio.create_task(out.close())
    data, _ = await drain(inp)  # until the echo ends its stream
    assert len(data) == 0
    await closing
    await echo
    await inp.close()


async def test_a_busy_polling_read_lets_timers_and_sockets_of_its_loop_work() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT, spin=math.inf)
    t = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(inp.read(), 0.3)  # nothing else ready: the timer still fires
    assert time.monotonic() - t < 3
    out = NetOutputPipe(inp.endpoint, LAYOUT)  # in the same loop: its credit must come in
    writer = asyncio.create_task(out.write(rows(0, 3)))
    got = await asyncio.wait_for(inp.read(), 5)
    np.testing.assert_array_equal(got, rows(0, 3))
    await writer
    inp.consume(3)
    closer = asyncio.create_task(inp.close())
    with pytest.raises(EmptyPipeError):
        await asyncio.wait_for(inp.read(), 5)  # closed while it polled: the read ends
    await closer
    out._link.close()


def test_read_sync_keeps_its_timeout_when_it_polls_first() -> None:
    for spin in (0.0, 0.3, math.inf):
        inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT, spin=spin)
        t = time.monotonic()
        assert len(inp.read_sync(timeout=0.5)) == 0
        assert 0.45 < time.monotonic() - t < 0.7, spin
        inp._link.close()


async def test_a_busy_polling_read_gets_its_rows_and_lets_other_tasks_run() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT, spin=math.inf)
    out = NetOutputPipe(inp.endpoint, LAYOUT)
    ticks = 0

    async def other() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other())
    reader = asyncio.create_task(drain(inp))
    await out.write(rows(0, 3))
    before = ticks
    await out.write(rows(3, 3))
    await out.close()
    data, _ = await reader
    assert ticks > before  # the loop kept running other tasks while the read polled
    ticker.cancel()
    np.testing.assert_array_equal(data, rows(0, 6))
    await inp.close()


def test_shmpipe_imports_without_zmq() -> None:
    code = "import sys, shmpipe; assert 'zmq' not in sys.modules, 'zmq imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


async def test_an_unclosed_end_is_released_by_its_finaliser_and_unwatched() -> None:
    import gc

    for _ in range(3):  # dropped ends, watched by this loop: their FD numbers come back
        inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)
        out = NetOutputPipe(inp.endpoint, LAYOUT, timeout=5)
        await out.write(rows(0, 1))
        await inp.read()
        ep = inp.endpoint
        del inp, out
        gc.collect()
        again = NetInputPipe(ep, LAYOUT)  # the port is free again
        out = NetOutputPipe(ep, LAYOUT, timeout=5)
        await out.write(rows(0, 2))  # and the new sockets are watched
        np.testing.assert_array_equal(await asyncio.wait_for(again.read(), 5), rows(0, 2))
        await out.close()
        await again.close()


def test_an_end_made_outside_a_loop_works_in_the_loops_that_use_it() -> None:
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT)  # no running loop yet
    out = NetOutputPipe(inp.endpoint, LAYOUT, timeout=5)

    async def one(start: int) -> np.ndarray:
        read = asyncio.create_task(inp.read())  # from its first read on, it answers
        await out.write(rows(start, 2))
        d = await asyncio.wait_for(read, 5)
        inp.consume(len(d))
        return np.array(d)

    np.testing.assert_array_equal(asyncio.run(one(0)), rows(0, 2))
    np.testing.assert_array_equal(asyncio.run(one(2)), rows(2, 2))  # another loop

    async def finish() -> None:
        closing = asyncio.create_task(out.close())  # waits for the reader's confirmation
        with pytest.raises(EmptyPipeError):
            await asyncio.wait_for(inp.read(), 5)  # ... which this read, in this loop, gives
        await closing
        await inp.close()

    asyncio.run(finish())


async def test_a_bound_ipc_socket_file_is_removed_on_close(ipc_dir: str) -> None:
    path = os.path.join(ipc_dir, "a.sock")
    inp = NetInputPipe(f"ipc://{path}", LAYOUT)
    out = NetOutputPipe(f"ipc://{ipc_dir}/b.sock", LAYOUT, bind=True)
    assert os.path.exists(path) and os.path.exists(f"{ipc_dir}/b.sock")
    await inp.close()
    await out.close()
    assert os.listdir(ipc_dir) == []
