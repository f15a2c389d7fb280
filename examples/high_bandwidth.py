"""A high-bandwidth reader: 1000 samples a second, cached, with interpolated timestamps.

A simulated ADC delivers a block of ``block`` samples every ``block / rate`` seconds. The
reader stamps the samples by linear interpolation over the wall-clock span of the block
(from the end of the previous block to now), sleeps until the next block is due (no busy
waiting, no drift), and lets the pipe's cache gather the small blocks into writes of
``cache`` rows: fewer, larger transfers, and a downstream module woken ``rate / cache``
times a second instead of ``rate / block``. The same cache batches single-row writes.

Run it into a composite that copies it to two sinks::

    python -m shmpipe run examples/fanout.toml
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

import numpy as np

import shmpipe


def simulated_adc(timestamps: np.ndarray, width: int, frequency: float) -> np.ndarray:
    """``width`` phases of a ``frequency`` Hz sine at ``timestamps`` (µs)."""
    seconds = timestamps[:, None] / 1e6
    phases = 2 * np.pi * np.arange(width) / width
    return np.sin(2 * np.pi * frequency * seconds + phases)


class HighBandwidthReader(shmpipe.ReaderModule):
    """Samples at ``rate`` Hz in blocks of ``block``; runs ``seconds`` (0: until stopped)."""

    def custom_args(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rate", type=float, default=1000.0, help="samples per second")
        parser.add_argument("--block", type=int, default=10, help="samples per ADC block")
        parser.add_argument("--cache", type=int, default=100, help="rows per write to the pipe")
        parser.add_argument("--seconds", type=float, default=0.0,
                            help="how long to run, rounded up to whole blocks (0: until stopped)")
        parser.add_argument("--frequency", type=float, default=50.0, help="Hz of the signal")

    async def run(self, parsed_args: argparse.Namespace, output: shmpipe.Pipe) -> None:
        rate, block = parsed_args.rate, parsed_args.block
        blocks = math.ceil(parsed_args.seconds * rate / block)  # 0: until stopped
        output.enable_cache(parsed_args.cache)  # writes are sent once `cache` rows wait

        # wall-clock microseconds that never step back (NTP may move time.time())
        epoch, t0 = time.time(), time.monotonic()

        def now_us() -> int:
            return int((epoch + time.monotonic() - t0) * 1e6)

        start = now_us()
        done = 0
        while not self.stop_requested and (blocks == 0 or done < blocks):
            done += 1
            await asyncio.sleep(max(0.0, t0 + done * block / rate - time.monotonic()))
            end = now_us()
            timestamps = np.linspace(start, end, block, endpoint=False).astype(np.int64)
            values = simulated_adc(timestamps, output.width, parsed_args.frequency)
            await output.write(np.column_stack([timestamps, values]))
            start = end
