"""The command tests run ``python -m shmpipe`` as a user would; children come from
cliprocs.py."""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import shmpipe

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

_RUN = f"cli-{os.getpid()}-{uuid.uuid4().hex[:6]}"
_counter = itertools.count()


@pytest.fixture
def pipe_names() -> Iterator[Any]:
    """A factory of unique pipe names, all unlinked afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"{_RUN}-{next(_counter)}"
        made.append(name)
        return name

    yield make
    for name in made:
        shmpipe.unlink(name)
