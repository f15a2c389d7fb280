"""A median filter that handles interval breaks.

Each output row is the median, channel by channel, of the ``window`` input rows centred on
it (``window`` odd), stamped with the timestamp of the centre row. A window never spans an
interval break: an interval of n rows gives n - window + 1 rows (none if n < window).

The filter keeps no state of its own: the rows a window still needs stay unconsumed in the
input pipe and come back at the front of the next read. At a break it consumes everything
(the rows at the end of the interval have no full window, and must not be joined to the rows
after the break), which resets it, and passes the break on. When its input has ended, the
read of the last rows says so (``source.ended``): the filter consumes them all, and the next
read raises EmptyPipeError, which ends the module.

Run it in the three-stage pipeline (sensor -> median -> sink)::

    python -m shmpipe run examples/pipeline.toml
"""

from __future__ import annotations

import argparse

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import shmpipe


class MedianFilter(shmpipe.FilterModule):
    """Centred median of ``window`` rows per channel, interval by interval."""

    def custom_args(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--window", type=int, default=5, help="rows per window (odd)")

    async def run(self, parsed_args: argparse.Namespace, inputs: dict[str, shmpipe.Pipe],
                  outputs: dict[str, shmpipe.Pipe]) -> None:
        source, sink = inputs["input"], outputs["output"]
        n = parsed_args.window
        if n < 1 or n % 2 == 0:
            raise ValueError(f"window must be an odd number of rows, got {n}")
        while not self.stop_requested:
            data = await source.read()  # EmptyPipeError once the input ended, all consumed
            if len(data) >= n:
                windows = sliding_window_view(data["data"], n, axis=0)  # no copy
                result = np.empty(len(data) - n + 1, sink.dtype)
                result["timestamp"] = data["timestamp"][n // 2: n // 2 + len(result)]
                result["data"] = np.median(windows, axis=-1)
                await sink.write(result)
            if source.end_of_interval or source.ended:
                source.consume(len(data))  # drop the tail: no window across a break or the end
                if source.end_of_interval:
                    await sink.close_interval()
            else:  # keep the last n - 1 rows: the next windows start with them
                source.consume(max(0, len(data) - n + 1))
