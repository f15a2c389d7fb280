"""Modules and pipelines: module adapters, pipeline config, runner and supervisor."""
