"""Faults at the edges of the shared-memory transport: crashed peers, forks, recreated
pipes, colliding names, lock time-outs, failed hand-overs.

Children are module-level functions of this file (importable by ``spawn`` children: tests/shm
is on sys.path). Every wait is bounded so that a hang fails instead of blocking.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import pickle
import queue
import traceback
from typing import Any

import pytest
from procs import LAYOUT, rows, shm_entries

import shmpipe
from shmpipe import PipeError
from shmpipe.shm import segment
from shmpipe.shm.doorbell import Doorbell, Ringer
from shmpipe.shm.header import ACTIVE, FREE

T = 10.0  # bound on any wait for a child


def _ctx(method: str) -> Any:
    return multiprocessing.get_context(method)


def _result(q: Any) -> Any:
    try:
        kind, payload = q.get(timeout=T)
    except queue.Empty:
        raise AssertionError(f"no result from the child within {T} s") from None
    if kind == "error":
        raise AssertionError("the child failed:\n" + payload)
    return payload


def _join(p: Any) -> int | None:
    p.join(T)
    if p.is_alive():
        p.kill()
        p.join(5)
        raise AssertionError("child still running")
    return p.exitcode


# ----------------------------------------------------------------------------- children
def _exit(q: Any) -> None:
    """Die without any cleanup (as a crash would), after the report has left."""
    q.close()
    q.join_thread()
    os._exit(0)


def crashing_reader(name: str, q: Any) -> None:
    """Attach as a reader (one read, nothing consumed), then die without closing."""
    try:
        inp = shmpipe.open_input(name)
        got = len(inp.read_nowait())
        q.put(("ok", got))
    except BaseException:
        q.put(("error", traceback.format_exc()))
    _exit(q)


def forked_writer(out: Any, go: Any, q: Any) -> None:
    """Inherit ``out`` through fork, wait until told, then write rows 100..103."""
    try:
        assert go.wait(T)
        block = rows(100, 104)
        out.write_nowait(block)
        q.put(("ok", None))
    except BaseException:
        q.put(("error", traceback.format_exc()))
    _exit(q)


def forked_reader(inp: Any, go: Any, q: Any) -> None:
    """Inherit ``inp`` through fork, wait until told, then read; report what happened."""
    try:
        assert go.wait(T)
        try:
            data = inp.read_nowait()
        except PipeError as e:
            q.put(("ok", ("PipeError", str(e))))
        else:
            q.put(("ok", ("read", len(data), inp._role.slot)))
    except BaseException:
        q.put(("error", traceback.format_exc()))
    _exit(q)


# ============================================================================ tests
def test_reader_restarting_after_a_crash_gets_the_rows_the_dead_one_held(
    pipe_name: str,
) -> None:
    """A reader that attaches after the only reader crashed starts where the dead one stopped:
    dead readers are released before attaching, so no row is skipped."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=1000)
    try:
        out.write_nowait(rows(0, 5))
        q = _ctx("spawn").Queue()
        p = _ctx("spawn").Process(target=crashing_reader, args=(pipe_name, q), daemon=True)
        p.start()
        assert _result(q) == 5  # the crashed reader saw rows 0..4 and consumed none
        assert _join(p) == 0
        out.write_nowait(rows(5, 10))

        inp = shmpipe.open_input(pipe_name)
        try:
            got = inp.read_nowait()
            assert list(got["timestamp"]) == list(range(10)), (
                f"restarted reader got {list(got['timestamp'])}, expected rows 0..9"
            )
        finally:
            asyncio.run(inp.close())
    finally:
        asyncio.run(out.close())


def test_forked_writer_takes_over_at_the_current_position(pipe_name: str) -> None:
    """An output end inherited through fork is taken over by the child at its first use, at
    the current write position, even if the parent wrote after the fork."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=1000)
    inp = shmpipe.open_input(pipe_name)
    try:
        out.write_nowait(rows(0, 4))
        assert len(inp.read_nowait()) == 4  # attach the reader; consume nothing
        ctx = _ctx("fork")
        go, q = ctx.Event(), ctx.Queue()
        p = ctx.Process(target=forked_writer, args=(out, go, q), daemon=True)
        p.start()
        out.write_nowait(rows(4, 8))  # the parent still owns the end
        go.set()
        _result(q)
        assert _join(p) == 0
        got = [int(t) for t in inp.read_nowait()["timestamp"]]
        assert got == [0, 1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 103], f"reader got {got}"
    finally:
        asyncio.run(inp.close())
        asyncio.run(out.close())


def test_forked_reader_cannot_use_a_slot_the_parent_released(pipe_name: str) -> None:
    """A forked child cannot use a reader slot its parent released: it gets PipeError."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=1000)
    inp = shmpipe.open_input(pipe_name)
    try:
        out.write_nowait(rows(0, 4))
        assert len(inp.read_nowait()) == 4  # slot taken
        slot = inp._role.slot
        ctx = _ctx("fork")
        go, q = ctx.Event(), ctx.Queue()
        p = ctx.Process(target=forked_reader, args=(inp, go, q), daemon=True)
        p.start()
        asyncio.run(inp.close())  # the parent still owns the end: this releases the slot
        assert out.segment.header.readers[slot].state == FREE
        go.set()
        res = _result(q)
        assert _join(p) == 0
        assert res[0] == "PipeError", (
            f"child read through slot {slot} whose state is "
            f"{out.segment.header.readers[slot].state} (FREE={FREE}, ACTIVE={ACTIVE}): {res}"
        )
    finally:
        asyncio.run(out.close())


async def test_input_end_that_has_not_read_follows_a_pipe_recreated_meanwhile(
    pipe_name: str,
) -> None:
    """An input end that has not read yet does not hold the pipe; if every other end closes
    and the pipe is created anew, its first read attaches to the new pipe."""
    inp1 = shmpipe.open_input(pipe_name, LAYOUT)  # creates the pipe, will read later
    inp2 = shmpipe.open_input(pipe_name)
    await inp2.close()
    out = shmpipe.open_output(pipe_name, LAYOUT)
    try:
        await out.write(rows(0, 3))
        try:
            got = await asyncio.wait_for(inp1.read(), 1.5)
        except asyncio.TimeoutError:
            pytest.fail("the input end opened first never sees the rows: its pipe was unlinked")
        assert list(got["timestamp"]) == [0, 1, 2]
    finally:
        await inp1.close()
        await out.close()


def test_names_that_could_collide_with_a_doorbell_are_refused(pipe_name: str) -> None:
    """Pipe ``X.bell.w`` would live at the path of pipe X's writer doorbell: refused."""
    for bad in (pipe_name + ".bell.w", pipe_name + ".bell.r3"):
        with pytest.raises(PipeError, match="bell"):
            shmpipe.open_output(bad, LAYOUT)


def test_a_non_fifo_at_a_doorbell_path_is_never_written(tmp_path: Any) -> None:
    path = tmp_path / "not-a-fifo"
    path.write_bytes(b"abc")
    ringer = Ringer()
    ringer.ring(str(path))
    ringer.close()
    assert path.read_bytes() == b"abc"
    with pytest.raises(PipeError, match="not a FIFO"):
        Doorbell(str(path), 0o600)


def test_lock_wait_timeout_while_opening_raises_pipe_error(
    pipe_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock held past LOCK_GIVE_UP by a live holder while opening gives PipeError."""
    monkeypatch.setattr(segment, "LOCK_GIVE_UP", 0.3)
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    try:
        out.segment.acquire()  # a live holder (this process) keeps the lock
        try:
            with pytest.raises(PipeError):
                shmpipe.open_input(pipe_name)
        finally:
            out.segment.release()
    finally:
        asyncio.run(out.close())


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_failed_input_handover_closes_the_segment_fd(pipe_name: str) -> None:
    """A hand-over that fails (the slot was taken over already) closes what it opened."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    inp = shmpipe.open_input(pipe_name)
    try:
        out.write_nowait(rows(0, 2))
        inp.read_nowait()
        blob = pickle.dumps(inp)
        asyncio.run(inp.close())  # retired by the pickling: keeps the slot in transit
        taker = pickle.loads(blob)  # takes the slot over: later hand-overs must fail
        gc.collect()
        before = _fds()
        for _ in range(5):
            with pytest.raises(PipeError):
                pickle.loads(blob)
        gc.collect()
        assert _fds() == before, f"{_fds() - before} fds leaked by 5 failed handovers"
        asyncio.run(taker.close())
    finally:
        asyncio.run(out.close())


def test_dead_reader_does_not_keep_the_pipe_after_the_last_close(pipe_name: str) -> None:
    """A reader that died with nothing unconsumed does not keep the pipe in /dev/shm once
    the last live end closes."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=1000)
    q = _ctx("spawn").Queue()
    p = _ctx("spawn").Process(target=crashing_reader, args=(pipe_name, q), daemon=True)
    p.start()
    assert _result(q) == 0
    assert _join(p) == 0
    asyncio.run(out.close())
    assert shm_entries(pipe_name) == [], "the pipe's objects stay in /dev/shm"


def forked_fast_writer(out: Any, go: Any, q: Any) -> None:
    """Inherit ``out`` through fork; when told, write rows 100..103 with ``await write``
    (the lock-free path) and report the pid the shm layer knows, the real one and the
    writer pid in the header."""
    try:
        assert go.wait(T)
        asyncio.run(out.write(rows(100, 104)))
        known = segment.current_pid()
        q.put(("ok", (known, os.getpid(), int(out.segment.header.writer_pid))))
    except BaseException:
        q.put(("error", traceback.format_exc()))
    _exit(q)


def test_a_fork_is_seen_without_getpid_and_the_fast_write_takes_the_end_over(
        pipe_name: str) -> None:
    """The pid is kept by a fork hook, not asked per call: a forked child knows its own.
    Its first ``await write`` (the lock-free path) takes the inherited end over first; the
    parent's next write is refused, and the reader gets both writers' rows once, in order."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=1000)
    inp = shmpipe.open_input(pipe_name)
    try:
        asyncio.run(out.write(rows(0, 4)))
        assert len(inp.read_nowait()) == 4
        ctx = _ctx("fork")
        go, q = ctx.Event(), ctx.Queue()
        p = ctx.Process(target=forked_fast_writer, args=(out, go, q), daemon=True)
        p.start()
        asyncio.run(out.write(rows(4, 8)))  # still the parent's
        go.set()
        known, real, writer_pid = _result(q)
        assert _join(p) == 0
        assert known == real == writer_pid == p.pid
        assert segment.current_pid() == os.getpid() != p.pid
        with pytest.raises(PipeError, match="no longer owns"):
            asyncio.run(out.write(rows(200, 201)))
        got = [int(t) for t in inp.read_nowait()["timestamp"]]
        assert got == [0, 1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 103], f"reader got {got}"
    finally:
        asyncio.run(inp.close())
        asyncio.run(out.close())
