"""The bare pipe API: names, keywords, direction, abstract hooks (shmpipe/pipe.py)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import shmpipe
from shmpipe import EmptyPipeError, InputPipe, OutputPipe, Pipe, PipeError
from shmpipe import errors as errors_module

LAYOUT = "float32_2"
ROWS = [[1, 0.5, 1.5], [2, 2.5, 3.5], [3, 4.5, 5.5]]


# ----------------------------------------------------------------------------- errors
def test_errors_are_exported() -> None:
    assert shmpipe.PipeError is errors_module.PipeError
    assert shmpipe.EmptyPipeError is errors_module.EmptyPipeError
    assert issubclass(EmptyPipeError, PipeError)
    assert issubclass(PipeError, Exception)
    with pytest.raises(PipeError):
        raise EmptyPipeError("drained")


def test_public_names() -> None:
    for name in ("Pipe", "InputPipe", "OutputPipe", "LocalPipe", "PipeError",
                 "EmptyPipeError", "PipeData", "compute_dtype"):
        assert name in shmpipe.__all__
        assert hasattr(shmpipe, name)
    assert issubclass(InputPipe, Pipe)
    assert issubclass(OutputPipe, Pipe)
    assert issubclass(shmpipe.LocalPipe, Pipe)


# ----------------------------------------------------------------------------- signatures
def params(func: Callable[..., Any]) -> list[tuple[str, Any]]:
    sig = inspect.signature(func)
    return [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"]


def test_pipe_constructor_keywords_of_joule() -> None:
    assert params(Pipe.__init__)[:5] == [
        ("name", None), ("direction", None), ("module", None), ("stream", None),
        ("layout", None),
    ]
    pipe = Pipe("p", Pipe.DIRECTION.OUTPUT, "module", None, LAYOUT)  # positional, in order
    assert (pipe.name, pipe.direction, pipe.module, pipe.stream) == (
        "p", Pipe.DIRECTION.OUTPUT, "module", None
    )
    assert pipe.layout == LAYOUT
    bare = Pipe()
    assert (bare.name, bare.direction, bare.module, bare.stream) == (None, None, None, None)
    assert bare.closed is False
    assert bare.subscribers == []
    assert bare.close_cb is None


def test_directions() -> None:
    assert {d.name for d in Pipe.DIRECTION} == {"INPUT", "OUTPUT", "TWOWAY"}
    assert len({Pipe.DIRECTION.INPUT, Pipe.DIRECTION.OUTPUT, Pipe.DIRECTION.TWOWAY}) == 3
    assert InputPipe(layout=LAYOUT).direction == Pipe.DIRECTION.INPUT
    assert OutputPipe(layout=LAYOUT).direction == Pipe.DIRECTION.OUTPUT
    assert shmpipe.LocalPipe(LAYOUT).direction == Pipe.DIRECTION.TWOWAY


ASYNC_METHODS = {
    "read": [("flatten", False)],
    "read_all": [("flatten", False), ("maxrows", 100000), ("error_on_overflow", False)],
    "is_empty": [],
    "not_empty": [],
    "write": [("data", inspect.Parameter.empty)],
    "close_interval": [],
    "flush_cache": [],
    "close": [],
}
SYNC_METHODS = {
    "consume": [("num_rows", inspect.Parameter.empty)],
    "consume_all": [],
    "reread_last": [],
    "close_interval_nowait": [],
    "enable_cache": [("lines", inspect.Parameter.empty)],
    "subscribe": [("pipe", inspect.Parameter.empty)],
    "change_layout": [("layout", inspect.Parameter.empty)],
    "fail": [],
}


@pytest.mark.parametrize("name", sorted(ASYNC_METHODS))
def test_coroutine_methods(name: str) -> None:
    method = getattr(Pipe, name)
    assert inspect.iscoroutinefunction(method)
    assert params(method) == ASYNC_METHODS[name]


@pytest.mark.parametrize("name", sorted(SYNC_METHODS))
def test_plain_methods(name: str) -> None:
    method = getattr(Pipe, name)
    assert callable(method)
    assert not inspect.iscoroutinefunction(method)
    assert params(method) == SYNC_METHODS[name]


def test_description_properties() -> None:
    pipe = Pipe(name="p", layout="int16_3")
    assert pipe.name == "p"
    assert pipe.layout == "int16_3"
    assert pipe.dtype == shmpipe.compute_dtype("int16_3")
    assert pipe.width == 3
    assert pipe.end_of_interval is False
    assert "p" in repr(pipe)
    assert pipe.decimation_level == 1
    assert pipe.decimated is False


def test_layout_from_stream() -> None:
    class Stream:
        layout = "uint8_4"

    pipe = InputPipe(name="in", stream=Stream())
    assert pipe.layout == "uint8_4"
    assert pipe.width == 4
    assert pipe.dtype == shmpipe.compute_dtype("uint8_4")


def test_no_layout() -> None:
    pipe = Pipe()
    with pytest.raises(ValueError, match="no layout"):
        _ = pipe.layout
    with pytest.raises(ValueError, match="no layout"):
        _ = pipe.dtype
    with pytest.raises(ValueError, match="no layout"):
        _ = pipe.width


def test_change_layout_is_refused() -> None:
    pipe = Pipe(layout=LAYOUT)
    with pytest.raises(PipeError, match="layout cannot be changed"):
        pipe.change_layout("float32_3")
    assert pipe.layout == LAYOUT


# ----------------------------------------------------------------------------- abstract
def abstract(call: Callable[[], Any]) -> None:
    with pytest.raises(PipeError, match="abstract"):
        call()


async def aabstract(call: Callable[[], Any]) -> None:
    with pytest.raises(PipeError, match="abstract"):
        await call()


@pytest.mark.parametrize(
    "make",
    [lambda: Pipe(layout=LAYOUT), lambda: Pipe(layout=LAYOUT, direction=Pipe.DIRECTION.TWOWAY)],
)
async def test_bare_pipe_methods_are_abstract(make: Callable[[], Pipe]) -> None:
    pipe = make()
    await aabstract(pipe.read)
    await aabstract(lambda: pipe.read(flatten=True))
    abstract(pipe.read_nowait)
    abstract(lambda: pipe.read_sync(timeout=0))
    await aabstract(pipe.read_all)
    await aabstract(pipe.is_empty)
    await aabstract(pipe.not_empty)
    await aabstract(lambda: pipe.write(ROWS))
    abstract(lambda: pipe.write_nowait(ROWS))
    await aabstract(pipe.close_interval)
    abstract(pipe.close_interval_nowait)
    # caching needs a transport too (Joule's own tests pin this)
    abstract(lambda: pipe.enable_cache(2))
    await aabstract(pipe.flush_cache)
    # nothing was marked closed, consumed or failed by the refusals
    assert pipe.closed is False
    assert pipe.end_of_interval is False


async def test_bare_pipe_without_layout_read_is_abstract() -> None:
    pipe = Pipe()
    await aabstract(pipe.read)
    abstract(pipe.read_nowait)
    await aabstract(pipe.close_interval)


async def test_input_pipe_reads_reach_the_transport() -> None:
    pipe = InputPipe(name="in", layout=LAYOUT)
    await aabstract(pipe.read)
    abstract(pipe.read_nowait)
    await aabstract(pipe.is_empty)


async def test_output_pipe_writes_reach_the_transport() -> None:
    pipe = OutputPipe(name="out", layout=LAYOUT)
    await aabstract(lambda: pipe.write(ROWS))
    abstract(lambda: pipe.write_nowait(ROWS))
    await aabstract(pipe.close_interval)
    abstract(pipe.close_interval_nowait)


# ----------------------------------------------------------------------------- direction
async def test_input_pipe_refuses_writing() -> None:
    pipe = InputPipe(name="in", layout=LAYOUT)
    with pytest.raises(PipeError, match="input pipe"):
        await pipe.write(ROWS)
    with pytest.raises(PipeError, match="input pipe"):
        pipe.write_nowait(ROWS)
    with pytest.raises(PipeError, match="input pipe"):
        await pipe.close_interval()
    with pytest.raises(PipeError, match="input pipe"):
        pipe.close_interval_nowait()
    with pytest.raises(PipeError, match="cache on input pipes"):
        pipe.enable_cache(10)
    with pytest.raises(PipeError, match="cache on input pipes"):
        await pipe.flush_cache()
    with pytest.raises(PipeError, match="subscribe to an input pipe"):
        pipe.subscribe(shmpipe.LocalPipe(LAYOUT))
    assert pipe.subscribers == []


async def test_output_pipe_refuses_reading() -> None:
    pipe = OutputPipe(name="out", layout=LAYOUT)
    with pytest.raises(PipeError, match="output pipe"):
        await pipe.read()
    with pytest.raises(PipeError, match="output pipe"):
        pipe.read_nowait()
    with pytest.raises(PipeError, match="output pipe"):
        pipe.read_sync(timeout=0)
    with pytest.raises(PipeError, match="output pipe"):
        await pipe.read_all()
    with pytest.raises(PipeError, match="output pipe"):
        pipe.consume(0)
    with pytest.raises(PipeError, match="output pipe"):
        pipe.consume_all()
    with pytest.raises(PipeError, match="output pipe"):
        pipe.reread_last()
    with pytest.raises(PipeError, match="output pipe"):
        await pipe.is_empty()
    with pytest.raises(PipeError, match="output pipe"):
        await pipe.not_empty()


def test_subscribe_refuses_what_cannot_be_written() -> None:
    pipe = OutputPipe(name="out", layout=LAYOUT)
    for bad in (InputPipe(layout=LAYOUT), "pipe", None, object()):
        with pytest.raises(PipeError, match="writable pipe"):
            pipe.subscribe(bad)  # type: ignore[arg-type]
    assert pipe.subscribers == []


def test_subscribe_returns_an_unsubscribe_callable() -> None:
    pipe = OutputPipe(name="out", layout=LAYOUT)
    a, b = shmpipe.LocalPipe(LAYOUT), shmpipe.LocalPipe(LAYOUT)
    unsub_a = pipe.subscribe(a)
    unsub_b = pipe.subscribe(b)
    assert pipe.subscribers == [a, b]
    unsub_a()
    assert pipe.subscribers == [b]
    unsub_a()  # a second call changes nothing
    assert pipe.subscribers == [b]
    unsub_b()
    assert pipe.subscribers == []


# ----------------------------------------------------------------------------- a concrete output
class Recorder(OutputPipe):
    """An output transport that records what reaches it."""

    def __init__(self, layout: str = LAYOUT, **kwargs: Any) -> None:
        super().__init__(name="rec", layout=layout, **kwargs)
        self.events: list[tuple[Any, ...]] = []

    async def _write_rows(self, rows: np.ndarray) -> None:
        self.events.append(("rows", rows["timestamp"].tolist()))

    def _write_rows_nowait(self, rows: np.ndarray) -> None:
        self.events.append(("rows", rows["timestamp"].tolist()))

    async def _close_interval(self) -> None:
        self.events.append(("break",))

    def _close_interval_nowait(self) -> None:
        self.events.append(("break",))

    async def _close(self) -> None:
        self.events.append(("close",))


def rows_of(*ts: int) -> list[list[float]]:
    return [[t, t / 2, t / 4] for t in ts]


async def test_output_pipe_write_close_interval_close() -> None:
    rec = Recorder()
    await rec.write(rows_of(1, 2))
    rec.write_nowait(rows_of(3))
    await rec.close_interval()
    rec.close_interval_nowait()
    await rec.close()
    assert rec.events == [("rows", [1, 2]), ("rows", [3]), ("break",), ("break",), ("close",)]
    assert rec.closed is True
    with pytest.raises(PipeError, match="closed"):
        await rec.write(rows_of(4))
    with pytest.raises(PipeError, match="closed"):
        await rec.close_interval()
    with pytest.raises(PipeError, match="closed"):
        await rec.flush_cache()
    await rec.close()  # idempotent
    assert rec.events[-1] == ("close",)
    assert rec.events.count(("close",)) == 1


async def test_close_runs_the_callback_once() -> None:
    calls = []

    async def cb() -> None:
        calls.append(1)

    rec = Recorder(close_cb=cb)
    async with rec as same:
        assert same is rec
    assert rec.closed is True
    await rec.close()
    assert calls == [1]


async def test_cache_sends_one_block_when_full() -> None:
    rec = Recorder()
    rec.enable_cache(3)
    await rec.write(rows_of(1))
    await rec.write(rows_of(2))
    assert rec.events == []
    await rec.write(rows_of(3))
    assert rec.events == [("rows", [1, 2, 3])]
    await rec.write(rows_of(4, 5, 6, 7, 8))  # more than the cache: full blocks go at once
    assert rec.events == [("rows", [1, 2, 3]), ("rows", [4, 5, 6])]
    await rec.flush_cache()
    assert rec.events[-1] == ("rows", [7, 8])
    await rec.flush_cache()  # empty cache: nothing sent
    assert len(rec.events) == 3


async def test_cache_is_flushed_by_close_interval_and_close() -> None:
    rec = Recorder()
    rec.enable_cache(10)
    await rec.write(rows_of(1, 2))
    await rec.close_interval()
    rec.write_nowait(rows_of(3))
    rec.close_interval_nowait()
    await rec.write(rows_of(4))
    await rec.close()
    assert rec.events == [
        ("rows", [1, 2]), ("break",), ("rows", [3]), ("break",), ("rows", [4]), ("close",)
    ]


@pytest.mark.parametrize("bad", [0, -3])
def test_enable_cache_refuses_a_size_below_one(bad: int) -> None:
    rec = Recorder()
    with pytest.raises(PipeError, match="at least 1"):
        rec.enable_cache(bad)


async def test_sent_cache_blocks_are_not_reused() -> None:
    rec = Recorder()
    kept = []

    async def keep(rows: np.ndarray) -> None:
        kept.append(rows)

    rec._write_rows = keep  # type: ignore[method-assign]
    rec.enable_cache(2)
    await rec.write(rows_of(1, 2, 3, 4))
    assert [k["timestamp"].tolist() for k in kept] == [[1, 2], [3, 4]]


async def test_subscribers_get_writes_breaks_and_close() -> None:
    rec = Recorder()
    sub = Recorder()
    unsubscribe = rec.subscribe(sub)
    await rec.write(rows_of(1))
    rec.write_nowait(rows_of(2))
    await rec.close_interval()
    rec.close_interval_nowait()
    unsubscribe()
    await rec.write(rows_of(3))
    rec.subscribe(sub)
    await rec.close()
    assert sub.events == [("rows", [1]), ("rows", [2]), ("break",), ("break",), ("close",)]
    assert sub.closed is True


async def test_failed_pipe_refuses_reads_and_writes() -> None:
    rec = Recorder()
    rec.fail()
    with pytest.raises(PipeError, match="failed"):
        await rec.write(rows_of(1))
    with pytest.raises(PipeError, match="failed"):
        await rec.close_interval()
    inp = InputPipe(layout=LAYOUT)
    inp.fail()
    with pytest.raises(PipeError, match="failed"):
        await inp.read()
    assert rec.events == []


async def test_check_timestamps_is_off_by_default_and_available() -> None:
    rec = Recorder()
    await rec.write(rows_of(3, 2, 1))
    strict = Recorder(check_timestamps=True)
    await strict.write(rows_of(1, 2))
    with pytest.raises(PipeError, match="strictly increasing"):
        await strict.write(rows_of(2))
    assert strict.events == [("rows", [1, 2])]
