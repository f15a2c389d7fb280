"""Our own stand-ins for the parts of Joule's ``tests/helpers.py`` its pipe tests use."""

from __future__ import annotations

import asyncio
import unittest
from collections.abc import Iterator
from typing import Any

import numpy as np

# Joule's create_data default start: 2016-10-11 02:14:46 UTC, in microseconds.
DEFAULT_START = 1476152086000000

_KIND_CODES = {"int": "i", "uint": "u", "float": "f"}


def layout_dtype(layout: str) -> np.dtype:
    """The structured dtype Joule's test helpers use for ``layout`` (e.g. ``"int16_2"``).

    One int64 ``timestamp`` field and a ``data`` field of ``count`` values; ValueError
    (mentioning "layout") for a malformed layout.
    """
    kind_bits, _, count_text = layout.partition("_")
    kind = kind_bits.rstrip("0123456789")
    bits_text = kind_bits[len(kind) :]
    if (
        kind not in _KIND_CODES
        or not bits_text.isdigit()
        or int(bits_text) % 8
        or not count_text.isdigit()
        or int(count_text) < 1
    ):
        raise ValueError(f"bad layout {layout!r}")
    element = f"<{_KIND_CODES[kind]}{int(bits_text) // 8}"
    return np.dtype([("timestamp", "<i8"), ("data", element, (int(count_text),))])


def create_data(
    layout: str, length: int = 100, step: int = 1000, start: int = DEFAULT_START
) -> np.ndarray:
    """``length`` rows of random values for ``layout``, timestamps ``start, start+step, ...``.

    Floats are in [0, 1), unsigned integers in [0, 100), signed integers in [-50, 50).
    """
    dtype = layout_dtype(layout)
    element, (count,) = dtype["data"].base, dtype["data"].shape
    rng = np.random.default_rng()
    if element.kind == "f":
        values: np.ndarray = rng.random((length, count))
    elif element.kind == "u":
        values = rng.integers(0, 100, size=(length, count))
    else:
        values = rng.integers(-50, 50, size=(length, count))
    rows = np.zeros(length, dtype=dtype)
    rows["timestamp"] = start + step * np.arange(length, dtype=np.int64)
    rows["data"] = values
    return rows


def to_chunks(data: np.ndarray, chunk_size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``data`` of ``chunk_size`` rows (the last one may be shorter)."""
    for first in range(0, len(data), chunk_size):
        yield data[first : first + chunk_size]


class AsyncTestCase(unittest.TestCase):
    """A TestCase that installs a new event loop as the current loop for each test.

    The loop is reachable as ``self.loop``; at teardown its ready callbacks run once, then
    it is closed and the current loop is unset.
    """

    loop: asyncio.AbstractEventLoop

    def setUp(self) -> None:
        super().setUp()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

    def tearDown(self) -> None:
        try:
            if not self.loop.is_closed():
                self.loop.call_soon(self.loop.stop)
                self.loop.run_forever()
                self.loop.close()
        finally:
            asyncio.set_event_loop(None)
            super().tearDown()


def ic(*args: Any) -> Any:
    """No-op stand-in for ``icecream.ic``: returns its argument(s) and prints nothing."""
    if not args:
        return None
    return args[0] if len(args) == 1 else args
