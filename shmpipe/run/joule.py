"""Modules written for Joule, run unchanged on shmpipe pipes.

Two shapes of Joule module (https://wattsworth.net/joule) run here:

* a module **class** (a subclass of ``joule.client.ReaderModule``, ``FilterModule``,
  ``FIRFilterModule`` or ``CompositeModule``): :func:`run_joule_class` runs it in this process,
  as a coroutine, on any shmpipe pipes. Its arguments are parsed by Joule's own parser (Joule's
  standard arguments with their defaults, plus the module's ``custom_args``) from the
  ``--key value`` strings jouled would pass (:func:`joule_argv`); then ``setup`` and ``run``
  are called as jouled's client code calls them, and a stop calls ``stop()`` as a SIGTERM
  does under jouled.
* an **executable** module (``joule-median-filter``, or any program speaking the protocol):
  :func:`run_executable` starts it as jouled does (one OS pipe per input and output, named in
  the doubly JSON-encoded ``--pipes`` argument) and joins those OS pipes to shmpipe pipes with
  the stream transport (Joule's wire format).

The joule package is needed only by :func:`run_joule_class`, which imports it when called
(ImportError naming ``pip install joule`` if it is missing); nothing else here imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import json
import logging
import numbers
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from .. import EmptyPipeError, InputPipe, OutputPipe, Pipe, reader_factory, writer_factory
from .module import run_all, run_until_stopped

log = logging.getLogger("shmpipe")

STDERR_TAIL = 20  # stderr lines of a failed executable kept for its error
START_TIMEOUT = 30.0  # s a stopped executable may take to install its SIGTERM handler
# (joule-median-filter needs 1.4 s on an idle machine, over 10 s on a loaded one)
POLL = 0.02  # s between looks at /proc while waiting for that handler
LINE_MAX = 1 << 16  # bytes of output without a newline logged as one line

# jouled gives a module the path of its API socket. This one does not exist: a module that
# calls Joule's API (node.data_stream_get...) fails to connect there, with this path in the error.
API_SOCKET = os.path.join(tempfile.gettempdir(), "shmpipe-has-no-joule-api.sock")


class ModuleConfigError(ValueError):
    """A module cannot run with the configuration it was given: a bad, unknown or missing
    argument, a class that is not a Joule module, pipes the module cannot take. The message
    names the module and says what is wrong."""


class ExecutableFailed(RuntimeError):
    """An executable module could not start, or ended on its own with a failure.

    ``returncode`` is the exit status (negative: the signal that killed it; None: it never
    started) and ``stderr_tail`` its last stderr lines, which the message repeats.
    """

    def __init__(self, name: str, returncode: int | None, stderr_tail: Iterable[str] = (),
                 *, reason: str | None = None) -> None:
        self.name = name
        self.returncode = returncode
        self.stderr_tail = list(stderr_tail)
        message = f"{name}: {reason or describe_status(returncode)}"
        if self.stderr_tail:
            message += "; its last stderr lines:\n" + "\n".join(
                f"  {line}" for line in self.stderr_tail)
        super().__init__(message)


def describe_status(returncode: int | None) -> str:
    """``exited with status N`` or ``killed by signal SIGX`` for an asyncio returncode."""
    if returncode is None:
        return "did not start"
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        sig = signal.Signals(-returncode).name
    except ValueError:
        sig = str(-returncode)
    return f"killed by signal {sig}"


# ------------------------------------------------------------------------------ arguments
def joule_argv(args: Mapping[str, Any]) -> list[str]:
    """The command-line strings jouled passes for a module's arguments: ``--key value``.

    Values: a str as is; a bool as ``yes`` / ``no`` (what ``joule.yesno`` parses); an int or
    float as ``str()`` gives it; a list or dict as JSON (for ``type=json.loads``); a date,
    time or datetime in ISO format. A value that begins with ``-`` is passed as one string,
    ``--key=value``, so that argparse does not take it for an option. Pure. Raises
    ModuleConfigError for a key that cannot be an option name (empty, starting with ``-``,
    holding ``=`` or whitespace), a value of another type or holding a NUL character, and
    the string ``--`` (argparse removes it wherever it appears).
    """
    argv: list[str] = []
    for key, value in args.items():
        if (not isinstance(key, str) or not key or key.startswith("-") or "=" in key
                or any(c.isspace() or c == "\0" for c in key)):
            raise ModuleConfigError(f"argument name {key!r} cannot be a --option name")
        text = _arg_text(key, value)
        if text.startswith("-"):
            argv.append(f"--{key}={text}")
        else:
            argv += [f"--{key}", text]
    return argv


def _arg_text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        text = value
    elif isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        text = str(float(value))
    elif isinstance(value, (list, tuple, dict)):
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as e:
            raise ModuleConfigError(f"argument {key!r}: cannot be passed as JSON: {e}") from None
    elif isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        text = value.isoformat()
    else:
        raise ModuleConfigError(
            f"argument {key!r}: a {type(value).__name__} cannot be passed on a command line "
            "(use a string, number, boolean, list or table)")
    if "\0" in text:
        raise ModuleConfigError(f"argument {key!r}: a NUL character cannot be passed on a "
                                "command line")
    if text == "--":
        raise ModuleConfigError(f"argument {key!r}: the value '--' cannot be passed (argparse "
                                "drops it, in any form)")
    return text


class _ArgumentsRefused(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Joule's parser, except that a bad argument raises instead of exiting the process."""

    def error(self, message: str) -> Any:  # argparse's NoReturn
        raise _ArgumentsRefused(message)

    def exit(self, status: int = 0, message: str | None = None) -> Any:  # --help, --version
        raise _ArgumentsRefused((message or "").strip() or f"argparse exited ({status})")


def parse_joule_args(module: Any, args: Mapping[str, Any], *, name: str) -> argparse.Namespace:
    """Parse ``args`` as jouled's ``--key value`` strings with the parser Joule builds for
    ``module`` (an instance): its standard arguments with their defaults, then the module's
    ``custom_args``. Raises ModuleConfigError naming the module and argparse's complaint."""
    parser = _Parser(prog=name)
    module._build_args(parser)  # joule's own: the reserved arguments, then custom_args
    try:
        argv = joule_argv(args)
        return parser.parse_args(argv)
    except (ModuleConfigError, _ArgumentsRefused) as e:
        raise ModuleConfigError(
            f"{name}: bad arguments for Joule module {type(module).__qualname__}: {e}"
        ) from None


# ------------------------------------------------------------------------------ classes
def is_joule_class(obj: object) -> bool:
    """True if ``obj`` is a class (not an instance) deriving from ``joule.client.BaseModule``.

    Never imports joule: a class deriving from Joule's BaseModule has imported it already, so
    if ``joule.client.base_module`` is not loaded the answer is False.
    """
    if not isinstance(obj, type):
        return False
    base = sys.modules.get("joule.client.base_module")
    return base is not None and issubclass(obj, base.BaseModule)


def _joule_client() -> Any:
    try:
        import joule.client
    except ImportError as e:
        raise ImportError(f"running a Joule module class needs the joule package "
                          f"(pip install joule): {e}") from e
    return joule.client


async def run_joule_class(cls: type, args: Mapping[str, Any], inputs: Mapping[str, Pipe],
                          outputs: Mapping[str, Pipe], stop: asyncio.Event, *, name: str,
                          grace: float = 2.0) -> None:
    """Run the Joule module class ``cls`` unchanged, in this process, on these pipes.

    ``cls()`` is instantiated and ``args`` parsed as under jouled (:func:`parse_joule_args`);
    then, as Joule's client code does: a ReaderModule (exactly one output, no input):
    ``setup(parsed_args, None, output)`` and ``run(parsed_args, output)``; a FilterModule or
    FIRFilterModule: ``setup(parsed_args, None, inputs, outputs)`` and
    ``run(parsed_args, inputs, outputs)``; a CompositeModule: ``setup(parsed_args, inputs,
    outputs)`` and all the coroutines it returns, together. The module's ``app`` is None
    (no web interface) and its ``node`` None (no Joule API).

    Blocks until the module returns. When ``stop`` is set: calls the module's ``stop()`` (so
    ``stop_requested`` becomes True, as SIGTERM does under jouled); if it has not returned
    ``grace`` s later it is cancelled (again every ``grace`` s while it resists), and this
    returns once it has ended. An EmptyPipeError escaping the module (one of its inputs ended
    and was drained: the way a Joule filter finishes at the end of a finite stream) counts as
    returning. Any other exception of the module propagates. The pipes are not closed: the
    caller owns them. Raises ModuleConfigError for a bad ``args`` or a class or pipes the
    module cannot run with, ImportError if joule is not installed. Cancelled, it cancels the
    module, waits for it to end, and re-raises CancelledError.
    """
    client = _joule_client()
    if not is_joule_class(cls):
        raise ModuleConfigError(f"{name}: {cls!r} is not a Joule module class (a subclass "
                                "of joule.client.ReaderModule, FilterModule or CompositeModule)")
    module = cls()
    parsed = parse_joule_args(module, args, name=name)
    module.parsed_args = parsed
    module.stop_requested = False
    body = _joule_body(client, module, parsed, dict(inputs), dict(outputs), name)
    await run_until_stopped(body, module.stop, stop, name=name, grace=grace)


def _joule_body(client: Any, module: Any, parsed: argparse.Namespace, inputs: dict[str, Pipe],
                outputs: dict[str, Pipe], name: str) -> Awaitable[None]:
    """The coroutine jouled's client code would run for ``module``."""
    if isinstance(module, client.ReaderModule):
        if inputs or len(outputs) != 1:
            raise ModuleConfigError(
                f"{name}: a Joule ReaderModule takes no input and exactly one output, got "
                f"inputs {sorted(inputs)} and outputs {sorted(outputs)}")
        (output,) = outputs.values()

        async def reader() -> None:
            await module.setup(parsed, None, output)
            await module.run(parsed, output)

        return reader()
    if isinstance(module, client.FilterModule):  # FIRFilterModule is one too

        async def filter_() -> None:
            await module.setup(parsed, None, inputs, outputs)
            await module.run(parsed, inputs, outputs)

        return filter_()
    if isinstance(module, client.CompositeModule):

        async def composite() -> None:
            parts = await module.setup(parsed, inputs, outputs)
            await run_all(parts, name)

        return composite()
    raise ModuleConfigError(f"{name}: {type(module).__qualname__} is a Joule BaseModule but "
                            "not a ReaderModule, FilterModule or CompositeModule")


# ------------------------------------------------------------------------------ executables
async def run_executable(argv: Sequence[str], args: Mapping[str, Any],
                         inputs: Mapping[str, Pipe], outputs: Mapping[str, Pipe],
                         stop: asyncio.Event, *, name: str, grace: float = 3.0,
                         env: Mapping[str, str] | None = None,
                         start_timeout: float = START_TIMEOUT) -> None:
    """Run an executable Joule module as jouled does, joined to these pipes.

    The child runs ``argv + ["--pipes", P, "--api-socket", S] + joule_argv(args)``: one OS pipe
    per input and output, named in ``P`` (doubly JSON-encoded, as jouled writes it:
    ``{"inputs": {name: {"fd", "id": null, "layout"}}, "outputs": {...}}``); ``S`` is a path
    where no Joule API answers (a module calling the API fails). Its environment is this
    process's, with ``PYTHONUNBUFFERED=1`` and ``env`` on top; stdin is /dev/null; each line
    of its stdout and stderr is logged (INFO) to the ``shmpipe`` logger as ``NAME: line``
    (a Joule filter ending with its input prints a traceback: not worth a warning).

    Each input's rows and interval breaks are copied into the child's OS pipe; the end of an
    input closes that OS pipe. A block read from an input is consumed once the OS pipe has
    taken all of it: if the child dies meanwhile the block stays in the input (a restarted
    child may get again the part that reached the dead one), and what sat unread in the OS
    pipe dies with the child. Each OS pipe the child writes is copied to the output, breaks
    included.

    Blocks until the child has exited and every row it wrote has been forwarded (after a
    stop, for at most ``grace`` s more). When ``stop`` is set, the child gets SIGTERM once it
    can take it: once it catches or ignores SIGTERM (``SigCgt``/``SigIgn`` in
    /proc/PID/status: a Joule module installs its handler after its imports and setup, and
    dies of a SIGTERM before), or ``start_timeout`` s after the stop if it never does; then
    SIGKILL ``grace`` s after the SIGTERM. A Joule module cancels its own run 2 s after
    SIGTERM if it has not returned (jouled kills it at that same moment: a race), hence the
    default of 3 s.

    Returns when the child exited with status 0, or after a stop (whatever its status), or
    when every input had ended and the child then died of Joule's EmptyPipeError (status 1,
    the last stderr line naming it: how a Joule filter ends at the end of a finite stream).
    Otherwise raises ExecutableFailed with the status and the last stderr lines. Raises
    ExecutableFailed (returncode None) if the program cannot be started (not found, not
    executable), ModuleConfigError for bad ``args``, and the error of a failed copy (e.g.
    PipeError for an all-zero row, which the wire format cannot carry) after killing the
    child. Cancelled, it kills the child (SIGKILL), waits for it and re-raises. It never
    leaves a child, a file descriptor or a task behind, and never closes the caller's pipes.
    """
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise ModuleConfigError(f"{name}: no program to run")
    try:
        extra = joule_argv(args)
    except ModuleConfigError as e:
        raise ModuleConfigError(f"{name}: {e}") from None
    child = _Child(name, grace)
    try:
        await child.start(argv, extra, inputs, outputs, env)
        returncode = await child.run(stop, start_timeout)
    finally:
        await child.close()
    status = describe_status(returncode)
    tail = list(child.stderr_tail)
    if child.stopping:
        log.info("%s: stopped: %s", name, status)
    elif returncode == 0:
        log.info("%s: %s", name, status)
    elif (inputs and child.inputs_ended == len(inputs) and returncode == 1 and tail
          and tail[-1].split(":")[0].endswith("EmptyPipeError")):
        log.info("%s: ended with its inputs (EmptyPipeError, status 1)", name)
    else:
        raise ExecutableFailed(name, returncode, tail)


class _Child:
    """One run of an executable module: its OS pipes, its process, the tasks joining them to
    the caller's pipes. :meth:`close` frees every one of them."""

    def __init__(self, name: str, grace: float) -> None:
        self.name = name
        self.grace = grace
        self.proc: asyncio.subprocess.Process | None = None
        self.child_fds: list[int] = []  # the child's ends: ours to close once it started
        self.pass_fds: list[int] = []  # those named in --pipes
        self.to_child: list[tuple[Pipe, OutputPipe]] = []  # (caller's input, OS pipe)
        self.from_child: list[tuple[InputPipe, Pipe]] = []  # (OS pipe, caller's output)
        self.logs: list[tuple[Any, bool]] = []  # (stdout/stderr reader, is stderr)
        self.closers: list[Callable[[], None]] = []  # close our reading ends
        self.tasks: list[asyncio.Future[Any]] = []
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self.stopping = False
        self.inputs_ended = 0

    def _pipe(self, child_end: int) -> tuple[int, int]:
        r, w = os.pipe()  # both close-on-exec: only pass_fds reach the child
        self.child_fds.append(r if child_end == 0 else w)
        return r, w

    async def _reader(self, fd: int) -> Any:
        try:
            reader, close = await reader_factory(fd)()
        except BaseException:
            os.close(fd)
            raise
        self.closers.append(close)
        return reader

    async def start(self, argv: list[str], extra: list[str], inputs: Mapping[str, Pipe],
                    outputs: Mapping[str, Pipe], env: Mapping[str, str] | None) -> None:
        spec: dict[str, dict[str, Any]] = {"outputs": {}, "inputs": {}}
        for pname, pipe in inputs.items():
            r, w = self._pipe(child_end=0)
            wire = OutputPipe(name=f"{self.name}.{pname}", layout=pipe.layout,
                              writer=await writer_factory(w)())
            self.to_child.append((pipe, wire))
            spec["inputs"][pname] = {"fd": r, "id": None, "layout": pipe.layout}
            self.pass_fds.append(r)
        for pname, pipe in outputs.items():
            r, w = self._pipe(child_end=1)
            wire_in = InputPipe(name=f"{self.name}.{pname}", layout=pipe.layout,
                                reader=await self._reader(r))
            self.from_child.append((wire_in, pipe))
            spec["outputs"][pname] = {"fd": w, "id": None, "layout": pipe.layout}
            self.pass_fds.append(w)
        r_out, w_out = self._pipe(child_end=1)
        self.logs.append((await self._reader(r_out), False))
        r_err, w_err = self._pipe(child_end=1)
        self.logs.append((await self._reader(r_err), True))
        cmd = [*argv, "--pipes", json.dumps(json.dumps(spec)), "--api-socket", API_SOCKET,
               *extra]
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=w_out, stderr=w_err,
                pass_fds=self.pass_fds, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                              **(env or {})})
        except OSError as e:
            raise ExecutableFailed(self.name, None, reason=f"cannot start {argv[0]!r}: "
                                   f"{e.strerror or e}") from e
        finally:
            self._close_child_fds()
        log.info("%s: started %s (pid %d)", self.name, argv[0], self.proc.pid)

    def _close_child_fds(self) -> None:
        fds, self.child_fds = self.child_fds, []
        for fd in fds:
            os.close(fd)

    async def run(self, stop: asyncio.Event, start_timeout: float) -> int:
        """Forward until the child exits and its outputs are drained; its returncode."""
        proc = self.proc
        assert proc is not None
        waiter = asyncio.ensure_future(proc.wait())
        feeds = [asyncio.ensure_future(self._feed(src, wire)) for src, wire in self.to_child]
        drains = [asyncio.ensure_future(_forward(wire, dst)) for wire, dst in self.from_child]
        loggers = [asyncio.ensure_future(self._log_lines(reader, is_err))
                   for reader, is_err in self.logs]
        watcher = asyncio.ensure_future(self._stop_when(stop, start_timeout))
        self.tasks = [waiter, watcher, *feeds, *drains, *loggers]
        pending: set[asyncio.Future[Any]] = {waiter, *feeds, *drains}
        while waiter in pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task is waiter or task.cancelled() else task.exception()
                if error is not None:
                    raise error  # close() kills the child
        # the child is gone: nothing reads its inputs any more
        for task in feeds:
            task.cancel()
        for _, wire in self.to_child:
            _abort(wire)
        # every row it wrote is in its OS pipes (or on its way): forward them
        if drains:
            done, late = await asyncio.wait(drains, timeout=self.grace if self.stopping else None)
            if late:
                log.warning("%s: outputs not forwarded %g s after the child stopped: dropped",
                            self.name, self.grace)
            for task in done:
                task.result()
        if loggers:  # they end with the child's stdout and stderr
            await asyncio.wait(loggers, timeout=self.grace)
        assert proc.returncode is not None
        return proc.returncode

    async def _feed(self, src: Pipe, wire: OutputPipe) -> None:
        """Copy an input into the child's OS pipe; its end closes the OS pipe."""
        try:
            await _forward(src, wire)
            await wire.close()  # what the pipe holds goes out...
            writer = wire.writer  # ...and the OS pipe closes (close() alone does not when
            writer.close()  # nothing was ever written)
            await writer.wait_closed()
        except (BrokenPipeError, ConnectionResetError):
            log.debug("%s: closed its input %s", self.name, wire.name)
            return
        self.inputs_ended += 1

    async def _log_lines(self, reader: Any, is_err: bool) -> None:
        """Log each line the child writes to stdout or stderr (whatever the encoding)."""
        buf = b""
        while True:
            chunk = await reader.read(LINE_MAX)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if len(buf) >= LINE_MAX:
                lines.append(buf)
                buf = b""
            for line in lines:
                self._log(line, is_err)
        if buf:
            self._log(buf, is_err)

    def _log(self, line: bytes, is_err: bool) -> None:
        text = line.decode(errors="replace").rstrip()
        if text:
            log.info("%s: %s", self.name, text)
            if is_err:
                self.stderr_tail.append(text)

    async def _stop_when(self, stop: asyncio.Event, start_timeout: float) -> None:
        """Once ``stop`` is set: SIGTERM when the child can take it, SIGKILL ``grace`` later."""
        await stop.wait()
        proc = self.proc
        assert proc is not None
        if proc.returncode is not None:
            return  # it ended before: how it ended stands
        self.stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + start_timeout
        while proc.returncode is None and not _takes_sigterm(proc.pid):
            if loop.time() >= deadline:
                log.warning("%s: no SIGTERM handler %g s after the stop: SIGTERM anyway",
                            self.name, start_timeout)
                break
            await asyncio.sleep(POLL)  # no event tells that a handler was installed
        if proc.returncode is not None:
            return
        log.info("%s: stopping (SIGTERM)", self.name)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        exited = asyncio.ensure_future(proc.wait())
        try:
            await asyncio.wait({exited}, timeout=self.grace)
        finally:
            exited.cancel()
        if proc.returncode is None:
            log.warning("%s: still running %g s after SIGTERM: SIGKILL", self.name, self.grace)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def close(self) -> None:
        """Kill the child if it runs, wait for it, end every task, close every fd. A
        cancellation received meanwhile is re-raised once all is freed."""
        interrupted = False
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            while proc.returncode is None:
                try:
                    await proc.wait()
                except asyncio.CancelledError:
                    interrupted = True
        for task in self.tasks:
            task.cancel()
        while not all(task.done() for task in self.tasks):
            try:
                await asyncio.wait(self.tasks)
            except asyncio.CancelledError:
                interrupted = True
        for task in self.tasks:
            if not task.cancelled():
                task.exception()  # retrieved (run() raised the one that mattered)
        self._close_child_fds()
        for _, wire in self.to_child:
            _abort(wire)
        for close in self.closers:
            close()
        await asyncio.sleep(0)  # the aborted transports close their fds in the next step
        if interrupted:
            raise asyncio.CancelledError


def _abort(wire: OutputPipe) -> None:
    """Drop what waits in an OS-pipe stream and close it (its reader is gone)."""
    if wire.writer is not None and not wire.writer.transport.is_closing():
        wire.writer.transport.abort()
    wire.closed = True


def _takes_sigterm(pid: int) -> bool:
    """Whether SIGTERM no longer kills ``pid`` at once: it catches or ignores it (bits of
    ``SigCgt`` / ``SigIgn`` in /proc/PID/status). True if that cannot be read (the process
    is gone, or there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return True
    bit = 1 << (signal.SIGTERM - 1)
    for line in status.splitlines():
        if line.startswith(("SigCgt:", "SigIgn:")) and int(line.split()[1], 16) & bit:
            return True
    return False


async def _forward(src: Pipe, dst: Pipe) -> None:
    """Copy the rows and interval breaks of ``src`` to ``dst`` until ``src`` ends. A row is
    consumed once ``dst`` took it. ``dst`` is not closed."""
    while True:
        try:
            data = await src.read()
        except EmptyPipeError:
            return
        if len(data):
            await dst.write(data)
            src.consume(len(data))
        if src.end_of_interval:
            await dst.close_interval()


__all__ = [
    "ExecutableFailed",
    "ModuleConfigError",
    "is_joule_class",
    "joule_argv",
    "parse_joule_args",
    "run_executable",
    "run_joule_class",
]
