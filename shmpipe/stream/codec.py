"""Joule's wire format, pure: no I/O, no asyncio.

A stream is the raw little-endian bytes of the layout's rows, back to back. An interval break
is one row whose bytes are all zero (timestamp 0, every data value 0), aligned on a row
boundary. Since that row *is* the break token, it cannot be sent as data: :func:`encode`
refuses it. :class:`Decoder` takes bytes cut anywhere (even inside a row) and gives back whole
rows and breaks in stream order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PipeError


def token(dtype: np.dtype) -> bytes:
    """The interval-break token of rows of ``dtype``: one all-zero row."""
    return bytes(dtype.itemsize)


def break_rows(rows: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``rows`` (structured) whose bytes are all zero.

    Only rows with timestamp 0 can be breaks: the timestamp column is scanned first (one
    int64 compare per row), and only those candidates are checked byte by byte."""
    candidates = np.flatnonzero(rows["timestamp"] == 0)
    if len(candidates) == 0:
        return candidates
    raw = np.ascontiguousarray(rows[candidates]).view(np.uint8)
    zero = ~raw.reshape(len(candidates), rows.dtype.itemsize).any(axis=1)
    return candidates[zero]


def encode(rows: np.ndarray) -> bytes:
    """The wire bytes of ``rows`` (a structured array of the layout's dtype).

    Raises PipeError naming the first row that is all zero (timestamp 0 and every value 0):
    on this wire such a row is the interval-break token, so it would arrive as a break.
    """
    check(rows)
    return pack(rows)


def check(rows: np.ndarray) -> None:
    """Raise PipeError naming the first row of ``rows`` that is the break token."""
    bad = break_rows(rows)
    if len(bad):
        raise PipeError(
            f"row {int(bad[0])} has timestamp 0 and all-zero data: on Joule's wire format that "
            "row is the interval-break token, so it cannot be sent as data (nothing written)"
        )


def pack(rows: np.ndarray) -> bytes:
    """The wire bytes of ``rows``, unchecked (see :func:`encode`)."""
    return np.ascontiguousarray(rows).tobytes()


def view(rows: np.ndarray) -> memoryview:
    """The wire bytes of ``rows`` as a byte view (no copy when ``rows`` is contiguous),
    unchecked: for a writer that copies what it cannot send at once."""
    return np.ascontiguousarray(rows).view(np.uint8).data


@dataclass(frozen=True)
class Segment:
    """Rows decoded in order, followed by an interval break if ``brk``."""

    rows: np.ndarray
    brk: bool


class Decoder:
    """Bytes in, whole rows and interval breaks out, whatever the cuts.

    ``feed(data)`` returns the segments completed by ``data``: the rows since the last break
    (read-only views of the bytes received, no copy) each followed by a break, then the
    remaining rows with ``brk=False``. Bytes of an incomplete row wait for the next feed;
    ``pending`` counts them (at the end of a stream they are a truncated row).
    """

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.size = self.dtype.itemsize
        self._partial = b""

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole row."""
        return len(self._partial)

    def feed(self, data: bytes) -> list[Segment]:
        buf = self._partial + bytes(data) if self._partial else bytes(data)
        whole = len(buf) - len(buf) % self.size
        self._partial = buf[whole:]
        if whole == 0:
            return []
        rows = np.frombuffer(buf, self.dtype, whole // self.size)
        breaks = break_rows(rows)
        if len(breaks) == 0:
            return [Segment(rows, False)]
        out = []
        start = 0
        for b in breaks.tolist():
            out.append(Segment(rows[start:b], True))
            start = b + 1
        if start < len(rows):
            out.append(Segment(rows[start:], False))
        return out
