"""A sink: counts the rows and interval breaks it reads, logs the rate, can save them.

A function module (no class needed): ``inputs`` and ``outputs`` are dicts of pipes, the
pipeline file's ``args`` arrive as keyword arguments. It ends when its input ends.

    python -m shmpipe run examples/pipeline.toml
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

import shmpipe

log = logging.getLogger(__name__)


async def stats(inputs: dict[str, shmpipe.Pipe], outputs: dict[str, shmpipe.Pipe],
                label: str = "sink", every: float = 1.0, path: str = "") -> None:
    """Read ``input`` to its end; log rows/s every ``every`` seconds and a summary at the end
    (each line starts with ``label``). With ``path``, keep every row and save the rows and
    the row counts at which breaks came to ``path`` (.npz: ``rows``, ``breaks``)."""
    source = inputs["input"]
    kept: list[np.ndarray] = []
    breaks: list[int] = []
    rows = 0
    began = last_log = time.monotonic()
    rows_at_last_log = 0
    try:
        while True:
            data = await source.read()
            rows += len(data)
            if path:
                kept.append(data.copy())  # read() returns a view, valid until the next read
            source.consume(len(data))
            if source.end_of_interval:
                breaks.append(rows)
            now = time.monotonic()
            if now - last_log >= every:
                log.info("%s: %.0f rows/s, %d rows, %d interval breaks", label,
                         (rows - rows_at_last_log) / (now - last_log), rows, len(breaks))
                last_log, rows_at_last_log = now, rows
    except shmpipe.EmptyPipeError:  # the input ended: every row is read
        pass
    log.info("%s: done: %d rows, %d interval breaks in %.1f s", label, rows, len(breaks),
             time.monotonic() - began)
    if path:
        got = np.concatenate(kept) if kept else np.empty(0, source.dtype)
        tmp = path + ".tmp.npz"
        np.savez(tmp, rows=got, breaks=np.array(breaks, dtype=np.int64))
        os.replace(tmp, path)  # a reader of `path` never sees half a file
