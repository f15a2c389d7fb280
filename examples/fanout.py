"""A composite module that copies one input to several outputs through subscriptions.

One coroutine reads the input and writes it to the first output; the other outputs are
subscribed to that one, so every row, interval break and the close reach them all. Name the
outputs as you like in the pipeline file: the module copies to every one it is given.

Run it between a 1 kHz reader and two sinks::

    python -m shmpipe run examples/fanout.toml
"""

from __future__ import annotations

import argparse
from typing import Any

import shmpipe


class Fanout(shmpipe.CompositeModule):
    """Copies ``input`` to every output."""

    async def setup(self, parsed_args: argparse.Namespace, inputs: dict[str, shmpipe.Pipe],
                    outputs: dict[str, shmpipe.Pipe]) -> list[Any]:
        if not outputs:
            raise ValueError("Fanout needs at least one output")
        return [copy(inputs["input"], list(outputs.values()))]


async def copy(source: shmpipe.Pipe, targets: list[shmpipe.Pipe]) -> None:
    """Copy ``source`` to ``targets`` until ``source`` ends (EmptyPipeError)."""
    first, *others = targets
    # Subscribe here, not in setup: if the module is restarted, the old subscriptions are
    # gone (the pipes outlive a restart; subscribing twice would copy every row twice).
    unsubscribe = [first.subscribe(pipe) for pipe in others]
    try:
        while True:
            data = await source.read()
            await first.write(data)  # and to every subscriber
            source.consume(len(data))
            if source.end_of_interval:
                await first.close_interval()  # and on every subscriber
    finally:
        for cancel in unsubscribe:
            cancel()
