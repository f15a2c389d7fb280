"""The wire codec, pure: rows and breaks in, bytes cut anywhere, the same rows and breaks out."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shmpipe import PipeError, compute_dtype
from shmpipe.stream import codec

LAYOUTS = ["int16_2", "float32_3", "uint8_1", "float64_1"]


def stream_of(dtype: np.dtype, items: list[Any]) -> tuple[bytes, list[Any]]:
    """Wire bytes and the expected events for items: an int n (n rows) or 'break'."""
    parts, events, ts = [], [], 1
    for item in items:
        if item == "break":
            parts.append(codec.token(dtype))
            events.append("break")
        else:
            rows = np.zeros(item, dtype)
            rows["timestamp"] = np.arange(ts, ts + item)
            rows["data"] = (rows["timestamp"] % 7)[:, None]
            ts += item
            parts.append(codec.encode(rows))
            events.extend(int(t) for t in rows["timestamp"])
    return b"".join(parts), events


def decode_all(dtype: np.dtype, data: bytes, cuts: list[int]) -> tuple[list[Any], int]:
    dec = codec.Decoder(dtype)
    events: list[Any] = []
    edges = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    for a, b in itertools.pairwise(edges):
        for seg in dec.feed(data[a:b]):
            events.extend(int(t) for t in seg.rows["timestamp"])
            if seg.brk:
                events.append("break")
    return events, dec.pending


@settings(max_examples=300, deadline=None)
@given(
    layout=st.sampled_from(LAYOUTS),
    items=st.lists(st.one_of(st.integers(1, 20), st.just("break")), max_size=12),
    data=st.data(),
)
def test_decode_of_encode_at_any_cuts_is_the_input(layout: str, items: list[Any],
                                                   data: Any) -> None:
    dtype = compute_dtype(layout)
    wire, expected = stream_of(dtype, items)
    cuts = data.draw(st.lists(st.integers(0, max(0, len(wire))), max_size=20))
    got, pending = decode_all(dtype, wire, cuts)
    assert got == expected
    assert pending == 0


def test_every_single_byte_offset() -> None:
    dtype = compute_dtype("int16_2")
    wire, expected = stream_of(dtype, [3, "break", "break", 2, "break", 1])
    for cut in range(len(wire) + 1):
        assert decode_all(dtype, wire, [cut])[0] == expected
    assert decode_all(dtype, wire, list(range(len(wire))))[0] == expected  # byte by byte


def test_a_truncated_last_row_stays_pending() -> None:
    dtype = compute_dtype("float32_2")
    wire, expected = stream_of(dtype, [4])
    got, pending = decode_all(dtype, wire[:-5], [7])
    assert got == expected[:3]
    assert pending == dtype.itemsize - 5


def test_encode_refuses_a_row_that_is_the_break_token() -> None:
    dtype = compute_dtype("float32_2")
    rows = np.zeros(5, dtype)
    rows["timestamp"] = [1, 2, 0, 4, 0]
    rows["data"][3] = 1.0
    with pytest.raises(PipeError, match="row 2 has timestamp 0 and all-zero data"):
        codec.encode(rows)
    rows["data"][2] = -0.0  # the bytes are not zero: a legal row
    assert len(codec.encode(rows[:4])) == 4 * dtype.itemsize
    rows["timestamp"][4] = 5
    ok = rows.copy()
    ok["data"][2] = 0.5
    assert len(codec.encode(ok)) == 5 * dtype.itemsize


def test_decoded_rows_are_views_of_the_bytes_received() -> None:
    dtype = compute_dtype("int16_2")
    wire, _ = stream_of(dtype, [5])
    seg = codec.Decoder(dtype).feed(wire)[0]
    assert not seg.rows.flags.owndata and not seg.rows.flags.writeable
