"""Layout strings and turning user data into rows.

A layout is Joule's ``<type>_<width>`` (``float32_8``, ``int16_2``...). Its rows are the
structured dtype ``[('timestamp', '<i8'), ('data', <type>, (width,))]``. :func:`coerce` is the one
place where user data becomes rows or is refused with a :class:`PipeError`.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import numpy as np

from .errors import PipeError

log = logging.getLogger("shmpipe")

_TYPES = {
    "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
    "uint8": "<u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
    "float32": "<f4", "float64": "<f8",
}
_LAYOUT_RE = re.compile(r"^([a-z]+[0-9]+)_([0-9]+)$")
MAX_WIDTH = 1 << 16


def compute_dtype(layout: str) -> np.dtype:
    """Return the row dtype of ``layout``.

    Raises ValueError (whose message contains "layout" and the bad string) when ``layout`` is
    not ``<type>_<width>`` with a known type and ``1 <= width <= 65536``.
    """
    if not isinstance(layout, str):
        raise ValueError(f"bad layout: [{layout!r}], expected a string like 'float32_8'")
    return _compute_dtype(layout)


@functools.lru_cache(maxsize=256)
def _compute_dtype(layout: str) -> np.dtype:
    m = _LAYOUT_RE.fullmatch(layout)
    if m is None or m.group(1) not in _TYPES:
        raise ValueError(
            f"bad layout: [{layout}], expected <type>_<width> with type one of "
            f"{', '.join(_TYPES)} (e.g. 'float32_8')"
        )
    width = int(m.group(2))
    if not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"bad layout: [{layout}], width must be 1..{MAX_WIDTH}")
    return np.dtype([("timestamp", "<i8"), ("data", _TYPES[m.group(1)], (width,))])


def layout_width(layout: str) -> int:
    """Number of data columns of ``layout`` (validates it like :func:`compute_dtype`)."""
    return int(compute_dtype(layout)["data"].shape[0])


def _describe(data: Any) -> str:
    if isinstance(data, np.ndarray):
        return f"an array of dtype {data.dtype} and shape {data.shape}"
    return f"{type(data).__name__} {data!r}"[:200]


def coerce(data: Any, dtype: np.dtype) -> np.ndarray | None:
    """Turn ``data`` into a 1-D structured array of ``dtype`` (see :func:`validate`).

    A structured array of ``dtype`` is returned as is (no copy); a 2-D input is converted into
    a new array (one copy). Returns None for an empty input. Raises PipeError like
    :func:`validate`.
    """
    arr = validate(data, dtype)
    if arr is None or arr.dtype.names is not None:
        return arr
    rows = np.empty(len(arr), dtype)
    fill(rows, arr)
    return rows


def fill(rows: np.ndarray, arr: np.ndarray) -> None:
    """Copy a 2-D array checked by :func:`validate` into structured ``rows`` (same length)."""
    rows["timestamp"] = arr[:, 0]
    rows["data"] = arr[:, 1:]


def validate(data: Any, dtype: np.dtype) -> np.ndarray | None:
    """Check ``data`` as rows of ``dtype`` without converting it.

    Returns a structured array of exactly ``dtype``, or a numeric 2-D array with timestamps in
    column 0 and ``width`` data columns (a nested list becomes such an array), ready for
    :func:`fill`. Returns None for an empty input (a no-op, logged at INFO). Raises PipeError
    naming what was expected and what came for anything else: wrong width or structured dtype,
    0-D, 1-D unstructured or 3-D input, strings, None, objects, and float timestamps that are not
    whole numbers the float type holds exactly (see :func:`_check_float_timestamps`).
    """
    if isinstance(data, np.ndarray) and data.dtype == dtype and data.ndim == 1:
        if len(data) == 0:
            log.info("pipe write called with no data")
            return None
        return data  # the common case, kept cheap
    width = int(dtype["data"].shape[0])
    expected = (
        f"expected a structured array of dtype {dtype} or a 2-D array with "
        f"{width + 1} columns (timestamp then {width} data)"
    )
    if isinstance(data, np.ndarray):
        arr = data
    elif isinstance(data, (list, tuple)):
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as e:
            raise PipeError(f"{expected}, got a list that is not rectangular ({e})") from None
    else:
        raise PipeError(f"{expected}, got {_describe(data)}")

    if arr.dtype.names is not None:
        if arr.dtype != dtype:
            raise PipeError(f"{expected}, got a structured array of dtype {arr.dtype}")
        if arr.ndim != 1:
            raise PipeError(f"{expected}, got a structured array of shape {arr.shape}")
        if len(arr) == 0:
            log.info("pipe write called with no data")
            return None
        return arr

    if arr.size == 0 and arr.ndim in (1, 2):  # [], np.empty((0, 3)), np.array([[]])
        log.info("pipe write called with no data")
        return None
    if arr.dtype.kind not in "iuf":
        raise PipeError(f"{expected}, got {_describe(arr)}")
    if arr.ndim != 2:
        raise PipeError(f"{expected}, got {arr.ndim}-D data of shape {arr.shape}")
    if arr.shape[1] != width + 1:
        raise PipeError(
            f"{expected}, got {arr.shape[1]} columns (shape {arr.shape}); "
            f"the pipe's width is {width}"
        )
    ts = arr[:, 0]
    if arr.dtype.kind == "f":
        _check_float_timestamps(ts, dtype, expected)
    elif arr.dtype == np.uint64 and (ts > np.iinfo(np.int64).max).any():
        i = int(np.argmax(ts > np.iinfo(np.int64).max))
        raise PipeError(f"timestamps must fit in int64 microseconds, got {ts[i]} at row {i}")
    return arr


def _check_float_timestamps(ts: np.ndarray, dtype: np.dtype, expected: str) -> None:
    """Raise PipeError naming the first row of float timestamps ``ts`` not written exactly.

    A float timestamp is written as int64 only when it is a whole number no larger in magnitude
    than ``2**(mantissa bits + 1)`` (2**53 for float64, 2**24 for float32, 2**11 for float16):
    every integer up to there is held exactly, beyond it neighbouring microseconds share one
    float, so the value may already differ from the one meant (float32 of 1.7e15 holds
    1699999998017536). NaN and infinity are refused too. One vectorised pass over the column;
    the first bad row is looked for only when there is one.
    """
    bits = np.finfo(ts.dtype).nmant + 1
    lo, hi = (-(2**bits), 2**bits) if bits < 63 else (-(2**63), 2**63 - 1)  # longdouble: int64
    ts = np.ascontiguousarray(ts)  # column 0 is strided: one copy makes the passes below cheaper
    ok = (ts >= lo) & (ts <= hi) & (np.floor(ts) == ts)  # NaN compares False: refused too
    if ok.all():
        return
    i = int(np.argmin(ok))
    t = ts[i]
    if not np.isfinite(t):
        raise PipeError(f"{expected}, got a timestamp of {t} at row {i} (NaN or infinite)")
    whole = int(t)  # what the int64 cast would write (truncated towards zero)
    if not -(2**63) <= whole < 2**63:
        raise PipeError(f"timestamps must fit in int64 microseconds, got {t} at row {i}")
    if not lo <= whole <= hi:  # only for types narrower than int64; t is whole out here
        name = ts.dtype.name
        got = (
            f"expected timestamps that {name} holds exactly (whole numbers up to 2**{bits} = "
            f"{hi} in magnitude), got {whole} at row {i}"
        )
        if bits < 53:
            raise PipeError(
                f"{got}: {name} cannot hold microsecond timestamps exactly (beyond 2**{bits} it "
                f"rounds them); pass a float64 array, or int64 timestamps in a structured array "
                f"of dtype {dtype}"
            )
        raise PipeError(
            f"{got}: beyond 2**{bits} {name} cannot tell neighbouring microseconds apart, so "
            f"this may not be the timestamp meant; pass int64 timestamps in a structured array "
            f"of dtype {dtype}"
        )
    raise PipeError(
        f"expected whole-microsecond timestamps, got {t} at row {i} "
        f"(it would be written as {whole})"
    )


def check_increasing(ts: np.ndarray, last: int | None) -> None:
    """Raise PipeError unless ``ts`` is strictly increasing and above ``last``.

    The message names the first offending row of the block.
    """
    if last is not None and ts[0] <= last:
        raise PipeError(
            f"timestamps must be strictly increasing: row 0 has {int(ts[0])}, "
            f"not after the last row already written ({last})"
        )
    if len(ts) > 1:
        bad = np.diff(ts) <= 0
        if bad.any():
            i = int(np.argmax(bad)) + 1
            raise PipeError(
                f"timestamps must be strictly increasing: row {i} has {int(ts[i])}, "
                f"after {int(ts[i - 1])} at row {i - 1}"
            )


def copy_rows(dst: np.ndarray, src: np.ndarray) -> None:
    """Copy structured ``src`` into ``dst`` (same dtype and length) at memcpy speed.

    numpy copies structured arrays field by field; contiguous rows are copied as bytes.
    """
    if dst.flags.c_contiguous and src.flags.c_contiguous:
        np.copyto(dst.view(np.uint8), src.view(np.uint8))
    else:
        np.copyto(dst, src)


SMALL_CLONE = 16 << 10  # bytes: below, a bytes round trip beats numpy's view checks


def clone(rows: np.ndarray) -> np.ndarray:
    """A writable copy of structured ``rows`` (see :func:`copy_rows`)."""
    if rows.nbytes <= SMALL_CLONE:
        return np.frombuffer(bytearray(rows.tobytes()), rows.dtype)
    out = np.empty(len(rows), rows.dtype)
    copy_rows(out, rows)
    return out


def concat(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Structured arrays end to end in a new array (see :func:`copy_rows`)."""
    out = np.empty(sum(len(p) for p in parts), dtype)
    i = 0
    for p in parts:
        copy_rows(out[i : i + len(p)], p)
        i += len(p)
    return out


def flatten(rows: np.ndarray) -> np.ndarray:
    """Return a new 2-D array: timestamps in column 0, then the data columns (a copy)."""
    data = rows["data"]
    out = np.empty((len(rows), data.shape[1] + 1), np.result_type(np.int64, data.dtype))
    out[:, 0] = rows["timestamp"]
    out[:, 1:] = data
    return out
