"""``shmpipe top``: every pipe, the one under most pressure first."""

from __future__ import annotations

import argparse
import sys
import time

from ..errors import PipeError
from ..shm import PipeInfo, survey_all
from . import show

HEADER = ["PRESSURE", "NAME", "FILL", "BLOCKED", "WRITE/s", "SLOWEST READER", "LAG", "LAG/s"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "top", help="a live table of the pipes, the most pressed first",
        description="Refresh a table of every pipe every INTERVAL seconds, sorted by pressure: "
                    "the share of the interval its writer spent blocked on a full ring, then "
                    "how full the ring is, then how fast the slowest reader's lag grows. The "
                    "pipe whose reader cannot keep up comes first, with that reader's pid. "
                    "Ctrl-C stops.")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="refresh interval (default: %(default)s)")
    p.add_argument("--count", type=int, default=0, metavar="N",
                   help="stop after N refreshes (default: until Ctrl-C)")
    p.set_defaults(func=run)


def pressure(before: PipeInfo | None, now: PipeInfo, dt: float) -> tuple[float, float, float]:
    """(blocked share of the interval, fill, lag growth in rows/s): larger is worse."""
    if now.problem:
        return (-1.0, 0.0, 0.0)
    blocked = 0.0 if before is None else (now.writer_blocked_s - before.writer_blocked_s) / dt
    return (min(1.0, max(0.0, blocked)), now.fill, _lag_growth(before, now, dt))


def _slowest(info: PipeInfo) -> tuple[int, int, int] | None:
    """(slot, pid, lag) of the reader furthest behind."""
    if not info.readers:
        return None
    r = max(info.readers, key=lambda r: r.lag)
    return r.slot, r.pid, r.lag


def _lag_growth(before: PipeInfo | None, now: PipeInfo, dt: float) -> float:
    s = _slowest(now)
    if before is None or s is None:
        return 0.0
    old = {r.slot: r.lag for r in before.readers}
    return (s[2] - old.get(s[0], s[2])) / dt


def frame(before: dict[str, PipeInfo], now: list[PipeInfo], dt: float) -> str:
    ranked = sorted(now, key=lambda p: pressure(before.get(p.name), p, dt), reverse=True)
    rows = [HEADER]
    for p in ranked:
        if p.problem:
            rows.append(["-", p.name, "-", "-", "-", "-", "-", f"cannot read: {p.problem}"])
            continue
        prev = before.get(p.name)
        blocked, fill, growth = pressure(prev, p, dt)
        rate = 0.0 if prev is None else (p.rows_written - prev.rows_written) / dt
        s = _slowest(p)
        rows.append([f"{blocked + fill:.2f}", p.name, f"{fill:.0%}", f"{blocked:.0%}",
                     show.count(rate), "none" if s is None else f"pid {s[1]}",
                     "-" if s is None else show.count(s[2]), f"{growth:+.0f}"])
    if len(rows) == 1:
        return "no shmpipe pipes in /dev/shm"
    return show.table(rows)


def run(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise PipeError(f"--interval must be > 0 seconds, got {args.interval}")
    live = sys.stdout.isatty()
    before = {p.name: p for p in survey_all()}
    taken = time.monotonic()
    refreshes = 0
    while True:
        time.sleep(args.interval)
        now = survey_all()
        dt = max(1e-9, time.monotonic() - taken)
        taken = time.monotonic()
        text = frame(before, now, dt)
        if live:
            sys.stdout.write("\x1b[H\x1b[2J")  # clear the screen, then draw
        print(time.strftime("%H:%M:%S") + f"  {len(now)} pipes, pressure = blocked + fill")
        print(text + ("" if live else "\n"), flush=True)
        refreshes += 1
        if args.count and refreshes >= args.count:
            return 0
        before = {p.name: p for p in now}
