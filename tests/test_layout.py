"""Layout strings, dtypes, and turning user data into rows (shmpipe/layout.py)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shmpipe
from shmpipe.layout import MAX_WIDTH, check_increasing, coerce, flatten, layout_width

TYPES = {
    "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "uint8": "<u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
    "float32": "<f4", "float64": "<f8",
}
WIDTHS = [1, 2, 3, 8, 250, MAX_WIDTH]


# ----------------------------------------------------------------------------- compute_dtype
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("type_name", sorted(TYPES))
def test_compute_dtype_every_type_and_width(type_name: str, width: int) -> None:
    layout = f"{type_name}_{width}"
    dtype = shmpipe.compute_dtype(layout)
    assert dtype == np.dtype([("timestamp", "<i8"), ("data", TYPES[type_name], (width,))])
    assert dtype.names == ("timestamp", "data")
    assert dtype["timestamp"] == np.dtype("<i8")
    assert dtype["data"].shape == (width,)
    assert dtype["data"].base == np.dtype(TYPES[type_name])
    assert dtype.itemsize == 8 + width * np.dtype(TYPES[type_name]).itemsize
    assert layout_width(layout) == width


def test_width_one_keeps_a_data_column() -> None:
    rows = np.zeros(3, shmpipe.compute_dtype("float32_1"))
    assert rows["data"].shape == (3, 1)


def test_compute_dtype_distinguishes_layouts() -> None:
    assert shmpipe.compute_dtype("int16_4") != shmpipe.compute_dtype("int16_5")
    assert shmpipe.compute_dtype("int16_4") != shmpipe.compute_dtype("uint16_4")


BAD_LAYOUTS = [
    "float32",          # no width
    "float31_2",        # unknown type
    "float32_0",        # zero width
    "float32_x",        # width not a number
    "",                 # empty
    None,               # not a string
    "FLOAT32_2",        # case matters
    "float32_-1",
    f"float32_{MAX_WIDTH + 1}",
    "float16_2",
    "int_2",
    "uint128_2",
    "float32__2",
    "float32_2_3",
    "_2",
    " float32_2",
    "float32_2 ",
    "float32_2\n",
    "float32_\uff12",   # a non-ASCII digit
    32,
    b"float32_2",
    ["float32_2"],      # unhashable
]


@pytest.mark.parametrize("bad", BAD_LAYOUTS, ids=repr)
def test_bad_layout_raises_value_error_naming_it(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        shmpipe.compute_dtype(bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert "layout" in message
    assert str(bad) in message
    with pytest.raises(ValueError, match="layout"):
        layout_width(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["float32", "float31_2", "float32_0", "", "FLOAT32_2"])
def test_pipes_refuse_a_bad_layout(bad: str) -> None:
    with pytest.raises(ValueError, match="layout"):
        shmpipe.LocalPipe(bad)
    pipe = shmpipe.Pipe(layout=bad)  # a bare Pipe constructs, as Joule's does ...
    with pytest.raises(ValueError, match="layout"):
        _ = pipe.dtype  # ... and names the layout when the dtype is first used


# ----------------------------------------------------------------------------- coerce
DTYPE = shmpipe.compute_dtype("float32_2")


def test_coerce_returns_a_structured_array_as_is() -> None:
    rows = np.zeros(4, DTYPE)
    assert coerce(rows, DTYPE) is rows


@pytest.mark.parametrize(
    "data",
    [
        [[1, 0.5, 1.5], [2, 2.5, 3.5]],
        ((1, 0.5, 1.5), (2, 2.5, 3.5)),
        np.array([[1, 0.5, 1.5], [2, 2.5, 3.5]]),
        np.array([[1, 0.5, 1.5], [2, 2.5, 3.5]], dtype=np.float32),
    ],
)
def test_coerce_converts_2d_data(data: object) -> None:
    rows = coerce(data, DTYPE)
    assert rows is not None
    assert rows.dtype == DTYPE
    assert rows["timestamp"].tolist() == [1, 2]
    assert rows["data"].tolist() == [[0.5, 1.5], [2.5, 3.5]]


def test_coerce_integer_columns() -> None:
    dtype = shmpipe.compute_dtype("int64_1")
    big = 2**62 + 1  # not representable in float64: must stay exact
    rows = coerce(np.array([[big, big - 1]], dtype=np.int64), dtype)
    assert rows is not None
    assert int(rows["timestamp"][0]) == big
    assert int(rows["data"][0, 0]) == big - 1


@pytest.mark.parametrize(
    "empty", [[], (), np.empty((0, 3)), np.empty(0), np.empty(0, DTYPE)], ids=repr
)
def test_coerce_empty_is_none_and_logged(empty: object, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="shmpipe"):
        assert coerce(empty, DTYPE) is None
    assert any(
        r.levelno == logging.INFO and "no data" in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (np.zeros((2, 2)), "got 2 columns"),
        (np.zeros((2, 4)), "got 4 columns"),
        (np.zeros(2, shmpipe.compute_dtype("float32_3")), "structured array of dtype"),
        (np.zeros(2, shmpipe.compute_dtype("float64_2")), "structured array of dtype"),
        (np.zeros((2, 2), DTYPE), "structured array of shape"),
        (np.arange(3.0), "1-D"),
        (np.zeros((2, 3, 1)), "3-D"),
        (np.array(5.0), "0-D"),
        ("1 2 3", "str"),
        (None, "None"),
        (7, "int"),
        ({"timestamp": 1}, "dict"),
        (np.array([["a", "b", "c"]]), "<U1"),
        (np.array([[1, 2, object()]], dtype=object), "object"),
        (np.array([[True, False, True]]), "bool"),
        (np.array([[1 + 0j, 2, 3]]), "complex"),
        ([[1, 2, 3], [4, 5]], "not rectangular"),
        ([[None, 1, 2]], "object"),
        ([["a", 1, 2]], "<U"),
        ([[np.nan, 1, 2]], "nan"),
        ([[1, 1, 2], [np.inf, 1, 2]], "row 1"),
        ([[1, 1, 2], [-np.inf, 1, 2]], "NaN or infinite"),
        ([[1e19, 1, 2]], "int64"),
        (np.array([[2**63 + 5, 1, 2]], dtype=np.uint64), "int64"),
    ],
    ids=repr,
)
def test_coerce_refuses_bad_input_saying_what_was_expected(data: object, says: str) -> None:
    with pytest.raises(shmpipe.PipeError) as info:
        coerce(data, DTYPE)
    message = str(info.value)
    assert says in message
    assert "timestamp" in message or "expected" in message


def test_coerce_message_names_expected_columns() -> None:
    with pytest.raises(shmpipe.PipeError, match=r"expected .*3 columns"):
        coerce(np.zeros((1, 5)), DTYPE)


# ----------------------------------------------------------------------------- float timestamps
# A float timestamp column is written only when every value is a whole number the float type
# holds exactly; anything else would be written silently changed.
F64 = shmpipe.compute_dtype("float64_2")
NOW = 1_700_000_000_000_000  # microseconds, 2023


def hstack_rows(ts: np.ndarray) -> np.ndarray:
    """The common user idiom: int64 timestamps stacked in front of float64 data."""
    data = np.column_stack([np.arange(len(ts)) + 0.5, np.arange(len(ts)) * 2.0])
    return np.hstack([ts[:, None].astype(np.float64), data])


def test_float32_microsecond_timestamp_is_refused() -> None:
    data = np.array([[1.7e15, 1.0, 2.0]], dtype=np.float32)  # float32 holds 1699999998017536
    with pytest.raises(shmpipe.PipeError) as info:
        coerce(data, DTYPE)
    message = str(info.value)
    assert "row 0" in message
    assert "1699999998017536" in message
    assert "float32 cannot hold microsecond timestamps exactly" in message
    assert "float64" in message and "int64" in message


@pytest.mark.parametrize(
    "data",
    [
        np.array([[1000.0, 1, 2], [1000.5, 1, 2], [1002.0, 1, 2]]),
        [[1000, 1.0, 2.0], [1000.5, 1.0, 2.0], [1002, 1.0, 2.0]],
        np.array([[1000.0, 1, 2], [1000.5, 1, 2], [1002.0, 1, 2]], dtype=np.float32),
    ],
    ids=["float64", "list", "float32"],
)
def test_fractional_timestamp_is_refused_naming_the_row(data: object) -> None:
    with pytest.raises(shmpipe.PipeError) as info:
        coerce(data, DTYPE)
    message = str(info.value)
    assert "row 1" in message
    assert "1000.5" in message
    assert "expected" in message and "whole" in message


def test_integral_float64_timestamps_are_accepted_exactly() -> None:
    ts = NOW + np.arange(1000, dtype=np.int64) * 1001 + 1  # odd values: no rounding slack
    arr = hstack_rows(ts)
    assert arr.dtype == np.float64
    rows = coerce(arr, F64)
    assert rows is not None
    assert np.array_equal(rows["timestamp"], ts)
    assert np.array_equal(rows["data"], arr[:, 1:])


def test_list_with_integer_microsecond_timestamp_is_accepted() -> None:
    rows = coerce([[1_700_000_000_000_000, 1.0, 2.0], [1_700_000_000_000_001, 3.0, 4.0]], DTYPE)
    assert rows is not None
    assert rows["timestamp"].tolist() == [1_700_000_000_000_000, 1_700_000_000_000_001]


@pytest.mark.parametrize("t", [2**53, -(2**53), 2**24 + 1, 0, -1])
def test_float64_timestamps_up_to_2_pow_53_are_accepted(t: int) -> None:
    rows = coerce(np.array([[float(t), 1, 2]]), DTYPE)
    assert rows is not None
    assert int(rows["timestamp"][0]) == t


@pytest.mark.parametrize("t", [2**53 + 2, -(2**53) - 2, 2**62])
def test_float64_timestamps_beyond_2_pow_53_are_refused(t: int) -> None:
    assert float(t) == t  # representable, but float64 cannot tell it from its neighbours
    with pytest.raises(shmpipe.PipeError) as info:
        coerce(np.array([[1.0, 1, 2], [float(t), 1, 2]]), DTYPE)
    message = str(info.value)
    assert "row 1" in message
    assert str(t) in message
    assert "2**53" in message


@pytest.mark.parametrize("t", [2**24, -(2**24), 1000])
def test_float32_timestamps_up_to_2_pow_24_are_accepted(t: int) -> None:
    rows = coerce(np.array([[t, 1, 2]], dtype=np.float32), DTYPE)
    assert rows is not None
    assert int(rows["timestamp"][0]) == t


@pytest.mark.parametrize("t", [2**24 + 2, -(2**24) - 2, 2**40])
def test_float32_timestamps_beyond_2_pow_24_are_refused(t: int) -> None:
    with pytest.raises(shmpipe.PipeError, match=r"row 0: float32 cannot hold"):
        coerce(np.array([[t, 1, 2]], dtype=np.float32), DTYPE)


def test_float16_timestamps_beyond_2_pow_11_are_refused() -> None:
    assert coerce(np.array([[2048, 1, 2]], dtype=np.float16), DTYPE) is not None
    with pytest.raises(shmpipe.PipeError, match=r"row 1: float16 cannot hold"):
        coerce(np.array([[2048, 1, 2], [2050, 1, 2]], dtype=np.float16), DTYPE)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({6: 1000.5, 8: 1000.25}, "row 6"),
        ({5: 2.0**60, 7: np.nan}, "row 5"),
        ({3: 7.5, 5: np.nan}, "row 3"),  # the first bad row, whatever the later ones are
        ({4: np.inf, 6: 1e19}, "row 4"),
        ({4: 1e19, 6: np.inf}, "row 4"),
        ({9: -0.5}, "row 9"),
    ],
)
def test_first_bad_timestamp_row_is_named(bad: dict[int, float], says: str) -> None:
    arr = hstack_rows(np.arange(10, dtype=np.int64))
    for i, t in bad.items():
        arr[i, 0] = t
    with pytest.raises(shmpipe.PipeError) as info:
        coerce(arr, DTYPE)
    message = str(info.value)
    assert re.search(rf"{says}\b", message)
    assert all(f"row {i}" not in message for i in bad if f"row {i}" != says)


def test_refused_timestamps_write_nothing() -> None:
    pipe = shmpipe.LocalPipe("float64_2")
    good = hstack_rows(NOW + np.arange(3, dtype=np.int64))
    pipe.write_nowait(good)
    bad = hstack_rows(NOW + 10 + np.arange(3, dtype=np.int64))
    bad[2, 0] += 0.5
    with pytest.raises(shmpipe.PipeError, match="row 2"):
        pipe.write_nowait(bad)
    with pytest.raises(shmpipe.PipeError, match="row 0"):
        pipe.write_nowait(np.array([[1.7e15 + 100, 1, 2]], dtype=np.float32))
    rows = pipe.read_nowait()
    assert rows["timestamp"].tolist() == (NOW + np.arange(3)).tolist()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-(2**53), 2**53), min_size=1, max_size=40),
    st.sampled_from([0, 2**53, -(2**53), NOW]),
)
def test_integral_float64_timestamps_round_trip_exactly(values: list[int], edge: int) -> None:
    ts = np.array([*values, edge], dtype=np.int64)
    rows = coerce(hstack_rows(ts), F64)
    assert rows is not None
    assert rows["timestamp"].tolist() == ts.tolist()
    assert np.array_equal(rows["data"], hstack_rows(ts)[:, 1:])


# ----------------------------------------------------------------------------- helpers
def test_check_increasing_accepts_strictly_increasing() -> None:
    check_increasing(np.array([1, 2, 5]), None)
    check_increasing(np.array([1, 2, 5]), 0)
    check_increasing(np.array([7]), 6)


@pytest.mark.parametrize(
    ("ts", "last", "says"),
    [
        ([1, 2, 2], None, "row 2 has 2"),
        ([1, 3, 2, 1], None, "row 2 has 2"),
        ([5, 4], None, "row 1 has 4"),
        ([3, 4], 3, "row 0 has 3"),
        ([1], 3, "row 0 has 1"),
    ],
)
def test_check_increasing_names_first_offending_row(
    ts: list[int], last: int | None, says: str
) -> None:
    with pytest.raises(shmpipe.PipeError, match=says):
        check_increasing(np.array(ts, dtype=np.int64), last)


@pytest.mark.parametrize("layout", ["float32_3", "int16_2", "uint64_1", "float64_1"])
def test_flatten(layout: str) -> None:
    rows = np.zeros(3, shmpipe.compute_dtype(layout))
    rows["timestamp"] = [10, 20, 30]
    rows["data"] = np.arange(rows["data"].size).reshape(rows["data"].shape)
    flat = flatten(rows)
    assert flat.shape == (3, rows["data"].shape[1] + 1)
    assert flat[:, 0].tolist() == [10, 20, 30]
    assert np.array_equal(flat[:, 1:], rows["data"])
    flat[0, 0] = 99  # a copy: the rows are untouched
    assert rows["timestamp"][0] == 10
