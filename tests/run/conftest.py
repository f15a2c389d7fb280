"""Fixtures for the pipeline tests: pipeline files in a temporary directory, a check that a
run leaves nothing in /dev/shm."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # the pipelines' workers import runmods by name
    sys.path.insert(0, HERE)

from runtools import run_entries  # noqa: E402

_ids = itertools.count()


@pytest.fixture
def run_id() -> Iterator[str]:
    """A run id for the test's pipeline runs (``Supervisor(run_id=)``, ``--run-id``); what
    the runs made in /dev/shm must be gone when the test ends."""
    rid = f"run-t{os.getpid()}x{next(_ids)}"
    yield rid
    assert run_entries(rid) == set()


@pytest.fixture
def toml(tmp_path: object) -> Callable[[str], str]:
    """Write a pipeline file; returns its path."""
    import pathlib

    counter = iter(range(1000))

    def write(text: str) -> str:
        path = pathlib.Path(str(tmp_path)) / f"pipeline{next(counter)}.toml"
        path.write_text(text)
        return str(path)

    return write
