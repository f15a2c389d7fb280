"""``shmpipe bench [--quick] [ARGS...]``: the benchmark suite of the source tree."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ..errors import PipeError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench", help="run the benchmark suite (python -m bench)",
        description="Run the benchmark suite that ships with the source tree (bench/, needs "
                    "the bench extra: pip install -e '.[bench]'). Every argument goes to "
                    "python -m bench: --quick for a short run that writes to a folder of its "
                    "own, --suite, --only... (see shmpipe bench --help-bench).")
    p.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    p.add_argument("--help-bench", action="store_true", help="the benchmark's own options")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="more arguments for python -m bench")
    p.set_defaults(func=run)


def source_tree() -> Path:
    """The checkout shmpipe runs from (where ``bench/`` lives), or PipeError."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "bench" / "__main__.py").is_file():
        raise PipeError(f"no benchmark suite beside the installed package (looked in "
                        f"{root / 'bench'}): it ships with the source tree; install shmpipe "
                        "from a checkout (pip install -e '.[bench]') to run it")
    return root


def run(args: argparse.Namespace) -> int:
    root = source_tree()
    argv = ["--help"] if args.help_bench else (["--quick"] if args.quick else []) + args.rest
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.call([sys.executable, "-m", "bench", *argv], cwd=root, env=env)
