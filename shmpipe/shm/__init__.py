"""Shared-memory ring pipes between processes of one host."""

from .ends import ShmInputPipe, ShmOutputPipe, open_input, open_output, prepare, unlink
from .header import MAX_BOUNDARIES, MAX_READERS
from .names import list_pipes
from .survey import Cleaned, PipeInfo, ReaderInfo, clean, survey, survey_all

__all__ = [
    "MAX_BOUNDARIES",
    "MAX_READERS",
    "Cleaned",
    "PipeInfo",
    "ReaderInfo",
    "ShmInputPipe",
    "ShmOutputPipe",
    "clean",
    "list_pipes",
    "open_input",
    "open_output",
    "prepare",
    "survey",
    "survey_all",
    "unlink",
]
