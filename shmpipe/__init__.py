"""shmpipe: zero-copy pipes for timestamped numpy streams, with Joule's pipe API."""

from .buffer import PipeData
from .errors import EmptyPipeError, PipeError
from .layout import compute_dtype
from .local import LocalPipe
from .pipe import InputPipe, OutputPipe, Pipe

__version__ = "0.1.0"

__all__ = [
    "EmptyPipeError",
    "InputPipe",
    "LocalPipe",
    "OutputPipe",
    "Pipe",
    "PipeData",
    "PipeError",
    "compute_dtype",
]
