"""Formatting shared by the commands that show pipes."""

from __future__ import annotations

from ..shm import PipeInfo


def count(n: float) -> str:
    """1234567 -> '1.2M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def size(n: int) -> str:
    for unit, s in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= s:
            return f"{n / s:.1f} {unit}"
    return f"{n} B"


def duration(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def writer(info: PipeInfo) -> str:
    if info.writer_state == "none":
        return "none"
    if info.writer_state == "open":
        return f"{info.writer_pid} " + ("alive" if info.writer_alive else "dead")
    return f"{info.writer_pid} {info.writer_state}"


def readers(info: PipeInfo) -> str:
    if not info.readers:
        return "none"
    return ", ".join(f"{r.pid} {'alive' if r.alive else 'dead'} lag {count(r.lag)}"
                     for r in info.readers)


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ("  ".join([c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)] + [r[-1]])
             for r in rows)
    return "\n".join(line.rstrip() for line in lines)
