"""``shmpipe clean [--dry-run]``: remove the pipes whose every end is gone."""

from __future__ import annotations

import argparse

from ..shm import clean
from . import show


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "clean", help="remove pipes whose every process is dead",
        description="Remove the shmpipe pipes whose every end (writer and readers) is gone: "
                    "dead, closed, or never there, including a pipe whose rows no reader "
                    "consumed. A pipe with a live end, and anything in /dev/shm that is not a "
                    "shmpipe pipe, is never touched. Says what was removed and the bytes freed.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="look at these pipes only (default: every pipe)")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed, remove "
                                                          "nothing")
    p.add_argument("-v", "--verbose", action="store_true", help="also say why each pipe left "
                                                                "was kept")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    done = clean(dry_run=args.dry_run, only=args.names or None)
    verb = "would remove" if args.dry_run else "removed"
    freed = 0
    for c in done:
        if c.removed:
            freed += c.bytes
            print(f"{verb} {c.name} ({show.size(c.bytes)}): {c.reason}")
        elif args.verbose:
            print(f"kept {c.name}: {c.reason}")
    removed = sum(c.removed for c in done)
    kept = len(done) - removed
    print(f"{verb} {removed} pipe{'s' * (removed != 1)}, {show.size(freed)} "
          f"{'to free' if args.dry_run else 'freed'}; {kept} kept")
    return 0
