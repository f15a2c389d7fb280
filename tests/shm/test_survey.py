"""shm/survey.py: counters read from outside, liveness from the kernel, clean."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import numpy as np
import procs
import pytest

import shmpipe
from shmpipe.shm import clean, survey
from shmpipe.shm.header import HEADER_BYTES, VERSION
from shmpipe.shm.names import SHM_DIR


def _ours(result: list, name: str):  # type: ignore[no-untyped-def]
    [c] = [c for c in result if c.name == name]
    return c


def test_counters_follow_writes_reads_breaks_and_waits(pipe_name: str) -> None:
    async def main() -> None:
        out = shmpipe.open_output(pipe_name, "float32_2", capacity=1000)
        inp = shmpipe.open_input(pipe_name)
        await out.write(np.zeros((300, 3)))
        await out.close_interval()
        data = await inp.read()
        inp.consume(100)
        info = survey(pipe_name)
        assert (info.layout, info.capacity, info.rows_written, info.blocks_written,
                info.intervals) == ("float32_2", 1024, 300, 1, 1)
        assert info.writer_state == "open" and info.writer_alive
        assert info.writer_pid == os.getpid()
        [r] = info.readers
        assert r.alive and r.pid == os.getpid() and r.lag == 300  # published at the next read
        assert info.unconsumed == 300 and info.fill == pytest.approx(300 / 1024)
        assert len(data) == 300
        inp.read_nowait()
        assert survey(pipe_name).readers[0].lag == 200
        waiter = asyncio.ensure_future(inp.read())
        await asyncio.sleep(0.05)  # the reader waits at least this long
        await out.write(np.ones((10, 3)))
        await waiter
        inp.consume_all()
        inp.read_nowait()  # publishes the wait and the position
        info = survey(pipe_name)
        assert info.readers[0].waited_s >= 0.04
        assert info.readers[0].rows_read == 310 and info.readers[0].lag == 0
        assert info.last_write_s is not None and info.last_write_s < 5
        assert info.age_s >= info.last_write_s
        assert info.to_json()["readers"][0]["lag"] == 0
        await inp.close()
        await out.close()
        assert survey(pipe_name).problem is not None  # removed: unused and empty

    asyncio.run(main())


def test_blocked_writer_time_and_one_warning_naming_the_slow_reader(
        pipe_name: str, children, caplog) -> None:  # type: ignore[no-untyped-def]
    ctx = children.ctx()
    ready = ctx.Event()

    async def main() -> None:
        out = shmpipe.open_output(pipe_name, procs.LAYOUT, capacity=256)
        out.slow_reader_warning = 0.3
        kid = children.start(procs.stuck_reader, pipe_name, ready)
        await asyncio.get_running_loop().run_in_executor(None, procs.wait, ready, "reader")
        cap = out.capacity
        await out.write(procs.rows(0, cap))
        with caplog.at_level(logging.WARNING, logger="shmpipe"):
            blocked = asyncio.ensure_future(out.write(procs.rows(cap, cap + 1)))
            await asyncio.sleep(1.6)  # the time being measured, not a synchronisation
            info = survey(pipe_name)
            blocked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await blocked
        assert info.writer_blocked_now and info.writer_blocked_s >= 1.5
        assert info.fill == 1.0 and info.readers[0].lag == cap
        after = survey(pipe_name)  # a cancelled write is no longer blocked
        assert not after.writer_blocked_now
        assert info.writer_blocked_s <= after.writer_blocked_s < info.writer_blocked_s + 1
        warnings = [r.getMessage() for r in caplog.records if "slow reader" in r.getMessage()]
        assert len(warnings) == 1, warnings  # one per blocked episode
        assert f"pid {kid.pid} is {cap} rows behind" in warnings[0]
        kid.kill()
        kid.join()
        await out.close()

    asyncio.run(main())


def test_a_pipe_of_another_version_is_refused_naming_both(pipe_name: str) -> None:
    out = shmpipe.open_output(pipe_name, "float32_1")
    path = os.path.join(SHM_DIR, "shmpipe." + pipe_name)
    with open(path, "r+b") as f:
        f.seek(8)
        f.write((VERSION - 1).to_bytes(4, "little"))
    try:
        with pytest.raises(shmpipe.PipeError, match=f"version {VERSION - 1}.*version {VERSION}"):
            shmpipe.open_input(pipe_name)
        assert f"format version {VERSION - 1}" in (survey(pipe_name).problem or "")
        kept = _ours(clean(dry_run=True, only=[pipe_name]), pipe_name)
        assert not kept.removed and "an end is alive" in kept.reason
    finally:
        with open(path, "r+b") as f:
            f.seek(8)
            f.write(VERSION.to_bytes(4, "little"))
        asyncio.run(out.close())


def test_a_corrupted_segment_is_listed_with_why(pipe_name: str) -> None:
    out = shmpipe.open_output(pipe_name, "float32_1")
    path = os.path.join(SHM_DIR, "shmpipe." + pipe_name)
    with open(path, "r+b") as f:
        good = f.read(HEADER_BYTES)
        f.seek(16)
        f.write(b"\xff" * 8)  # the layout field
    try:
        assert "layout field" in (survey(pipe_name).problem or "")
    finally:
        with open(path, "r+b") as f:
            f.write(good)
        asyncio.run(out.close())


def test_clean_removes_what_a_killed_process_left_and_keeps_a_live_pipe(
        pipe_names, children) -> None:  # type: ignore[no-untyped-def]
    dead, live = pipe_names(), pipe_names()
    ctx = children.ctx()
    ready = ctx.Event()
    out = shmpipe.open_output(dead, procs.LAYOUT)
    asyncio.run(out.write(procs.rows(0, 10)))
    kid = children.start(procs.stuck_reader, dead, ready)
    procs.wait(ready, "reader")
    out._role.handed = True  # make this end drop its handles without a goodbye, as if killed
    out._finalizer()
    keep = shmpipe.open_output(live, procs.LAYOUT)
    try:
        assert _ours(clean(only=[dead, live]), dead).removed is False  # its reader is alive
        os.kill(kid.pid, signal.SIGKILL)
        kid.join()
        dry = _ours(clean(dry_run=True, only=[dead]), dead)
        assert dry.removed and dry.bytes > 0
        assert os.path.exists(os.path.join(SHM_DIR, "shmpipe." + dead))  # dry run: still there
        done = clean(only=[dead, live])
        assert _ours(done, dead).removed and _ours(done, dead).bytes == dry.bytes
        assert procs.shm_entries(dead) == []
        kept = _ours(done, live)
        assert not kept.removed and f"pid {os.getpid()}" in kept.reason
        assert procs.shm_entries(live)
    finally:
        asyncio.run(keep.close())


def test_clean_never_touches_what_is_not_ours() -> None:
    path = os.path.join(SHM_DIR, "shmpipe.not-ours-" + str(os.getpid()))
    with open(path, "wb") as f:
        f.write(b"SOMEONE!" + b"\0" * 100)
    try:
        name = "not-ours-" + str(os.getpid())
        result = _ours(clean(only=[name]), name)
        assert not result.removed and "not a shmpipe segment" in result.reason
        assert os.path.exists(path)
    finally:
        os.unlink(path)
