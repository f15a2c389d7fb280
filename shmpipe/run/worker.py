"""One process of a pipeline: its modules as coroutines, each restarted per its policy.

Started by the supervisor as ``python -m shmpipe.run.worker`` in a session of its own (a
terminal's Ctrl-C reaches the supervisor only, which stops the pipeline in order). It reads
the supervisor's ``sys.path`` and its :class:`Spec` (pickled) on stdin, then talks to the
supervisor over two descriptors:

* control (supervisor -> worker), lines ``stop-sources`` (stop the modules without inputs)
  and ``stop`` (stop every module); the end of the file (the supervisor is gone) is ``stop``,
  and the worker unlinks the shm pipes it used once its modules are done;
* status (worker -> supervisor), one JSON object per line: ``{"module": M, "event":
  "finished" | "gave-up" | "stopped"}`` when module M is done for good.

A module that raises is logged with its traceback, an interval break is written on its
outputs, and it is restarted after a backoff (``BACKOFF_FIRST`` doubling) unless its policy
says otherwise; after ``MAX_FAILURES`` failures in a row (a run that lasted ``STABLE``
seconds starts the count again) it is given up. With ``restart = "always"`` a module that
returns is started again, after the same backoff (up to ``BACKOFF_MAX``) when its runs
keep returning within ``STABLE`` seconds, unless every input has ended. Its pipe
objects stay across restarts, so a restarted consumer reads on from its unconsumed rows.
When a module is done its outputs are closed (its consumers drain them and end) and its
inputs are drained or released, so its producers never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import pickle
import signal
import sys
import time
from dataclasses import dataclass

from ..errors import EmptyPipeError, PipeError
from ..local import LocalPipe
from ..pipe import Pipe
from ..shm import open_input, open_output, unlink
from .config import Pipeline
from .module import STOP_TIMEOUT, Code, run_module
from .plan import End, Process

log = logging.getLogger("shmpipe.run")
_module: contextvars.ContextVar[str] = contextvars.ContextVar("shmpipe_module_name")

BACKOFF_FIRST = 0.1  # seconds before the first restart; doubled after each failure
BACKOFF_MAX = 30.0
MAX_FAILURES = 5  # failures in a row before a module is given up
STABLE = 30.0  # seconds a run must last for its failure to start the count again
LOCAL_WRITE_LIMIT = 64  # blocks a LocalPipe holds before its writer waits


@dataclass
class Spec:
    """What a worker runs: the modules of ``process`` (those in ``modules``) of ``pipeline``."""

    pipeline: Pipeline
    codes: dict[str, Code]
    process: Process
    modules: list[str]
    log_level: int
    status_fd: int
    control_fd: int
    grace: float = STOP_TIMEOUT


class Worker:
    """Runs the modules of one process (see the module docstring)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.stops = {name: asyncio.Event() for name in spec.modules}
        self.inputs: dict[str, dict[str, Pipe]] = {}
        self.outputs: dict[str, dict[str, Pipe]] = {}
        self.opened: list[Pipe] = []
        self.status = os.fdopen(spec.status_fd, "w", buffering=1)
        self.failed = False
        self.drains: list[asyncio.Future[None]] = []
        self.orphaned = False  # the supervisor died: nobody else will unlink the pipes

    # --------------------------------------------------------------- pipes
    def open_pipes(self) -> None:
        """Open every pipe of the process's modules: LocalPipes for the streams inside it
        (fan-out: the others subscribed to the first consumer's), shm ends for the rest."""
        proc = self.spec.process
        local: dict[str, list[LocalPipe]] = {}
        for name in proc.modules:
            self.inputs[name], self.outputs[name] = {}, {}
        for name in proc.modules:
            for pipe, end in proc.inputs[name].items():
                if end.shm is None:
                    lp = LocalPipe(end.layout, name=f"{name}.{pipe}",
                                   write_limit=LOCAL_WRITE_LIMIT)
                    local.setdefault(end.stream, []).append(lp)
                    self.inputs[name][pipe] = lp
                else:
                    self.inputs[name][pipe] = self._open(end, reader=True)
        for name in proc.modules:
            for pipe, end in proc.outputs[name].items():
                if end.shm is None:
                    first, *others = local[end.stream]
                    for other in others:
                        first.subscribe(other)
                    self.outputs[name][pipe] = first
                else:
                    self.outputs[name][pipe] = self._open(end, reader=False)

    def _open(self, end: End, reader: bool) -> Pipe:
        assert end.shm is not None
        pipe: Pipe = (open_input(end.shm, end.layout, key=end.key) if reader
                      else open_output(end.shm, end.layout))
        self.opened.append(pipe)
        return pipe

    # --------------------------------------------------------------- control
    def stop(self, which: str) -> None:
        """Ask modules to stop: "sources" (no inputs) or "all"."""
        for name, ev in self.stops.items():
            if which == "all" or not self.spec.process.inputs[name]:
                ev.set()

    async def control(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        f = os.fdopen(self.spec.control_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), f)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    self.stop("all")  # the supervisor is gone
                    self.orphaned = True
                    return
                self.stop("sources" if line.strip() == b"stop-sources" else "all")
        finally:
            transport.close()

    def report(self, module: str, event: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.status.write(json.dumps({"module": module, "event": event}) + "\n")

    # --------------------------------------------------------------- modules
    async def run(self) -> int:
        """Run every module to its end; 0 if none was given up, else 1."""
        self.open_pipes()
        control = asyncio.ensure_future(self.control())
        try:
            await asyncio.gather(*(self.module(name) for name in self.spec.modules))
        finally:
            for t in (control, *self.drains):
                t.cancel()
            await asyncio.gather(control, *self.drains, return_exceptions=True)
            for pipe in self.opened:
                with contextlib.suppress(PipeError):
                    await pipe.close()
                if self.orphaned and pipe.name:
                    with contextlib.suppress(PipeError):
                        unlink(pipe.name)
            with contextlib.suppress(OSError):  # the supervisor may be gone
                self.status.close()
        return 1 if self.failed else 0

    async def module(self, name: str) -> None:
        _module.set(name)  # this task's log records are prefixed with it (see _Prefix)
        m = self.spec.pipeline.modules[name]
        stop = self.stops[name]
        inputs, outputs = self.inputs[name], self.outputs[name]
        # what a run subscribes to its pipes goes with it: a restarted module subscribes again
        subscribed = {id(p): (p, list(p.subscribers)) for p in (*inputs.values(),
                                                                 *outputs.values())}
        failures = 0
        quick = 0  # returns in a row (restart = "always") that came within STABLE seconds
        event = "finished"
        log.info("%s: started (pid %d)", name, os.getpid())
        try:
            while True:
                started = time.monotonic()
                error: BaseException | None = None
                try:
                    await run_module(self.spec.codes[name], m.args, inputs, outputs, stop,
                                     name=name, grace=self.spec.grace)
                except Exception as e:
                    error = e
                if stop.is_set():
                    event = "stopped"
                    if error is not None:
                        log.error("%s: failed while stopping: %s", name, _describe(error),
                                  exc_info=error)
                    log.info("%s: stopped", name)
                    return
                if error is None:
                    if m.restart != "always" or _inputs_ended(inputs):
                        log.info("%s: finished", name)  # ("always": nothing more can come)
                        return
                    failures = 0
                    quick = quick + 1 if time.monotonic() - started < STABLE else 0
                else:
                    failures = failures + 1 if time.monotonic() - started < STABLE else 1
                    log.error("%s: failed: %s", name, _describe(error), exc_info=error)
                    if m.restart == "never" or failures >= MAX_FAILURES:
                        why = ("restart = \"never\"" if m.restart == "never"
                               else f"{failures} failures in a row")
                        log.error("%s: given up (%s)", name, why)
                        event, self.failed = "gave-up", True
                        return
                for pipe, subscribers in subscribed.values():
                    pipe.subscribers[:] = subscribers
                await self._break(name, outputs)
                again = failures if error is not None else quick
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (again - 1)) if again else 0.0
                log.info("%s: restarting in %.1f s", name, delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    event = "stopped"
                    return
        finally:
            await self._done(name, inputs, outputs)
            self.report(name, event)

    async def _break(self, name: str, outputs: dict[str, Pipe]) -> None:
        for pipe in outputs.values():
            try:
                await pipe.close_interval()
            except PipeError as e:
                log.warning("%s: cannot write the break on %s: %s", name, pipe.name, e)

    async def _done(self, name: str, inputs: dict[str, Pipe], outputs: dict[str, Pipe]) -> None:
        for pipe in outputs.values():
            try:
                await pipe.close()
            except PipeError as e:
                log.warning("%s: closing %s: %s", name, pipe.name, e)
        for pipe in inputs.values():
            if isinstance(pipe, LocalPipe):  # keep its producer flowing: discard what comes
                self.drains.append(asyncio.ensure_future(_drain(pipe)))
            else:
                with contextlib.suppress(PipeError):
                    await pipe.close()


def _inputs_ended(inputs: dict[str, Pipe]) -> bool:
    """Whether a module has inputs and every one has ended and been consumed (running it
    again could only meet the end again)."""
    if not inputs:
        return False
    for pipe in inputs.values():
        try:
            pipe.read_nowait()
        except EmptyPipeError:
            continue
        except PipeError:
            return True  # a pipe that cannot be read any more: nothing more can come
        pipe.reread_last()  # rows are still there: the next run reads them again
        return False
    return True


async def _drain(pipe: Pipe) -> None:
    with contextlib.suppress(EmptyPipeError, PipeError):
        while True:
            data = await pipe.read()
            pipe.consume(len(data))


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class _Prefix(logging.Filter):
    """Prefix what a module logs with its name (module name first, one line per event)."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = _module.get(None)
        if name is not None:
            text = record.getMessage()
            if not text.startswith(f"{name}:"):
                record.msg, record.args = f"{name}: {text}", ()
        return True


def main() -> int:
    sys.path[:] = pickle.load(sys.stdin.buffer)  # first: the spec may name the user's modules
    spec: Spec = pickle.load(sys.stdin.buffer)
    logging.basicConfig(level=spec.log_level, format="%(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Prefix())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop

    async def go() -> int:
        worker = Worker(spec)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, worker.stop, "all")
        return await worker.run()

    return asyncio.run(go())


if __name__ == "__main__":
    sys.exit(main())
