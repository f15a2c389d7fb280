"""A writer process for the interop tests: ``python interop_child.py joule|shmpipe FD``.

Writes PLAN (blocks of rows and interval breaks) to the OS-pipe descriptor FD with joule's
or shmpipe's stream OutputPipe, then closes it.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np

LAYOUT = "float32_8"
PLAN: list[int | str] = [10000, 3, "break", 7000, "break", "break", 1, 25000, "break", 12]


def rows(start: int, n: int) -> np.ndarray:
    dtype = np.dtype([("timestamp", "<i8"), ("data", "<f4", (8,))])
    r = np.zeros(n, dtype)
    r["timestamp"] = 1_700_000_000_000_000 + np.arange(start, start + n)
    r["data"] = (np.arange(start, start + n) % 1000)[:, None] + np.arange(8)
    return r


def expected() -> tuple[np.ndarray, list[int]]:
    """All rows of PLAN, and the row counts before each break."""
    total, breaks = 0, []
    for item in PLAN:
        if item == "break":
            breaks.append(total)
        else:
            total += int(item)
    return rows(0, total), breaks


async def main(kind: str, fd: int) -> None:
    if kind == "joule":
        from joule.models.pipes import OutputPipe, writer_factory
    else:
        from shmpipe import OutputPipe, writer_factory
    out = OutputPipe(layout=LAYOUT, writer_factory=writer_factory(fd))
    pos = 0
    for item in PLAN:
        if item == "break":
            await out.close_interval()
        else:
            await out.write(rows(pos, int(item)))
            pos += int(item)
    await out.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
