"""The targets shmpipe is held to, each checked against the figures of the run it is printed
with (never against an older run): one findings table, generated, in every RESULTS.md."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.suites import Result, Settings

SHM = "shmpipe shm (copy)"
OSPIPE = "os.pipe + numpy"
ICEORYX = "iceoryx2 pub/sub"
ZMQ = "pyzmq PUSH/PULL ipc"
BARE = "limit: bare shm hand-off"
JOULE = "joule 1.0.1 pipes (os pipe)"
FLOOR = "floor: blocking os.pipe, 1 byte"
SPIN = "shmpipe shm (busy-poll)"
ZMQ_TCP = "pyzmq PUSH/PULL tcp"
NET_TCP = "shmpipe net (tcp)"
LENT_TCP, LENT_IPC = "shmpipe net (tcp, lend)", "shmpipe net (ipc, lend)"
LAYOUT = "float32_8"

Results = dict[str, list[Result]]


def value(results: Results, suite: str, label: str, key: str, **params: Any) -> float | None:
    for r in results.get(suite, []):
        if r.label == label and not r.error and all(r.params.get(k) == v
                                                    for k, v in params.items()):
            v = r.values.get(key)
            return float(v) if v is not None and math.isfinite(float(v)) else None
    return None


def _si(v: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g}{suffix}"
    return f"{v:.3g}"


@dataclass(frozen=True)
class Target:
    text: str
    # (figure, met: None when it cannot be told), or None: not measured in the run
    check: Callable[[Results], tuple[str, bool | None] | None]


def _at_most(suite: str, label: str, key: str, limit: float, unit: str,
             **params: Any) -> Callable[[Results], tuple[str, bool] | None]:
    def check(results: Results) -> tuple[str, bool] | None:
        v = value(results, suite, label, key, **params)
        return None if v is None else (f"{v:.2f} {unit}", v <= limit)
    return check


def failure(results: Results, suite: str, label: str, **params: Any) -> str | None:
    """The error of ``label``'s cell, if it was run and failed."""
    for r in results.get(suite, []):
        if r.label == label and r.error and all(r.params.get(k) == v
                                                for k, v in params.items()):
            return r.error
    return None


def _rate_ratio(block: int, other: str, factor: float, me: str = SHM,
                ) -> Callable[[Results], tuple[str, bool | None] | None]:
    """``me``'s rows/s at ``block`` rows per block >= ``factor`` x ``other``'s."""
    def check(results: Results) -> tuple[str, bool | None] | None:
        mine = value(results, "throughput", me, "rows_s", layout=LAYOUT, block=block)
        theirs = value(results, "throughput", other, "rows_s", layout=LAYOUT, block=block)
        for label in (me, other):
            error = failure(results, "throughput", label, layout=LAYOUT, block=block)
            if error:
                return f"not comparable: {label} {error}", None
        if mine is None or theirs is None:
            return None
        return (f"{_si(mine)} against {_si(theirs)} rows/s: x{mine / theirs:.2f}",
                mine >= factor * theirs)
    return check


def _keyed(key: str, limit: float) -> Callable[[Results], tuple[str, bool] | None]:
    def check(results: Results) -> tuple[str, bool] | None:
        for r in results.get("overhead", []):
            if r.params.get("key") == key and not r.error:
                us = float(r.values["us"])
                return f"{us:.2f} µs", us <= limit
        return None
    return check


def _latency_vs(other: str, factor: float, better: bool, me: str = SHM,
                ) -> Callable[[Results], tuple[str, bool] | None]:
    def check(results: Results) -> tuple[str, bool] | None:
        mine = value(results, "latency", me, "p50_us")
        theirs = value(results, "latency", other, "p50_us")
        if mine is None or theirs is None:
            return None
        if better:  # mine at least ``factor`` times lower
            return f"{mine:.1f} against {theirs:.1f} µs: x{theirs / mine:.1f}", \
                theirs >= factor * mine
        return f"{mine:.1f} against {theirs:.1f} µs: x{mine / theirs:.2f}", \
            mine <= factor * theirs
    return check


def _rings(key: str, ref: str, factor: float) -> Callable[[Results], tuple[str, bool] | None]:
    """From the ``rings`` suite: rows/s of case ``key`` >= ``factor`` x case ``ref``."""
    def check(results: Results) -> tuple[str, bool] | None:
        got = {r.params.get("key"): r.values.get("rows_s") for r in results.get("rings", [])
               if not r.error}
        mine, theirs = got.get(key), got.get(ref)
        if not mine or not theirs:
            return None
        return (f"{_si(mine)} against {_si(theirs)} rows/s: {mine / theirs:.0%}",
                mine >= factor * theirs)
    return check


def _pipeline(num: str, den: str, factor: float,
              ) -> Callable[[Results], tuple[str, bool | None] | None]:
    """From the ``pipeline`` suite: arrangement ``num``'s rows/s >= ``factor`` x ``den``'s."""
    def check(results: Results) -> tuple[str, bool | None] | None:
        rows = {r.params.get("key"): r for r in results.get("pipeline", [])}
        for key in (num, den):
            if key in rows and rows[key].error:
                return f"not comparable: {rows[key].label} {rows[key].error}", None
        mine, theirs = (rows[k].values.get("rows_s") if k in rows else None for k in (num, den))
        if not mine or not theirs:
            return None
        return (f"{_si(mine)} against {_si(theirs)} rows/s: x{mine / theirs:.2f}",
                mine >= factor * theirs)
    return check


def _pipeline_targets() -> list[Target]:
    from bench.report import PIPELINE_TARGETS

    return [Target(f"pipeline (source -> filter -> sink, 10k-row blocks): {what} >= "
                   + (f"{goal:g}x" if goal >= 1 else f"{goal:.0%}"), _pipeline(num, den, goal))
            for num, den, goal, what in PIPELINE_TARGETS if goal is not None]


TARGETS = [
    Target("1-row shm `write`, one process <= 3 µs", _keyed("shm-write-1", 3.0)),
    Target("1-row shm `read` + `consume`, one process <= 3 µs", _keyed("shm-read-consume", 3.0)),
    Target("1-row LocalPipe `write` + `read` + `consume` <= 4 µs",
           _keyed("local-write-read", 4.0)),
    Target("1-row blocks: shm >= `os.pipe + numpy`", _rate_ratio(1, OSPIPE, 1.0)),
    Target("1-row blocks: shm >= iceoryx2", _rate_ratio(1, ICEORYX, 1.0)),
    Target("100-row blocks: shm >= 2x pyzmq", _rate_ratio(100, ZMQ, 2.0)),
    Target("10k-row blocks: shm >= 1.5x pyzmq", _rate_ratio(10_000, ZMQ, 1.5)),
    Target("10k-row blocks: shm >= iceoryx2", _rate_ratio(10_000, ICEORYX, 1.0)),
    Target("10k-row blocks: shm >= 80% of the bare shm hand-off",
           _rate_ratio(10_000, BARE, 0.8)),
    Target("10k-row blocks: shm >= 20x joule's OS-pipe pipes", _rate_ratio(10_000, JOULE, 20)),
    Target("10k-row blocks: shm >= 2x `os.pipe + numpy`", _rate_ratio(10_000, OSPIPE, 2.0)),
    Target("3M rows through a freshly opened pipe >= 85% of the same pipe warm",
           _rings("fresh", "warm", 0.85)),
    Target("a `capacity=1<<20` ring >= 90% of the default ring (fresh pipes)",
           _rings("fresh-1m", "fresh", 0.9)),
    Target("1-row round trip p50 <= the blocking `os.pipe` floor", _latency_vs(FLOOR, 1.0, False)),
    Target("1-row round trip p50 >= 8x better than joule's pipes", _latency_vs(JOULE, 8.0, True)),
    Target("busy-poll round trip p50 <= 10 µs", _at_most("latency", SPIN, "p50_us", 10.0, "µs")),
    Target("a reader waiting on an idle pipe < 1% of a core",
           _at_most("idle", SHM, "reader_cpu", 1.0, "% of a core")),
    # network pipes: raw pyzmq sends each block from its memory (copy=False), as lend() does
    Target("10k-row blocks: net tcp, lend >= 0.9x raw pyzmq tcp",
           _rate_ratio(10_000, ZMQ_TCP, 0.9, LENT_TCP)),
    Target("10k-row blocks: net ipc, lend >= 0.9x raw pyzmq ipc",
           _rate_ratio(10_000, ZMQ, 0.9, LENT_IPC)),
    Target("1-row round trip p50: net tcp <= 1.2x raw pyzmq tcp",
           _latency_vs(ZMQ_TCP, 1.2, False, NET_TCP)),
    *_pipeline_targets(),
]


def section(results: Results, s: Settings) -> str:
    """The findings of this run: every target, its figure, met or not."""
    rows = ["| target (float32_8, this run) | figure | met |", "|---|---|---|"]
    for t in TARGETS:
        got = t.check(results)
        if got is None:
            rows.append(f"| {t.text} | not measured in this run | |")
        else:
            figure, met = got
            verdict = "" if met is None else ("yes" if met else "**no**")
            rows.append(f"| {t.text} | {figure.replace('|', '/')} | {verdict} |")
    how = "pinned to two CPUs (`--pin`)" if s.pin else "unpinned (processes placed by the OS)"
    return ("## Targets, with this run's figures\n\n"
            f"Generated from the tables above ({how}); a target whose suite or contenders were "
            "not run says so.\n\n" + "\n".join(rows) + "\n")
