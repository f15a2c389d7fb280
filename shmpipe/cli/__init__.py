"""The ``shmpipe`` command (also ``python -m shmpipe``).

Each subcommand is a module of this package with ``register(sub)`` (adds its parser, with
``func=run``) and ``run(args) -> int`` (the exit code). :func:`main` turns a PipeError (or an
OSError) into one line on stderr and exit code 1; bad usage exits 2 (argparse); ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import PipeError
from . import bench, bridge, clean, demo, keys, ls, run, stat, top

COMMANDS = (demo, run, ls, stat, top, clean, bridge, keys, bench)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shmpipe",
        description="Run pipelines of modules; see, watch and clean the shared-memory pipes "
                    "of this host; bridge them across hosts.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(name)s: %(levelname)s: %(message)s")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except (PipeError, OSError) as e:
        if args.debug:
            raise
        print(f"shmpipe {args.command}: {e}", file=sys.stderr)
        return 1
