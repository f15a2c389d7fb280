"""Module shapes and how each runs: stop requests, cancellation after the grace period,
EmptyPipeError as a normal end, argument parsing, and the pipe names read from the code."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import runmods

import shmpipe
from shmpipe.run.module import Code, ModuleError, code_of, load_code, pipe_names, run_module


async def sleeper(inputs: dict, outputs: dict, log: list) -> None:
    """Ignores stop requests: only cancellation ends it."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        log.append("cancelled")
        raise


async def polite(inputs: dict, outputs: dict, log: list) -> None:
    await shmpipe.stop_event().wait()
    log.append("stopped")


async def ends_input(inputs: dict, outputs: dict) -> None:
    await inputs["input"].read()


class Stoppable(shmpipe.FilterModule):
    async def run(self, parsed_args: Any, inputs: dict, outputs: dict) -> None:
        while not self.stop_requested:
            await asyncio.sleep(0.01)


async def _run(code: Code, args: dict, stop_after: float | None, grace: float = 0.2,
               inputs: dict | None = None, outputs: dict | None = None) -> None:
    stop = asyncio.Event()
    if stop_after is not None:
        asyncio.get_running_loop().call_later(stop_after, stop.set)
    await run_module(code, args, inputs or {}, outputs or {}, stop, name="m", grace=grace)


def test_a_function_sees_the_stop_request_through_stop_event() -> None:
    log: list[str] = []
    asyncio.run(_run(code_of(polite, "polite"), {"log": log}, 0.01))
    assert log == ["stopped"]


def test_a_function_ignoring_the_stop_is_cancelled_after_the_grace_period() -> None:
    log: list[str] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await _run(code_of(sleeper, "sleeper"), {"log": log}, 0.01, grace=0.3)
        return loop.time() - t0

    took = asyncio.run(main())
    assert log == ["cancelled"]
    assert took >= 0.3


def test_a_class_module_is_asked_to_stop_through_stop() -> None:
    asyncio.run(_run(code_of(Stoppable, "Stoppable"), {}, 0.01, grace=30))


def test_an_input_that_ended_is_a_normal_end() -> None:
    async def main() -> None:
        pipe = shmpipe.LocalPipe("float32_2")
        await pipe.close()
        await _run(code_of(ends_input, "ends_input"), {}, None, inputs={"input": pipe})

    asyncio.run(main())


def test_a_module_error_propagates() -> None:
    async def main() -> None:
        pipe = shmpipe.LocalPipe("float32_2")
        await pipe.write(runmods.rows(0, 3))
        await _run(code_of(runmods.always_fails, "always_fails"), {}, None,
                   inputs={"input": pipe}, outputs={"output": shmpipe.LocalPipe("float32_2")})

    with pytest.raises(ValueError, match="always_fails: failing on purpose"):
        asyncio.run(main())


def test_cancelling_the_run_cancels_the_module() -> None:
    log: list[str] = []

    async def main() -> None:
        task = asyncio.ensure_future(_run(code_of(sleeper, "sleeper"), {"log": log}, None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert log == ["cancelled"]


def test_class_args_are_parsed_from_the_config() -> None:
    code = load_code("runmods:Doubler")
    assert code.kind == "class"
    with pytest.raises(ModuleError, match=r"module 'm': bad args: .*invalid float"):
        asyncio.run(_run(code, {"factor": "x"}, None))


def test_pipe_names_are_read_from_the_code() -> None:
    assert pipe_names(runmods.passthrough) == ({"input"}, {"output"})
    assert pipe_names(runmods.counter) == (set(), {"output"})
    assert pipe_names(runmods.Doubler) == ({"input"}, {"output"})
    assert pipe_names(runmods.Ticker) == (set(), None)  # a reader: its one output, any name

    async def passes_them_on(inputs: dict, outputs: dict) -> None:
        await runmods.passthrough(inputs, outputs)

    async def uses_get(inputs: dict, outputs: dict) -> None:
        inputs.get("a")
        outputs["b"]

    assert pipe_names(passes_them_on) == (None, None)
    assert pipe_names(uses_get) == ({"a"}, {"b"})


def test_what_is_not_module_code_is_refused() -> None:
    with pytest.raises(ModuleError, match="is a base class"):
        code_of(shmpipe.FilterModule, "FilterModule")
    with pytest.raises(ModuleError, match="not a module class"):
        code_of(dict, "dict")
    with pytest.raises(ModuleError, match="not an async function"):
        code_of(len, "len")
