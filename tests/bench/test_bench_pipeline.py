"""The pipeline suite measures correct pipelines: in every arrangement, every row the source
wrote arrives at the sink once and in order (each timestamp and data value checked)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

pytest.importorskip("joule.client", reason="the pipeline suite runs Joule module classes: "
                                          "pip install -e '.[test]'")

from bench import pipeline
from bench.harness import Failed

N, BLOCK = 25_007, 1_000  # 26 blocks, the last one of 7 rows


@pytest.mark.parametrize("arrangement", pipeline.ARRANGEMENTS, ids=lambda a: a.key)
def test_every_row_arrives_in_order(arrangement: pipeline.Arrangement) -> None:
    out = asyncio.run(arrangement.run(N, verify="all", block=BLOCK, timeout=90))
    assert out.rows == N  # and the sink found no row out of place (else Failed)
    if arrangement.key != "jouled":  # jouled's relay writes a break when a subscriber
        assert out.breaks == 0  # takes more than 1 s (a module still starting)


def test_a_wrong_row_fails_the_measurement(tmp_path: object) -> None:
    result = os.path.join(str(tmp_path), "sink.json")
    with open(result, "w") as f:
        json.dump({"rows": 10, "breaks": 0, "error": "row 3: timestamp 5, expected 3",
                   "t_first": 0.0, "t_mark": 0.0, "mark_rows": 0, "t_last": 1.0}, f)
    with pytest.raises(Failed, match="row 3"):
        pipeline._outcome(result, 10, 1.0)


def test_the_sink_finds_a_missing_row() -> None:
    import numpy as np

    from bench.pipeline_modules import T0, _check, template

    rows = template(BLOCK)
    rows["timestamp"] += T0
    assert _check(rows, 0, True, rows["data"]) is None
    assert _check(rows, 0, False, rows["data"]) is None
    gap = np.concatenate([rows[:10], rows[11:]])
    assert "row 10" in (_check(gap, 0, True, rows["data"]) or "")
    assert _check(gap, 0, False, rows["data"]) is not None
    assert _check(rows[1:], 0, False, rows["data"]) is not None


@pytest.mark.parametrize("arrangement", [a for a in pipeline.ARRANGEMENTS
                                         if a.key in ("procs", "jouled")],
                         ids=lambda a: a.key)
def test_a_failing_module_fails_the_run(arrangement: pipeline.Arrangement) -> None:
    with pytest.raises(Failed, match=r"status|refused"):  # the sink refuses its arguments
        asyncio.run(arrangement.run(N, verify="every", block=BLOCK, timeout=90))


def test_the_report_gives_the_ratios_and_their_targets() -> None:
    from bench.report import pipeline_table
    from bench.suites import PIPELINE, Result

    def res(key: str, runs: list[float]) -> Result:
        return Result(PIPELINE, key, {"key": key, "rows": 10, "block": 1},
                      {"rows_s": sorted(runs)[1], "gb_s": 0.0, "runs": runs, "wall_s": 1.0})

    text = pipeline_table([res("procs", [60.0, 70.0, 80.0]), res("jouled", [1.0, 2.0, 1.0]),
                           res("bare", [100.0, 90.0, 120.0]),
                           Result(PIPELINE, "one", {"key": "one"}, error="failed: why")])
    lines = text.splitlines()
    assert "| one | failed: why |" in text
    assert any(line.startswith("| shmpipe all processes / joule jouled-style | x70 | x60 | "
                               ">= 10 | yes |") for line in lines)
    assert any(line.startswith("| shmpipe all processes / bare shm pipe | x0.7 | x0.667 | "
                               ">= 0.7 | yes |") for line in lines)
    assert "one process /" not in text  # no figure, no ratio


def test_the_targets_table_judges_the_pipeline_rows() -> None:
    from bench import targets
    from bench.suites import PIPELINE, QUICK, Result

    def res(key: str, rate: float) -> Result:
        return Result(PIPELINE, key, {"key": key}, {"rows_s": rate})

    text = targets.section({PIPELINE: [res("procs", 80e6), res("jouled", 1e6),
                                       Result(PIPELINE, "bare pipe", {"key": "bare"},
                                              error="failed: why")]}, QUICK)
    assert "joule jouled-style >= 10x | 80M against 1M rows/s: x80.00 | yes |" in text
    assert "bare shm pipe >= 70% | not comparable: bare pipe failed: why |  |" in text
    assert "not measured" not in text.split("pipeline (", 1)[1]
