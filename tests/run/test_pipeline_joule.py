"""Joule's own median filter under `shmpipe run`, unchanged: as a module class in our worker
process and as the `joule-median-filter` executable, against the median computed directly."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import runmods

from shmpipe.run import Pipeline
from shmpipe.run.supervisor import Supervisor

signal_mod = pytest.importorskip("scipy.signal", reason="the reference median needs scipy "
                                 "(installed with joule: pip install -e '.[test]')")
pytest.importorskip("joule", reason="Joule's modules need joule: pip install -e '.[test]'")

N, BLOCK, EVERY, WINDOW = 2000, 100, 4, 5
EXE = os.path.join(os.path.dirname(sys.executable), "joule-median-filter")

PIPELINE = """\
[streams]
raw = "float32_2"
filtered = "float32_2"

[modules.source]
code = "runmods:noisy"
outputs = {{ output = "raw" }}
args = {{ n = {n}, block = {block}, breaks_every = {every} }}

[modules.median]
{code}
inputs = {{ input = "raw" }}
outputs = {{ output = "filtered" }}
args = {{ window = {window} }}
{place}

[modules.sink]
code = "runmods:collect"
inputs = {{ input = "filtered" }}
args = {{ path = "{out}" }}
{place}
"""


def expected() -> tuple[np.ndarray, list[int]]:
    """The median of each interval (no window across a break), trimmed as Joule trims it."""
    rows = runmods.noisy_rows(0, N)
    parts, breaks, count = [], [], 0
    bound = WINDOW // 2
    for start in range(0, N, BLOCK * EVERY):
        chunk = rows[start:start + BLOCK * EVERY]
        out = np.empty(len(chunk) - WINDOW + 1, runmods.DTYPE)
        out["data"] = signal_mod.medfilt(chunk["data"], [WINDOW, 1])[bound:-bound]
        out["timestamp"] = chunk["timestamp"][bound:-bound]
        parts.append(out)
        count += len(out)
        breaks.append(count)
    return np.concatenate(parts), breaks


@pytest.mark.parametrize(("code", "place"), [
    ('code = "joule.client.builtins.median_filter:MedianFilter"', ""),
    ('code = "joule.client.builtins.median_filter:MedianFilter"', 'process = "dsp"'),
    (f'exec = ["{EXE}"]', ""),
], ids=["class, own process", "class, shared process", "executable"])
def test_joules_median_filter_runs_unchanged(code: str, place: str, toml: Callable[[str], str],
                                            tmp_path: Any, run_id: str) -> None:
    out = f"{tmp_path}/out.npz"
    text = PIPELINE.format(n=N, block=BLOCK, every=EVERY, code=code, window=WINDOW, out=out,
                           place=place)
    p = Pipeline.load(toml(text))
    assert asyncio.run(Supervisor(p, run_id=run_id).run()) == 0
    got = np.load(out)
    want, breaks = expected()
    np.testing.assert_array_equal(got["rows"]["timestamp"], want["timestamp"])
    np.testing.assert_allclose(got["rows"]["data"], want["data"], rtol=1e-6)
    assert list(got["breaks"]) == breaks


def test_joule_class_args_are_checked_before_anything_starts(
        toml: Callable[[str], str], tmp_path: Any) -> None:
    text = PIPELINE.format(n=N, block=BLOCK, every=EVERY, window="5, widnow = 3",
                           code='code = "joule.client.builtins.median_filter:MedianFilter"',
                           out=f"{tmp_path}/x.npz", place="")
    from shmpipe.run import ConfigError

    with pytest.raises(ConfigError, match=r"modules\.median\.args: .*unrecognized arguments: "
                                          r"--widnow 3"):
        Pipeline.load(toml(text)).check()
