"""What the pipeline tests share besides fixtures."""

from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def run_entries(run_id: str = "run-") -> set[str]:
    """The /dev/shm entries of pipeline runs (of run ``run_id``, or of any)."""
    return {e for e in os.listdir("/dev/shm") if f"shmpipe.{run_id}" in e}
