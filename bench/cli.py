"""``python -m bench``: run the suites, print the tables, write RESULTS.md and the plots."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import time
from collections.abc import Callable

from bench import report, targets
from bench.machine import describe
from bench.suites import FULL, QUICK, SUITES, Result, Settings, log

HERE = os.path.dirname(os.path.abspath(__file__))
PINNED = "pinned: producer and consumer on two CPUs (--pin)"
UNPINNED = "unpinned: processes placed by the OS"

INTRO = {
    "rings": "What opening a pipe costs (creating it with its ring reserved, opening the "
    "writer, then a reader: medians), and rows/s through a pipe opened just before against the "
    "same pipe warm, with the ring's pages mapped when a process opens it (`MAP_POPULATE`, the "
    "default) or faulted in on first use, for the default ring and `capacity=1<<20`: see "
    "`bench/rings.py`. Transparent huge pages for the ring: {thp}.",
    "overhead": "µs per call with both ends in this one process (no wake-ups, no second "
    "process): the cost of the calls themselves. The cases run round-robin, a few thousand "
    "calls each per round; medians over the rounds. `read` cases time the read and consume "
    "only (the write that feeds each is outside the clock).",
    "throughput": "One producer process to one consumer process (spawned), the consumer summing "
    "one data column of every row. Median rows/s of the repetitions, the same in GB/s, and "
    "the ratio to `{ref}` (above 1: faster).",
    "latency": "One row to the other process and back, through each contender's own API "
    "(async where it has one). Medians over the repetitions of each percentile; the last "
    "column is p50 over `{ref}`'s p50 (above 1: slower).",
    "fanout": "One writer to k reader processes, aggregate rows/s over the readers (rows/block "
    "as below). shmpipe opens k inputs on one pipe; the others copy every block to one "
    "OS pipe per reader, as joule does for subscribers.",
    "idle": "CPU used by a reader process blocked on an empty link for the time given (and by "
    "its idle writer), in % of one core, from the kernel's per-thread run time; all contenders "
    "wait at once.",
    "rss": "Resident memory of producer and consumer, sampled every 0.1 s through a full-rate "
    "run. A shared-memory ring counts in the RSS of both ends once its pages are touched.",
    "scaling": "One process; a backlog of n unconsumed rows, then repeatedly: write one row, "
    "time `read()` (it returns the n+1 rows), time `consume(1)`. Medians. `*`: read() "
    "returned fewer rows than were unconsumed.",
    "pipeline": "Three modules, source -> pass-through filter -> sink (the Joule module "
    "classes of `bench/pipeline_modules.py`), moving 10,000-row float32_8 blocks: under the "
    "shmpipe runner (each module a process, shm pipes; all in one process, LocalPipes) and "
    "as jouled runs them (each an executable, `--pipes` with OS-pipe fds; jouled's relay "
    "between them, or the pipes joined directly), next to one bare shm pipe between two "
    "processes (the `{ref}` throughput row). Rows/s at the sink from the read that passes "
    "20% of the rows to the last row (start-up excluded; the run's wall time, start-up "
    "included, beside it); medians of repetitions taken in turn.",
}
TITLES = {
    "rings": "Fresh and large rings",
    "overhead": "Per-call overhead",
    "throughput": "Throughput",
    "latency": "Latency",
    "fanout": "Fan-out",
    "idle": "Cost at rest",
    "rss": "Memory over time",
    "scaling": "Scaling with unconsumed rows",
    "pipeline": "Pipeline",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a subset that runs in a few minutes")
    p.add_argument(
        "--suite",
        action="append",
        choices=list(SUITES),
        help="run only this suite (repeatable); default: all",
    )
    p.add_argument(
        "--only",
        metavar="TEXT",
        action="append",
        help="run only contenders whose label contains TEXT (repeatable)",
    )
    p.add_argument(
        "--blocks",
        metavar="N,N,...",
        help="throughput block sizes in rows (default: the mode's)",
    )
    p.add_argument(
        "--layouts",
        metavar="L,L,...",
        help="throughput layouts, e.g. float32_8 (default: the mode's)",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="pin the two processes of throughput and latency measurements to two different "
        "CPUs (default: unpinned, placed by the OS as users run them)",
    )
    p.add_argument("--no-pin", action="store_true", help=argparse.SUPPRESS)  # the old default
    p.add_argument(
        "--no-write",
        action="store_true",
        help="print the tables only; write no RESULTS.md and no plots",
    )
    return p.parse_args(argv)


def machine_table(info: dict[str, str]) -> str:
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in info.items())


def render(
    results: dict[str, list[Result]],
    s: Settings,
    info: dict[str, str],
    command: str,
    seconds: float,
    images: list[str],
) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick" if s.quick else "full"
    parts = [
        "# shmpipe benchmark results",
        f"`{command}` ({mode} mode; medians of {s.reps} repetitions per throughput and "
        f"fan-out figure, {s.lat_reps} per latency figure; "
        f"{PINNED if s.pin else UNPINNED}"
        f"), {now}, "
        f"took {seconds:.0f} s. How to read these tables: [README.md](README.md).",
        "## Machine\n\n" + machine_table(info),
    ]
    tables: dict[str, Callable[[list[Result]], str]] = {
        "overhead": report.overhead_table,
        "rings": rings_table,
        "throughput": lambda rs: report.throughput_tables(rs, s),
        "latency": report.latency_table,
        "fanout": lambda rs: report.fanout_table(rs, s),
        "idle": report.idle_table,
        "rss": report.rss_table,
        "scaling": lambda rs: report.scaling_tables(rs, s),
        "pipeline": report.pipeline_table,
    }
    figures = {
        "throughput": [f"throughput_{layout}.png" for layout in s.layouts],
        "latency": ["latency.png"],
        "fanout": ["fanout.png"],
        "rss": ["rss.png"],
        "scaling": ["scaling.png"],
    }
    for name, rs in results.items():
        intro = INTRO[name].format(ref=report.REF, thp=rings_thp() if name == "rings" else "")
        if name == "fanout":
            intro += f" Layout {s.layout}, {s.fan_block:,} rows per block."
        if name == "rss":
            intro += f" Layout {s.layout}, {s.fan_block:,} rows per block, {s.rss_seconds:.0f} s."
        pics = "".join(f"\n\n![{f}](plots/{f})" for f in figures.get(name, []) if f in images)
        parts.append(f"## {TITLES[name]}\n\n{intro}\n\n{tables[name](rs)}{pics}")
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    s = dataclasses.replace(QUICK if args.quick else FULL, pin=args.pin)
    if args.blocks:
        s = dataclasses.replace(s, blocks=tuple(int(b) for b in args.blocks.split(",")))
    if args.layouts:
        s = dataclasses.replace(s, layouts=tuple(args.layouts.split(",")))
    wanted = [t.lower() for t in args.only or []]

    def only(label: str) -> bool:
        return not wanted or any(t in label.lower() for t in wanted)

    info = describe()
    print(machine_table(info), flush=True)
    started = time.monotonic()
    results: dict[str, list[Result]] = {}
    for name in args.suite or list(SUITES):
        log(f"== {name}")
        results[name] = SUITES[name](s, only, log)
    seconds = time.monotonic() - started
    command = "python -m bench" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    images: list[str] = []
    folder = output_folder(args.quick)
    if not args.no_write:
        try:
            images = report.plots(results, s, os.path.join(folder, "plots"))
        except Exception as exc:  # plots are a bonus; the tables still get written
            log(f"plots failed: {type(exc).__name__}: {exc}")
    text = render(results, s, info, command, seconds, images)
    text += "\n" + targets.section(results, s) + "\n"
    print("\n" + text, flush=True)
    if not args.no_write:
        findings = os.path.join(HERE, "FINDINGS.md")  # hand-written notes, kept across runs
        path = os.path.join(folder, "RESULTS.md")
        with open(path, "w") as f:
            f.write(text)
            if os.path.exists(findings):
                with open(findings) as g:
                    f.write("\n" + g.read())
        where = os.path.relpath(folder)
        log(f"wrote {os.path.relpath(path)} and {len(images)} plots in "
            f"{os.path.join(where, 'plots')}/"
            + (" (a quick run: the committed bench/RESULTS.md is left alone)"
               if args.quick else ""))
    return 0


def rings_table(results: list[Result]) -> str:
    from bench import rings

    return rings.table(results)


def rings_thp() -> str:
    from bench import rings

    return rings.thp()


def output_folder(quick: bool) -> str:
    """Where a run writes RESULTS.md and plots/: bench/ for a full run, bench/quick/ (not
    committed) for a quick one, so that a quick run never replaces the committed results."""
    if not quick:
        return HERE
    folder = os.path.join(HERE, "quick")
    os.makedirs(os.path.join(folder, "plots"), exist_ok=True)
    return folder
