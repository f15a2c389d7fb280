"""What the pipeline tests share besides fixtures."""

from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_PREFIX = "shmpipe.run-"  # the supervisor's pipes: shmpipe.run-<id>.<stream>


def run_entries() -> set[str]:
    """The /dev/shm entries of pipeline runs."""
    return {e for e in os.listdir("/dev/shm") if RUN_PREFIX in e}
