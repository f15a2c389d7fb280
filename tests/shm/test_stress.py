"""Stress: random SIGSTOP/SIGCONT and SIGKILL of the writer and readers for 30 s.

Then every row every surviving reader received is checked (consecutive positions, intact
data), the header semaphore was 0 or 1 at every look, and nothing is left in /dev/shm.
``SHMPIPE_STRESS_SECONDS`` changes the duration.
"""

from __future__ import annotations

import os
import random
import signal
import time
from typing import Any

import posix_ipc
from hard_procs import stress_reader, stress_writer
from procs import result

from shmpipe.shm import names

DURATION = float(os.environ.get("SHMPIPE_STRESS_SECONDS", "30"))
READERS = 3


def sem_value(name: str) -> int | None:
    try:
        sem = posix_ipc.Semaphore(names.lock_name(name))
    except posix_ipc.ExistentialError:
        return None
    try:
        return int(sem.value)
    finally:
        sem.close()


def test_stop_continue_and_kill_writer_and_readers(pipe_name: str, children: Any) -> None:
    ctx = children.ctx()
    stop = ctx.Event()
    queues: dict[str, Any] = {}
    procs: dict[str, Any] = {}
    roles = {"writer": stress_writer} | {f"reader{i}": stress_reader for i in range(READERS)}

    def start(role: str) -> None:
        queues[role] = ctx.Queue()
        procs[role] = children.start(roles[role], pipe_name, stop, queues[role])

    for role in roles:
        start(role)
    rng = random.Random(int(os.environ.get("SHMPIPE_STRESS_SEED", "0")) or None)
    kills = stops = 0
    values: set[int | None] = set()
    deadline = time.monotonic() + DURATION
    while time.monotonic() < deadline:
        role = rng.choice(list(roles))
        p = procs[role]
        if rng.random() < 0.25:
            p.kill()
            p.join(10)
            kills += 1
            start(role)
        else:
            os.kill(p.pid, signal.SIGSTOP)
            time.sleep(rng.uniform(0.005, 0.2))  # how long it stays stopped: the test's point
            values.add(sem_value(pipe_name))
            os.kill(p.pid, signal.SIGCONT)
            stops += 1
        values.add(sem_value(pipe_name))
        time.sleep(rng.uniform(0.02, 0.2))
    stop.set()
    final = result(queues["writer"], 60)
    checked = {role: result(queues[role], 60) for role in roles if role != "writer"}
    for p in procs.values():
        p.join(30)
        assert p.exitcode == 0, f"{p.name} exited with {p.exitcode}"
    assert values <= {0, 1, None}, f"semaphore values seen: {values}"
    assert kills and stops
    assert sum(n for n, _ in checked.values()) > 0
    for role, (_, last) in checked.items():
        assert last in (None, final - 1), f"{role} ended at row {last}, the stream at {final}"
    assert names.entries_of(pipe_name) == [], names.entries_of(pipe_name)
