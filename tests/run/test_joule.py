"""Joule modules unchanged on shmpipe pipes: classes in this process (run_joule_class) and
executables started as jouled starts them (run_executable), against results computed
directly; stops, failures, and nothing (child, fd, task) left behind."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shmpipe
from shmpipe.run.joule import (
    ExecutableFailed,
    ModuleConfigError,
    is_joule_class,
    joule_argv,
    run_executable,
    run_joule_class,
)

joule = pytest.importorskip("joule", reason="the joule package (1.0.1) is not installed")
scipy_signal = pytest.importorskip("scipy.signal", reason="the reference median needs scipy "
                                   "(installed with joule: pip install -e '.[test]')")

from joule.client import (  # noqa: E402
    CompositeModule,
    FilterModule,
    FIRFilterModule,
    ReaderModule,
)
from joule.client.builtins.median_filter import MedianFilter  # noqa: E402
from joule.utilities import yesno  # noqa: E402

LAYOUT = "float32_3"
WINDOW = 5
MEDIAN_EXE = os.path.join(os.path.dirname(sys.executable), "joule-median-filter")


# ------------------------------------------------------------------------------ helpers
def interval(n: int, t0: int, seed: int) -> np.ndarray:
    rows = np.zeros(n, shmpipe.compute_dtype(LAYOUT))
    rows["timestamp"] = t0 + np.arange(n) * 1000
    rows["data"] = np.random.default_rng(seed).normal(size=(n, 3))
    return rows


INTERVALS = [interval(200, 1_000_000, 1), interval(300, 10_000_000, 2)]


def median_of(rows: np.ndarray, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """What Joule's MedianFilter outputs for one whole interval: scipy's medfilt per column
    (zero-padded at the edges), the half window at each edge dropped."""
    bound = window // 2
    data = scipy_signal.medfilt(rows["data"], [window, 1])[bound:-bound]
    return rows["timestamp"][bound:-bound], data.astype(np.float32)


async def source(*intervals: np.ndarray, close: bool = True) -> shmpipe.LocalPipe:
    """A LocalPipe holding these intervals, each followed by a break."""
    pipe = shmpipe.LocalPipe(LAYOUT, name="input")
    for rows in intervals:
        await pipe.write(rows)
        await pipe.close_interval()
    if close:
        await pipe.close()
    return pipe


async def read_intervals(pipe: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """Read a pipe to its end: the rows of each interval ended by a break, then the rows
    after the last break."""
    done, current = [], []
    while True:
        try:
            data = await pipe.read()
        except shmpipe.EmptyPipeError:
            break
        current.append(np.array(data))
        pipe.consume(len(data))
        if pipe.end_of_interval:
            done.append(np.concatenate(current))
            current = []
    return done, np.concatenate(current) if current else np.zeros(0, pipe.dtype)


async def intervals_of(pipe: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """Close ``pipe`` (a LocalPipe) and read it all: the rows of each interval ended by a
    break, then the rows after the last break."""
    await pipe.close()
    return await read_intervals(pipe)


def assert_medians(got: list[np.ndarray], rest: np.ndarray) -> None:
    assert len(got) == len(INTERVALS)  # one break per input break
    assert len(rest) == 0
    for rows, want in zip(got, INTERVALS, strict=True):
        ts, data = median_of(want)
        np.testing.assert_array_equal(rows["timestamp"], ts)
        np.testing.assert_allclose(rows["data"], data, rtol=1e-6)


def children() -> set[int]:
    """Pids of this process's children, from /proc."""
    me, kids = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                kids.add(int(entry))
    return kids


def open_fds() -> set[tuple[int, str]]:
    """This process's open file descriptors and what each is open on."""
    fds = set()
    for entry in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the fd listdir itself used is gone
            fds.add((int(entry), os.readlink(f"/proc/self/fd/{entry}")))
    return fds


class LogWatch(logging.Handler):
    """Collects the ``shmpipe`` log; ``wait_for(text)`` waits until a line contains it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.news = asyncio.Event()
        self.logger = logging.getLogger("shmpipe")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.news.set()

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    async def wait_for(self, text: str) -> None:
        while not self.has(text):
            self.news.clear()
            await self.news.wait()

    def __enter__(self) -> LogWatch:
        self.logger.addHandler(self)
        self.level_was = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_was)


class LeftBehind:
    """Asserts that a block leaves no child process, fd or task behind."""

    async def __aenter__(self) -> LeftBehind:
        gc.collect()  # what earlier tests left to the collector closes now, not during the block
        self.kids, self.fds = children(), open_fds()
        self.tasks = asyncio.all_tasks()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0)  # cancelled tasks finish in the next step
        assert children() - self.kids == set()
        assert open_fds() - self.fds == set()  # (other objects may close theirs meanwhile)
        assert asyncio.all_tasks() == self.tasks


def script(body: str) -> list[str]:
    """argv running ``body`` with this Python (the --pipes... arguments land in sys.argv)."""
    return [sys.executable, "-c", body]


# ------------------------------------------------------------------------------ classes
async def test_median_filter_class_in_process_matches_scipy() -> None:
    inp = await source(*INTERVALS)
    out = shmpipe.LocalPipe(LAYOUT, name="output")
    async with LeftBehind():
        await asyncio.wait_for(run_joule_class(
            MedianFilter, {"window": WINDOW}, {"input": inp}, {"output": out},
            asyncio.Event(), name="median"), 30)
    assert_medians(*await intervals_of(out))


async def test_median_filter_class_ends_with_a_stream_that_ends_after_a_break() -> None:
    """Its input drained after a break, Joule's filter gets EmptyPipeError from read: that is
    its end, not a failure."""
    inp = await source(INTERVALS[0], close=False)
    out = shmpipe.LocalPipe(LAYOUT, name="output")
    task = asyncio.ensure_future(run_joule_class(
        MedianFilter, {"window": WINDOW}, {"input": inp}, {"output": out}, asyncio.Event(),
        name="median"))
    assert len(await out.read()) == len(INTERVALS[0]) - WINDOW + 1
    await inp.close()  # only now: the filter saw no `closed` pipe, it is waiting in read()
    await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("shape", ["class", "executable"])
async def test_median_filter_between_shared_memory_pipes(shape: str) -> None:
    """As the runner places it in a process of its own: shm pipes in and out. A shm input
    is not ``closed`` when its writer ends, so Joule's filter ends on EmptyPipeError."""
    tag = uuid.uuid4().hex[:8]
    raw, filtered = f"test-joule-{tag}-raw", f"test-joule-{tag}-filtered"
    try:
        async with shmpipe.open_output(raw, LAYOUT) as writer, \
                shmpipe.open_input(raw, LAYOUT) as inp, \
                shmpipe.open_output(filtered, LAYOUT) as out, \
                shmpipe.open_input(filtered, LAYOUT) as result:
            for rows in INTERVALS:
                await writer.write(rows)
                await writer.close_interval()
            await writer.close()
            if shape == "class":
                run = run_joule_class(MedianFilter, {"window": WINDOW}, {"input": inp},
                                      {"output": out}, asyncio.Event(), name="median")
            else:
                run = run_executable([MEDIAN_EXE], {"window": WINDOW}, {"input": inp},
                                     {"output": out}, asyncio.Event(), name="median")
            await asyncio.wait_for(run, 60)
            await out.close()
            assert_medians(*await read_intervals(result))
    finally:
        shmpipe.unlink(raw)
        shmpipe.unlink(filtered)


class MovingAverage(FIRFilterModule):
    def custom_args(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--taps", type=int, default=3)

    def make_filter(self, parsed_args: argparse.Namespace) -> np.ndarray:
        return np.ones(parsed_args.taps) / parsed_args.taps


async def test_fir_filter_module_in_process() -> None:
    inp = await source(*INTERVALS)
    out = shmpipe.LocalPipe(LAYOUT, name="output")
    await asyncio.wait_for(run_joule_class(MovingAverage, {"taps": 5}, {"input": inp},
                                           {"output": out}, asyncio.Event(), name="fir"), 30)
    got, rest = await intervals_of(out)
    assert len(got) == len(INTERVALS) and len(rest) == 0
    for rows, want in zip(got, INTERVALS, strict=True):
        np.testing.assert_array_equal(rows["timestamp"], want["timestamp"][2:-2])
        mean = np.stack([np.convolve(c, np.ones(5) / 5, mode="valid") for c in want["data"].T])
        np.testing.assert_allclose(rows["data"], mean.T, rtol=1e-5, atol=1e-6)


class Counter(ReaderModule):
    """Writes one row per step until stop_requested; records what it saw."""

    seen: dict[str, Any] = {}

    def custom_args(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--step", type=float, default=0.001)
        parser.add_argument("--obey", type=yesno, default=True)

    async def setup(self, parsed_args: argparse.Namespace, app: Any, output: Any) -> None:
        Counter.seen.update(setup=True, app=app, args=parsed_args)

    async def run(self, parsed_args: argparse.Namespace, output: Any) -> None:
        t = 1
        try:
            while parsed_args.obey is False or not self.stop_requested:
                await output.write(np.array([[t, t, t, t]]))
                t += 1
                await asyncio.sleep(parsed_args.step)
        except asyncio.CancelledError:
            Counter.seen["cancelled"] = True
            raise
        Counter.seen["stop_requested"] = self.stop_requested


async def test_reader_module_stops_when_asked() -> None:
    Counter.seen = {}
    out = shmpipe.LocalPipe(LAYOUT, name="output")
    stop = asyncio.Event()
    async with LeftBehind():
        task = asyncio.ensure_future(run_joule_class(Counter, {}, {}, {"output": out}, stop,
                                                     name="counter"))
        rows = await asyncio.wait_for(out.read(), 10)  # it runs
        assert rows["timestamp"][0] == 1
        stop.set()
        await asyncio.wait_for(task, 10)
    assert Counter.seen["stop_requested"] is True
    assert "cancelled" not in Counter.seen
    assert Counter.seen["setup"] and Counter.seen["app"] is None
    args = Counter.seen["args"]
    # Joule's standard arguments are there with their defaults, custom ones parsed
    assert (args.pipes, args.api_socket, args.live, args.step) == ("unset", "unset", False, 0.001)


async def test_reader_module_ignoring_stop_is_cancelled_after_grace() -> None:
    Counter.seen = {}
    out = shmpipe.LocalPipe(LAYOUT, name="output")
    stop = asyncio.Event()
    with LogWatch() as watch:
        async with LeftBehind():
            task = asyncio.ensure_future(run_joule_class(
                Counter, {"obey": False}, {}, {"output": out}, stop, name="stubborn",
                grace=0.3))
            await asyncio.wait_for(out.read(), 10)
            stop.set()
            t0 = time.monotonic()
            await asyncio.wait_for(task, 10)  # returns: a stop was asked for
            took = time.monotonic() - t0
    assert Counter.seen == {"setup": True, "app": None, "args": Counter.seen["args"],
                            "cancelled": True}
    assert 0.3 <= took < 5
    assert watch.has("stubborn: still running 0.3 s after stop(): cancelled")


async def test_cancelling_run_joule_class_cancels_the_module() -> None:
    Counter.seen = {}
    out = shmpipe.LocalPipe(LAYOUT, name="output")
    async with LeftBehind():
        task = asyncio.ensure_future(run_joule_class(Counter, {}, {}, {"output": out},
                                                     asyncio.Event(), name="counter"))
        await asyncio.wait_for(out.read(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert Counter.seen["cancelled"] is True


class Failing(FilterModule):
    async def run(self, parsed_args: argparse.Namespace, inputs: Any, outputs: Any) -> None:
        raise RuntimeError("sensor on fire")


async def test_an_exception_of_the_module_propagates() -> None:
    with pytest.raises(RuntimeError, match="sensor on fire"):
        await run_joule_class(Failing, {}, {}, {}, asyncio.Event(), name="failing")


class MedianThenScale(CompositeModule):
    """A composite as Joule's docs write them: a MedianFilter instance and a coroutine of
    its own joined by a local pipe."""

    def custom_args(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--window", type=int, required=True)
        parser.add_argument("--scale", type=float, default=1.0)

    async def setup(self, parsed_args: argparse.Namespace, inputs: Any, outputs: Any) -> list:
        middle = shmpipe.LocalPipe(LAYOUT, name="middle")
        median = MedianFilter()

        async def filter_then_close() -> None:
            try:
                await median.run(argparse.Namespace(window=parsed_args.window),
                                 {"input": inputs["input"]}, {"output": middle})
            finally:
                await middle.close()

        async def scale() -> None:
            out = outputs["output"]
            while True:
                try:
                    data = await middle.read()
                except shmpipe.EmptyPipeError:
                    return
                middle.consume(len(data))
                if len(data):
                    data = np.array(data)
                    data["data"] *= parsed_args.scale
                    await out.write(data)
                if middle.end_of_interval:
                    await out.close_interval()

        return [filter_then_close(), scale()]


async def test_composite_module_runs_its_parts() -> None:
    inp = await source(*INTERVALS)
    out = shmpipe.LocalPipe(LAYOUT, name="output")
    async with LeftBehind():
        await asyncio.wait_for(run_joule_class(
            MedianThenScale, {"window": WINDOW, "scale": 2}, {"input": inp}, {"output": out},
            asyncio.Event(), name="composite"), 30)
    got, rest = await intervals_of(out)
    # The middle pipe is closed right after the filter's last break: a reader that had read
    # the last rows before that break then meets an ended pipe and no break (Joule's pipes
    # and shmpipe's alike: a break with no row after it, at the end, is the end).
    if len(rest):
        got.append(rest)
    assert len(got) == len(INTERVALS)
    for rows, want in zip(got, INTERVALS, strict=True):
        ts, data = median_of(want)
        np.testing.assert_array_equal(rows["timestamp"], ts)
        np.testing.assert_allclose(rows["data"], 2 * data, rtol=1e-6)


@pytest.mark.parametrize(("args", "complaint"), [
    ({}, "the following arguments are required: --window"),
    ({"window": 5, "windw": 5}, "unrecognized arguments: --windw 5"),
    ({"window": "five"}, "invalid int value: 'five'"),
    ({"window": None}, "argument 'window': a NoneType cannot be passed"),
    ({"help": True}, "median"),  # argparse's --help exits: refused, not exited
])
async def test_bad_arguments_are_refused_without_exiting(args: dict, complaint: str) -> None:
    with pytest.raises(ModuleConfigError) as e:
        await run_joule_class(MedianFilter, args, {}, {}, asyncio.Event(), name="median")
    assert str(e.value).startswith("median: bad arguments for Joule module MedianFilter")
    assert complaint in str(e.value)


async def test_not_a_joule_class_or_wrong_pipes_are_refused() -> None:
    with pytest.raises(ModuleConfigError, match="not a Joule module class"):
        await run_joule_class(dict, {}, {}, {}, asyncio.Event(), name="x")
    two = {"a": shmpipe.LocalPipe(LAYOUT), "b": shmpipe.LocalPipe(LAYOUT)}
    with pytest.raises(ModuleConfigError, match="no input and exactly one output"):
        await run_joule_class(Counter, {}, {}, two, asyncio.Event(), name="counter")


def test_is_joule_class() -> None:
    assert is_joule_class(MedianFilter) and is_joule_class(Counter)
    assert not is_joule_class(MedianFilter())  # an instance
    assert not is_joule_class(dict) and not is_joule_class(run_joule_class)
    assert not is_joule_class(shmpipe.LocalPipe)


def test_shmpipe_run_works_without_joule_until_a_class_needs_it() -> None:
    code = ("import sys\n"
            "import shmpipe.run, shmpipe.run.joule as j\n"
            "class A: pass\n"
            "assert not j.is_joule_class(A) and not j.is_joule_class(int)\n"
            "assert j.joule_argv({'a': True}) == ['--a', 'yes']\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'joule'], 'imported'\n"
            "sys.modules['joule'] = None  # as if it were not installed\n"
            "import asyncio\n"
            "try:\n"
            "    asyncio.run(j.run_joule_class(A, {}, {}, {}, asyncio.Event(), name='a'))\n"
            "except ImportError as e:\n"
            "    assert 'pip install joule' in str(e), e\n"
            "else:\n"
            "    raise AssertionError('no ImportError')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------------------ joule_argv
def test_joule_argv_examples() -> None:
    assert joule_argv({"window": 5, "live": True, "scale": 0.5, "name": "a b",
                       "taps": [1, 2], "cfg": {"k": "v"}, "offset": -3}) == [
        "--window", "5", "--live", "yes", "--scale", "0.5", "--name", "a b",
        "--taps", "[1, 2]", "--cfg", '{"k": "v"}', "--offset=-3"]
    for bad in ({"": 1}, {"-x": 1}, {"a=b": 1}, {"a b": 1}, {"x": object()},
                {"x": "nul\0"}, {"x": [object()]}, {"x": "--"}):
        with pytest.raises(ModuleConfigError):
            joule_argv(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
texts = (st.text() | st.text().map(lambda s: "-" + s)).filter(
    lambda s: "\0" not in s and s != "--")
arg_values = (texts | st.booleans() | st.integers()
              | st.floats() | st.lists(json_values, max_size=4)
              | st.dictionaries(st.text(max_size=5), json_values, max_size=4))
arg_names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(lambda k: k != "help")


def parser_for(args: dict[str, Any]) -> argparse.ArgumentParser:
    """The parser a Joule module would declare for these arguments (by their types)."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    for key, value in args.items():
        if isinstance(value, bool):
            kind: Any = yesno
        elif isinstance(value, int):
            kind = int
        elif isinstance(value, float):
            kind = float
        elif isinstance(value, (list, dict)):
            kind = json.loads
        else:
            kind = str
        parser.add_argument(f"--{key}", type=kind, required=True)
    return parser


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("value", ["-", "-x y", "--window", "-1e5", "-inf", "", " -x", "a=b",
                                   "=", "--=", "-- x", "yes", "-5", "--k=1"])
def test_joule_argv_passes_awkward_strings(value: str) -> None:
    parser = parser_for({"window": "", "k": value})
    assert parser.parse_args(joule_argv({"window": "w", "k": value})).k == value


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(arg_names, arg_values, max_size=6))
def test_joule_argv_round_trips_through_argparse(args: dict[str, Any]) -> None:
    parsed = vars(parser_for(args).parse_args(joule_argv(args)))
    assert parsed.keys() == args.keys()
    for key, value in args.items():
        assert same(parsed[key], value), (key, value, parsed[key])


# ------------------------------------------------------------------------------ executables
async def test_median_filter_executable_matches_scipy() -> None:
    """joule-median-filter started as jouled starts it; our input ends after its last break,
    the filter dies of EmptyPipeError as Joule's filters do: that ends the run cleanly."""
    inp = await source(*INTERVALS)
    out = shmpipe.LocalPipe(LAYOUT, name="output")
    with LogWatch() as watch:
        async with LeftBehind():
            await asyncio.wait_for(run_executable(
                [MEDIAN_EXE], {"window": WINDOW}, {"input": inp}, {"output": out},
                asyncio.Event(), name="median", grace=5), 60)
    assert_medians(*await intervals_of(out))
    assert watch.has("median: ended with its inputs")


async def test_median_filter_executable_stopped_before_its_handler_exits_cleanly() -> None:
    """A stop at once, while the child still imports: no SIGTERM until Joule's handler is
    installed, then the module stops itself (status 0) instead of dying of the signal."""
    inp = await source(close=False)
    out = shmpipe.LocalPipe(LAYOUT, name="output")
    stop = asyncio.Event()
    stop.set()
    with LogWatch() as watch:
        async with LeftBehind():
            await asyncio.wait_for(run_executable(
                [MEDIAN_EXE], {"window": WINDOW}, {"input": inp}, {"output": out}, stop,
                name="median", grace=5, start_timeout=90), 100)  # slow on a loaded host
    assert watch.has("median: stopping (SIGTERM)")
    assert watch.has("median: stopped: exited with status 0"), watch.lines


SLOW_START = """
import signal, sys, time
time.sleep(1.0)  # imports: a SIGTERM now would kill this process
def handler(signum, frame):
    print("stopped cleanly", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, handler)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


async def test_stop_during_startup_waits_for_the_handler() -> None:
    stop = asyncio.Event()
    with LogWatch() as watch:
        async with LeftBehind():
            task = asyncio.ensure_future(run_executable(script(SLOW_START), {}, {}, {}, stop,
                                                        name="slow"))
            await watch.wait_for("slow: started")
            stop.set()
            await asyncio.wait_for(task, 30)
    assert watch.has("slow: stopped cleanly")
    assert watch.has("slow: stopped: exited with status 0")


async def test_child_ignoring_sigterm_is_killed_after_grace() -> None:
    stop = asyncio.Event()
    body = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\nwhile True: time.sleep(1)\n")
    with LogWatch() as watch:
        async with LeftBehind():
            task = asyncio.ensure_future(run_executable(script(body), {}, {}, {}, stop,
                                                        name="deaf", grace=0.3))
            await watch.wait_for("deaf: ready")
            stop.set()
            await asyncio.wait_for(task, 30)
    assert watch.has("deaf: still running 0.3 s after SIGTERM: SIGKILL")
    assert watch.has("deaf: stopped: killed by signal SIGKILL")


async def test_child_without_a_handler_gets_sigterm_after_start_timeout() -> None:
    stop = asyncio.Event()
    body = "import time\nprint('ready', flush=True)\ntime.sleep(60)"
    with LogWatch() as watch:
        async with LeftBehind():
            task = asyncio.ensure_future(run_executable(script(body), {}, {}, {}, stop,
                                                        name="plain", start_timeout=0.2))
            await watch.wait_for("plain: ready")
            stop.set()
            await asyncio.wait_for(task, 30)
    assert watch.has("plain: no SIGTERM handler 0.2 s after the stop: SIGTERM anyway")
    assert watch.has("plain: stopped: killed by signal SIGTERM")


async def test_child_leaving_without_reading_its_input_does_not_block() -> None:
    """2 MB waiting for a child that exits at once: the copy into its OS pipe stops, the
    rows it did not take stay in the input."""
    big = interval(100_000, 1_000_000, 7)
    inp = await source(big, close=False)
    async with LeftBehind():
        await asyncio.wait_for(run_executable(script("pass"), {}, {"input": inp}, {},
                                              asyncio.Event(), name="quitter"), 30)
    left = inp.read_nowait()
    assert 0 < len(left) <= len(big)
    np.testing.assert_array_equal(left, big[len(big) - len(left):])


async def test_exit_status_is_an_error_with_stderr_tail() -> None:
    body = "import sys\nprint('bad config', file=sys.stderr)\nsys.exit(3)"
    async with LeftBehind():
        with pytest.raises(ExecutableFailed) as e:
            await asyncio.wait_for(run_executable(script(body), {}, {}, {}, asyncio.Event(),
                                                  name="broken"), 30)
    assert e.value.returncode == 3
    assert e.value.stderr_tail == ["bad config"]
    assert str(e.value) == "broken: exited with status 3; its last stderr lines:\n  bad config"


async def test_death_by_signal_is_an_error() -> None:
    body = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    async with LeftBehind():
        with pytest.raises(ExecutableFailed, match="crash: killed by signal SIGKILL"):
            await asyncio.wait_for(run_executable(script(body), {}, {}, {}, asyncio.Event(),
                                                  name="crash"), 30)


async def test_a_missing_executable_is_a_clear_error() -> None:
    inp = await source(close=False)
    out = shmpipe.LocalPipe(LAYOUT)
    async with LeftBehind():
        with pytest.raises(ExecutableFailed) as e:
            await run_executable(["shmpipe-no-such-module"], {}, {"input": inp},
                                 {"output": out}, asyncio.Event(), name="ghost")
    assert e.value.returncode is None
    assert "ghost: cannot start 'shmpipe-no-such-module'" in str(e.value)
    assert not inp.closed and not out.closed  # the caller's pipes are the caller's


async def test_cancelling_kills_the_child_and_frees_everything() -> None:
    inp = await source(close=False)
    out = shmpipe.LocalPipe(LAYOUT)
    body = "import time\nprint('ready', flush=True)\ntime.sleep(60)"
    with LogWatch() as watch:
        async with LeftBehind():
            task = asyncio.ensure_future(run_executable(
                script(body), {}, {"input": inp}, {"output": out}, asyncio.Event(),
                name="sleeper"))
            await watch.wait_for("sleeper: ready")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


ECHO = """
import json, os, sys
args = sys.argv[1:]
spec = json.loads(json.loads(args[args.index("--pipes") + 1]))
print(json.dumps({"spec": spec, "args": args}), flush=True)
src = os.fdopen(spec["inputs"]["input"]["fd"], "rb")
dst = os.fdopen(spec["outputs"]["output"]["fd"], "wb")
while True:
    chunk = src.read1(1 << 16)
    if not chunk:
        break
    dst.write(chunk)
    dst.flush()
"""


async def test_protocol_as_jouled_speaks_it_and_rows_and_breaks_pass_through() -> None:
    """Any program speaking the protocol: the --pipes and --api-socket arguments, the wire
    bytes both ways (a raw byte copy keeps rows and break tokens)."""
    rows = [interval(5000, 1_000_000 + i * 10**9, i) for i in range(3)]
    inp = await source(*rows)
    out = shmpipe.LocalPipe(LAYOUT)
    with LogWatch() as watch:
        async with LeftBehind():
            await asyncio.wait_for(run_executable(
                script(ECHO), {"window": 5, "live": False}, {"input": inp}, {"output": out},
                asyncio.Event(), name="echo"), 30)
    said = json.loads(next(line for line in watch.lines if line.startswith("echo: {"))[6:])
    spec, args = said["spec"], said["args"]
    assert spec["inputs"]["input"]["id"] is None and spec["outputs"]["output"]["id"] is None
    assert spec["inputs"]["input"]["layout"] == LAYOUT
    assert args[args.index("--api-socket") + 1]
    assert args[-4:] == ["--window", "5", "--live", "no"]
    got, rest = await intervals_of(out)
    assert len(rest) == 0 and len(got) == 3
    for a, b in zip(got, rows, strict=True):
        np.testing.assert_array_equal(a, b)


async def test_an_input_ending_without_rows_ends_the_childs_input() -> None:
    inp = await source()  # no row, closed
    body = ("import json, os, sys\nargs = sys.argv[1:]\n"
            "spec = json.loads(json.loads(args[args.index('--pipes') + 1]))\n"
            "print(len(os.fdopen(spec['inputs']['input']['fd'], 'rb').read()), 'bytes')\n")
    with LogWatch() as watch:
        async with LeftBehind():
            await asyncio.wait_for(run_executable(script(body), {}, {"input": inp}, {},
                                                  asyncio.Event(), name="reader"), 30)
    assert watch.has("reader: 0 bytes")


async def test_an_all_zero_row_cannot_cross_the_wire() -> None:
    """Joule's wire has no room for a row of zeros (it is the break token): the copy fails,
    the child is killed, the PipeError comes out."""
    inp = shmpipe.LocalPipe(LAYOUT)
    await inp.write(np.zeros((1, 4)))
    body = "import time\ntime.sleep(60)"
    async with LeftBehind():
        with pytest.raises(shmpipe.PipeError, match="interval-break token"):
            await asyncio.wait_for(run_executable(script(body), {}, {"input": inp}, {},
                                                  asyncio.Event(), name="zero"), 30)
