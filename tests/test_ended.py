"""``Pipe.ended``: a read returned the last rows of a stream whose writer closed, on every
transport (LocalPipe, shared memory, Joule's wire over an OS pipe)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import shmpipe

LAYOUT = "float32_1"


def rows(start: int, stop: int) -> np.ndarray:
    return np.column_stack([np.arange(start, stop) + 1, np.arange(start, stop)])


async def local() -> tuple[Any, Any, Callable[[], None]]:
    p = shmpipe.LocalPipe(LAYOUT)
    return p, p, lambda: None


async def shm() -> tuple[Any, Any, Callable[[], None]]:
    name = f"test-ended-{uuid.uuid4().hex[:8]}"
    out = shmpipe.open_output(name, LAYOUT)
    return out, shmpipe.open_input(name, LAYOUT), lambda: shmpipe.unlink(name)


async def stream() -> tuple[Any, Any, Callable[[], None]]:
    r, w = os.pipe()
    out = shmpipe.OutputPipe(layout=LAYOUT, writer_factory=shmpipe.writer_factory(w))
    inp = shmpipe.InputPipe(layout=LAYOUT, reader_factory=shmpipe.reader_factory(r))
    return out, inp, lambda: None


@pytest.mark.parametrize("make", [local, shm, stream], ids=["LocalPipe", "shm", "stream"])
async def test_ended_comes_with_the_read_of_the_last_rows(make: Any) -> None:
    out, inp, cleanup = await make()
    try:
        await _check(out, inp)
    finally:
        await inp.close()
        cleanup()


async def _check(out: Any, inp: Any) -> None:
    await out.write(rows(0, 4))
    data = await inp.read()
    assert len(data) == 4 and not inp.ended  # the writer may write more
    inp.consume(1)
    await out.write(rows(4, 6))
    await out.close_interval()
    await out.write(rows(6, 8))
    await out.close()
    data = await inp.read()
    assert inp.end_of_interval and not inp.ended  # stopped at the break, rows follow it
    inp.consume(len(data))
    data = await inp.read()
    if not inp.ended:  # a stream pipe may get the rows before the end of the stream:
        data = await inp.read()  # then the end is news, and the rows come again with it
    assert inp.ended and not inp.end_of_interval
    np.testing.assert_array_equal(data["timestamp"], [7, 8])
    inp.consume(1)  # a window that keeps a row: the same rows come back, still the last
    data = await inp.read()
    assert inp.ended and len(data) == 1
    inp.consume(1)
    with pytest.raises(shmpipe.EmptyPipeError):
        await inp.read()
