"""An intermittent reader: when a reading fails, log it, close the interval, carry on.

A sensor that stops answering now and then must not let downstream modules join the rows on
either side of the gap: a median, a derivative or a data store would treat them as adjacent
samples. Closing the interval tells every reader "the data is not continuous here".

Run it in the three-stage pipeline (sensor -> median -> sink)::

    python -m shmpipe run examples/pipeline.toml
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import numpy as np

import shmpipe

log = logging.getLogger(__name__)


class SensorError(Exception):
    """A reading failed."""


class SimulatedSensor:
    """A sensor of ``width`` channels around 20.0 whose readings fail at random, with
    probability ``error_rate``. Seeded: the same seed gives the same values and failures."""

    def __init__(self, width: int, error_rate: float = 0.05, seed: int | None = None) -> None:
        self.width = width
        self.error_rate = error_rate
        self._rng = np.random.default_rng(seed)

    def read(self) -> np.ndarray:
        """One reading: ``width`` values. Raises SensorError when the reading fails."""
        if self._rng.random() < self.error_rate:
            raise SensorError("no answer from the sensor")
        return 20.0 + self._rng.standard_normal(self.width)


class IntermittentReader(shmpipe.ReaderModule):
    """Writes one row per reading, every ``period`` seconds, stamped with the time it was
    taken; after a failed reading the interval is closed (once for a run of failures: no
    empty intervals). Takes ``readings`` readings (0: until asked to stop)."""

    def custom_args(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--readings", type=int, default=0,
                            help="readings to take, failed ones included (0: until stopped)")
        parser.add_argument("--period", type=float, default=0.1, help="seconds between readings")
        parser.add_argument("--error_rate", type=float, default=0.05,
                            help="probability that a reading fails")
        parser.add_argument("--seed", type=int, default=None, help="seed of the simulation")

    async def run(self, parsed_args: argparse.Namespace, output: shmpipe.Pipe) -> None:
        sensor = SimulatedSensor(output.width, parsed_args.error_rate, parsed_args.seed)
        endless = parsed_args.readings == 0
        start = time.monotonic()
        taken = 0
        rows_in_interval = 0
        while not self.stop_requested and (endless or taken < parsed_args.readings):
            try:
                values = sensor.read()
            except SensorError as e:
                log.error("sensor: reading %d failed: %s", taken, e)
                if rows_in_interval:
                    await output.close_interval()  # no row after this one is adjacent to it
                    rows_in_interval = 0
            else:
                await output.write([[time.time_ns() // 1000, *values]])
                rows_in_interval += 1
            taken += 1
            # sleep until the next reading is due (not `period` after this one: no drift)
            await asyncio.sleep(max(0.0, start + taken * parsed_args.period - time.monotonic()))
