"""One test per way the shared-memory pipe used to break (the hardening issue's list).

Cross-process cases run in real processes: ``spawn`` unless the case is about ``fork``;
cross-user cases fork and drop to uid 65534 (they need root and are skipped otherwise).
"""

from __future__ import annotations

import asyncio
import gc
import mmap
import os
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from typing import Any

import hard_procs
import numpy as np
import pytest
from procs import LAYOUT, T_PARENT, aresult, check_stream, handed_reader, result, rows, wait

import shmpipe
from shmpipe import EmptyPipeError, PipeError
from shmpipe.shm import names, ring, segment
from shmpipe.shm.header import HEADER_BYTES, Header

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="switching to a second uid needs root")


def header_of(name: str) -> Header:
    """A snapshot of pipe ``name``'s header, read without attaching."""
    with open(os.path.join(names.SHM_DIR, names.PREFIX + name), "rb") as f, \
            mmap.mmap(f.fileno(), HEADER_BYTES, prot=mmap.PROT_READ) as m:
        return Header.from_buffer_copy(m)


def sem_value(name: str) -> int:
    import posix_ipc

    sem = posix_ipc.Semaphore(names.lock_name(name))
    try:
        return int(sem.value)
    finally:
        sem.close()


def until(cond: Any, what: str, timeout: float = T_PARENT) -> None:
    """Poll ``cond()`` (a state with no event to wait on) until true, bounded."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return stat[stat.rindex(b")") + 2 :].split()[0].decode()


def joined(p: Any, timeout: float = T_PARENT) -> int | None:
    p.join(timeout)
    assert not p.is_alive(), f"child {p.pid} still running after {timeout} s"
    return p.exitcode


def epoll_fds(loop: asyncio.AbstractEventLoop) -> set[int]:
    """The fds registered in ``loop``'s epoll set, from /proc."""
    epfd = loop._selector.fileno()  # type: ignore[attr-defined]
    with open(f"/proc/self/fdinfo/{epfd}") as f:
        return {int(line.split()[1]) for line in f if line.startswith("tfd:")}


# ============================================================================ 1. stopped holder
@pytest.mark.parametrize("inside", [False, True], ids=["holding", "between-lock-and-record"])
def test_a_stopped_lock_holder_is_never_robbed(
    pipe_name: str, children: Any, monkeypatch: Any, inside: bool,
) -> None:
    """A holder stopped (SIGSTOP) while holding the header lock, even right after taking it
    and before recording anything, keeps it: waiters give up with PipeError, nobody releases
    it on its behalf, and once it continues, mutual exclusion is intact (semaphore <= 1)."""
    monkeypatch.setattr(segment, "LOCK_GIVE_UP", 1.0)
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=100)
    try:
        ctx = children.ctx()
        ready, q = ctx.Event(), ctx.Queue()
        p = children.start(hard_procs.stopped_holder, pipe_name, inside, ready, q)
        wait(ready, "the child holding the lock")
        until(lambda: proc_state(p.pid) == "T", "the child to stop")
        for _ in range(2):  # twice: a waiter must never conclude the holder is dead
            with pytest.raises(PipeError, match=rf"held for .* pid {p.pid}|held for"):
                out.write_nowait(rows(0, 1))
            assert sem_value(pipe_name) in (0, 1)
        os.kill(p.pid, signal.SIGCONT)
        assert result(q) == 0, "the holder did not hold the semaphore"
        assert joined(p) == 0
        out.write_nowait(rows(0, 1))  # the lock is free again
        assert sem_value(pipe_name) == 1
        assert out.stats()["lock_recoveries"] == 0
    finally:
        asyncio.run(out.close())


# ============================================================================ 2. PID namespaces
NS_WRITER = textwrap.dedent("""
    import asyncio, sys, numpy as np, shmpipe
    async def main(name):
        out = shmpipe.open_output(name, "float64_2", capacity=100)
        await out.write(np.column_stack([np.arange(5.0), np.zeros((5, 2))]))
        print("ready", flush=True)
        sys.stdin.readline()
        await out.write(np.column_stack([np.arange(5.0, 10.0), np.zeros((5, 2))]))
        await out.close()
    asyncio.run(main(sys.argv[1]))
""")


def _unshare_pid() -> list[str] | None:
    cmd = ["unshare", "--pid", "--fork", "--mount-proc"]
    if shutil.which("unshare") is None:
        return None
    ok = subprocess.run([*cmd, "true"], capture_output=True, timeout=20).returncode == 0
    return cmd if ok else None


async def test_writer_in_another_pid_namespace_is_alive_to_readers(
    pipe_name: str, tmp_path: Any,
) -> None:
    """A writer in its own PID namespace (pid 1 there) used to be judged dead by readers
    outside: the stream ended while it was alive. Liveness is now a kernel lock."""
    cmd = _unshare_pid()
    if cmd is None:
        pytest.skip("needs unshare(1) with PID and mount namespaces (root)")
    script = tmp_path / "writer.py"
    script.write_text(NS_WRITER)
    proc = subprocess.Popen([*cmd, sys.executable, str(script), pipe_name],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), T_PARENT)
        assert line.strip() == "ready"
        inp = shmpipe.open_input(pipe_name)
        d = await asyncio.wait_for(inp.read(), 5)
        assert list(d["timestamp"]) == [0, 1, 2, 3, 4]
        inp.consume(5)
        with pytest.raises(asyncio.TimeoutError):  # quiet, alive: no EmptyPipeError
            await asyncio.wait_for(inp.read(), 1.5)  # three liveness periods
        proc.stdin.write("go\n")
        proc.stdin.flush()
        got: list[int] = []
        with pytest.raises(EmptyPipeError):
            while True:
                d = await asyncio.wait_for(inp.read(), 5)
                got += [int(t) for t in d["timestamp"]]
                inp.consume(len(d))
        assert got == [5, 6, 7, 8, 9]
        await inp.close()
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()


# ============================================================================ 4. other user
@needs_root
def test_last_close_of_another_users_pipe_leaves_no_lock_held(
    pipe_name: str, monkeypatch: Any,
) -> None:
    """A reader running as another user closes the last end of root's pipe: it may not
    unlink root's objects, and that used to leave the header lock held while it lived."""
    monkeypatch.setattr(segment, "LOCK_GIVE_UP", 2.0)
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=100, mode=0o666)
    out.write_nowait(rows(0, 3))
    asyncio.run(out.close())  # the rows wait for a reader
    ctx = __import__("multiprocessing").get_context("fork")
    go, q = ctx.Event(), ctx.Queue()
    p = ctx.Process(target=hard_procs.as_nobody_reader_then_wait, args=(pipe_name, go, q))
    p.start()
    try:
        assert result(q) == 3
        inp = shmpipe.open_input(pipe_name, wait=0)  # the lock is free while the child lives
        asyncio.run(inp.close())
        assert sem_value(pipe_name) == 1 if names.entries_of(pipe_name) else True
    finally:
        go.set()
        joined(p)


# ============================================================================ 5. hand-over
async def test_parent_may_close_a_handed_over_end_right_after_start(
    pipe_name: str, children: Any,
) -> None:
    """Closing the parent's copy right after start() used to release the slot before the
    child took it ('reader slot 0 ... is no longer ours')."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=1000)
    inp = shmpipe.open_input(pipe_name)
    try:
        await out.write(rows(0, 50))
        ctx = children.ctx()
        took, q = ctx.Event(), ctx.Queue()
        children.start(handed_reader, inp, 80, took, q)
        await inp.close()  # right after start(): the child has not taken the slot yet
        await out.write(rows(50, 80))
        check_stream(await aresult(q), 0, 80)
    finally:
        await out.close()


async def test_parent_copy_left_open_does_not_steal_the_childs_wakeups(
    pipe_name: str, children: Any,
) -> None:
    """The parent's copy, left open and registered in its event loop, used to drain the
    child's doorbell (child read latency 0.7 ms -> 284 ms): the child now has its own."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=1000)
    inp = shmpipe.open_input(pipe_name)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(inp.read(), 0.05)  # the parent's doorbell is now watched
        parent_bell = inp._role.bell.path
        ctx = children.ctx()
        q = ctx.Queue()
        children.start(hard_procs.latency_reader, inp, 10, q)
        kind, child_bell = await asyncio.to_thread(q.get, True, T_PARENT)
        assert kind == "bell" and child_bell != parent_bell
        for i in range(10):
            await asyncio.sleep(0.05)  # idle: the child sleeps on its doorbell
            r = rows(i, i + 1)
            r["data"][:, 0] = time.monotonic()
            await out.write(r)
        lat = (await aresult(q))["latency"]
        assert statistics.median(lat) < 0.1, f"child wake-up latencies {lat}"
        with pytest.raises(PipeError, match="handed over"):
            inp.read_nowait()
        await inp.close()
    finally:
        await out.close()


# ============================================================================ 6. phantom slots
def test_failed_open_input_gives_its_slot_back(pipe_name: str) -> None:
    """An open_input that failed after taking a slot (its doorbell could not be made) kept
    the slot, stalling the writer for good."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    plant = names.bell(pipe_name, int(out.segment.header.next_id) + 1)
    with open(plant, "w") as f:
        f.write("not a fifo")
    try:
        with pytest.raises(PipeError, match="not a FIFO"):
            shmpipe.open_input(pipe_name)
        assert ring.active_slots(out.segment.header) == []
        assert os.path.exists(plant), "removed a file that was not ours"
        inp = shmpipe.open_input(pipe_name)
        out.write_nowait(rows(0, 10))  # the whole ring: nothing held by a phantom
        assert len(inp.read_nowait()) == 10
        inp._finish()
    finally:
        os.unlink(plant)
        out._finish()


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_an_end_dropped_without_close_gives_back_its_slot_and_fds(pipe_name: str) -> None:
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    try:
        gc.collect()
        before = len(_fds())
        inp = shmpipe.open_input(pipe_name)
        out.write_nowait(rows(0, 4))
        inp.read_nowait()
        assert len(ring.active_slots(out.segment.header)) == 1
        del inp
        gc.collect()
        assert ring.active_slots(out.segment.header) == []
        assert len(_fds()) == before, "the dropped end kept descriptors"
        out.write_nowait(rows(4, 10))  # the whole ring is free: 4 kept rows + 6 new ones
    finally:
        out._finish()


# ============================================================================ 7. fork + epoll
async def test_forked_child_closing_an_inherited_end_keeps_the_parents_wakeups(
    pipe_name: str,
) -> None:
    """A forked child closing an inherited, unused end removed the fd from the epoll set it
    shares with the parent: the parent's reads then waited for the 0.5 s liveness tick."""
    import multiprocessing

    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=100)
    inp = shmpipe.open_input(pipe_name)
    try:
        loop = asyncio.get_running_loop()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(inp.read(), 0.05)  # registers the doorbell in our loop
        bell_fd = inp._role.bell.fd
        assert bell_fd in epoll_fds(loop)
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=hard_procs.forked_close, args=(inp, q))
        p.start()
        await aresult(q)
        assert await asyncio.to_thread(joined, p) == 0
        assert bell_fd in epoll_fds(loop), "the child removed our doorbell from our epoll set"
        for i in range(3):
            read = asyncio.ensure_future(inp.read())
            await asyncio.sleep(0.02)
            t0 = time.monotonic()
            await out.write(rows(i, i + 1))
            d = await asyncio.wait_for(read, 2)
            assert time.monotonic() - t0 < 0.25, "woken by the liveness tick, not the bell"
            inp.consume(len(d))
        await inp.close()
    finally:
        await out.close()


# ============================================================================ 8. signals
def test_signals_during_reads_writes_and_closes(pipe_name: str, children: Any) -> None:
    """SIGUSR1 (with a handler) landing anywhere, including in close() and in waits for the
    header lock (a third process keeps it busy): no SignalError, no slot or lock left behind."""
    n = 20000
    ctx = children.ctx()
    r_ready, w_ready, rq, wq = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue()
    reader = children.start(hard_procs.signalled_reader, pipe_name, n, r_ready, rq)
    wait(r_ready, "the reader")
    c_ready, c_stop = ctx.Event(), ctx.Event()
    churner = children.start(hard_procs.lock_churner, pipe_name, c_stop, c_ready)
    wait(c_ready, "the lock churner")
    writer = children.start(hard_procs.signalled_writer, pipe_name, n, w_ready, wq)
    wait(w_ready, "the writer")
    deadline = time.monotonic() + 60
    sent = 0
    while (reader.is_alive() or writer.is_alive()) and time.monotonic() < deadline:
        for p in (reader, writer):
            if p.is_alive():
                try:
                    os.kill(p.pid, signal.SIGUSR1)
                    sent += 1
                except ProcessLookupError:
                    pass
        time.sleep(0.0005)
    c_stop.set()
    assert joined(churner) == 0
    assert result(wq) == n
    assert result(rq) == n
    assert joined(reader) == 0 and joined(writer) == 0
    assert sent > 100
    assert names.entries_of(pipe_name) == [], "something of the pipe stayed behind"


# ============================================================================ 9. other users
@needs_root
def test_doorbells_of_a_shared_pipe_can_be_rung_by_every_user(pipe_name: str) -> None:
    """A reader of another user's 0666 pipe made its doorbell 0600: the writer could not
    ring it and every read waited for the 0.5 s liveness tick."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    step, q = ctx.Event(), ctx.Queue()
    p = ctx.Process(target=hard_procs.as_nobody_writer, args=(pipe_name, 0o666, step, 8, q))
    p.start()
    try:
        assert result(q) == "open"
        inp = shmpipe.open_input(pipe_name, owner="nobody")
        bell = inp._role.bell
        assert bell is not None and os.stat(bell.path).st_mode & 0o777 == 0o666
        lat = []
        for _ in range(8):
            assert inp.read_sync(timeout=0.05).size == 0  # goes to sleep on the doorbell
            step.set()
            d = inp.read_sync(timeout=5)
            lat.append(time.monotonic() - float(d["data"][0, 0]))
            inp.consume(len(d))
        assert statistics.median(lat) < 0.2, f"wake-up latencies {lat}"
        assert result(q) == "done"
        inp._finish()
    finally:
        joined(p)
        shmpipe.unlink(pipe_name)


@needs_root
def test_a_pipe_planted_by_another_user_is_refused(pipe_name: str) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    step, q = ctx.Event(), ctx.Queue()
    p = ctx.Process(target=hard_procs.as_nobody_writer, args=(pipe_name, 0o666, step, 1, q))
    p.start()
    try:
        assert result(q) == "open"
        with pytest.raises(PipeError, match=r"belongs to nobody .* not to you or root"):
            shmpipe.open_input(pipe_name, wait=0)
        with pytest.raises(PipeError, match="belongs to nobody"):
            shmpipe.open_output(pipe_name, LAYOUT)
        assert header_of(pipe_name).rows_written == 0  # nothing was written into it
    finally:
        step.set()
        joined(p)
        shmpipe.unlink(pipe_name)


# ============================================================================ 10. SIGPIPE
def test_ringing_a_dead_readers_doorbell_never_raises_sigpipe(
    pipe_name: str, children: Any,
) -> None:
    """A writer with SIGPIPE at its default action was killed when it rang the doorbell of a
    reader that died asleep."""
    ctx = children.ctx()
    step, wq, rq = ctx.Event(), ctx.Queue(), ctx.Queue()
    reader = children.start(hard_procs.sleepy_reader, pipe_name, rq)
    kind, slot = rq.get(timeout=T_PARENT)
    assert kind == "attached", slot
    writer = children.start(hard_procs.sigpipe_writer, pipe_name, step, wq)
    for i in range(3):  # the writer rings (and keeps open) the reader's doorbell
        until(lambda: header_of(pipe_name).readers[slot].sleeping == 1, "the reader to sleep")
        step.set()
        assert rq.get(timeout=T_PARENT) == ("row", i)
    until(lambda: header_of(pipe_name).readers[slot].sleeping == 1, "the reader to sleep")
    os.kill(reader.pid, signal.SIGKILL)
    joined(reader)
    for _ in range(17):
        until(lambda: not step.is_set() or not writer.is_alive(), "the writer to take a step")
        assert writer.is_alive(), f"the writer died: exit code {writer.exitcode}"
        step.set()
    assert result(wq) == 20
    assert joined(writer) == 0


# ============================================================================ 11. stale reserve
async def test_a_stale_reservation_cannot_overwrite_a_forked_childs_rows(
    pipe_name: str,
) -> None:
    """The parent holds reserved rows when a forked child takes the writer over: the child
    is refused (the parent's view would overwrite its rows); the parent's rows arrive."""
    import multiprocessing

    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=100)
    inp = shmpipe.open_input(pipe_name)
    try:
        view = await out.reserve(4)
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=hard_procs.forked_write, args=(out, q))
        p.start()
        res = await aresult(q)
        assert await asyncio.to_thread(joined, p) == 0
        assert res.startswith("PipeError") and "reserved rows" in res, res
        view[:] = rows(0, 4)  # the view is still ours
        await out.commit(4)
        assert list(inp.read_nowait()["timestamp"]) == [0, 1, 2, 3]
    finally:
        await inp.close()
        await out.close()


async def test_after_a_fork_takeover_the_parent_cannot_reserve(pipe_name: str) -> None:
    import multiprocessing

    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=100)
    inp = shmpipe.open_input(pipe_name)
    try:
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=hard_procs.forked_write, args=(out, q))
        p.start()
        assert await aresult(q) == "wrote"
        assert await asyncio.to_thread(joined, p) == 0
        with pytest.raises(PipeError, match="no longer owns"):
            await out.reserve(4)
        got = inp.read_nowait()
        assert list(got["timestamp"]) == [100, 101, 102, 103]
        np.testing.assert_array_equal(got["data"], rows(100, 104)["data"])
    finally:
        await inp.close()
        await out.close()


# ============================================================================ 14. either order
def test_open_input_waits_for_the_writer_to_create_the_pipe(
    pipe_name: str, monkeypatch: Any,
) -> None:
    """open_input without a layout, before any writer: it waits (here, the writer comes
    while it looks for the pipe the first time) instead of failing."""
    outs: list[Any] = []
    looks = []
    real = segment._segment_exists

    def look(name: str) -> bool:
        found = real(name)
        looks.append(found)
        if not outs:  # the producer starts now, while the consumer waits
            outs.append(shmpipe.open_output(pipe_name, LAYOUT, capacity=10))
            outs[0].write_nowait(rows(0, 3))
        return found

    monkeypatch.setattr(segment, "_segment_exists", look)
    inp = shmpipe.open_input(pipe_name)
    try:
        assert looks[0] is False and looks[-1] is True
        assert list(inp.read_nowait()["timestamp"]) == [0, 1, 2]
    finally:
        inp._finish()
        outs[0]._finish()


def test_open_input_gives_up_after_wait_leaving_nothing(pipe_name: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(PipeError, match=r"no pipe named .* \(waited 0.2 s\)"):
        shmpipe.open_input(pipe_name, wait=0.2)
    assert 0.2 <= time.monotonic() - t0 < 2
    assert names.entries_of(pipe_name) == []


# ============================================================================ review findings
def test_closing_ends_of_an_unlinked_pipe_leaves_a_new_pipe_of_that_name_alone(
    pipe_name: str,
) -> None:
    w1 = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    r1 = shmpipe.open_input(pipe_name)
    shmpipe.unlink(pipe_name)  # attached ends keep working
    w2 = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    r2 = shmpipe.open_input(pipe_name)
    try:
        before = names.entries_of(pipe_name)
        w1._finish()
        r1._finish()
        assert names.entries_of(pipe_name) == before, "closing old ends removed the new pipe"
        with pytest.raises(PipeError, match="already has a writer"):
            shmpipe.open_output(pipe_name, LAYOUT)
        w2.write_nowait(rows(0, 2))
        assert len(r2.read_sync(timeout=1)) == 2
    finally:
        r2._finish()
        w2._finish()


async def test_a_forked_child_refused_for_reserved_rows_may_try_again(pipe_name: str) -> None:
    import multiprocessing

    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=100)
    inp = shmpipe.open_input(pipe_name)
    try:
        view = await out.reserve(2)
        ctx = multiprocessing.get_context("fork")
        go, q = ctx.Event(), ctx.Queue()
        p = ctx.Process(target=hard_procs.forked_write_twice, args=(out, go, q))
        p.start()
        assert "reserved rows" in await aresult(q)
        view[:] = rows(0, 2)
        await out.commit(2)
        go.set()
        assert await aresult(q) == "wrote"
        assert await asyncio.to_thread(joined, p) == 0
        assert list(inp.read_nowait()["timestamp"]) == [0, 1, 100, 101, 102, 103]
    finally:
        await inp.close()
        await out.close()


def test_a_handed_over_end_nobody_takes_is_released_after_the_grace(
    pipe_name: str, monkeypatch: Any,
) -> None:
    """Even while the retired local copy stays open."""
    import pickle

    from shmpipe.shm import end

    monkeypatch.setattr(end, "HANDOVER_GRACE", 0.0)
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    inp = shmpipe.open_input(pipe_name)
    try:
        cap = out.capacity
        out.write_nowait(rows(0, cap))  # the ring is full: the reader holds every row
        pickle.dumps(inp)  # handed over to nobody; ``inp`` stays open here
        asyncio.run(out._sleep())  # a full writer's wait: the liveness tick reaps
        assert ring.active_slots(out.segment.header) == []
        nxt = shmpipe.open_input(pipe_name)  # the rows were kept for the next reader
        assert len(nxt.read_nowait()) == cap
        nxt._finish()
    finally:
        inp._finish()
        out._finish()


def test_unpickling_an_end_of_a_removed_pipe_creates_nothing(pipe_name: str) -> None:
    import pickle

    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    inp = shmpipe.open_input(pipe_name)
    blob = pickle.dumps(inp)
    inp._finish()
    out._finish()
    shmpipe.unlink(pipe_name)
    with pytest.raises(PipeError, match="is gone"):
        pickle.loads(blob)
    assert names.entries_of(pipe_name) == []


def test_a_pipe_removed_while_opening_leaves_no_semaphore(
    pipe_name: str, monkeypatch: Any,
) -> None:
    seen = []

    def exists_once(name: str) -> bool:  # looks there, then is gone when opened
        seen.append(name)
        return len(seen) == 1

    monkeypatch.setattr(segment, "_segment_exists", exists_once)
    with pytest.raises(PipeError, match="no pipe named"):
        shmpipe.open_input(pipe_name, wait=0.1)
    assert names.entries_of(pipe_name) == []


def test_open_input_waits_as_long_as_asked(pipe_name: str, monkeypatch: Any) -> None:
    """The polls used to count as retries: a long wait gave up early with 'kept
    disappearing'."""
    monkeypatch.setattr(segment, "OPEN_POLL", 0.0001)
    t0 = time.monotonic()
    with pytest.raises(PipeError, match=r"\(waited 0.5 s\)"):
        shmpipe.open_input(pipe_name, wait=0.5)
    assert time.monotonic() - t0 >= 0.5


class _InterruptAfterPosting:
    def __init__(self, sem: Any) -> None:
        self.sem = sem

    def release(self) -> None:
        self.sem.release()
        raise KeyboardInterrupt

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.sem, attr)


def test_keyboard_interrupt_inside_release_leaves_no_lock_held(pipe_name: str) -> None:
    from shmpipe.shm import locks

    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    inp = shmpipe.open_input(pipe_name)
    try:
        seg = out.segment
        real, seg.sem = seg.sem, _InterruptAfterPosting(seg.sem)
        with pytest.raises(KeyboardInterrupt):
            out.write_nowait(rows(0, 2))
        seg.sem = real
        assert not locks.held_elsewhere(inp.segment.lock_fd, locks.MUTEX)
        assert sem_value(pipe_name) == 1
        out.write_nowait(rows(0, 2))  # the interrupted write wrote nothing; this one does
        assert list(inp.read_nowait()["timestamp"]) == [0, 1]
    finally:
        inp._finish()
        out._finish()


def test_an_input_dropped_without_close_keeps_what_it_consumed(pipe_name: str) -> None:
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    try:
        inp = shmpipe.open_input(pipe_name)
        out.write_nowait(rows(0, 7))
        assert len(inp.read_nowait()) == 7
        inp.consume(5)
        del inp  # never closed: the finalizer gives the slot back at what was consumed
        gc.collect()
        nxt = shmpipe.open_input(pipe_name)
        assert list(nxt.read_nowait()["timestamp"]) == [5, 6]
        nxt._finish()
    finally:
        out._finish()


def test_doorbells_of_dead_readers_are_removed(pipe_name: str) -> None:
    import multiprocessing

    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    try:
        ctx = multiprocessing.get_context("fork")
        for _ in range(3):
            q = ctx.Queue()
            p = ctx.Process(target=hard_procs.reader_that_dies, args=(pipe_name, q))
            p.start()
            bell = result(q)
            joined(p)
            assert os.path.exists(bell)
        survivor = shmpipe.open_input(pipe_name)  # attaching reaps the dead
        bells = [e for e in names.entries_of(pipe_name) if ".bell." in e]
        assert sorted(bells) == sorted([out._role.bell.path, survivor._role.bell.path])
        survivor._finish()
    finally:
        out._finish()
