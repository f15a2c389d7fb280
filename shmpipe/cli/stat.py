"""``shmpipe stat NAME [--watch]``: one pipe in detail, with rates."""

from __future__ import annotations

import argparse
import sys
import time

from ..errors import PipeError
from ..shm import PipeInfo, survey
from ..shm.survey import check_name
from . import show


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "stat", help="one pipe in detail, with rates",
        description="Show pipe NAME in detail: its counters, and rates (rows/s written and "
                    "read per reader, share of the time the writer was blocked on a full ring) "
                    "measured over INTERVAL seconds. --watch refreshes until Ctrl-C.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="measuring (and refresh) interval (default: %(default)s)")
    p.add_argument("--count", type=int, default=0, metavar="N",
                   help="with --watch: stop after N refreshes (default: until Ctrl-C)")
    p.set_defaults(func=run)


def report(before: PipeInfo, now: PipeInfo) -> str:
    if now.problem:
        return f"{now.name}: cannot read: {now.problem}"
    dt = max(1e-9, (now.taken_ns - before.taken_ns) / 1e9)
    old = {r.slot: r for r in before.readers}
    lines = [
        f"pipe       {now.name}",
        f"layout     {now.layout}, ring of {show.count(now.capacity)} rows, "
        f"{show.size(now.bytes)} in /dev/shm",
        f"age        {show.duration(now.age_s)}, last write "
        f"{show.duration(now.last_write_s)} ago" if now.last_write_s is not None
        else f"age        {show.duration(now.age_s)}, never written",
        f"fill       {now.fill:.0%} ({now.unconsumed} rows not consumed by the slowest reader)",
        f"writer     {show.writer(now)}"
        + (", BLOCKED on a full ring" if now.writer_blocked_now else ""),
        f"written    {now.rows_written} rows in {now.blocks_written} blocks, "
        f"{now.intervals} interval breaks",
        f"rate       {show.count((now.rows_written - before.rows_written) / dt)} rows/s, "
        f"{show.count((now.blocks_written - before.blocks_written) / dt)} blocks/s",
        f"blocked    {show.duration(now.writer_blocked_s)} in all, "
        f"{min(1.0, (now.writer_blocked_s - before.writer_blocked_s) / dt):.0%} of the last "
        f"{dt:.1f} s",
        f"readers    {len(now.readers) or 'none'}",
    ]
    for r in now.readers:
        prev = old.get(r.slot, r)
        lines.append(
            f"  slot {r.slot:<3} pid {r.pid} {'alive' if r.alive else 'dead'}, lag {r.lag} rows, "
            f"{show.count(max(0, r.rows_read - prev.rows_read) / dt)} rows/s, "
            f"waited {show.duration(r.waited_s)}" + (" (waiting now)" if r.asleep else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    name = check_name(args.name)
    if not args.interval > 0:
        raise PipeError(f"--interval must be > 0 seconds, got {args.interval}")
    before = survey(name)
    if before.problem:
        raise PipeError(f"pipe {name!r} cannot be read: {before.problem}")
    refreshes = 0
    live = args.watch and sys.stdout.isatty()
    shown = 0
    while True:
        time.sleep(args.interval)
        now = survey(name)
        text = report(before, now)
        if live and shown:
            sys.stdout.write(f"\x1b[{shown}F\x1b[J")  # back to the top of the last report
        print(text + ("\n" if args.watch and not live else ""), flush=True)
        shown = text.count("\n") + 1
        refreshes += 1
        if not args.watch or (args.count and refreshes >= args.count):
            return 0
        before = now
