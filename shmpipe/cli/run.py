"""``shmpipe run FILE [--host NAME] [--check]``: run this host's part of a pipeline file."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..errors import PipeError
from ..run.config import ConfigError, Pipeline
from ..run.module import STOP_TIMEOUT
from ..run.supervisor import DRAIN


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run", help="run a pipeline file (the modules of this host)",
        description="Start the modules of the pipeline FILE (TOML: [streams], [hosts], "
                    "[modules.NAME]) that belong to this host, joined by shared-memory pipes "
                    "(LocalPipes inside a process, network pipes to other hosts), restart "
                    "the ones that fail per their restart policy, and exit 0 when every "
                    "module is done (1 if one was given up). Ctrl-C or SIGTERM stops the "
                    "sources, lets the rest drain, then stops them; a second Ctrl-C stops "
                    "at once. Nothing is left in /dev/shm. Module code is imported from the "
                    "current directory and the Python path.")
    p.add_argument("file", metavar="FILE", help="the pipeline file (TOML)")
    p.add_argument("--host", metavar="NAME",
                   help="the host of [hosts] this runner plays (default: the first)")
    p.add_argument("--check", action="store_true",
                   help="check the file (and import the modules' code), then exit")
    p.add_argument("--drain", type=float, metavar="SECONDS", default=DRAIN,
                   help=f"how long a stop lets the modules drain (default {DRAIN:.0f})")
    p.add_argument("--grace", type=float, metavar="SECONDS", default=STOP_TIMEOUT,
                   help="how long a module asked to stop gets before it is cancelled "
                        f"(default {STOP_TIMEOUT:.0f})")
    p.add_argument("--run-id", metavar="ID",
                   help="the first part of the names of the run's shared-memory pipes "
                        "(ID.STREAM; default: run- and 8 random hex digits)")
    p.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # "package.module:attr" from where the user is
    if not args.debug:
        logging.getLogger("shmpipe").setLevel(logging.WARNING if args.quiet else logging.INFO)
        root = logging.getLogger()
        for h in root.handlers:
            h.setFormatter(logging.Formatter("%(message)s"))
    try:
        pipeline = Pipeline.load(args.file)
        pipeline.check(args.host)
    except ConfigError as e:
        raise PipeError(str(e)) from None
    if args.check:
        mods = pipeline.modules
        print(f"{args.file}: ok: {len(pipeline.streams)} streams, {len(mods)} modules")
        return 0
    from ..run.supervisor import run as run_pipeline

    try:
        return run_pipeline(pipeline, args.host, drain=args.drain, grace=args.grace,
                            run_id=args.run_id)
    except ConfigError as e:
        raise PipeError(str(e)) from None
