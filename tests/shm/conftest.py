"""Fixtures for the shared-memory tests: unique pipe names, child processes, a /dev/shm leak
check around the whole session."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import shmpipe
from shmpipe.shm import names

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # children import their entry points from procs.py by module name
    sys.path.insert(0, HERE)

SHM_DIR = "/dev/shm"
OURS = ("shmpipe.", "sem.shmpipe.")
_RUN = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
_counter = itertools.count()


def _our_entries() -> set[str]:
    try:
        return {e for e in os.listdir(SHM_DIR) if e.startswith(OURS)}
    except FileNotFoundError:
        return set()


def _leaked(before: set[str]) -> list[str]:
    """Entries of pipes this session created (named ``test-<run>-<n>``) still in /dev/shm."""
    mine = f"test-{_RUN}-"
    return sorted(e for e in _our_entries() - before
                  if (names.pipe_of(e) or "").startswith(mine))


@pytest.fixture(scope="session", autouse=True)
def no_shm_leak() -> Iterator[None]:
    """At the end of the session, nothing of ours may remain in /dev/shm.

    Counted: only the pipes this session names (``pipe_name``/``pipe_names``: ``test-<run>-<n>``),
    so pipes of other programs on the host (a demo, a benchmark, another test run) never fail
    it. Entries still vanishing get two seconds.
    """
    before = _our_entries()
    yield
    deadline = time.monotonic() + 2.0
    while (left := _leaked(before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"left in {SHM_DIR} after the shm tests: {left}"


@pytest.fixture
def pipe_name() -> Iterator[str]:
    """A pipe name unique to this test; whatever remains of the pipe is unlinked afterwards."""
    name = f"test-{_RUN}-{next(_counter)}"
    yield name
    shmpipe.unlink(name)


@pytest.fixture
def pipe_names() -> Iterator[Any]:
    """A factory of unique pipe names, all unlinked afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"test-{_RUN}-{next(_counter)}"
        made.append(name)
        return name

    yield make
    for name in made:
        shmpipe.unlink(name)


class Children:
    """Starts child processes (daemonic) and kills whatever is still alive at teardown."""

    def __init__(self) -> None:
        self.procs: list[multiprocessing.process.BaseProcess] = []

    @staticmethod
    def ctx(method: str = "spawn") -> Any:
        return multiprocessing.get_context(method)

    def start(
        self, target: Any, *args: Any, method: str = "spawn", **kwargs: Any
    ) -> multiprocessing.process.BaseProcess:
        p = self.ctx(method).Process(target=target, args=args, kwargs=kwargs, daemon=True)
        p.start()
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.kill()
            p.join(10)


@pytest.fixture
def children() -> Iterator[Children]:
    kids = Children()
    try:
        yield kids
    finally:
        kids.cleanup()
