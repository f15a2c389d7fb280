"""Pipelines run by the supervisor, across real processes: the same modules in every
placement give the same rows and breaks; failures, deaths and stops are handled."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import runmods
from runtools import HERE, run_entries

from shmpipe.run import Pipeline
from shmpipe.run.supervisor import Supervisor

N, BLOCK, EVERY = 2000, 100, 4  # rows, rows per block, blocks per interval
BREAKS = list(range(BLOCK * EVERY, N + 1, BLOCK * EVERY))

THREE = """\
{hosts}
[streams]
raw = "float32_2"
filtered = "float32_2"

[modules.source]
code = "runmods:counter"
outputs = {{ output = "raw" }}
args = {{ n = {n}, block = {block}, breaks_every = {every} }}
{source_place}

[modules.filter]
code = "{filter}"
inputs = {{ input = "raw" }}
outputs = {{ output = "filtered" }}
args = {{ {filter_args} }}
{filter_place}

[modules.sink]
code = "runmods:collect"
inputs = {{ input = "filtered" }}
args = {{ path = "{out}" }}
{sink_place}
"""


def three(out: str, filter: str = "runmods:passthrough", filter_args: str = "",
          hosts: str = "", source_place: str = "", filter_place: str = "",
          sink_place: str = "", n: int = N) -> str:
    return THREE.format(hosts=hosts, n=n, block=BLOCK, every=EVERY, filter=filter,
                        filter_args=filter_args, out=out, source_place=source_place,
                        filter_place=filter_place, sink_place=sink_place)


def result(path: str) -> tuple[np.ndarray, list[int]]:
    d = np.load(path)
    return d["rows"], [int(b) for b in d["breaks"]]


def run(path: str, run_id: str, host: str | None = None) -> int:
    return asyncio.run(Supervisor(Pipeline.load(path), host, run_id=run_id).run())


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


PLACEMENTS = {
    "own processes": {},
    "one process": {"source_place": 'process = "all"', "filter_place": 'process = "all"',
                    "sink_place": 'process = "all"'},
    "filter and sink share a process": {"filter_place": 'process = "dsp"',
                                        "sink_place": 'process = "dsp"'},
}


@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
def test_the_same_rows_and_breaks_in_each_placement_on_one_host(
        placement: str, toml: Callable[[str], str], tmp_path: Any,
        run_id: str) -> None:
    out = f"{tmp_path}/out.npz"
    assert run(toml(three(out, **PLACEMENTS[placement])), run_id) == 0
    got, breaks = result(out)
    np.testing.assert_array_equal(got, runmods.rows(0, N))
    assert breaks == BREAKS


def test_the_middle_module_on_a_second_host(toml: Callable[[str], str], tmp_path: Any,
                                            run_id: str) -> None:
    """Host b (a second runner, `shmpipe run FILE --host b`) runs the filter; host a the
    source and the sink. The streams cross over loopback TCP both ways."""
    out = f"{tmp_path}/out.npz"
    a, b = free_base_port(2), free_base_port(2)
    hosts = f'[hosts]\na = "tcp://127.0.0.1:{a}"\nb = "tcp://127.0.0.1:{b}"\n'
    path = toml(three(out, hosts=hosts, filter_place='host = "b"'))
    runner_b = subprocess.Popen([sys.executable, "-m", "shmpipe", "run", path, "--host", "b",
                                 "--run-id", f"{run_id}b"], cwd=HERE, stderr=subprocess.PIPE,
                                text=True)
    try:
        assert run(path, run_id, "a") == 0
        assert runner_b.wait(60) == 0, runner_b.stderr.read() if runner_b.stderr else ""
    finally:
        runner_b.kill()
        runner_b.wait()
        if runner_b.stderr:
            runner_b.stderr.close()
    got, breaks = result(out)
    np.testing.assert_array_equal(got, runmods.rows(0, N))
    assert breaks == BREAKS


def test_class_modules_run_with_their_args(toml: Callable[[str], str], tmp_path: Any,
                                           run_id: str) -> None:
    out = f"{tmp_path}/out.npz"
    text = three(out, filter="runmods:Doubler", filter_args="factor = 3")
    assert run(toml(text), run_id) == 0
    got, breaks = result(out)
    want = runmods.rows(0, N)
    want["data"] *= 3
    np.testing.assert_array_equal(got, want)
    assert breaks == BREAKS


@pytest.mark.parametrize("place", ["", 'process = "all"'])
def test_a_module_that_raises_is_restarted_and_no_row_is_lost(
        place: str, toml: Callable[[str], str], tmp_path: Any, capfd: Any, caplog: Any,
        run_id: str) -> None:
    caplog.set_level("INFO", logger="shmpipe")  # the workers log at the supervisor's level
    out, marker = f"{tmp_path}/out.npz", f"{tmp_path}/crashed"
    text = three(out, filter="runmods:crash_once", filter_args=f'marker = "{marker}"',
                 source_place=place, filter_place=place, sink_place=place)
    assert run(toml(text), run_id) == 0
    got, breaks = result(out)
    np.testing.assert_array_equal(got, runmods.rows(0, N))
    with open(marker) as f:
        failed_at = int(f.read())
    assert breaks == sorted({failed_at, *BREAKS}), "a break where the module failed"
    err = capfd.readouterr().err
    assert "filter: failed: RuntimeError: crash_once: failing on purpose" in err
    assert "Traceback" in err and "filter: restarting in 0.1 s" in err


def test_a_killed_process_is_restarted_and_no_row_is_lost(
        toml: Callable[[str], str], tmp_path: Any, caplog: Any, run_id: str) -> None:
    out, marker = f"{tmp_path}/out.npz", f"{tmp_path}/died"
    text = three(out, filter="runmods:die_once", filter_args=f'marker = "{marker}"')
    with caplog.at_level("INFO", logger="shmpipe"):
        assert run(toml(text), run_id) == 0
    got, breaks = result(out)
    np.testing.assert_array_equal(got, runmods.rows(0, N))
    with open(marker) as f:
        died_at = int(f.read())
    assert breaks == sorted({died_at, *BREAKS}), "a break where the process died"
    assert "filter: process died (killed by SIGKILL)" in caplog.text


def test_a_module_that_keeps_failing_is_given_up_and_the_rest_ends(
        toml: Callable[[str], str], tmp_path: Any, capfd: Any, run_id: str) -> None:
    out = f"{tmp_path}/out.npz"
    assert run(toml(three(out, filter="runmods:always_fails")), run_id) == 1
    got, _ = result(out)
    assert len(got) == 0  # the sink saw its input end
    assert "filter: given up (5 failures in a row)" in capfd.readouterr().err


def test_restart_never_gives_up_at_the_first_failure(
        toml: Callable[[str], str], tmp_path: Any, capfd: Any, run_id: str) -> None:
    out = f"{tmp_path}/out.npz"
    text = three(out, filter="runmods:always_fails", filter_place='restart = "never"')
    assert run(toml(text), run_id) == 1
    assert 'filter: given up (restart = "never")' in capfd.readouterr().err


def _start_cli(path: str, run_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "shmpipe", "run", path, "--run-id", run_id],
                            cwd=HERE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen[str], *texts: str) -> list[str]:
    """Read the runner's log lines until each of ``texts`` was in one, in any order."""
    assert proc.stderr is not None
    seen, missing = [], set(texts)
    for line in proc.stderr:
        seen.append(line)
        missing = {t for t in missing if t not in line}
        if not missing:
            return seen
    raise AssertionError(f"{missing} never came; the log: {''.join(seen)}")


def test_sigterm_stops_sources_first_then_the_rest_drains(
        toml: Callable[[str], str], tmp_path: Any, run_id: str) -> None:
    out = f"{tmp_path}/out.npz"
    text = three(out).replace('code = "runmods:counter"', 'code = "runmods:forever"').replace(
        f"args = {{ n = {N}, block = {BLOCK}, breaks_every = {EVERY} }}", "")
    proc = _start_cli(toml(text), run_id)
    try:
        _wait_for(proc, "sink: started", "filter: started")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log = proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()
    assert "source: stopped" in log and "sink: finished" in log and "filter: finished" in log
    got, _ = result(out)
    np.testing.assert_array_equal(got, runmods.rows(0, len(got)))  # all drained, in order
    assert len(got) > 0


def test_a_second_ctrl_c_stops_at_once_and_leaves_nothing(
        toml: Callable[[str], str], tmp_path: Any, run_id: str) -> None:
    out = f"{tmp_path}/out.npz"
    text = three(out, filter="runmods:stubborn").replace(
        'code = "runmods:counter"', 'code = "runmods:forever"').replace(
        f"args = {{ n = {N}, block = {BLOCK}, breaks_every = {EVERY} }}", "")
    path = toml(text)
    proc = _start_cli(path, run_id)
    try:
        _wait_for(proc, "filter: started")
        proc.send_signal(signal.SIGINT)
        _wait_for(proc, "stopping: sources first")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 130
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert run_entries(run_id) == set()


def test_a_killed_runner_leaves_its_workers_to_stop_and_clean_up(
        toml: Callable[[str], str], tmp_path: Any, run_id: str) -> None:
    """SIGKILL to the runner: its workers see their control pipe end, stop their modules,
    and unlink the pipes they used (no process is left to do it)."""
    import time

    out = f"{tmp_path}/out.npz"
    text = three(out).replace('code = "runmods:counter"', 'code = "runmods:forever"').replace(
        f"args = {{ n = {N}, block = {BLOCK}, breaks_every = {EVERY} }}", "")
    proc = _start_cli(toml(text), run_id)
    try:
        _wait_for(proc, "sink: started", "filter: started", "source: started")
        assert run_entries(run_id)
        proc.kill()
        proc.wait()
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    deadline = time.monotonic() + 20  # no event to wait on from here: poll /dev/shm
    while run_entries(run_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run_entries(run_id) == set()
    got, _ = result(out)  # the sink ended its stream cleanly
    np.testing.assert_array_equal(got, runmods.rows(0, len(got)))


def test_restart_always_runs_a_module_again_after_it_returns(
        toml: Callable[[str], str], tmp_path: Any, caplog: Any, capfd: Any,
        run_id: str) -> None:
    """A source with restart = "always" is started again each time it returns, until the
    pipeline is stopped; its consumers see one stream, with a break between runs."""
    out = f"{tmp_path}/out.npz"
    text = three(out, n=100, source_place='restart = "always"')

    async def main() -> int:
        sup = Supervisor(Pipeline.load(toml(text)), run_id=run_id)
        stop = asyncio.Event()
        task = asyncio.ensure_future(sup.run(stop))
        log = ""
        while log.count("source: restarting in") < 3:  # the worker's log is the only
            await asyncio.sleep(0.05)  # sign of a restart the test can see: poll it
            log += capfd.readouterr().err
            assert not task.done(), log
        stop.set()
        return await task

    caplog.set_level("INFO", logger="shmpipe")
    assert asyncio.run(main()) == 0
    got, breaks = result(out)
    assert len(got) >= 300 and len(got) % 100 == 0
    for k in range(len(got) // 100):  # every run wrote rows 0..99, then a break
        np.testing.assert_array_equal(got[100 * k:100 * (k + 1)], runmods.rows(0, 100))
    assert breaks[:3] == [100, 200, 300]


def test_a_class_reader_stops_through_stop_requested(
        toml: Callable[[str], str], tmp_path: Any, run_id: str) -> None:
    out = f"{tmp_path}/out.npz"
    text = three(out, filter="runmods:Doubler").replace(
        'code = "runmods:counter"', 'code = "runmods:Ticker"').replace(
        f"args = {{ n = {N}, block = {BLOCK}, breaks_every = {EVERY} }}", "")
    proc = _start_cli(toml(text), run_id)
    try:
        _wait_for(proc, "sink: started", "filter: started", "source: started")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log = proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()
    assert "source: stopped" in log and "cancel" not in log
    got, _ = result(out)
    want = runmods.rows(0, len(got))
    want["data"] *= 2
    np.testing.assert_array_equal(got, want)


FANOUT = """\
[streams]
raw = "float32_2"

[modules.source]
code = "runmods:counter"
outputs = {{ output = "raw" }}
args = {{ n = {n}, block = {block}, breaks_every = {every} }}
{p0}

[modules.sink1]
code = "runmods:collect"
inputs = {{ input = "raw" }}
args = {{ path = "{out}1.npz" }}
{p1}

[modules.sink2]
code = "runmods:collect"
inputs = {{ input = "raw" }}
args = {{ path = "{out}2.npz" }}
{p2}
"""


@pytest.mark.parametrize("places", [
    ('process = "all"', 'process = "all"', 'process = "all"'),  # LocalPipes, subscribed
    ('process = "p"', 'process = "p"', ""),  # one consumer beside the producer, one apart
    ("", "", ""),
], ids=["one process", "mixed", "own processes"])
def test_a_stream_fans_out_to_every_consumer(places: tuple[str, str, str],
                                             toml: Callable[[str], str], tmp_path: Any,
                                             run_id: str) -> None:
    out = f"{tmp_path}/out"
    text = FANOUT.format(n=N, block=BLOCK, every=EVERY, out=out, p0=places[0], p1=places[1],
                         p2=places[2])
    assert run(toml(text), run_id) == 0
    for k in (1, 2):
        got, breaks = result(f"{out}{k}.npz")
        np.testing.assert_array_equal(got, runmods.rows(0, N))
        assert breaks == BREAKS


def test_a_restarted_module_does_not_keep_what_its_last_run_subscribed(
        toml: Callable[[str], str], tmp_path: Any, run_id: str) -> None:
    """A composite subscribing its outputs in setup runs again after a failure: each output
    still gets every row once, and one break where it failed."""
    out, marker = f"{tmp_path}/out", f"{tmp_path}/failed"
    text = f"""\
[streams]
raw = "float32_2"
a = "float32_2"
b = "float32_2"

[modules.source]
code = "runmods:counter"
outputs = {{ output = "raw" }}
args = {{ n = {N}, block = {BLOCK}, breaks_every = {EVERY} }}

[modules.fan]
code = "runmods:SubscribingFanout"
inputs = {{ input = "raw" }}
outputs = {{ a = "a", b = "b" }}
args = {{ marker = "{marker}" }}

[modules.sink1]
code = "runmods:collect"
inputs = {{ input = "a" }}
args = {{ path = "{out}1.npz" }}

[modules.sink2]
code = "runmods:collect"
inputs = {{ input = "b" }}
args = {{ path = "{out}2.npz" }}
"""
    assert run(toml(text), run_id) == 0
    with open(marker) as f:
        failed_at = int(f.read())
    for k in (1, 2):
        got, breaks = result(f"{out}{k}.npz")
        np.testing.assert_array_equal(got, runmods.rows(0, N))
        assert breaks == sorted({failed_at, *BREAKS})


def test_what_a_module_logs_starts_with_its_name(
        toml: Callable[[str], str], tmp_path: Any, capfd: Any, caplog: Any, run_id: str) -> None:
    out = f"{tmp_path}/out.npz"
    caplog.set_level("INFO", logger="shmpipe")  # the runner's own lines too
    assert run(toml(three(out, filter="runmods:logging_passthrough")), run_id) == 0
    lines = capfd.readouterr().err.splitlines()
    assert "filter: a warning from the module's code" in lines
    assert "filter: finished" in lines and "sink: finished" in lines
    assert not [x for x in lines if x.startswith(("filter: filter:", "sink: sink:"))], lines


def test_restart_always_ends_a_module_whose_inputs_ended(
        toml: Callable[[str], str], tmp_path: Any, capfd: Any, caplog: Any, run_id: str) -> None:
    """A filter with restart = "always" returns when its input ends: it is not started again
    (it could only meet the end again), and the pipeline ends."""
    caplog.set_level("INFO", logger="shmpipe")
    out = f"{tmp_path}/out.npz"
    assert run(toml(three(out, filter_place='restart = "always"')), run_id) == 0
    got, breaks = result(out)
    np.testing.assert_array_equal(got, runmods.rows(0, N))
    assert breaks == BREAKS
    err = capfd.readouterr().err
    assert "filter: finished" in err and "filter: restarting" not in err
