"""Fresh and large rings: what opening a pipe costs, and rows/s through a pipe opened just
before (its pages never touched) against the same pipe warm, with the ring's pages mapped at
open (``MAP_POPULATE``, the default) or faulted in on first use, for the default ring and a
``capacity=1<<20`` one.

Each repetition spawns a producer and a consumer: the producer creates the pipe, the consumer
attaches, then ``ROWS`` rows go through in ``BLOCK``-row ``float32_8`` blocks (fresh), then as
many again through the same pipe (warm). The consumer's rows/s from the start signal to the
last row is the figure; medians over the repetitions, the cases alternating.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from bench.harness import Task, Worker, median, pinned, run
from bench.suites import Log, Result, Settings, log

LAYOUT = "float32_8"
ROWS = 3_000_000
BLOCK = 10_000
BIG = 1 << 20  # rows: a 40 MiB ring of float32_8 rows (the default holds 16 MiB)
CASES = [  # key, label, capacity, populate
    ("default", "default ring (16 MiB), pages mapped at open", None, True),
    ("default-nopop", "default ring (16 MiB), pages faulted in on use", None, False),
    ("1m", "capacity=1<<20 (40 MiB), pages mapped at open", BIG, True),
    ("1m-nopop", "capacity=1<<20 (40 MiB), pages faulted in on use", BIG, False),
]
OPENS = [16 << 20, 256 << 20]  # ring bytes whose opening is timed


def _pipe_name() -> str:
    return f"bench-rings-{os.getpid()}-{time.monotonic_ns() % 10**9}"


def producer(w: Worker, name: str, capacity: int | None, populate: bool) -> None:
    import numpy as np

    import shmpipe
    from shmpipe.shm import mirror

    mirror.POPULATE = populate
    out = shmpipe.open_output(name, LAYOUT, capacity=capacity)
    block = np.zeros(BLOCK, out.dtype)
    block["timestamp"] = np.arange(BLOCK)

    async def send() -> None:
        for _ in range(ROWS // BLOCK):
            await out.write(block)

    try:
        w.sync()  # the pipe exists
        w.sync()  # the consumer has attached
        for _ in range(2):  # fresh, then warm
            w.sync()
            asyncio.run(send())
            w.sync()
    finally:
        asyncio.run(out.close())


def consumer(w: Worker, name: str, populate: bool) -> list[float]:
    import shmpipe
    from shmpipe.shm import mirror

    mirror.POPULATE = populate
    w.sync()  # wait for the producer to have created the pipe
    inp = shmpipe.open_input(name)
    w.sync()
    rates = []

    async def recv() -> float:
        got, total = 0, 0.0
        start = time.perf_counter()
        while got < ROWS:
            data = await inp.read()
            total += float(data["data"][:, 0].sum())
            got += len(data)
            inp.consume(len(data))
        return ROWS / (time.perf_counter() - start)

    try:
        for _ in range(2):
            w.sync()
            rates.append(asyncio.run(recv()))
            w.sync()
    finally:
        asyncio.run(inp.close())
        shmpipe.unlink(name)
    return rates


def _open_cost(ring_bytes: int, populate: bool, reps: int) -> tuple[float, float]:
    """Median ms to create a pipe of ``ring_bytes`` and open its writer; and to open a
    reader on it."""
    import shmpipe
    from shmpipe.shm import mirror

    rows = ring_bytes // shmpipe.compute_dtype(LAYOUT).itemsize
    created, attached = [], []
    old, mirror.POPULATE = mirror.POPULATE, populate
    try:
        for _ in range(reps):
            name = _pipe_name()
            t0 = time.perf_counter()
            out = shmpipe.open_output(name, LAYOUT, capacity=rows)
            t1 = time.perf_counter()
            inp = shmpipe.open_input(name)
            t2 = time.perf_counter()
            created.append((t1 - t0) * 1e3)
            attached.append((t2 - t1) * 1e3)
            asyncio.run(inp.close())
            asyncio.run(out.close())
            shmpipe.unlink(name)
    finally:
        mirror.POPULATE = old
    return median(created), median(attached)


def rings(s: Settings, only: Callable[[str], bool], say: Log = log) -> list[Result]:
    results: list[Result] = []
    reps = 3 if s.quick else 5
    for ring_bytes in OPENS:
        for populate in (True, False):
            label = (f"open a {ring_bytes >> 20} MiB pipe, pages "
                     + ("mapped at open" if populate else "faulted in on use"))
            if not only(label):
                continue
            res = Result("rings", label, {"key": f"open-{ring_bytes >> 20}"
                                          + ("" if populate else "-nopop")})
            start = time.perf_counter()
            create_ms, attach_ms = _open_cost(ring_bytes, populate, reps)
            res.values = {"create_ms": create_ms, "attach_ms": attach_ms}
            res.seconds = time.perf_counter() - start
            say(f"[rings] {label:<56} create + writer {create_ms:.2f} ms, "
                f"reader {attach_ms:.2f} ms")
            results.append(res)
    wanted = [c for c in CASES if only(c[1])]
    runs: dict[str, list[list[float]]] = {c[0]: [] for c in wanted}
    started = time.perf_counter()
    for _ in range(reps):
        for key, _label, capacity, populate in wanted:  # alternating cases
            name = _pipe_name()
            cpu = pinned(2) if s.pin else [None, None]
            try:
                _, rates = run([Task(producer, (name, capacity, populate), cpu=cpu[0],
                                     name="producer"),
                                Task(consumer, (name, populate), cpu=cpu[1], name="consumer")],
                               120)
            finally:
                import shmpipe

                shmpipe.unlink(name)
            runs[key].append(rates)
    took = (time.perf_counter() - started) / max(1, len(wanted))
    for key, label, _capacity, _populate in wanted:
        for i, when in enumerate(("fresh", "warm")):
            rate = median([r[i] for r in runs[key]])
            suffix = key.replace("default", "").lstrip("-")
            k = when + (f"-{suffix}" if suffix else "")
            res = Result("rings", f"{label}: {when}", {"key": k},
                         {"rows_s": rate, "runs": [r[i] for r in runs[key]]}, seconds=took)
            say(f"[rings] {res.label:<70} {rate / 1e6:.1f}M rows/s")
            results.append(res)
    return results


def table(results: list[Result]) -> str:
    opens = [r for r in results if "create_ms" in r.values]
    flows = [r for r in results if "rows_s" in r.values]
    lines = []
    if opens:
        lines += ["| opening | create + open the writer, ms | open a reader, ms |",
                  "|---|---|---|"]
        lines += [f"| {r.label} | {r.values['create_ms']:.2f} | {r.values['attach_ms']:.2f} |"
                  for r in opens]
    if flows:
        if lines:
            lines.append("")
        lines += [f"| {ROWS:,} rows in {BLOCK:,}-row blocks | rows/s (median) | runs |",
                  "|---|---|---|"]
        lines += [f"| {r.label} | {r.values['rows_s'] / 1e6:.1f}M | "
                  + ", ".join(f"{v / 1e6:.0f}M" for v in r.values["runs"]) + " |"
                  for r in flows]
    return "\n".join(lines)


def thp() -> str:
    """What the kernel offers for huge pages in shared memory (for the report)."""
    def read(path: str) -> str:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return "?"

    mount = "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if parts[1] == "/dev/shm":
                    mount = parts[3]
    except OSError:
        pass
    return (f"shmem_enabled: `{read('/sys/kernel/mm/transparent_hugepage/shmem_enabled')}`, "
            f"/dev/shm mount options: `{mount}`")


