"""Running a pipeline on this host: its shm pipes, its bridges, its processes, supervised.

:func:`run` is what ``shmpipe run FILE`` does:

1. check the pipeline (nothing starts if it is refused) and plan this host's part;
2. create its shm pipes (durable: see ``shm.prepare``) and start its bridges (coroutines of
   this process, retried with backoff when they fail);
3. start one worker process per process of the plan (``worker.py``) and watch them: a
   worker that dies (killed, crashed) is reported with its exit status and started again
   with the modules it had not finished, after a backoff; its shm pipes keep the rows: its
   consumers see a break, then the new process's rows, and its restarted modules read on
   from their unconsumed rows. After ``MAX_FAILURES`` deaths in a row it is given up: its
   outputs are ended and its reader slots released, so the rest of the pipeline goes on;
4. end when every module is done (exit 0; 1 if a module was given up), or on a stop request
   (Ctrl-C, SIGTERM): the sources stop first (modules without inputs, and streams arriving
   from other hosts), the others drain what was written, for at most ``drain`` seconds, then
   are asked to stop, then killed ``grace`` + 5 seconds later. A second request kills every
   process at once. Every shm object the run made is unlinked in all cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pickle
import re
import secrets
import signal
import sys
import time
from typing import Any

from ..errors import PipeError
from ..shm import open_input, open_output, prepare, unlink
from .config import ConfigError, Pipeline
from .module import STOP_TIMEOUT, Code
from .plan import Bridge, Plan, Process, plan
from .worker import BACKOFF_FIRST, BACKOFF_MAX, MAX_FAILURES, STABLE, Spec

log = logging.getLogger("shmpipe.run")

DRAIN = 10.0  # seconds the consumers get to drain after the sources stopped
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$")


class _Worker:
    """A worker process of the plan and what the supervisor knows of it."""

    def __init__(self, proc: Process) -> None:
        self.proc = proc
        self.done: dict[str, str] = {}  # module -> "finished" | "gave-up" | "stopped"
        self.process: asyncio.subprocess.Process | None = None
        self.control_w = -1
        self.failures = 0
        self.given_up = False

    @property
    def label(self) -> str:
        mods = self.proc.modules
        return mods[0] if mods == [self.proc.name] else f"{self.proc.name} ({', '.join(mods)})"

    def pending(self) -> list[str]:
        return [m for m in self.proc.modules if m not in self.done]

    def send(self, line: str) -> None:
        if self.control_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self.control_w, line.encode() + b"\n")


class Supervisor:
    """Runs this host's part of ``pipeline`` (see the module docstring)."""

    def __init__(self, pipeline: Pipeline, host: str | None = None, *, drain: float = DRAIN,
                 grace: float = STOP_TIMEOUT, run_id: str | None = None,
                 codes: dict[str, Code] | None = None) -> None:
        self.pipeline = pipeline
        self.codes = codes if codes is not None else pipeline.check(host)
        self.run_id = run_id or f"run-{secrets.token_hex(4)}"
        if not _RUN_ID.match(self.run_id):
            raise ConfigError(f"bad run id {self.run_id!r}: 1..24 characters of A-Z a-z 0-9 _ -",
                              pipeline.source)
        self.plan: Plan = plan(pipeline, host, self.run_id)
        self.drain = drain
        self.grace = grace
        self.workers = [_Worker(p) for p in self.plan.processes.values()]
        self.bridges: dict[Bridge, asyncio.Task[None]] = {}
        self.stopping = False
        self.stop_line = ""  # what every worker was last told: "stop-sources" or "stop"
        self.killing = asyncio.Event()
        self.gave_up = False
        self.forced = False

    # --------------------------------------------------------------- the run
    async def run(self, stop: asyncio.Event | None = None,
                  kill: asyncio.Event | None = None) -> int:
        """Run until every module is done (0, or 1 if a module was given up) or ``stop`` is
        set (0); ``kill`` set (a second request) kills every process at once (130). Unlinks
        every shm pipe of the run before returning, also when cancelled."""
        stop = stop or asyncio.Event()
        made: list[str] = []
        procs = ", ".join(w.label for w in self.workers)
        log.info("%s: %d processes (%s), %d shared-memory pipes %s.*, %d bridges", self.run_id,
                 len(self.workers), procs, len(self.plan.pipes), self.run_id,
                 len(self.plan.bridges))
        try:
            for p in self.plan.pipes:
                prepare(p.name, p.layout, readers=list(p.readers))
                made.append(p.name)
            for b in self.plan.bridges:
                self.bridges[b] = asyncio.ensure_future(self._bridge(b))
            tasks = [asyncio.ensure_future(self._watch(w)) for w in self.workers]
            everything = asyncio.ensure_future(self._all_done(tasks))
            stopper = asyncio.ensure_future(stop.wait())
            killer = asyncio.ensure_future((kill or asyncio.Event()).wait())
            try:
                await asyncio.wait({everything, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not everything.done():
                    await self._stop(everything, killer)
                await everything
            finally:
                for t in (stopper, killer, everything, *tasks):
                    t.cancel()
                await self._kill_all()
                for t in self.bridges.values():
                    t.cancel()
                await asyncio.gather(*tasks, *self.bridges.values(), return_exceptions=True)
        finally:
            for name in made:
                try:
                    unlink(name)
                except PipeError as e:
                    log.warning("cannot remove pipe %s: %s", name, e)
        return 130 if self.forced else 1 if self.gave_up else 0

    async def _all_done(self, tasks: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*tasks)
        await asyncio.gather(*self.bridges.values(), return_exceptions=True)

    async def _stop(self, everything: asyncio.Future[None], killer: asyncio.Future[Any]) -> None:
        """Stop in order: sources, drain, stop the rest, kill; a kill request cuts it short."""
        self.stopping = True
        log.info("stopping: sources first, then up to %.0f s for the rest to drain", self.drain)
        self.stop_line = "stop-sources"
        for w in self.workers:
            w.send(self.stop_line)
        for b, t in self.bridges.items():
            if b.receives:
                t.cancel()
        for step, timeout in (("stop", self.drain), ("kill", self.grace + 5.0)):
            done, _ = await asyncio.wait({everything, killer}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if everything in done:
                return
            if killer in done:
                log.warning("stopping at once: killing every process")
                self.forced = True
                break
            if step == "stop":
                log.info("stopping: the rest did not drain within %.0f s: asking every "
                         "module to stop", self.drain)
                self.stop_line = "stop"
                for w in self.workers:
                    w.send(self.stop_line)
            else:
                log.warning("stopping: killing the processes still running")
        await self._kill_all()

    async def _kill_all(self) -> None:
        self.killing.set()
        for w in self.workers:
            p = w.process
            if p is not None and p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
        for w in self.workers:
            if w.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    await w.process.wait()

    # --------------------------------------------------------------- workers
    async def _watch(self, w: _Worker) -> None:
        """Run worker ``w`` until its modules are done, starting it again when it dies."""
        while w.pending() and not self.killing.is_set():
            started = time.monotonic()
            code = await self._start_and_wait(w)
            if not w.pending() or self.killing.is_set():
                break
            if self.stopping:  # died while stopping: what it had is not run again
                log.warning("%s: exited while stopping (%s)", w.label, _status(code))
                await self._end_streams(w, "stopped")  # its consumers drain and end
                break
            w.failures = w.failures + 1 if time.monotonic() - started < STABLE else 1
            policies = {self.pipeline.modules[m].restart for m in w.pending()}
            log.error("%s: process died (%s)", w.label, _status(code))
            if policies == {"never"} or w.failures >= MAX_FAILURES:
                why = ("restart = \"never\"" if policies == {"never"}
                       else f"{w.failures} failures in a row")
                log.error("%s: given up (%s)", w.label, why)
                await self._give_up(w)
                return
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (w.failures - 1))
            log.info("%s: restarting in %.1f s", w.label, delay)
            await asyncio.sleep(delay)
        if any(v == "gave-up" for v in w.done.values()):
            self.gave_up = True

    async def _start_and_wait(self, w: _Worker) -> int:
        status_r, status_w = os.pipe()
        control_r, control_w = os.pipe()
        spec = Spec(self.pipeline, self.codes, w.proc, w.pending(),
                    logging.getLogger("shmpipe").getEffectiveLevel(), status_w, control_r,
                    self.grace)
        try:
            w.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "shmpipe.run.worker", stdin=asyncio.subprocess.PIPE,
                pass_fds=(status_w, control_r), start_new_session=True)
        except BaseException:
            for fd in (status_r, status_w, control_r, control_w):
                os.close(fd)
            raise
        os.close(status_w)
        os.close(control_r)
        w.control_w = control_w
        try:
            assert w.process.stdin is not None
            w.process.stdin.write(pickle.dumps(sys.path) + pickle.dumps(spec))
            with contextlib.suppress(ConnectionError):
                await w.process.stdin.drain()
            w.process.stdin.close()
            if self.stop_line:  # started again while stopping: told what the others were
                w.send(self.stop_line)
            await self._read_status(w, status_r)
            return await w.process.wait()
        finally:
            w.control_w = -1
            os.close(control_w)

    async def _read_status(self, w: _Worker, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        f = os.fdopen(fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), f)
        try:
            while line := await reader.readline():
                with contextlib.suppress(ValueError, KeyError):
                    msg = json.loads(line)
                    w.done[msg["module"]] = msg["event"]
        finally:
            transport.close()

    async def _give_up(self, w: _Worker) -> None:
        """Give up a process: see :meth:`_end_streams`; the run exits 1."""
        self.gave_up = True
        await self._end_streams(w, "gave-up")

    async def _end_streams(self, w: _Worker, event: str) -> None:
        """End the streams of a process that is not started again and release its reader
        slots, so that its consumers end and its producers never wait for it."""
        for m in w.pending():
            for _pipe, end in w.proc.outputs[m].items():
                if end.shm is not None:
                    with contextlib.suppress(PipeError):
                        await open_output(end.shm, end.layout).close()
            for _pipe, end in w.proc.inputs[m].items():
                if end.shm is not None:
                    with contextlib.suppress(PipeError):
                        await open_input(end.shm, end.layout, key=end.key).close()
            w.done[m] = event

    # --------------------------------------------------------------- bridges
    async def _bridge(self, b: Bridge) -> None:
        """Carry a stream across hosts until its source ends; retried with backoff."""
        from ..net.bridge import bridge

        failures = 0
        what = f"stream {b.stream}: {'from ' + b.src if b.receives else 'to ' + b.dst}"
        while True:
            try:
                await bridge(b.src, b.dst, layout=b.layout, timeout=None, key=b.key)
                return
            except PipeError as e:
                failures += 1
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
                log.error("%s: bridge failed: %s; again in %.1f s", what, e, delay)
                await asyncio.sleep(delay)


def _status(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def run(pipeline: Pipeline, host: str | None = None, *, drain: float = DRAIN,
        grace: float = STOP_TIMEOUT, run_id: str | None = None) -> int:
    """Run this host's part of ``pipeline`` in a new event loop until it ends; the first
    SIGINT or SIGTERM stops it in order, a second kills its processes. Returns the exit
    status (0; 1 if a module was given up; 130 after a second request). Raises ConfigError
    before anything starts for a pipeline that cannot run."""
    sup = Supervisor(pipeline, host, drain=drain, grace=grace, run_id=run_id)

    async def go() -> int:
        loop = asyncio.get_running_loop()
        stop, kill = asyncio.Event(), asyncio.Event()

        def request() -> None:
            (kill if stop.is_set() else stop).set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, request)
        try:
            return await sup.run(stop, kill)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    return asyncio.run(go())
