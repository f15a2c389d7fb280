"""Modules and pipelines: module adapters, pipeline config, runner and supervisor.

``module`` (the shapes a module may take and how each is run), ``joule`` (Joule's module
classes and executables), ``config`` (:class:`Pipeline`, from Python or TOML, and its
checks), ``plan`` (pure: what runs where on one host), ``worker`` (one process of a
pipeline), ``supervisor`` (the run of a host's part: pipes, bridges, processes, restarts,
the stop order).
"""

from .config import ConfigError, Module, Pipeline
from .module import (
    BaseModule,
    CompositeModule,
    FilterModule,
    ModuleError,
    ReaderModule,
    stop_event,
)

__all__ = [
    "BaseModule",
    "CompositeModule",
    "ConfigError",
    "FilterModule",
    "Module",
    "ModuleError",
    "Pipeline",
    "ReaderModule",
    "stop_event",
]
