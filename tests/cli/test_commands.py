"""The shmpipe command: help, exit codes, one-line errors, and what each subcommand shows."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import cliprocs
import numpy as np
import pytest

import shmpipe
from shmpipe.shm.header import HEADER_BYTES

SPAWN = multiprocessing.get_context("spawn")
COMMANDS = ["demo", "run", "ls", "stat", "top", "clean", "bridge", "keys", "bench"]


def shmpipe_cmd(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shmpipe", *argv], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def kids() -> Iterator[list[Any]]:
    procs: list[Any] = []
    yield procs
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join(10)


def start(procs: list[Any], target: Any, *args: Any) -> Any:
    ready = SPAWN.Event()
    p = SPAWN.Process(target=target, args=(*args, ready), daemon=True)
    p.start()
    procs.append(p)
    assert ready.wait(30), f"{target.__name__} did not start"
    return p


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command: str) -> None:
    done = shmpipe_cmd(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: shmpipe {command}")


def test_usage_errors_exit_2_and_errors_exit_1_with_one_line() -> None:
    assert shmpipe_cmd().returncode == 2
    assert shmpipe_cmd("frobnicate").returncode == 2
    assert shmpipe_cmd("stat").returncode == 2  # NAME missing
    done = shmpipe_cmd("stat", "no-such-pipe-here")
    assert done.returncode == 1
    assert done.stderr == "shmpipe stat: no pipe named 'no-such-pipe-here' in /dev/shm\n"
    done = shmpipe_cmd("stat", "bad/name")
    assert done.returncode == 1 and "bad pipe name" in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    debug = shmpipe_cmd("--debug", "stat", "no-such-pipe-here")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_ls_shows_a_live_pipe_and_a_corrupted_one_with_why(pipe_names: Any) -> None:
    good, bad = pipe_names(), pipe_names()

    async def main() -> None:
        async with shmpipe.open_output(good, "float32_3", capacity=1000) as out, \
                shmpipe.open_input(good) as inp:
            await out.write(np.zeros((250, 4)))
            await out.close_interval()
            inp.read_nowait()
            broken = shmpipe.open_output(bad, "float32_1")
            path = f"/dev/shm/shmpipe.{bad}"
            with open(path, "r+b") as f:
                f.seek(HEADER_BYTES - 8)
                f.write(b"\0" * 8)
                f.seek(16)
                f.write(b"\xff" * 32)  # the layout field
            try:
                done = await asyncio.to_thread(shmpipe_cmd, "ls")
                js = await asyncio.to_thread(shmpipe_cmd, "ls", "--json")
            finally:
                os.unlink(path)
                broken._role.handed = True  # its segment is gone: drop handles quietly
                await broken.close()
        assert done.returncode == 0, done.stderr
        [line] = [x for x in done.stdout.splitlines() if x.startswith(good)]
        pid = os.getpid()
        assert re.search(rf"{good}\s+float32_3\s+1\.0k\s+24%\s+{pid} alive\s+250\s+1\s+", line)
        assert line.endswith(f"{pid} alive lag 250")
        [line] = [x for x in done.stdout.splitlines() if x.startswith(bad)]
        assert "cannot read: corrupted or not a shmpipe pipe: layout field" in line
        assert js.returncode == 0, js.stderr
        pipes = {p["name"]: p for p in json.loads(js.stdout)}
        g = pipes[good]
        assert {k: g[k] for k in ("layout", "capacity", "unconsumed", "rows_written",
                                  "blocks_written", "intervals", "writer_pid", "writer_state",
                                  "writer_alive", "alive", "problem")} == {
            "layout": "float32_3", "capacity": 1024, "unconsumed": 250, "rows_written": 250,
            "blocks_written": 1, "intervals": 1, "writer_pid": pid, "writer_state": "open",
            "writer_alive": True, "alive": True, "problem": None}
        assert g["fill"] == round(250 / 1024, 4)
        assert isinstance(g["age_s"], float) and isinstance(g["last_write_s"], float)
        assert isinstance(g["bytes"], int) and g["bytes"] > 0
        assert g["readers"] == [{"slot": 0, "pid": pid, "alive": True, "lag": 250,
                                 "rows_read": 0, "waited_s": 0.0, "asleep": False}]
        assert "layout field" in pipes[bad]["problem"]

    asyncio.run(main())


def test_clean_removes_what_a_killed_process_left_and_keeps_a_live_pipe(
        pipe_names: Any, kids: list[Any]) -> None:
    dead, live = pipe_names(), pipe_names()
    kid = start(kids, cliprocs.orphan, dead)
    keep = shmpipe.open_output(live, "float32_1")
    try:
        os.kill(kid.pid, signal.SIGKILL)
        kid.join()
        dry = shmpipe_cmd("clean", "--dry-run", dead, live)
        assert dry.returncode == 0, dry.stderr
        assert re.search(rf"^would remove {dead} \(16\.\d MiB\): every end is gone$",
                         dry.stdout, re.M), dry.stdout
        assert os.path.exists(f"/dev/shm/shmpipe.{dead}")
        done = shmpipe_cmd("clean", "-v", dead, live)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert re.fullmatch(rf"removed {dead} \(16\.\d MiB\): every end is gone", lines[0])
        assert lines[1] == f"kept {live}: alive: pid {os.getpid()}"
        assert re.fullmatch(r"removed 1 pipe, 16\.\d MiB freed; 1 kept", lines[2])
        assert not [e for e in os.listdir("/dev/shm") if dead in e]
        assert os.path.exists(f"/dev/shm/shmpipe.{live}")
    finally:
        asyncio.run(keep.close())


def test_stat_shows_rates_and_the_readers(pipe_names: Any, kids: list[Any]) -> None:
    name = pipe_names()
    start(kids, cliprocs.pump, name, 4096, 0.0)
    done = shmpipe_cmd("stat", name, "--interval", "0.5")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"pipe       {name}" in out and "layout     float32_1" in out
    rate = re.search(r"rate       ([\d.]+)([kM]?) rows/s", out)
    assert rate and float(rate.group(1)) > 0, out
    assert re.search(r"slot 0\s+pid \d+ alive, lag \d+ rows, [\d.]+[kM]? rows/s", out), out
    watch = shmpipe_cmd("stat", name, "--watch", "--count", "2", "--interval", "0.2")
    assert watch.returncode == 0 and watch.stdout.count("pipe       ") == 2


def test_top_puts_the_pipe_with_a_slow_consumer_first(pipe_names: Any,
                                                      kids: list[Any]) -> None:
    fast, slow = pipe_names(), pipe_names()
    start(kids, cliprocs.pump, fast, 100_000, 0.0)
    start(kids, cliprocs.pump, slow, 512, 0.2)
    done = shmpipe_cmd("top", "--count", "2", "--interval", "0.5")
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().split("\n\n")[-1].splitlines()
    assert last[1].split()[:2] == ["PRESSURE", "NAME"]
    ours = [line.split() for line in last[2:] if line.split()[1] in (fast, slow)]
    assert [row[1] for row in ours] == [slow, fast], done.stdout
    # its ring is (nearly) full and the writer waits for the slow reader most of the time
    assert int(ours[0][2].rstrip("%")) >= 80 and int(ours[0][3].rstrip("%")) >= 50, last
    assert ours[0][5] == "pid" and ours[0][6] == str(kids[1].pid)


def test_bench_runs_the_source_trees_benchmark() -> None:
    done = shmpipe_cmd("bench", "--help-bench")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m bench")
    assert "--quick" in done.stdout


def test_odd_entries_in_dev_shm_are_listed_never_touched_and_never_block() -> None:
    tag = f"odd-{os.getpid()}"
    made = {f"shmpipe.{tag}-dir": os.mkdir, f"shmpipe.{tag}-fifo": os.mkfifo,
            f"sem.shmpipe.{tag}-sem.lock": os.mkfifo}
    for entry, make in made.items():
        make(f"/dev/shm/{entry}")
    try:
        ls = shmpipe_cmd("ls", timeout=20)  # a FIFO must not block the listing
        assert ls.returncode == 0, ls.stderr
        assert re.search(rf"{tag}-dir .*cannot read: its segment is not a regular file",
                         ls.stdout), ls.stdout
        assert re.search(rf"{tag}-fifo .*cannot read: its segment is not a regular file",
                         ls.stdout), ls.stdout
        done = shmpipe_cmd("clean", "-v", f"{tag}-dir", f"{tag}-fifo", f"{tag}-sem", timeout=20)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "removed 0 pipes, 0 B freed; 3 kept"
        assert all(os.path.lexists(f"/dev/shm/{entry}") for entry in made)
        st = shmpipe_cmd("stat", f"{tag}-dir", timeout=20)
        assert st.returncode == 1
        assert st.stderr == (f"shmpipe stat: pipe '{tag}-dir' cannot be read: its segment is "
                             "not a regular file\n")
    finally:
        for entry in made:
            path = f"/dev/shm/{entry}"
            (os.rmdir if os.path.isdir(path) else os.unlink)(path)
