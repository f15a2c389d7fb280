"""Is a process alive? pid plus start time, so a reused pid is not mistaken for its former owner."""

from __future__ import annotations

import os

_cache: dict[int, int] = {}


def start_time(pid: int) -> int:
    """The start time of ``pid`` in clock ticks since boot, 0 if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):  # zombie or dead: gone for our purposes
        return 0
    return int(fields[19])


def me() -> tuple[int, int]:
    """(pid, start time) of the calling process."""
    pid = os.getpid()
    st = _cache.get(pid)
    if st is None:
        st = _cache[pid] = start_time(pid)
    return pid, st


def alive(pid: int, started: int) -> bool:
    """True if process ``pid`` exists, is not a zombie, and started at ``started``."""
    if pid <= 0:
        return False
    return start_time(pid) == started
