"""The examples of examples/ do what their docstrings say: each module run as the runner
runs it (its args from a dict, LocalPipes), and the pipeline files run to their end in
every placement their comments offer, with the rows a direct computation gives."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import re
import socket
import subprocess
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy as np
import pytest

import shmpipe
from shmpipe.run.module import code_of, run_module
from shmpipe.run.supervisor import Supervisor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `examples` is imported from the repository's root
    sys.path.insert(0, ROOT)

from examples import fanout, high_bandwidth, intermittent, median  # noqa: E402

PIPELINE = os.path.join(ROOT, "examples", "pipeline.toml")
FANOUT = os.path.join(ROOT, "examples", "fanout.toml")
T = TypeVar("T")


# ---------------------------------------------------------------------------- helpers
async def run(cls: Any, args: dict[str, Any], inputs: dict[str, shmpipe.Pipe],
              outputs: dict[str, shmpipe.Pipe], stop: asyncio.Event | None = None) -> None:
    """Run a module class as a pipeline's worker does (args parsed by its custom_args); a
    module still running after 20 s fails the test. A stop request is never cancelled
    into success: the grace period is longer than the timeout."""
    await asyncio.wait_for(run_module(code_of(cls, cls.__name__), args, inputs, outputs,
                                      stop or asyncio.Event(), name=cls.__name__, grace=60),
                           timeout=20)


def finish(main: Coroutine[Any, Any, T]) -> T:
    """Run a test's coroutine; one that hangs fails the test after 30 s."""
    return asyncio.run(asyncio.wait_for(main, 30))


async def collect(pipe: shmpipe.Pipe) -> tuple[np.ndarray, list[int], list[int]]:
    """Read ``pipe`` to its end: the rows (a copy), the row counts at which breaks came, and
    the size of each read."""
    got: list[np.ndarray] = []
    breaks: list[int] = []
    sizes: list[int] = []
    count = 0
    try:
        while True:
            data = await pipe.read()
            got.append(data.copy())
            sizes.append(len(data))
            count += len(data)
            pipe.consume(len(data))
            if pipe.end_of_interval:
                breaks.append(count)
    except shmpipe.EmptyPipeError:
        pass
    return (np.concatenate(got) if got else np.empty(0, pipe.dtype)), breaks, sizes


def sensor_readings(width: int, readings: int, error_rate: float, seed: int
                    ) -> tuple[np.ndarray, list[int], list[int]]:
    """What the seeded sensor gives: the values of the good readings, the indices of the
    failed ones, and where the reader must break (after the rows before each failure, once
    for a run of failures, never before the first row)."""
    sensor = intermittent.SimulatedSensor(width, error_rate, seed)
    values: list[np.ndarray] = []
    failed: list[int] = []
    for k in range(readings):
        try:
            values.append(sensor.read())
        except intermittent.SensorError:
            failed.append(k)
    good = np.array(values, np.float32).reshape(-1, width)
    breaks = sorted({k - failed.index(k) for k in failed} - {0})  # good readings before k
    return good, failed, breaks


def median_by_hand(rows: np.ndarray, breaks: list[int], window: int
                   ) -> tuple[np.ndarray, list[int]]:
    """The centred median of each window inside each interval, computed row by row, and
    the output row counts at which the breaks come."""
    out_ts: list[int] = []
    out_data: list[np.ndarray] = []
    out_breaks: list[int] = []
    edges = [0, *breaks, len(rows)]
    for k, (a, b) in enumerate(itertools.pairwise(edges)):
        part = rows[a:b]
        for i in range(len(part) - window + 1):
            out_ts.append(int(part["timestamp"][i + window // 2]))
            out_data.append(np.median(part["data"][i:i + window], axis=0))
        if k < len(breaks):
            out_breaks.append(len(out_ts))
    width = rows.dtype["data"].shape[0] if rows.dtype["data"].shape else 1
    want = np.empty(len(out_ts), rows.dtype)
    want["timestamp"] = out_ts
    want["data"] = np.array(out_data, np.float32).reshape(-1, width)
    return want, out_breaks


_runs = itertools.count()


def new_run_id() -> str:
    """A run id (``Supervisor(run_id=)``, ``--run-id``) naming this test's pipes only:
    another test session on this machine may be running pipelines too."""
    return f"run-ex{os.getpid()}x{next(_runs)}"


def leftovers(run_id: str) -> set[str]:
    """What run ``run_id`` left in /dev/shm."""
    return {e for e in os.listdir("/dev/shm") if f"shmpipe.{run_id}." in e}


def supervise(pipeline: shmpipe.Pipeline, host: str | None = None) -> None:
    """Run this host's part of ``pipeline`` to its end (exit status 0), leaving nothing in
    /dev/shm."""
    sup = Supervisor(pipeline, host, run_id=new_run_id())
    assert asyncio.run(sup.run()) == 0
    assert leftovers(sup.run_id) == set()


def free_base_port(count: int) -> int:
    """A port p with p .. p+count-1 free on 127.0.0.1 right now."""
    for _ in range(100):
        base = random.randrange(20000, 60000)
        socks = []
        try:
            for k in range(count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + k))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


def edit(text: str, old: str, new: str) -> str:
    """``text`` with every ``old`` replaced; the example file must still contain ``old``."""
    assert old in text, f"the example no longer contains {old!r}"
    return text.replace(old, new)


# ---------------------------------------------------------------------------- the reader
def test_the_intermittent_reader_breaks_where_the_sensor_failed_and_logs_it(
        caplog: pytest.LogCaptureFixture) -> None:
    args = {"readings": 120, "period": 0.001, "error_rate": 0.15, "seed": 7}
    want, failed, breaks = sensor_readings(3, 120, 0.15, 7)
    assert len(failed) >= 5 and any(b - a == 1 for a, b in itertools.pairwise(failed)), \
        "the seed must give failures, some in a row"
    out = shmpipe.LocalPipe("float32_3")

    async def main() -> tuple[np.ndarray, list[int], list[int]]:
        reading = asyncio.ensure_future(collect(out))
        await run(intermittent.IntermittentReader, args, {}, {"output": out})
        await out.close()
        return await reading

    with caplog.at_level(logging.ERROR, logger="examples.intermittent"):
        got, got_breaks, _ = finish(main())
    np.testing.assert_array_equal(got["data"], want)
    assert got_breaks == breaks
    assert np.all(np.diff(got["timestamp"]) > 0)
    logged = [int(m.group(1)) for r in caplog.records
              if (m := re.search(r"reading (\d+) failed", r.getMessage()))]
    assert logged == failed
    assert all(r.levelno == logging.ERROR for r in caplog.records)


def test_the_intermittent_reader_without_readings_runs_until_asked_to_stop() -> None:
    out = shmpipe.LocalPipe("float32_3")
    stop = asyncio.Event()

    async def main() -> int:
        module = asyncio.ensure_future(run(intermittent.IntermittentReader,
                                           {"period": 0.001, "seed": 1}, {}, {"output": out},
                                           stop))
        rows = 0
        while rows < 20:
            data = await out.read()
            rows += len(data)
            out.consume(len(data))
        stop.set()
        await module  # returns once stop_requested is seen, long before any cancellation
        return rows

    assert finish(main()) >= 20


# ---------------------------------------------------------------------------- the filter
INTERVALS = [40, 3, 5, 0, 25, 1, 60, 17]  # rows per interval; the last is ended by the close


@pytest.mark.parametrize("window", [1, 5, 7])
def test_the_median_filter_matches_a_direct_median_per_interval(window: int) -> None:
    rng = np.random.default_rng(window)
    rows = np.empty(sum(INTERVALS), shmpipe.compute_dtype("float32_2"))
    rows["timestamp"] = np.arange(len(rows)) * 1000
    rows["data"] = rng.standard_normal((len(rows), 2))
    breaks = list(np.cumsum(INTERVALS)[:-1])
    want, want_breaks = median_by_hand(rows, breaks, window)
    raw = shmpipe.LocalPipe("float32_2", write_limit=1)  # the writer waits for the filter
    filtered = shmpipe.LocalPipe("float32_2")

    async def write() -> None:  # blocks of 1..12 rows: windows straddle the reads
        start = 0
        for stop in [*breaks, len(rows)]:
            while start < stop:
                n = min(stop - start, int(rng.integers(1, 13)))
                await raw.write(rows[start:start + n])
                start += n
            if stop != len(rows):
                await raw.close_interval()
        await raw.close()

    async def main() -> tuple[np.ndarray, list[int], list[int]]:
        reading = asyncio.ensure_future(collect(filtered))
        await asyncio.gather(write(), run(median.MedianFilter, {"window": window},
                                          {"input": raw}, {"output": filtered}))
        await filtered.close()
        return await reading

    got, got_breaks, _ = finish(main())
    assert len(want) == sum(max(0, n - window + 1) for n in INTERVALS)
    np.testing.assert_array_equal(got, want)
    assert got_breaks == want_breaks  # every break passed on, none added


def test_the_median_filter_refuses_an_even_window() -> None:
    raw, filtered = shmpipe.LocalPipe("float32_1"), shmpipe.LocalPipe("float32_1")
    with pytest.raises(ValueError, match="odd"):
        asyncio.run(run(median.MedianFilter, {"window": 4}, {"input": raw},
                        {"output": filtered}))


# ---------------------------------------------------------------------------- 1 kHz
def test_the_high_bandwidth_reader_paces_interpolates_and_caches() -> None:
    rate, block, cache, seconds = 1000, 10, 100, 0.5
    out = shmpipe.LocalPipe("float32_3")

    async def main() -> tuple[np.ndarray, list[int], list[int]]:
        reading = asyncio.ensure_future(collect(out))
        await run(high_bandwidth.HighBandwidthReader,
                  {"rate": rate, "block": block, "cache": cache, "seconds": seconds}, {},
                  {"output": out})
        await out.close()
        return await reading

    got, breaks, sizes = finish(main())
    ts = got["timestamp"]
    assert len(got) == 500 and breaks == []
    assert np.all(np.diff(ts) > 0)
    for k in range(0, len(ts), block):  # evenly spaced within each ADC block (µs rounding)
        steps = np.diff(ts[k:k + block])
        assert steps.max() - steps.min() <= 1, (k, steps)
    # paced: the blocks' deadlines were waited for, so the stamps span the run's duration
    assert ts[-1] - ts[0] >= (len(ts) - block) * 1e6 / rate - 1000
    # cached: rows went down the pipe `cache` at a time, while the reader ran
    assert len(sizes) >= 3 and all(n % cache == 0 for n in sizes), sizes
    np.testing.assert_allclose(got["data"],
                               high_bandwidth.simulated_adc(ts, 3, 50.0), atol=1e-6)


# ---------------------------------------------------------------------------- composite
def test_the_fanout_composite_copies_every_row_and_break_to_every_output() -> None:
    """Two runs on the same output pipes, as after a restart: no row is copied twice."""
    dtype = shmpipe.compute_dtype("float32_1")
    rows = np.zeros(300, dtype)
    rows["timestamp"] = np.arange(300)
    rows["data"][:, 0] = np.arange(300) * 0.5
    outs = {name: shmpipe.LocalPipe("float32_1", write_limit=2) for name in "abc"}

    async def feed(part: np.ndarray) -> shmpipe.LocalPipe:
        inp = shmpipe.LocalPipe("float32_1")
        for k in range(0, len(part), 50):
            await inp.write(part[k:k + 50])
            if k % 100 == 50:
                await inp.close_interval()
        await inp.close()
        return inp

    async def main() -> list[tuple[np.ndarray, list[int], list[int]]]:
        readers = [asyncio.ensure_future(collect(p)) for p in outs.values()]
        await run(fanout.Fanout, {}, {"input": await feed(rows[:200])}, dict(outs))
        for p in outs.values():  # what the runner writes when it restarts a module
            await p.close_interval()
        await run(fanout.Fanout, {}, {"input": await feed(rows[200:])}, dict(outs))
        for p in outs.values():
            await p.close()
        return list(await asyncio.gather(*readers))

    for got, breaks, _ in finish(main()):
        np.testing.assert_array_equal(got, rows)
        assert breaks == [100, 200, 200, 300]  # the input's, the restart's, the input's


# ---------------------------------------------------------------------------- pipelines
SENSOR = {"readings": 200, "error_rate": 0.05, "seed": 1}  # as in examples/pipeline.toml
WINDOW = 5


def pipeline_result() -> tuple[np.ndarray, list[int]]:
    """What examples/pipeline.toml's sink must get: the seeded sensor's good readings,
    median-filtered interval by interval."""
    values, _, breaks = sensor_readings(3, SENSOR["readings"], SENSOR["error_rate"],
                                        SENSOR["seed"])
    raw = np.empty(len(values), shmpipe.compute_dtype("float32_3"))
    raw["timestamp"] = np.arange(len(values))
    raw["data"] = values
    want, want_breaks = median_by_hand(raw, breaks, WINDOW)
    return want["data"], want_breaks


def test_the_pipeline_files_pass_the_check() -> None:
    for path in (PIPELINE, FANOUT):
        shmpipe.Pipeline.load(path).check()
    with open(PIPELINE) as f:
        text = f.read()
    for name, value in SENSOR.items():  # the expectations above follow the file
        assert re.search(rf"\b{name} = {value}\b", text), name
    assert f"window = {WINDOW}" in text


def test_the_pipeline_file_runs_to_its_end_from_the_repository_root() -> None:
    run_id = new_run_id()
    proc = subprocess.run([sys.executable, "-m", "shmpipe", "run", "examples/pipeline.toml",
                           "--run-id", run_id], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    data, breaks = pipeline_result()
    assert f"sink: done: {len(data)} rows, {len(breaks)} interval breaks" in proc.stderr
    assert "sensor: reading" in proc.stderr  # the failures were logged
    assert leftovers(run_id) == set()


def _pipeline_text(tmp_path: Any) -> str:
    with open(PIPELINE) as f:
        text = f.read()
    text = edit(text, "period = 0.01,", "period = 0.001,")  # 10 times faster, same rows
    return edit(text, 'args = { label = "sink", every = 1.0 }',
                f'args = {{ label = "sink", every = 1.0, path = "{tmp_path}/out.npz" }}')


PLACEMENTS = {
    # which commented placement lines are uncommented
    "filter and sink in one process": lambda t: edit(
        t, '# process = "dsp"        # placement: the filter',
        'process = "dsp"        # placement: the filter').replace(
        '# process = "dsp"        # placement: see', 'process = "dsp"        # placement: see'),
    "all in one process": lambda t: edit(t, '# process = "dsp"', 'process = "dsp"'),
}


@pytest.mark.parametrize("placement", ["as written", *PLACEMENTS])
def test_the_pipeline_file_gives_the_same_rows_in_each_placement(
        placement: str, tmp_path: Any) -> None:
    text = _pipeline_text(tmp_path)
    if placement != "as written":
        text = PLACEMENTS[placement](text)
        assert text.count('\nprocess = "dsp"') == (3 if placement.startswith("all") else 2)
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    supervise(shmpipe.Pipeline.load(str(path)))
    _check_result(f"{tmp_path}/out.npz")


def test_the_pipeline_file_with_the_filter_on_a_second_host(tmp_path: Any) -> None:
    """The [hosts] block and the filter's `host = "b"` uncommented; host b is a second
    runner on loopback ports."""
    text = _pipeline_text(tmp_path)
    a, b = free_base_port(2), free_base_port(2)
    text = edit(text, '# [hosts]', '[hosts]')
    text = edit(text, '# a = "tcp://127.0.0.1:5601"', f'a = "tcp://127.0.0.1:{a}"')
    text = edit(text, '# b = "tcp://127.0.0.1:5611"', f'b = "tcp://127.0.0.1:{b}"')
    text = edit(text, '# host = "b"', 'host = "b"')
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    run_b = new_run_id()
    runner_b = subprocess.Popen([sys.executable, "-m", "shmpipe", "run", str(path), "--host",
                                 "b", "--run-id", run_b], cwd=ROOT, stderr=subprocess.PIPE,
                                text=True)
    try:
        supervise(shmpipe.Pipeline.load(str(path)), "a")
        _, err = runner_b.communicate(timeout=60)
        assert runner_b.returncode == 0, err
        assert "median: finished" in err
    finally:
        runner_b.kill()
        runner_b.communicate()
    assert leftovers(run_b) == set()
    _check_result(f"{tmp_path}/out.npz")


def _check_result(path: str) -> None:
    want, want_breaks = pipeline_result()
    got = np.load(path)
    np.testing.assert_array_equal(got["rows"]["data"], want)
    assert [int(b) for b in got["breaks"]] == want_breaks
    assert np.all(np.diff(got["rows"]["timestamp"]) > 0)


def test_the_fanout_file_gives_both_sinks_every_row(tmp_path: Any) -> None:
    with open(FANOUT) as f:
        text = edit(f.read(), "seconds = 3", "seconds = 0.3")
    for sink in ("sink_a", "sink_b"):
        text = edit(text, f'args = {{ label = "{sink}" }}',
                    f'args = {{ label = "{sink}", path = "{tmp_path}/{sink}.npz" }}')
    path = tmp_path / "fanout.toml"
    path.write_text(text)
    supervise(shmpipe.Pipeline.load(str(path)))
    a, b = (np.load(f"{tmp_path}/{s}.npz") for s in ("sink_a", "sink_b"))
    assert len(a["rows"]) == 300 and len(a["breaks"]) == 0
    np.testing.assert_array_equal(a["rows"], b["rows"])
    assert np.all(np.diff(a["rows"]["timestamp"]) > 0)


def test_the_local_demo_runs() -> None:
    proc = subprocess.run([sys.executable, "examples/local_demo.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "received 1000 rows in 2 intervals through 2 LocalPipes"


def test_the_pipeline_files_host_lines_as_written_pass_the_check() -> None:
    """Uncommenting the [hosts] block as written gives ports that do not meet."""
    pytest.importorskip("zmq", reason="pipelines with [hosts] need pyzmq: pip install -e '.[net]'")
    path = os.path.join(ROOT, "examples", "pipeline.toml")
    with open(path) as f:
        text = f.read()
    for line in ('# [hosts]', '# a = "tcp://127.0.0.1:5601"', '# b = "tcp://127.0.0.1:5611"',
                 '# host = "b"'):
        assert line in text
        text = text.replace(line, line[2:])
    shmpipe.Pipeline.loads(text, path).check("b")
