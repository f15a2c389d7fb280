"""shmpipe and the real joule package (1.0.1) exchange rows and interval breaks over an OS
pipe, in both directions, across two processes. Blocks of 10k+ rows of 40 bytes split rows
across OS reads (an OS pipe moves at most its buffer at a time)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import shmpipe

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import interop_child  # noqa: E402

joule = pytest.importorskip("joule", reason="the joule package (1.0.1) is not installed")


def start_writer(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    fd_r, fd_w = os.pipe()
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "interop_child.py"), kind,
                          str(fd_w)], pass_fds=[fd_w])
    os.close(fd_w)
    return p, fd_r


async def collect(inp: Any, empty: type[BaseException]) -> tuple[np.ndarray, list[int]]:
    got, breaks, total = [], [], 0
    while True:
        try:
            d = await asyncio.wait_for(inp.read(), 30)
        except empty:
            break
        got.append(np.array(d))
        total += len(d)
        inp.consume(len(d))
        if inp.end_of_interval:
            breaks.append(total)
    await inp.close()
    return np.concatenate(got), breaks


async def test_joule_writer_to_shmpipe_reader() -> None:
    p, fd_r = start_writer("joule")
    inp = shmpipe.InputPipe(layout=interop_child.LAYOUT,
                            reader_factory=shmpipe.reader_factory(fd_r))
    data, breaks = await collect(inp, shmpipe.EmptyPipeError)
    want, want_breaks = interop_child.expected()
    np.testing.assert_array_equal(data, want)
    assert breaks == want_breaks
    assert p.wait(30) == 0


async def test_shmpipe_writer_to_joule_reader() -> None:
    from joule.errors import EmptyPipeError
    from joule.models.pipes import InputPipe, reader_factory

    p, fd_r = start_writer("shmpipe")
    inp = InputPipe(layout=interop_child.LAYOUT, reader_factory=reader_factory(fd_r))
    data, breaks = await collect(inp, EmptyPipeError)
    want, want_breaks = interop_child.expected()
    np.testing.assert_array_equal(data, want)
    # joule's reader reports each break once (consecutive breaks: an empty read each)
    assert breaks == want_breaks
    assert p.wait(30) == 0
