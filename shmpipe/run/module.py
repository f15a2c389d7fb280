"""Modules: the code a pipeline runs, in any of its shapes, and how each shape is run.

A module is plain async code written against the pipe API:

* an async function ``async def f(inputs, outputs, **args)``: ``inputs`` and ``outputs`` are
  dicts of pipe name -> pipe, the config's ``args`` arrive as keyword arguments. It learns of
  a stop request through :func:`stop_event` (an :class:`asyncio.Event` it may poll or await);
  ``STOP_TIMEOUT`` seconds after the request it is cancelled;
* a subclass of :class:`ReaderModule`, :class:`FilterModule` or :class:`CompositeModule`
  (the method names and signatures of Joule's): ``custom_args(parser)`` declares the
  arguments, the config's ``args`` are parsed as ``--key value`` strings, then ``setup`` and
  ``run`` are awaited; a stop request calls ``stop()``, which sets ``stop_requested``;
* a module class written for Joule (``joule.client.ReaderModule``...), run unchanged;
* an executable speaking Joule's module protocol (see ``joule.py``).

A module that returns, or whose read raises :class:`~shmpipe.EmptyPipeError` (its input
ended), has finished normally.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextvars
import importlib
import inspect
import logging
import textwrap
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import EmptyPipeError
from ..pipe import Pipe

log = logging.getLogger("shmpipe")

STOP_TIMEOUT = 2.0  # seconds between a stop request and the cancellation of a module
EXEC_GRACE = 3.0  # at least this between SIGTERM and SIGKILL for an executable (Joule cancels
# its own run 2 s after SIGTERM)

_stop: contextvars.ContextVar[asyncio.Event] = contextvars.ContextVar("shmpipe_module_stop")


def stop_event() -> asyncio.Event:
    """The stop request of the module running in this task: set when the pipeline asks the
    module to stop (Ctrl-C, SIGTERM, or the end of the sources before it). A module returns
    soon after; ``STOP_TIMEOUT`` seconds after the request it is cancelled. Outside a module
    run by a pipeline, an event that is never set."""
    try:
        return _stop.get()
    except LookupError:
        ev = asyncio.Event()
        _stop.set(ev)
        return ev


class ModuleError(Exception):
    """A module's code could not be found, loaded or given its arguments."""


# ------------------------------------------------------------------------ base classes
class BaseModule:
    """What every class module has: arguments, ``stop_requested`` and ``stop()``.

    Subclass :class:`ReaderModule`, :class:`FilterModule` or :class:`CompositeModule`.
    """

    STOP_TIMEOUT = STOP_TIMEOUT

    def __init__(self) -> None:
        self.stop_requested = False

    def custom_args(self, parser: argparse.ArgumentParser) -> None:
        """Add the module's arguments to ``parser``; the config's ``args`` (``key = value``)
        arrive as ``--key value``."""

    def stop(self) -> None:
        """Called when the pipeline asks the module to stop; sets ``stop_requested``. Override
        to stop another way. ``STOP_TIMEOUT`` seconds later the module is cancelled."""
        self.stop_requested = True


class ReaderModule(BaseModule):
    """A source: one output, no input."""

    async def setup(self, parsed_args: argparse.Namespace, app: Any, output: Pipe) -> None:
        """Prepare, before :meth:`run` (``app`` is always None: no web interface)."""

    async def run(self, parsed_args: argparse.Namespace, output: Pipe) -> None:
        """Produce rows into ``output`` until done or ``stop_requested``."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")


class FilterModule(BaseModule):
    """Reads inputs, writes outputs."""

    async def setup(self, parsed_args: argparse.Namespace, app: Any,
                    inputs: dict[str, Pipe], outputs: dict[str, Pipe]) -> None:
        """Prepare, before :meth:`run` (``app`` is always None: no web interface)."""

    async def run(self, parsed_args: argparse.Namespace, inputs: dict[str, Pipe],
                  outputs: dict[str, Pipe]) -> None:
        """Read ``inputs`` and write ``outputs`` until the inputs end or ``stop_requested``."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")


class CompositeModule(BaseModule):
    """Several coroutines sharing the module's pipes."""

    async def setup(self, parsed_args: argparse.Namespace, inputs: dict[str, Pipe],
                    outputs: dict[str, Pipe]) -> list[Any]:
        """Return the coroutines to run together; the module ends when all have returned."""
        raise NotImplementedError(f"{type(self).__name__} must implement setup()")


# ------------------------------------------------------------------------ loading code
@dataclass(frozen=True)
class Code:
    """What a module runs: ``kind`` is "function", "class", "joule-class" or "exec";
    ``target`` the function or class (None for an executable), ``argv`` the executable."""

    kind: str
    target: Any = None
    argv: tuple[str, ...] = ()

    def uses(self) -> tuple[set[str] | None, set[str] | None]:
        """The input and output names the code indexes its pipe dicts with, each None when
        it cannot be told (an executable, or dicts used other than ``d["name"]``)."""
        if self.kind == "exec":
            return None, None
        return pipe_names(self.target)

    @property
    def source(self) -> bool:
        """Whether the code is a reader (a source): a ReaderModule."""
        if self.kind == "class":
            return issubclass(self.target, ReaderModule)
        if self.kind == "joule-class":
            return _is_reader(self.target)
        return False


def load_code(spec: str) -> Code:
    """Import ``"package.module:attr"`` (attr may be dotted) and tell its kind. Raises
    ModuleError naming the spec and, when the import fails, the import error."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ModuleError(f"code {spec!r}: expected \"package.module:attribute\"")
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as e:  # an ImportError, or anything the module raises while imported
        raise ModuleError(f"code {spec!r}: cannot import {mod_name}: "
                          f"{type(e).__name__}: {e}") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ModuleError(f"code {spec!r}: {mod_name} has no attribute {attr!r}") from None
    return code_of(obj, spec)


def code_of(obj: Any, what: str) -> Code:
    """The :class:`Code` for a function or class object; ModuleError if it is neither."""
    if inspect.isclass(obj):
        if issubclass(obj, BaseModule):
            if obj in (BaseModule, ReaderModule, FilterModule, CompositeModule):
                raise ModuleError(f"code {what!r} is a base class: subclass it")
            return Code("class", obj)
        from .joule import is_joule_class

        if is_joule_class(obj):
            return Code("joule-class", obj)
        raise ModuleError(f"code {what!r} is a class but not a module class (subclass "
                          "shmpipe.run.ReaderModule, FilterModule or CompositeModule)")
    if inspect.iscoroutinefunction(obj):
        return Code("function", obj)
    raise ModuleError(f"code {what!r} is not an async function nor a module class "
                      f"(got {type(obj).__name__})")


def reference(obj: Any) -> str:
    """``"package.module:qualname"`` of a module function or class, for a process that
    imports it again. ModuleError for code that cannot be imported by name."""
    mod, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not mod or "<" in qual or mod == "__main__":
        raise ModuleError(f"{obj!r} cannot be imported by another process: define it at the "
                          "top level of an importable module (not __main__)")
    return f"{mod}:{qual}"


# ------------------------------------------------------------------------ pipe names
_PIPE_PARAMS = {  # positions of the inputs/outputs parameters in the code that gets them
    "function": (0, 1),
    "run": (2, 3),  # run(self, parsed_args, inputs, outputs)
    "setup_filter": (3, 4),  # setup(self, parsed_args, app, inputs, outputs)
    "setup_composite": (2, 3),  # setup(self, parsed_args, inputs, outputs)
}


def pipe_names(target: Any) -> tuple[set[str] | None, set[str] | None]:
    """The literal names ``target`` indexes its inputs and outputs with (``inputs["x"]``,
    ``inputs.get("x")``), read from its source; None for a dict used any other way (passed
    on, iterated), or when the source cannot be read. A reader module's single output
    takes any name: None."""
    funcs: list[tuple[Any, tuple[int, int]]] = []
    if inspect.isclass(target):
        if _is_reader(target):
            return set(), None
        for cls in target.__mro__:
            if cls.__module__.startswith(("joule.client.base", "builtins")) or cls in (
                    BaseModule, FilterModule, CompositeModule, ReaderModule):
                continue
            for meth in ("run", "setup"):
                f = cls.__dict__.get(meth)
                if f is None:
                    continue
                pos = _PIPE_PARAMS["run"] if meth == "run" else (
                    _PIPE_PARAMS["setup_composite"] if _is_composite(target)
                    else _PIPE_PARAMS["setup_filter"])
                funcs.append((f, pos))
    else:
        funcs.append((target, _PIPE_PARAMS["function"]))
    found: list[set[str] | None] = [set(), set()]
    for f, pos in funcs:
        for side in (0, 1):
            names = _names_in(f, pos[side])
            cur = found[side]
            found[side] = None if names is None or cur is None else cur | names
    return found[0], found[1]


def _is_reader(cls: type) -> bool:
    return any(c.__name__ == "ReaderModule" for c in cls.__mro__)


def _is_composite(cls: type) -> bool:
    return any(c.__name__ == "CompositeModule" for c in cls.__mro__)


def _names_in(func: Any, position: int) -> set[str] | None:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return None
    fn = tree.body[0] if tree.body else None
    if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    if position >= len(params):
        return set()
    param = params[position]
    names: set[str] = set()
    parents = {child: node for node in ast.walk(fn) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Name) and node.id == param and node is not fn):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Subscript) and parent.value is node and isinstance(
                parent.slice, ast.Constant) and isinstance(parent.slice.value, str):
            names.add(parent.slice.value)
            continue
        call = parents.get(parent) if isinstance(parent, ast.Attribute) else None
        if (isinstance(parent, ast.Attribute) and parent.attr == "get"
                and isinstance(call, ast.Call) and call.args
                and isinstance(call.args[0], ast.Constant)
                and isinstance(call.args[0].value, str)):
            names.add(call.args[0].value)
            continue
        return None  # the dict goes somewhere we cannot follow
    return names


# ------------------------------------------------------------------------ arguments
def parse_args(module: BaseModule, args: Mapping[str, Any], name: str) -> argparse.Namespace:
    """Parse the config's ``args`` (as the ``--key value`` strings of
    :func:`~shmpipe.run.joule.joule_argv`) with the parser ``module.custom_args`` builds;
    ModuleError naming the module and what argparse said."""
    from .joule import ModuleConfigError, _ArgumentsRefused, _Parser, joule_argv

    parser = _Parser(prog=name, add_help=False)
    module.custom_args(parser)
    try:
        return parser.parse_args(joule_argv(args))
    except (ModuleConfigError, _ArgumentsRefused) as e:
        raise ModuleError(f"module {name!r}: bad args: {e}") from None


def check_args(code: Code, args: Mapping[str, Any], name: str) -> None:
    """Raise ModuleError if ``args`` cannot be given to the code: a keyword a function does
    not take, or arguments a module class's parser (ours or Joule's) refuses. An
    executable's are checked by the executable when it starts."""
    if code.kind == "function":
        try:
            inspect.signature(code.target).bind(None, None, **args)
        except TypeError as e:
            raise ModuleError(f"module {name!r}: bad args: {e}") from None
    elif code.kind == "class":
        parse_args(code.target(), args, name)
    elif code.kind == "joule-class":
        from .joule import ModuleConfigError, parse_joule_args

        try:
            parse_joule_args(code.target(), args, name=name)
        except ModuleConfigError as e:
            raise ModuleError(str(e)) from None


# ------------------------------------------------------------------------ running
async def run_module(code: Code, args: Mapping[str, Any], inputs: dict[str, Pipe],
                     outputs: dict[str, Pipe], stop: asyncio.Event, *, name: str,
                     grace: float = STOP_TIMEOUT) -> None:
    """Run one module to its end with these pipes (which the caller owns and closes).

    Returns when the module returns, when its read raises EmptyPipeError (an input ended),
    or, after ``stop`` is set, when it stops or is cancelled ``grace`` seconds later.
    Raises what the module raises, and ModuleError for bad ``args``. Cancelling it cancels
    the module.
    """
    if code.kind == "joule-class":
        from .joule import run_joule_class

        await run_joule_class(code.target, args, inputs, outputs, stop, name=name, grace=grace)
        return
    if code.kind == "exec":
        from .joule import run_executable

        await run_executable(list(code.argv), args, inputs, outputs, stop, name=name,
                             grace=max(grace, EXEC_GRACE))
        return
    if code.kind == "function":
        token = _stop.set(stop)  # the module's task is made with it: its stop_event()
        try:
            await run_until_stopped(code.target(inputs, outputs, **args), lambda: None, stop,
                                    name=name, grace=grace)
        finally:
            _stop.reset(token)
        return
    instance: BaseModule = code.target()
    parsed = parse_args(instance, args, name)
    await run_until_stopped(_run_class(instance, parsed, inputs, outputs, name), instance.stop,
                            stop, name=name, grace=grace)


async def _run_class(module: BaseModule, parsed: argparse.Namespace,
                     inputs: dict[str, Pipe], outputs: dict[str, Pipe], name: str) -> None:
    if isinstance(module, ReaderModule):
        if len(outputs) != 1 or inputs:
            raise ModuleError(f"a ReaderModule has one output and no input, got inputs "
                              f"{sorted(inputs)} and outputs {sorted(outputs)}")
        (output,) = outputs.values()
        await module.setup(parsed, None, output)
        await module.run(parsed, output)
    elif isinstance(module, FilterModule):
        await module.setup(parsed, None, inputs, outputs)
        await module.run(parsed, inputs, outputs)
    elif isinstance(module, CompositeModule):
        await run_all(await module.setup(parsed, inputs, outputs), name)
    else:  # pragma: no cover (load_code admits only these)
        raise ModuleError(f"{type(module).__name__} is not a module class")


async def until_empty(part: Awaitable[Any], name: str) -> None:
    """Await ``part``; an EmptyPipeError (an input ended and is drained) ends it normally."""
    try:
        await part
    except EmptyPipeError:
        log.debug("%s: an input ended", name)


async def run_all(parts: Iterable[Awaitable[Any]], name: str) -> None:
    """Run the awaitables a CompositeModule's setup returned until all have ended; the first
    exception propagates once the others are cancelled (asyncio.gather would leave them
    running)."""
    tasks = [asyncio.ensure_future(until_empty(p, name)) for p in parts]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


async def run_until_stopped(body: Awaitable[None], request_stop: Callable[[], Any],
                             stop: asyncio.Event, *, name: str, grace: float) -> None:
    """Run ``body`` to its end; once ``stop`` is set, call ``request_stop()`` and cancel
    ``body`` if it runs on ``grace`` s later (a module's stop request; see :func:`run_module`)."""
    task = asyncio.ensure_future(until_empty(body, name))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            log.info("%s: stop requested", name)
            requested = request_stop()
            if inspect.isawaitable(requested):  # Joule's stop() is plain; an async one works
                await requested
            await asyncio.wait({task}, timeout=grace)
            if not task.done():
                log.warning("%s: still running %g s after stop(): cancelled", name, grace)
                await cancel_task(task, name, grace)
        if not task.cancelled():
            task.result()  # the module's exception, if any
    finally:
        stopped.cancel()
        await cancel_task(task, name, grace)


async def cancel_task(task: asyncio.Future[Any], name: str, grace: float) -> None:
    """Cancel ``task`` until it has ended (a task may swallow a cancellation), waiting
    ``grace`` s between attempts; then re-raise a cancellation this caller received."""
    interrupted = False
    attempts = 0
    while not task.done():
        if attempts:
            log.warning("%s: still running %g s after a cancel: cancelling again", name, grace)
        attempts += 1
        task.cancel()
        try:
            await asyncio.wait({task}, timeout=grace)
        except asyncio.CancelledError:
            interrupted = True
    if not task.cancelled():
        task.exception()  # retrieved: the caller reads it from task.result() if it wants it
    if interrupted:
        raise asyncio.CancelledError



def exec_argv(command: str | Sequence[str]) -> tuple[str, ...]:
    """An ``exec`` value (a command line or a list of words) as argv."""
    import shlex

    argv = tuple(shlex.split(command)) if isinstance(command, str) else tuple(command)
    if not argv or not all(isinstance(a, str) and a for a in argv):
        raise ModuleError(f"exec {command!r}: expected a command line or a list of words")
    return argv
