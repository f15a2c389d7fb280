"""shmpipe: zero-copy pipes for timestamped numpy streams, with Joule's pipe API."""

from .buffer import PipeData
from .errors import EmptyPipeError, PipeError
from .layout import compute_dtype
from .local import LocalPipe
from .pipe import InputPipe, OutputPipe, Pipe
from .run import (
    CompositeModule,
    ConfigError,
    FilterModule,
    Pipeline,
    ReaderModule,
    stop_event,
)
from .shm import ShmInputPipe, ShmOutputPipe, open_input, open_output, unlink
from .stream import reader_factory, writer_factory

__version__ = "0.1.0"

__all__ = [
    "CompositeModule",
    "ConfigError",
    "EmptyPipeError",
    "FilterModule",
    "InputPipe",
    "LocalPipe",
    "OutputPipe",
    "Pipe",
    "PipeData",
    "PipeError",
    "Pipeline",
    "ReaderModule",
    "ShmInputPipe",
    "ShmOutputPipe",
    "compute_dtype",
    "open_input",
    "open_output",
    "reader_factory",
    "stop_event",
    "unlink",
    "writer_factory",
]
