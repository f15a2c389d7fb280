"""Process plumbing shared by every measurement.

A measurement is a list of :class:`Task` s, each run in its own spawned process. The tasks and
the parent meet at a start barrier; workers can meet again with :meth:`Worker.sync` and post
notes to the parent. Whatever happens in a worker (an exception, a crash, a hang) becomes a
:class:`Failed` in the parent, never an abort of the whole run.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np

clock = time.perf_counter  # CLOCK_MONOTONIC on Linux: comparable across processes

SPAWN = mp.get_context("spawn")
STARTUP_TIMEOUT = 60.0


class Failed(Exception):
    """A measurement that did not produce a result; the message says why."""


def row_dtype(layout: str) -> np.dtype:
    """Joule's row dtype for ``<type>_<width>``: an int64 timestamp and ``width`` values."""
    kind, _, width = layout.rpartition("_")
    return np.dtype(
        [("timestamp", "<i8"), ("data", np.dtype(kind).newbyteorder("<"), (int(width),))]
    )


def make_block(layout: str, rows: int) -> np.ndarray:
    """A block of ``rows`` rows with increasing timestamps and small data values."""
    block = np.zeros(rows, row_dtype(layout))
    block["timestamp"] = np.arange(rows, dtype=np.int64) + 1_700_000_000_000_000
    width = block.dtype["data"].shape[0]
    block["data"] = (1 + np.arange(rows * width) % 97).reshape(rows, width)  # never a zero row
    return block


def touch(rows: np.ndarray) -> None:
    """What every consumer does with what it receives: sum the first data column."""
    rows["data"][:, 0].sum()


@dataclass(frozen=True)
class Plan:
    """How much one repetition of a throughput measurement moves."""

    layout: str
    block: int  # rows per block
    max_rows: int  # stop after this many rows ...
    warm: float  # ... or after warm + budget seconds, whichever comes first
    budget: float
    reps: int = 1

    @property
    def deadline(self) -> float:
        return self.warm + self.budget


class Meter:
    """Rate of a stream of blocks (sent or received): rows after a warm-up, over their time.

    ``add(n)`` is called after each block. The block that ends the warm-up is the time mark and
    is not counted. If too little comes after the mark, the rate falls back to all rows since
    the meter was made.
    """

    def __init__(self, warm: float) -> None:
        self.warm = warm
        self.start = clock()
        self.first = 0.0
        self.mark = 0.0
        self.last = 0.0
        self.total = 0
        self.rows = 0
        self.blocks = 0

    def add(self, n: int) -> None:
        now = clock()
        if self.total == 0:
            self.first = now
        elif self.mark:
            self.rows += n
            self.blocks += 1
        elif now - self.first >= self.warm:
            self.mark = now
        self.total += n
        self.last = now

    def rate(self) -> float:
        if self.blocks >= 2 and self.last > self.mark:
            return self.rows / (self.last - self.mark)
        if self.total and self.last > self.start:
            return self.total / (self.last - self.start)
        return 0.0


@dataclass
class Worker:
    """What a task function gets to talk to its peers and to the parent."""

    index: int
    barrier: Any  # workers-only barrier
    notes: Any  # queue to the parent

    def sync(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait until every worker of the measurement reaches the same point."""
        self.barrier.wait(timeout)

    def note(self, value: Any) -> None:
        self.notes.put((self.index, "note", value))


@dataclass
class Task:
    fn: Callable[..., Any]  # fn(worker, *args) -> picklable result
    args: tuple[Any, ...] = ()
    cpu: int | None = None  # pin to this CPU when set
    name: str = ""


def _child(index: int, task: Task, start: Any, barrier: Any, notes: Any) -> None:
    worker = Worker(index, barrier, notes)
    try:
        if task.cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {task.cpu})
        start.wait(STARTUP_TIMEOUT)
        notes.put((index, "ok", task.fn(worker, *task.args)))
    except BaseException as exc:  # report everything, even KeyboardInterrupt
        start.abort()
        barrier.abort()
        notes.put((index, "error", describe(exc)))


def describe(exc: BaseException, where: bool = True) -> str:
    """One line naming the exception and, with ``where``, the line that raised it."""
    if isinstance(exc, Failed):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    frames = traceback.extract_tb(exc.__traceback__)
    if where and frames:
        text += f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})"
    return " ".join(text.split())


@dataclass
class Group:
    """Spawned processes running a list of tasks; killed on exit whatever happened."""

    tasks: list[Task]
    procs: list[BaseProcess] = field(default_factory=list)
    results: dict[int, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.tasks)
        self._start = SPAWN.Barrier(n + 1)
        self._barrier = SPAWN.Barrier(n)
        self._notes = SPAWN.Queue()
        self._pending_notes: list[tuple[int, Any]] = []

    def start(self) -> None:
        """Spawn the workers (they wait at the start barrier)."""
        for i, task in enumerate(self.tasks):
            proc = SPAWN.Process(
                target=_child,
                args=(i, task, self._start, self._barrier, self._notes),
                name=task.name or f"bench-{i}",
                daemon=True,
            )
            proc.start()
            self.procs.append(proc)

    def ready(self) -> None:
        """Meet the workers at the start barrier: from here on they run."""
        try:
            self._start.wait(STARTUP_TIMEOUT)
        except threading.BrokenBarrierError:
            self._raise_first_error(5.0)
            raise Failed("a worker did not start") from None

    def close(self) -> None:
        """Kill whatever still runs."""
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
        for proc in self.procs:
            proc.join(5)
        self._notes.close()
        self._notes.cancel_join_thread()

    def __enter__(self) -> Group:
        try:
            self.start()
            self.ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def _get(self, timeout: float) -> tuple[int, str, Any] | None:
        try:
            item: tuple[int, str, Any] = self._notes.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        return item

    def _fail(self, index: int, text: str, grace: float = 1.0) -> None:
        """Raise Failed, preferring a root cause over the broken barriers it leaves behind."""
        end = clock() + grace
        while text.startswith("BrokenBarrierError") and (item := self._get(end - clock())):
            if item[1] == "error":
                index, text = item[0], item[2]
        raise Failed(f"{self.tasks[index].name or 'worker'}: {text}")

    def _raise_first_error(self, timeout: float) -> None:
        end = clock() + timeout
        while (item := self._get(max(0.0, end - clock()))) is not None:
            if item[1] == "error":
                self._fail(item[0], item[2])

    def _handle(self, item: tuple[int, str, Any]) -> None:
        index, kind, value = item
        if kind == "error":
            self._fail(index, value)
        if kind == "note":
            self._pending_notes.append((index, value))
        else:
            self.results[index] = value

    def note(self, timeout: float) -> tuple[int, Any]:
        """The next note posted by a worker."""
        end = clock() + timeout
        while not self._pending_notes:
            item = self._get(min(0.2, max(0.0, end - clock())))
            if item is not None:
                self._handle(item)
            elif clock() > end:
                raise Failed(f"no word from the workers in {timeout:.0f} s")
            else:
                self._check_alive()
        return self._pending_notes.pop(0)

    def _check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.exitcode is not None and i not in self.results:
                self._raise_first_error(1.0)
                if i not in self.results:
                    raise Failed(
                        f"{self.tasks[i].name or 'worker'} died (exit code {proc.exitcode})"
                    )

    def wait(
        self, timeout: float, every: float = 0.1, monitor: Callable[[], None] | None = None
    ) -> list[Any]:
        """Every task's result, in task order; ``monitor`` is called about every ``every`` s."""
        end = clock() + timeout
        while len(self.results) < len(self.tasks):
            item = self._get(every)
            if item is not None:
                self._handle(item)
                continue
            if monitor is not None:
                monitor()
            if clock() > end:
                raise Failed(f"timed out after {timeout:.0f} s")
            self._check_alive()
        return [self.results[i] for i in range(len(self.tasks))]


def run(tasks: list[Task], timeout: float) -> list[Any]:
    """Run tasks in their own processes; their results, or Failed."""
    with Group(tasks) as group:
        return group.wait(timeout)


def cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def pinned(n: int) -> list[int | None]:
    """CPUs for n cooperating processes, one each, when there are enough of them."""
    avail = cpus()
    if len(avail) < n:
        return [None] * n
    return list(avail[:n])


@contextlib.contextmanager
def cleaning(items: list[Any]) -> Iterator[list[Any]]:
    """Call ``cleanup()`` on every item on the way out."""
    try:
        yield items
    finally:
        for item in items:
            with contextlib.suppress(Exception):
                item.cleanup()


def percentiles(samples: Sequence[float], qs: tuple[float, ...] = (50, 99, 99.9)) -> list[float]:
    return [float(v) for v in np.percentile(np.asarray(samples), qs)]


def median(values: Sequence[float]) -> float:
    return float(np.median(values)) if values else float("nan")
