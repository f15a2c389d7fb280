"""shmpipe demo: a short run checks every row and shows progress; Ctrl-C is one line and
leaves nothing."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import shmpipe

ROOT = Path(__file__).resolve().parents[1]
DEMO = [sys.executable, "-m", "shmpipe", "demo"]


def demo_pipes(pid: int) -> tuple[str, str]:
    return f"demo-raw-{pid}", f"demo-filtered-{pid}"


def left_in_dev_shm(pipes: tuple[str, ...]) -> list[str]:
    """Entries of ``pipes``: segment, semaphore, doorbells (whatever their suffix)."""
    ours = re.compile(rf"(sem\.)?shmpipe\.({'|'.join(map(re.escape, pipes))})(\..*)?")
    return sorted(e for e in os.listdir("/dev/shm") if ours.fullmatch(e))


def test_a_short_run_checks_every_row_and_prints_its_summary() -> None:
    done = subprocess.run([*DEMO, "--seconds", "3.5"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("sensor -> mean filter -> sink: 3 processes")
    # progress lines (plain, not a terminal): rows/s, then fill and lag of both pipes
    # (on a loaded machine the first lines may come while the stages start)
    progress = [x for x in lines if re.match(r"\s*\d+\.\d s\s+[\d.]+[kMG]? rows/s", x)]
    filled = re.compile(r".*raw: fill +\d+% lag +\d+ +\|  filtered: fill +\d+% lag +\d+$")
    starting = re.compile(r".*rows/s(  \|  (raw|filtered): (starting|fill +\d+% lag +\d+))*$")
    first = next((i for i, x in enumerate(progress) if filled.fullmatch(x)), None)
    assert first is not None and len(progress) - first >= 2, lines
    assert all(starting.fullmatch(x) for x in progress[:first]), progress
    # the last line may come as the stages end, when their pipes are gone already
    assert all(filled.fullmatch(x) for x in progress[first:-1]), progress
    assert re.fullmatch(r".*rows/s", progress[-1]) or filled.fullmatch(progress[-1]), progress
    m = re.fullmatch(r"sink received (\d+) rows in (\d+) intervals, each once and in order, "
                     r"[\d.]+ M rows/s through 2 shared-memory pipes and 3 processes", lines[-2])
    assert m, lines[-2]
    assert int(m.group(1)) > 0 and int(m.group(1)) % 5000 == 0
    assert int(m.group(2)) >= 3  # a break every second
    assert lines[-1] == "left in /dev/shm: nothing"


def test_ctrl_c_prints_one_line_and_leaves_nothing_behind() -> None:
    # Ctrl-C in a terminal is SIGINT to the whole foreground process group: the demo and its
    # three stages. A session of its own makes the demo's group ours to signal.
    proc = subprocess.Popen([*DEMO, "--seconds", "1000"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    pipes = demo_pipes(proc.pid)
    try:
        # the first line names the pipes; progress lines follow, with fill figures once the
        # pipes exist (a loaded machine may show a few "starting" lines first)
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (lines and "fill" in lines[-1]):
            ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
            lines.append(proc.stdout.readline() if ready else "")
        if len(lines) < 2 or "fill" not in lines[-1]:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"no progress line within 30 s: {lines!r}\n{err}")
        assert all(name in lines[0] for name in pipes), lines[0]
        assert left_in_dev_shm(pipes), "the demo's pipes should be in /dev/shm while it runs"

        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)

        assert proc.returncode == 130, (proc.returncode, out, err)
        assert "Traceback" not in err
        progress = re.compile(r"\s*\d+\.\d s\s+[\d.]+[kMG]? rows/s")  # printed before the signal
        lines = [x for x in (out + err).splitlines() if x and not progress.match(x)]
        assert len(lines) == 1, lines
        m = re.fullmatch(r"interrupted: (\d+) rows reached the sink in \d+\.\d s", lines[0])
        assert m, lines[0]
        assert int(m.group(1)) > 0  # it was interrupted while rows were flowing
        assert left_in_dev_shm(pipes) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        for name in pipes:
            shmpipe.unlink(name)
