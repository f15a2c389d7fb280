"""examples/shm_demo.py: a short run checks every row; Ctrl-C is one line and leaves nothing."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import shmpipe

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "shm_demo.py"


def demo_pipes(pid: int) -> tuple[str, str]:
    return f"demo-raw-{pid}", f"demo-filtered-{pid}"


def left_in_dev_shm(pipes: tuple[str, ...]) -> list[str]:
    """Entries of ``pipes``: segment, semaphore, doorbells (whatever their suffix)."""
    ours = re.compile(rf"(sem\.)?shmpipe\.({'|'.join(map(re.escape, pipes))})(\..*)?")
    return sorted(e for e in os.listdir("/dev/shm") if ours.fullmatch(e))


def test_a_short_run_checks_every_row_and_prints_its_summary() -> None:
    done = subprocess.run([sys.executable, str(DEMO), "--blocks", "20"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "sink received 100000 rows in 2 intervals, all checked" in done.stdout
    assert done.stdout.splitlines()[-1] == "left in /dev/shm: nothing"


def test_ctrl_c_prints_one_line_and_leaves_nothing_behind() -> None:
    # Ctrl-C in a terminal is SIGINT to the whole foreground process group: the demo and its
    # three stages. A session of its own makes the demo's group ours to signal.
    proc = subprocess.Popen([sys.executable, str(DEMO), "--blocks", "1000000"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    pipes = demo_pipes(proc.pid)
    try:
        # the sink prints this line once the first rows have come through both pipes
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        first = proc.stdout.readline() if ready else ""
        if not first.startswith("rows flowing"):
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"no 'rows flowing' line within 30 s: {first!r}\n{err}")
        assert all(name in first for name in pipes), first
        assert left_in_dev_shm(pipes), "the demo's pipes should be in /dev/shm while it runs"

        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)

        assert proc.returncode == 130, (proc.returncode, out, err)
        assert "Traceback" not in err
        lines = (out + err).splitlines()
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
