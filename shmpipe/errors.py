"""Exceptions raised by pipes."""

from __future__ import annotations


class PipeError(Exception):
    """A pipe refused an operation: bad input, wrong direction, closed pipe, broken peer.

    The message says what was expected and what came. A refused operation changes nothing:
    the pipe stays usable and data already written is intact.
    """


class EmptyPipeError(PipeError):
    """The pipe is closed and every row has been consumed: nothing more will ever arrive."""
