"""The three modules of the pipeline benchmark, written as Joule module classes.

``Source`` (a ``joule.client.ReaderModule``) writes ``--rows`` rows in blocks of ``--block``
rows, then returns; ``PassThrough`` (a ``joule.client.FilterModule``) copies its input to its
output, breaks included, until the input ends; ``Sink`` (a ``FilterModule`` with no output)
reads until its input ends, checks that every row came once and in order, and writes what it
saw and when to the JSON file ``--result``.

They are plain Joule modules: jouled would run them as executables, ``python -m
bench.pipeline_modules CLASS --pipes ... --api-socket ...`` (what ``bench/pipeline.py`` does
for the Joule rows); the shmpipe runner runs the same classes in-process on its own pipes.

Rows: timestamp ``T0 + i`` for row i; data the same template in every block (never an
all-zero row), so the sink can check a row's data from its number. The sink's timing starts at
the first read that brings the row count past ``--warm`` of the rows (the pipes fill while the
later modules start: their backlog would otherwise count as throughput) and ends at the last
row; ``time.perf_counter``, whose clock is the same in every process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from joule.client import FilterModule, ReaderModule

LAYOUT = "float32_8"
T0 = 1_700_000_000_000_000


def dtype(layout: str = LAYOUT) -> np.dtype:
    kind, _, width = layout.rpartition("_")
    return np.dtype([("timestamp", "<i8"), ("data", np.dtype(kind), (int(width),))])


def template(block: int, layout: str = LAYOUT) -> np.ndarray:
    """The block every write starts from: data values 1..97, timestamps 0..block-1."""
    rows = np.zeros(block, dtype(layout))
    width = rows.dtype["data"].shape[0]
    rows["timestamp"] = np.arange(block)
    rows["data"] = (1 + np.arange(block * width) % 97).reshape(block, width)
    return rows


class Source(ReaderModule):
    """Writes ``--rows`` rows in blocks of ``--block``, then returns (or stops early when
    asked to)."""

    def custom_args(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rows", type=int, required=True)
        parser.add_argument("--block", type=int, default=10_000)

    async def run(self, parsed_args: argparse.Namespace, output: Any) -> None:
        n, size = parsed_args.rows, parsed_args.block
        block = template(size, output.layout)
        stamps = block["timestamp"]
        first = np.arange(size, dtype=np.int64) + T0
        for start in range(0, n, size):
            if self.stop_requested:
                break
            k = min(size, n - start)
            np.add(first[:k], start, out=stamps[:k])
            await output.write(block[:k])


class PassThrough(FilterModule):
    """Copies ``inputs["input"]`` to ``outputs["output"]``, interval breaks included, until
    the input ends (its read raises EmptyPipeError, as with every Joule filter)."""

    async def run(self, parsed_args: argparse.Namespace, inputs: dict[str, Any],
                  outputs: dict[str, Any]) -> None:
        inp, out = inputs["input"], outputs["output"]
        while not self.stop_requested:
            data = await inp.read()
            await out.write(data)
            inp.consume(len(data))
            if inp.end_of_interval:
                await out.close_interval()


class Sink(FilterModule):
    """Reads ``inputs["input"]`` until it ends; writes to ``--result`` (JSON) the rows it got,
    the interval breaks it saw, the first row that was not the next one expected (or None),
    and the timing (see the module docstring).

    ``--verify ends`` (the benchmark) checks the first and last timestamp of every read (the
    pipes move contiguous runs of rows: a lost, repeated or reordered run shows there) and
    sums a data column, as the throughput consumers do; ``--verify all`` checks every
    timestamp and every data value.
    """

    def custom_args(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--result", required=True)
        parser.add_argument("--rows", type=int, required=True)
        parser.add_argument("--block", type=int, default=10_000)
        parser.add_argument("--verify", choices=("ends", "all"), default="ends")
        parser.add_argument("--warm", type=float, default=0.2)

    async def run(self, parsed_args: argparse.Namespace, inputs: dict[str, Any],
                  outputs: dict[str, Any]) -> None:
        a = parsed_args
        inp = inputs["input"]
        every = a.verify == "all"
        data_template = template(a.block, inp.layout)["data"]
        warm_rows = int(a.warm * a.rows)
        got = breaks = 0
        error: str | None = None
        t_first = t_mark = t_last = 0.0
        mark_rows = 0
        clock = time.perf_counter
        try:
            while not self.stop_requested:
                data = await inp.read()
                n = len(data)
                if n:
                    now = clock()
                    if not got:
                        t_first = now
                    if not mark_rows and got + n > warm_rows:
                        t_mark, mark_rows = now, got + n
                    t_last = now
                    if error is None:
                        error = _check(data, got, every, data_template)
                    data["data"][:, 0].sum()
                    got += n
                    inp.consume(n)
                if inp.end_of_interval:
                    breaks += 1
        finally:
            if error is None and got != a.rows:
                error = f"{got} rows arrived, {a.rows} were sent"
            with open(a.result, "w") as f:
                json.dump({"rows": got, "breaks": breaks, "error": error, "t_first": t_first,
                           "t_mark": t_mark, "mark_rows": mark_rows, "t_last": t_last}, f)


def _check(data: np.ndarray, start: int, every: bool, data_template: np.ndarray) -> str | None:
    """Why ``data`` is not rows ``start..`` of the stream, or None."""
    n = len(data)
    ts = data["timestamp"]
    if every:
        want = np.arange(start, start + n, dtype=np.int64) + T0
        if not np.array_equal(ts, want):
            i = int(np.argmax(ts != want))
            return f"row {start + i}: timestamp {int(ts[i])}, expected {int(want[i])}"
        expected = data_template[np.arange(start, start + n) % len(data_template)]
        if not np.array_equal(data["data"], expected):
            i = int(np.argmax(np.any(data["data"] != expected, axis=1)))
            return f"row {start + i}: data {data['data'][i].tolist()} is not the row sent"
        return None
    if ts[0] != T0 + start or ts[-1] != T0 + start + n - 1:
        return (f"rows {start}..{start + n - 1}: timestamps {int(ts[0])}..{int(ts[-1])}, "
                f"expected {T0 + start}..{T0 + start + n - 1}")
    return None


CLASSES = {"Source": Source, "PassThrough": PassThrough, "Sink": Sink}


def main(argv: list[str]) -> None:
    """``python -m bench.pipeline_modules CLASS [joule's arguments]``: the module as jouled
    starts it (the class name first, then what jouled appends)."""
    if not argv or argv[0] not in CLASSES:
        raise SystemExit(f"usage: python -m bench.pipeline_modules {{{','.join(CLASSES)}}} "
                         "--pipes ... --api-socket ... [--key value ...]")
    sys.argv[1:] = argv[1:]  # joule parses sys.argv
    CLASSES[argv[0]]().start()


if __name__ == "__main__":
    main(sys.argv[1:])
