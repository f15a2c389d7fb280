"""The pipeline suite: source -> pass-through filter -> sink, the modules of
``bench/pipeline_modules.py``, in each way of running them.

* **shmpipe runner, all processes**: a :class:`shmpipe.run.Pipeline` of the three modules,
  each a process of its own, shm pipes between them, run by the supervisor as ``shmpipe run``
  does (:func:`run_runner`);
* **shmpipe runner, one process**: the same pipeline with ``process = "all"`` for each
  module: coroutines of one worker process, joined by LocalPipes;
* **joule, jouled-style** (:func:`run_jouled`): each module started as jouled starts one,
  ``python -m bench.pipeline_modules CLASS --pipes '<doubly JSON-encoded fds, "id": null>'
  --api-socket PATH --key value...``, each its own process; every output is an OS pipe read
  by this process (the stand-in for jouled), whose relay is joule's own
  ``Worker._output_handler`` (it checks that timestamps increase and writes every block to
  each subscriber's OS pipe, with jouled's 1 s subscriber time-out); jouled's database
  inserter is left out. One difference: when the source ends, its consumers' inputs are
  closed once the relay has passed on everything (jouled keeps them open and restarts the
  source), so that a finite run ends;
* **joule, modules joined directly**: the same executables, each output's OS pipe being its
  consumer's input (no relay process): faster than jouled, the harder comparison.

Each run moves ``n`` rows of ``float32_8`` in 10,000-row blocks. The figure is rows per second
at the sink from its warm-up mark (the read that passes 20% of the rows: by then every module
runs and the pipes' start-up backlog has gone through) to the last row; start-up (process
spawn, imports) is outside it. The wall time of the whole run, start-up included, is recorded
too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import Failed, clock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT = "float32_8"
BLOCK = 10_000
WARM = 0.2  # the share of the rows the sink lets through before its clock starts
MODULES = "bench.pipeline_modules"
# jouled passes the path of its API socket; nothing answers here (the modules never call it)
API_SOCKET = os.path.join(tempfile.gettempdir(), "shmpipe-bench-no-joule-api.sock")
TAIL = 20  # output lines of a child kept for an error message


@dataclass
class Outcome:
    rows_s: float  # at the sink, from its warm-up mark to the last row (nan: too few reads)
    rows: int  # rows that arrived
    breaks: int  # interval breaks the sink saw
    wall: float  # s, the whole run, start-up included


def _sink_args(n: int, result: str, verify: str, block: int) -> dict[str, Any]:
    return {"result": result, "rows": n, "block": block, "verify": verify, "warm": WARM}


def _outcome(result: str, n: int, wall: float) -> Outcome:
    try:
        with open(result) as f:
            r = json.load(f)
    except (OSError, ValueError) as exc:
        raise Failed(f"the sink left no result ({exc})") from None
    if r["error"]:
        raise Failed(f"wrong rows at the sink: {r['error']}")
    span = r["t_last"] - r["t_mark"]  # 0: too few reads after the mark to time (tiny runs)
    rate = (r["rows"] - r["mark_rows"]) / span if span > 0 else float("nan")
    return Outcome(rate, r["rows"], r["breaks"], wall)


# ---------------------------------------------------------------- the shmpipe runner
def modules() -> tuple[type, type, type]:
    """The three module classes: Joule's, which the runner runs unchanged in its workers."""
    from bench import pipeline_modules as m

    return m.Source, m.PassThrough, m.Sink


def runner_pipeline(n: int, result: str, *, one_process: bool, verify: str = "ends",
                    block: int = BLOCK) -> Any:
    """The three-module pipeline for the shmpipe runner."""
    from shmpipe.run import Pipeline

    source, filter_, sink = modules()
    proc = "all" if one_process else None
    return (
        Pipeline("<bench pipeline>")
        .stream("raw", LAYOUT)
        .stream("filtered", LAYOUT)
        .module("source", source, outputs={"output": "raw"},
                args={"rows": n, "block": block}, process=proc, restart="never")
        .module("filter", filter_, inputs={"input": "raw"}, outputs={"output": "filtered"},
                process=proc, restart="never")
        .module("sink", sink, inputs={"input": "filtered"},
                args=_sink_args(n, result, verify, block), process=proc, restart="never")
    )


async def run_runner(n: int, *, one_process: bool, verify: str = "ends", block: int = BLOCK,
                     timeout: float = 120.0) -> Outcome:
    """One run of the pipeline under shmpipe's supervisor, as ``shmpipe run`` runs it."""
    from shmpipe.run import ConfigError
    from shmpipe.run.supervisor import Supervisor

    if ROOT not in sys.path:  # the workers import bench.pipeline_modules with this sys.path
        sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory(prefix="shmpipe-bench-") as tmp:
        result = os.path.join(tmp, "sink.json")
        pipeline = runner_pipeline(n, result, one_process=one_process, verify=verify,
                                   block=block)
        start = clock()
        try:
            supervisor = Supervisor(pipeline)
        except ConfigError as exc:
            raise Failed(f"the pipeline was refused: {exc}") from None
        try:
            status = await asyncio.wait_for(supervisor.run(), timeout)
        except asyncio.TimeoutError:
            raise Failed(f"the pipeline did not end within {timeout:.0f} s") from None
        wall = clock() - start
        if status != 0:
            raise Failed(f"the runner ended with status {status}")
        return _outcome(result, n, wall)


# ---------------------------------------------------------------- jouled-style
@dataclass
class _Module:
    name: str
    cls: str  # a class of bench.pipeline_modules
    args: dict[str, Any]
    inputs: dict[str, str]  # pipe name -> stream
    outputs: dict[str, str]


class _Jouled:
    """What jouled does for the modules of one run: OS pipes, the children, the relays."""

    def __init__(self, mods: list[_Module], relay: bool) -> None:
        self.mods = mods
        self.relay = relay
        self.fds: dict[str, list[int]] = {m.name: [] for m in mods}  # the children's ends
        self.spec: dict[str, dict[str, dict[str, Any]]] = {
            m.name: {"outputs": {}, "inputs": {}} for m in mods}
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.output: dict[str, list[str]] = {m.name: [] for m in mods}
        self.tasks: list[asyncio.Future[Any]] = []
        self.pipes: list[Any] = []  # this process's joule pipes, closed at the end
        self.mine: list[int] = []  # fds of this process not yet owned by a joule pipe

    def _pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        self.mine += [r, w]
        return r, w

    def _give(self, module: str, fd: int) -> None:
        self.fds[module].append(fd)

    def _own(self, fd: int) -> int:
        self.mine.remove(fd)
        return fd

    async def wire(self) -> None:
        from joule.models import pipes

        producer = {s: m for m in self.mods for s in m.outputs.values()}
        if not self.relay:  # one OS pipe per stream, from its producer to its consumer
            for m in self.mods:
                for name, stream in m.inputs.items():
                    r, w = self._pipe()
                    self._give(m.name, r)
                    self._give(producer[stream].name, w)
                    self.spec[m.name]["inputs"][name] = _entry(r)
                    self.spec[producer[stream].name]["outputs"][_out_name(
                        producer[stream], stream)] = _entry(w)
            return
        from joule.models.worker import Worker

        subscribers: dict[str, list[Any]] = {}
        for m in self.mods:  # [module] ==> [jouled]: jouled reads every output
            for name, stream in m.outputs.items():
                r, w = self._pipe()
                self._give(m.name, w)
                self.spec[m.name]["outputs"][name] = _entry(w)
                inp = pipes.InputPipe(name=name, layout=LAYOUT,
                                      reader_factory=pipes.reader_factory(self._own(r)))
                self.pipes.append(inp)
                subscribers[stream] = []
                worker = Worker(types.SimpleNamespace(outputs={}, log_size=100, uuid=0,
                                                      name=m.name), tempfile.gettempdir(),
                                False)
                self.tasks.append(asyncio.ensure_future(
                    self._relay(worker, inp, subscribers[stream])))
        for m in self.mods:  # [jouled] ==> [module]: one OS pipe per subscriber
            for name, stream in m.inputs.items():
                r, w = self._pipe()
                self._give(m.name, r)
                self.spec[m.name]["inputs"][name] = _entry(r)
                writer = await pipes.writer_factory(self._own(w))()
                out = pipes.OutputPipe(name=name, layout=LAYOUT, writer=writer)
                self.pipes.append(out)
                subscribers[stream].append(out)

    @staticmethod
    async def _relay(worker: Any, inp: Any, subscribers: list[Any]) -> None:
        """joule's relay until the module's output ends; then end the subscribers' inputs."""
        await worker._output_handler(inp, subscribers)
        for pipe in subscribers:
            await pipe.close()

    async def start(self, env: dict[str, str]) -> None:
        for m in self.mods:
            cmd = [sys.executable, "-m", MODULES, m.cls, "--pipes",
                   json.dumps(json.dumps(self.spec[m.name])), "--api-socket", API_SOCKET]
            for key, value in m.args.items():  # jouled: cmd += ["--" + arg, value]
                cmd += ["--" + key, str(value)]
            # as jouled: stdin /dev/null, stdout and stderr into one pipe it logs; jouled
            # passes close_fds=False with only the child's ends inheritable, pass_fds is that
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=env, pass_fds=self.fds[m.name])
            self.procs[m.name] = proc
            for fd in self.fds.pop(m.name):  # the child has them now
                if fd in self.mine:
                    self.mine.remove(fd)
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.tasks.append(asyncio.ensure_future(self._log(m.name, proc)))

    async def _log(self, name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        lines = self.output[name]
        while line := await proc.stdout.readline():
            lines.append(line.decode(errors="replace").rstrip())
            del lines[:-TAIL]

    async def wait(self) -> None:
        """Until every child has exited and every relay has ended; Failed for a child that
        failed (a filter ending with its input: Joule's EmptyPipeError, status 1, is not)."""
        await asyncio.gather(*(p.wait() for p in self.procs.values()), *self.tasks)
        for m in self.mods:
            code = self.procs[m.name].returncode
            tail = self.output[m.name]
            ended = m.inputs and code == 1 and tail and "EmptyPipeError" in tail[-1]
            if code != 0 and not ended:
                raise Failed(f"{m.name} exited with status {code}: " + " / ".join(tail[-3:]))

    async def close(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                await pipe.close()
        for fds in self.fds.values():
            self.mine += [fd for fd in fds if fd not in self.mine]
        for fd in self.mine:
            with contextlib.suppress(OSError):
                os.close(fd)
        await asyncio.sleep(0)


def _entry(fd: int) -> dict[str, Any]:
    return {"fd": fd, "id": None, "layout": LAYOUT}


def _out_name(m: _Module, stream: str) -> str:
    return next(name for name, s in m.outputs.items() if s == stream)


def jouled_modules(n: int, result: str, verify: str = "ends",
                   block: int = BLOCK) -> list[_Module]:
    return [
        _Module("source", "Source", {"rows": n, "block": block}, {}, {"output": "raw"}),
        _Module("filter", "PassThrough", {}, {"input": "raw"}, {"output": "filtered"}),
        _Module("sink", "Sink", _sink_args(n, result, verify, block), {"input": "filtered"},
                {}),
    ]


async def run_jouled(n: int, *, relay: bool = True, verify: str = "ends", block: int = BLOCK,
                     timeout: float = 120.0) -> Outcome:
    """One run of the three modules as Joule executables, jouled-style (see the module
    docstring); ``relay=False`` joins them directly."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="shmpipe-bench-") as tmp:
        result = os.path.join(tmp, "sink.json")
        jouled = _Jouled(jouled_modules(n, result, verify, block), relay)
        start = clock()
        try:
            await jouled.wire()
            await jouled.start(env)
            await asyncio.wait_for(jouled.wait(), timeout)
        except asyncio.TimeoutError:
            raise Failed(f"the modules did not end within {timeout:.0f} s") from None
        finally:
            await jouled.close()
        wall = clock() - start
        return _outcome(result, n, wall)


# ---------------------------------------------------------------- the arrangements
@dataclass(frozen=True)
class Arrangement:
    label: str
    key: str
    run: Callable[..., Any]  # run(n, verify=..., block=..., timeout=...) -> awaitable Outcome
    joule: bool = False  # moves the joule row count (it is slower)


ARRANGEMENTS = [
    Arrangement("shmpipe runner, all processes (shm pipes)", "procs",
                lambda n, **kw: run_runner(n, one_process=False, **kw)),
    Arrangement("shmpipe runner, one process (LocalPipes)", "one",
                lambda n, **kw: run_runner(n, one_process=True, **kw)),
    Arrangement("joule 1.0.1, jouled-style (relayed OS pipes)", "jouled",
                lambda n, **kw: run_jouled(n, relay=True, **kw), joule=True),
    Arrangement("joule 1.0.1, modules joined directly (OS pipes)", "direct",
                lambda n, **kw: run_jouled(n, relay=False, **kw), joule=True),
]
BARE_LABEL = "bare shm pipe, 2 processes (shmpipe shm (copy))"


def probe() -> str | None:
    """Why the suite cannot run here, or None."""
    try:
        import joule.client  # noqa: F401

        from bench import pipeline_modules  # noqa: F401
    except Exception as exc:
        return f"not available: joule is not importable ({type(exc).__name__}: {exc})"
    return None
