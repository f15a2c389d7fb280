from __future__ import annotations

import multiprocessing

from shmpipe.shm import liveness


def _exit() -> None:
    pass


def test_this_process_is_alive_and_a_wrong_start_time_is_not() -> None:
    pid, started = liveness.me()
    assert started > 0
    assert liveness.alive(pid, started)
    assert not liveness.alive(pid, started + 1)  # a reused pid is another process
    assert not liveness.alive(0, started)


def test_an_exited_child_is_not_alive_even_as_a_zombie() -> None:
    p = multiprocessing.get_context("spawn").Process(target=_exit)
    p.start()
    started = liveness.start_time(p.pid)  # type: ignore[arg-type]
    p.join()
    assert not liveness.alive(p.pid, started)  # type: ignore[arg-type]
