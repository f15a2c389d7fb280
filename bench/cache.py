"""1-row writes through a cache: shmpipe's vectorised cache against joule's per-row loop.

    python -m bench.cache

One process, one LocalPipe each, ``enable_cache(1000)``, 1-row structured writes; prints the
rows/s of both (median of 5 runs) and the ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import numpy as np

import shmpipe

LAYOUT = "float32_8"
ROWS = 50_000


async def rate(cls: Any) -> float:
    pipe = cls(LAYOUT)
    pipe.enable_cache(1000)
    row = np.zeros(1, shmpipe.compute_dtype(LAYOUT))
    start = time.perf_counter()
    for i in range(ROWS):
        row["timestamp"] = i
        await pipe.write(row)
    return ROWS / (time.perf_counter() - start)


def main() -> None:
    contenders: list[tuple[str, Any]] = [("shmpipe LocalPipe", shmpipe.LocalPipe)]
    try:
        from joule.models.pipes import LocalPipe as JouleLocalPipe

        contenders.append(("joule 1.0.1 LocalPipe", JouleLocalPipe))
    except Exception as exc:  # a missing peer gets a line saying why
        print(f"joule 1.0.1 LocalPipe: not available: {type(exc).__name__}: {exc}")
    rates = {}
    for label, cls in contenders:
        rates[label] = statistics.median(asyncio.run(rate(cls)) for _ in range(5))
        print(f"{label}: {rates[label] / 1e3:.0f}k rows/s (1-row writes, cache of 1000 rows)")
    if len(rates) == 2:
        a, b = rates.values()
        print(f"ratio shmpipe / joule: x{a / b:.1f}")


if __name__ == "__main__":
    main()
