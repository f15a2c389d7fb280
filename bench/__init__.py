"""Benchmarks of shmpipe against other ways of moving numpy rows between processes.

Run ``python -m bench`` (or ``python -m bench --quick``) from the repository root.
"""
