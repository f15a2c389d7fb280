"""shmpipe: zero-copy pipes for timestamped numpy streams, with Joule's pipe API."""

from typing import TYPE_CHECKING, Any

from .buffer import PipeData
from .errors import EmptyPipeError, PipeError
from .layout import compute_dtype
from .local import LocalPipe
from .pipe import InputPipe, OutputPipe, Pipe
from .shm import ShmInputPipe, ShmOutputPipe, open_input, open_output, unlink
from .stream import reader_factory, writer_factory

__version__ = "0.1.0"

_RUN_NAMES = ("CompositeModule", "ConfigError", "FilterModule", "Pipeline", "ReaderModule",
              "stop_event")

if TYPE_CHECKING:
    from .run import (
        CompositeModule,
        ConfigError,
        FilterModule,
        Pipeline,
        ReaderModule,
        stop_event,
    )


def __getattr__(name: str) -> Any:
    """The pipeline names (``shmpipe.run``), imported when first used: a process that only
    moves rows does not load the module loader and the config reader."""
    if name in _RUN_NAMES:
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module 'shmpipe' has no attribute {name!r}")

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
