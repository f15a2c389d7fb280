"""Fixtures for the network tests: endpoints free at run time (loopback TCP ports, ipc paths in
a temporary directory), child-process entry points importable by name."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator

import numpy as np
import pytest

import shmpipe

pytest.importorskip("zmq", reason="network pipes need pyzmq: pip install -e '.[net]'")

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # spawned children import their entry points from netprocs.py
    sys.path.insert(0, HERE)

LAYOUT = "float32_2"
DTYPE = shmpipe.compute_dtype(LAYOUT)


def free_port() -> int:
    """A loopback TCP port nobody listens on now (for an end that connects before the other
    binds; an end that binds first takes port ``*`` instead)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ipc_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="shmpipe-net-") as d:
        yield d


@pytest.fixture(params=["tcp", "ipc"])
def endpoint(request: pytest.FixtureRequest, ipc_dir: str) -> str:
    """A fresh endpoint, both transports."""
    if request.param == "tcp":
        return f"tcp://127.0.0.1:{free_port()}"
    return f"ipc://{ipc_dir}/pipe.sock"


def rows(start: int, n: int) -> np.ndarray:
    r = np.zeros(n, DTYPE)
    r["timestamp"] = np.arange(start, start + n) + 1
    r["data"] = (r["timestamp"] * 0.5)[:, None]
    return r
