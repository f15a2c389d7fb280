"""Endpoints: which addresses a network pipe accepts, and what binding to them means.

Pure (no zmq): strings in, a normalised endpoint or a PipeError out.

* ``tcp://HOST:PORT``. A wildcard or empty host (``tcp://*:5601``, ``tcp://:5601``) means
  127.0.0.1, for binding and connecting alike: nothing listens beyond this host unless an
  address says so (``tcp://0.0.0.0:5601`` for every interface, or one interface's address).
  Port ``*`` or ``0`` (binding only) lets the system choose a free port; the pipe's
  ``endpoint`` then names the one chosen.
* ``ipc://PATH``: a Unix socket at PATH (absolute or relative to the current directory).
"""

from __future__ import annotations

import re

from ..errors import PipeError

_TCP = re.compile(r"^tcp://(\[[0-9a-fA-F:.]+\]|[^:/\[\]]*):(\*|[0-9]+)$")
LOOPBACK = "127.0.0.1"
EXAMPLE = "tcp://127.0.0.1:5601 or ipc:///run/shmpipe/a.sock"


def is_endpoint(text: str) -> bool:
    """Whether ``text`` names a network endpoint (it has a ``scheme://``) rather than a pipe."""
    return "://" in text


def normalise(endpoint: str, bind: bool) -> str:
    """The endpoint to hand to ZeroMQ for ``endpoint`` (see the module's rules).

    Raises PipeError naming the accepted forms for anything else: another scheme, a missing
    port, port 0 or ``*`` on the connecting side, a port above 65535, an empty ipc path.
    """
    if not isinstance(endpoint, str):
        raise PipeError(f"expected an endpoint like {EXAMPLE}, got {endpoint!r}")
    if endpoint.startswith("ipc://"):
        if len(endpoint) == len("ipc://"):
            raise PipeError(f"expected a socket path after ipc://, got {endpoint!r}")
        return endpoint
    m = _TCP.fullmatch(endpoint)
    if m is None:
        raise PipeError(f"expected an endpoint like {EXAMPLE}, got {endpoint!r}")
    host, port = m.group(1), m.group(2)
    if host in ("", "*"):
        host = LOOPBACK
    if port in ("*", "0"):
        if not bind:
            raise PipeError(f"a connecting end needs a port number, got {endpoint!r}")
        port = "*"
    elif not 1 <= int(port) <= 65535:
        raise PipeError(f"expected a port in 1..65535, got {endpoint!r}")
    return f"tcp://{host}:{port}"
