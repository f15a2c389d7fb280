"""``shmpipe ls [--json]``: every shmpipe pipe of this host."""

from __future__ import annotations

import argparse
import json

from ..shm import PipeInfo, survey_all
from . import show

HEADER = ["NAME", "LAYOUT", "CAPACITY", "FILL", "WRITER", "ROWS", "INTERVALS", "AGE", "READERS"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ls", help="list the pipes of this host",
        description="List every shmpipe pipe in /dev/shm: layout, ring capacity (rows), fill "
                    "(rows some reader has not consumed), the writer's pid and whether it is "
                    "alive, rows written, interval breaks, age, and each reader's pid, liveness "
                    "and lag (rows behind the writer). Pipes that cannot be read are listed "
                    "with why.")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list, one object per pipe (see the README for the keys)")
    p.set_defaults(func=run)


def line(info: PipeInfo) -> list[str]:
    if info.problem:
        return [info.name, "-", "-", "-", "-", "-", "-", "-", f"cannot read: {info.problem}"]
    return [info.name, info.layout, show.count(info.capacity), f"{info.fill:.0%}",
            show.writer(info), show.count(info.rows_written), str(info.intervals),
            show.duration(info.age_s), show.readers(info)]


def run(args: argparse.Namespace) -> int:
    pipes = survey_all()
    if args.json:
        print(json.dumps([p.to_json() for p in pipes], indent=2))
    elif not pipes:
        print("no shmpipe pipes in /dev/shm")
    else:
        print(show.table([HEADER] + [line(p) for p in pipes]))
    return 0
