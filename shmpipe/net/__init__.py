"""Network pipes on ZeroMQ, and the bridge between shared-memory pipes and the network.

Needs pyzmq (``pip install shmpipe[net]``); the rest of shmpipe imports without it.
``frames`` is the protocol, pure; ``ends`` the pipes (:class:`NetInputPipe`,
:class:`NetOutputPipe`); ``keys`` CurveZMQ key files; ``bridge`` forwards between a local pipe
and an endpoint.
"""

from __future__ import annotations

try:
    import zmq as _zmq  # noqa: F401
except ImportError as _e:  # pragma: no cover (the test extra has pyzmq)
    raise ImportError(
        "network pipes need pyzmq: pip install 'shmpipe[net]' (or pip install pyzmq)"
    ) from _e

from .bridge import bridge
from .endpoint import is_endpoint
from .ends import DEFAULT_TIMEOUT, DEFAULT_WINDOW, NetInputPipe, NetOutputPipe
from .keys import Curve, make_keypair

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_WINDOW",
    "Curve",
    "NetInputPipe",
    "NetOutputPipe",
    "bridge",
    "is_endpoint",
    "make_keypair",
]
