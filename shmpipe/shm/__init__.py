"""Shared-memory ring pipes between processes of one host."""

from .ends import ShmInputPipe, ShmOutputPipe, open_input, open_output, unlink
from .header import MAX_BOUNDARIES, MAX_READERS
from .names import list_pipes

__all__ = [
    "MAX_BOUNDARIES",
    "MAX_READERS",
    "ShmInputPipe",
    "ShmOutputPipe",
    "list_pipes",
    "open_input",
    "open_output",
    "unlink",
]
