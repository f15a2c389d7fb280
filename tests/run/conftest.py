"""Fixtures for the pipeline tests: pipeline files in a temporary directory, a check that a
run leaves nothing in /dev/shm."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # the pipelines' workers import runmods by name
    sys.path.insert(0, HERE)

from runtools import run_entries  # noqa: E402


@pytest.fixture
def no_run_leftovers() -> Iterator[None]:
    """Whatever a pipeline run made in /dev/shm is gone when it returns."""
    before = run_entries()
    yield
    assert run_entries() - before == set()


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
