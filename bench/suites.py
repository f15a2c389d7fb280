"""The measurements, run from the parent process. Each suite returns :class:`Result` records."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bench import roles
from bench.contenders import in_suite
from bench.contenders.base import FANOUT, IDLE, LATENCY, SCALING, THROUGHPUT, Channel
from bench.harness import (
    STARTUP_TIMEOUT,
    Failed,
    Group,
    Plan,
    Task,
    cleaning,
    clock,
    describe,
    median,
    pinned,
    row_dtype,
    run,
)
from bench.machine import cpu_seconds, rss_bytes

LOCAL_MAX_BYTES = 2**30
PIPELINE = "pipeline"
OVERHEAD = "overhead"


@dataclass(frozen=True)
class Settings:
    quick: bool
    reps: int
    warm: float  # s of warm-up per repetition
    budget: float  # s measured per repetition
    max_bytes: int  # per repetition
    layouts: tuple[str, ...]
    blocks: tuple[int, ...]
    lat_reps: int
    lat_rounds: int
    lat_warmup: int
    lat_budget: float
    fan_readers: tuple[int, ...]
    fan_block: int
    fan_labels: tuple[str, ...]
    idle_seconds: float
    rss_seconds: float
    rss_labels: tuple[str, ...]
    scale_levels: tuple[int, ...]
    scale_repeats: int
    pipe_rows: int = 30_000_000  # rows per run of a shmpipe pipeline (pipeline suite)
    pipe_joule_rows: int = 3_000_000  # rows per run of a joule pipeline (much slower)
    pipe_reps: int = 5
    pin: bool = False  # pin the two processes of throughput and latency to two different CPUs
    layout: str = "float32_8"  # for latency, fan-out, rss
    max_rows: int = 50_000_000

    def plan(self, layout: str, block: int) -> Plan:
        rows = min(self.max_rows, self.max_bytes // row_dtype(layout).itemsize)
        return Plan(layout, block, max(rows, block), self.warm, self.budget, self.reps)


QUICK = Settings(
    quick=True,
    reps=3,
    warm=0.05,
    budget=0.2,
    max_bytes=512 * 2**20,
    layouts=("float32_8",),
    blocks=(100, 10_000, 100_000),
    lat_reps=3,
    lat_rounds=1_000,
    lat_warmup=100,
    lat_budget=0.5,
    fan_readers=(1, 2, 4),
    fan_block=1_000,
    fan_labels=("shmpipe shm (copy)", "os.pipe + numpy"),
    idle_seconds=5.0,
    rss_seconds=5.0,
    rss_labels=("shmpipe shm (copy)",),
    scale_levels=(10, 1_000, 100_000, 1_000_000),
    scale_repeats=10,
    pipe_rows=10_000_000,
    pipe_joule_rows=1_000_000,
    pipe_reps=3,
)
FULL = Settings(
    quick=False,
    reps=5,
    warm=0.1,
    budget=0.5,
    max_bytes=4 * 2**30,
    layouts=("float32_8", "int16_2", "float64_64"),
    blocks=(1, 10, 100, 1_000, 10_000, 100_000),
    lat_reps=3,
    lat_rounds=10_000,
    lat_warmup=500,
    lat_budget=2.0,
    fan_readers=(1, 2, 4),
    fan_block=1_000,
    fan_labels=("shmpipe shm (copy)", "os.pipe + numpy", "joule 1.0.1 pipes (os pipe)"),
    idle_seconds=5.0,
    rss_seconds=30.0,
    rss_labels=("shmpipe shm (copy)", "os.pipe + numpy", "joule 1.0.1 pipes (os pipe)"),
    scale_levels=(10, 100, 1_000, 10_000, 100_000, 1_000_000),
    scale_repeats=30,
)


@dataclass
class Result:
    suite: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0  # wall time of the measurement


Log = Callable[[str], None]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


_probed: dict[type[Channel], str | None] = {}


def unavailable(cls: type[Channel]) -> str | None:
    if cls not in _probed:
        try:
            _probed[cls] = cls.probe()
        except Exception as exc:
            _probed[cls] = describe(exc, where=False)
    reason = _probed[cls]
    return None if reason is None else f"not available: {reason}"


def _channels(cls: type[Channel], layout: str, block: int, n: int) -> list[Channel]:
    made: list[Channel] = []
    try:
        for _ in range(n):
            made.append(cls(layout, block))
    except Exception as exc:
        for chan in made:
            with contextlib.suppress(Exception):
                chan.cleanup()
        raise Failed(f"setup failed: {describe(exc)}") from exc
    return made


def _timeout(plan: Plan) -> float:
    """Generous for a slow peer, short enough that a hung one does not stall the run."""
    return 20 + plan.reps * (2 * plan.deadline + 10)


def _rates(sent: list[tuple[int, float]], received: list[tuple[float, int]]) -> list[float]:
    """Per repetition, the lower of the producer's and the consumer's rate.

    In a steady state they are equal; a burst (a consumer catching up on a backlog, a producer
    filling an empty buffer) can only make one of them look faster than the link is.
    """
    for (s, _), (_, r) in zip(sent, received, strict=True):
        if s != r:
            raise Failed(f"lost rows: sent {s}, received {r}")
    return [min(p, c) for (_, p), (c, _) in zip(sent, received, strict=True)]


def _measure(cls: type[Channel], plan: Plan, pin: bool) -> list[float]:
    """Rows/s of each repetition of one throughput measurement."""
    if cls.kind == "memcpy":
        [out] = run(
            [Task(roles.memcpy, (plan,), cpu=pinned(1)[0] if pin else None, name="memcpy")],
            _timeout(plan),
        )
        return [rate for rate, _ in out]
    with cleaning(_channels(cls, plan.layout, plan.block, plan.reps)) as chans:
        if cls.kind == "local":  # a LocalPipe may hold every block at once: cap the bytes
            cap = LOCAL_MAX_BYTES // row_dtype(plan.layout).itemsize
            plan = dataclasses.replace(plan, max_rows=max(plan.block, min(plan.max_rows, cap)))
            [out] = run([Task(roles.local, (chans, plan), name="local")], _timeout(plan))
            return [rate for rate, _ in out]
        cpu = pinned(2) if pin else [None, None]
        sent, got = run(
            [
                Task(roles.produce, ([[c] for c in chans], plan), cpu=cpu[0], name="producer"),
                Task(roles.consume, (chans, plan), cpu=cpu[1], name="consumer"),
            ],
            _timeout(plan),
        )
    return _rates(sent, got)


def _attempt(res: Result, measure: Callable[[], dict[str, Any]]) -> Result:
    """Fill ``res`` from ``measure()`` unless it already carries an error; time it."""
    if res.error is None:
        start = clock()
        try:
            res.values = measure()
        except Failed as exc:
            res.error = f"failed: {exc}"
        res.seconds = clock() - start
    return res


def _say(say: Log, res: Result, what: str, fmt: str) -> None:
    text = res.error or fmt.format(**res.values)
    say(f"[{res.suite}] {what:<18} {res.label:<34} {text} ({res.seconds:.1f} s)")


def _wanted(suite: str, only: Callable[[str], bool]) -> list[type[Channel]]:
    return [c for c in in_suite(suite) if only(c.label)]


def _throughput(cls: type[Channel], plan: Plan, pin: bool) -> dict[str, Any]:
    rates = _measure(cls, plan, pin)
    rows_s = median(rates)
    return {"rows_s": rows_s, "gb_s": rows_s * row_dtype(plan.layout).itemsize / 1e9, "runs": rates}


def throughput(s: Settings, only: Callable[[str], bool], say: Log = log) -> list[Result]:
    results = []
    for layout in s.layouts:
        for cls in _wanted(THROUGHPUT, only):
            for block in s.blocks:
                res = Result(THROUGHPUT, cls.label, {"layout": layout, "block": block})
                res.error = unavailable(cls)
                _attempt(res, partial(_throughput, cls, s.plan(layout, block), s.pin))
                _say(say, res, f"{layout} x{block}", "{rows_s:,.0f} rows/s, {gb_s:.3f} GB/s")
                results.append(res)
    return results


def latency(s: Settings, only: Callable[[str], bool], say: Log = log) -> list[Result]:
    results = []
    for cls in _wanted(LATENCY, only):

        def measure(cls: type[Channel] = cls) -> dict[str, Any]:
            with cleaning(_channels(cls, s.layout, 1, 2 * s.lat_reps)) as chans:
                pairs = list(zip(chans[::2], chans[1::2], strict=True))
                args = (pairs, s.layout, s.lat_rounds, s.lat_warmup, s.lat_budget)
                timeout = 20 + s.lat_reps * (2 * s.lat_budget + 10)
                cpu = pinned(2) if s.pin else [None, None]
                out, _ = run(
                    [
                        Task(roles.ping, args, cpu=cpu[0], name="pinger"),
                        Task(roles.pong, (pairs,), cpu=cpu[1], name="ponger"),
                    ],
                    timeout,
                )
            p50, p99, p999 = (median([rep[i] for rep in out]) for i in range(3))
            return {"p50_us": p50, "p99_us": p99, "p999_us": p999}

        res = _attempt(
            Result(LATENCY, cls.label, {"layout": s.layout}, error=unavailable(cls)), measure
        )
        _say(
            say,
            res,
            "1-row round trip",
            "p50 {p50_us:.1f} us, p99 {p99_us:.1f} us, p99.9 {p999_us:.1f} us",
        )
        results.append(res)
    return results


def fanout(s: Settings, only: Callable[[str], bool], say: Log = log) -> list[Result]:
    results = []
    plan = s.plan(s.layout, s.fan_block)
    for cls in _wanted(FANOUT, only):
        if cls.label not in s.fan_labels:
            continue
        for k in s.fan_readers:

            def measure(cls: type[Channel] = cls, k: int = k) -> dict[str, Any]:
                return {"rows_s": median(_fan(cls, plan, k))}

            params = {"readers": k, "block": s.fan_block}
            res = _attempt(Result(FANOUT, cls.label, params, error=unavailable(cls)), measure)
            _say(say, res, f"{k} reader(s)", "{rows_s:,.0f} rows/s in all")
            results.append(res)
    return results


def _fan(cls: type[Channel], plan: Plan, k: int) -> list[float]:
    """Aggregate rows/s over k readers, per repetition."""
    per_rep = 1 if cls.multi_reader else k
    with cleaning(_channels(cls, plan.layout, plan.block, plan.reps * per_rep)) as chans:
        reps = [chans[r * per_rep : (r + 1) * per_rep] for r in range(plan.reps)]
        tasks = [Task(roles.produce, (reps, plan), name="writer")]
        for j in range(k):
            mine = [rep[j % per_rep] for rep in reps]
            tasks.append(Task(roles.consume, (mine, plan), name=f"reader {j}"))
        sent, *got = run(tasks, _timeout(plan) * (1 + k / 2))
    per_reader = [_rates(sent, reader) for reader in got]
    return [sum(rates[r] for rates in per_reader) for r in range(plan.reps)]


def idle(s: Settings, only: Callable[[str], bool], say: Log = log) -> list[Result]:
    """CPU use of processes waiting on an empty channel, all contenders at once."""
    results: list[Result] = []
    groups: dict[str, Group] = {}
    with contextlib.ExitStack() as stack:
        for cls in _wanted(IDLE, only):
            res = Result(IDLE, cls.label, {"seconds": s.idle_seconds}, error=unavailable(cls))
            results.append(res)
            if res.error:
                continue
            try:
                [chan] = stack.enter_context(cleaning(_channels(cls, s.layout, 1_000, 1)))
            except Failed as exc:
                res.error = f"failed: {exc}"
                continue
            group = Group(
                [
                    Task(roles.idle_recv, (chan,), name="reader"),
                    Task(roles.idle_send, (chan,), name="writer"),
                ]
            )
            stack.callback(group.close)
            group.start()
            groups[res.label] = group
        for res in results:  # all spawned at once, then each waited for
            if res.label in groups:
                try:
                    groups[res.label].ready()
                    groups[res.label].note(STARTUP_TIMEOUT)
                except Failed as exc:
                    res.error = f"failed: {exc}"
                    del groups[res.label]
        time.sleep(0.5)
        start = clock()
        before = {label: [cpu_seconds(pid) for pid in g.pids] for label, g in groups.items()}
        time.sleep(s.idle_seconds)
        wall = clock() - start
        for res in results:
            if res.label not in groups:
                continue
            try:
                after = [cpu_seconds(pid) for pid in groups[res.label].pids]
            except OSError as exc:
                res.error = f"failed: a process ended while waiting ({exc})"
                continue
            used = [100 * (a - b) / wall for a, b in zip(after, before[res.label], strict=True)]
            res.values = {"reader_cpu": used[0], "writer_cpu": used[1]}
            res.seconds = wall
    for res in results:
        _say(
            say,
            res,
            f"idle {s.idle_seconds:.0f} s",
            "reader {reader_cpu:.3f} % of a core, writer {writer_cpu:.3f} %",
        )
    return results


def rss(s: Settings, only: Callable[[str], bool], say: Log = log) -> list[Result]:
    """RSS of producer and consumer sampled through a full-rate run."""
    results = []
    for cls in _wanted(THROUGHPUT, only):
        if cls.label not in s.rss_labels:
            continue
        params = {"seconds": s.rss_seconds, "block": s.fan_block}
        res = _attempt(
            Result("rss", cls.label, params, error=unavailable(cls)), partial(_rss, cls, s)
        )
        _say(
            say,
            res,
            f"rss {s.rss_seconds:.0f} s",
            "producer {p_start:.0f} -> max {p_max:.0f} "
            "-> {p_end:.0f} MiB, consumer {c_start:.0f} -> max {c_max:.0f} -> {c_end:.0f} MiB",
        )
        results.append(res)
    return results


def _rss(cls: type[Channel], s: Settings) -> dict[str, Any]:
    plan = Plan(s.layout, s.fan_block, 10**12, 0.0, s.rss_seconds, 1)
    samples: list[tuple[float, int, int]] = []
    with cleaning(_channels(cls, plan.layout, plan.block, 1)) as chans:
        tasks = [
            Task(roles.produce, ([chans], plan), name="producer"),
            Task(roles.consume, (chans, plan), name="consumer"),
        ]
        with Group(tasks) as group:
            start = clock()

            def sample() -> None:
                with contextlib.suppress(OSError):
                    p, c = (rss_bytes(pid) for pid in group.pids)
                    samples.append((clock() - start, p, c))

            sample()
            sent, got = group.wait(_timeout(plan), every=0.1, monitor=sample)
    _rates(sent, got)
    if not samples:
        raise Failed("no samples")
    series = [(t, p / 2**20, c / 2**20) for t, p, c in samples]
    out: dict[str, Any] = {"series": series}
    for key, i in (("p", 1), ("c", 2)):
        out[f"{key}_start"], out[f"{key}_end"] = series[0][i], series[-1][i]
        out[f"{key}_max"] = max(row[i] for row in series)
    return out


def _scale(cls: type[Channel], s: Settings, levels: dict[int, list[float]]) -> dict[str, Any]:
    with cleaning(_channels(cls, s.layout, 1, 1)) as [chan]:
        args = (chan, list(s.scale_levels), s.scale_repeats)
        [out] = run([Task(roles.scale, args, name="scaling")], 20 + 600)
    levels.update({int(row[0]): row[1:] for row in out})
    return {}


def scaling(s: Settings, only: Callable[[str], bool], say: Log = log) -> list[Result]:
    results = []
    for cls in _wanted(SCALING, only):
        levels: dict[int, list[float]] = {}
        whole = _attempt(
            Result(SCALING, cls.label, error=unavailable(cls)), partial(_scale, cls, s, levels)
        )
        for n in s.scale_levels:
            res = Result(
                SCALING, cls.label, {"unconsumed": n}, error=whole.error, seconds=whole.seconds
            )
            if n in levels:
                read_us, consume_us, returned = levels[n]
                res.values = {
                    "read_us": read_us,
                    "consume_us": consume_us,
                    "returned": int(returned),
                }
            _say(
                say,
                res,
                f"{n:,} unconsumed",
                "read {read_us:.1f} us, consume(1) {consume_us:.1f} us, {returned:,} rows returned",
            )
            results.append(res)
    return results


def overhead(s: Settings, only: Callable[[str], bool], say: Log = log) -> list[Result]:
    """µs per call in this process (see bench/overhead.py); the cases run round-robin."""
    import asyncio

    from bench import overhead as oh

    start = clock()
    found = asyncio.run(oh.measure(only, rounds=oh.ROUNDS if not s.quick else 5))
    took = clock() - start
    results = []
    for case in oh.CASES:
        if case.key not in found:
            continue
        runs = found[case.key]
        res = Result(OVERHEAD, case.label, {"key": case.key, "target": oh.TARGETS.get(case.key)},
                     seconds=took / max(1, len(found)))
        if isinstance(runs, str):
            res.error = runs
        else:
            res.values = {"us": median(runs), "runs": runs}
        _say(say, res, "per call", "{us:.2f} us")
        results.append(res)
    return results


def pipeline(s: Settings, only: Callable[[str], bool], say: Log = log) -> list[Result]:
    """source -> pass-through filter -> sink (bench/pipeline.py) in each arrangement, and the
    bare shm pipe: one repetition of each in turn, medians of the rows/s at the sink."""
    import asyncio

    from bench import pipeline as pl
    from bench.contenders import REFERENCE

    wanted = [a for a in pl.ARRANGEMENTS if only(a.label)]
    bare = only(pl.BARE_LABEL) or only(REFERENCE.label)
    reason = pl.probe()
    runs: dict[str, list[float]] = {a.key: [] for a in wanted}
    walls: dict[str, list[float]] = {a.key: [] for a in wanted}
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}
    bare_plan = dataclasses.replace(s.plan(pl.LAYOUT, pl.BLOCK), reps=1)
    for rep in range(s.pipe_reps):
        if bare and "bare" not in errors:
            start = clock()
            try:
                runs.setdefault("bare", []).extend(_measure(REFERENCE, bare_plan, s.pin))
            except Failed as exc:
                errors["bare"] = f"failed: {exc}"
            seconds["bare"] = seconds.get("bare", 0.0) + clock() - start
        for a in wanted:
            if a.key in errors:
                continue
            if reason:
                errors[a.key] = reason
                continue
            n = s.pipe_joule_rows if a.joule else s.pipe_rows
            start = clock()
            try:
                out = asyncio.run(a.run(n, timeout=60 + n / 200_000))
                if not out.rows_s == out.rows_s:  # nan: the sink could not time it
                    raise Failed(f"too few reads at the sink to time ({out.rows} rows)")
                runs[a.key].append(out.rows_s)
                walls[a.key].append(out.wall)
            except Failed as exc:
                errors[a.key] = f"failed: {exc}"
            seconds[a.key] = seconds.get(a.key, 0.0) + clock() - start
            say(f"[pipeline] rep {rep + 1}/{s.pipe_reps} {a.label:<48} "
                + (errors.get(a.key) or f"{runs[a.key][-1]:,.0f} rows/s"))
    results = []
    items: list[tuple[str, str, int | None]] = [
        (a.key, a.label, s.pipe_joule_rows if a.joule else s.pipe_rows) for a in wanted]
    if bare:
        items.append(("bare", pl.BARE_LABEL, None))  # time-budgeted, as in throughput
    for key, label, rows in items:
        res = Result(PIPELINE, label, {"key": key, "rows": rows, "block": pl.BLOCK},
                     error=errors.get(key), seconds=seconds.get(key, 0.0))
        if res.error is None:
            rate = median(runs[key])
            res.values = {"rows_s": rate, "gb_s": rate * row_dtype(pl.LAYOUT).itemsize / 1e9,
                          "runs": runs[key], "wall_s": median(walls.get(key) or [])}
        _say(say, res, "3 stages" if key != "bare" else "2 processes",
             "{rows_s:,.0f} rows/s (median)")
        results.append(res)
    return results


def rings(s: Settings, only: Callable[[str], bool], say: Log = log) -> list[Result]:
    """Opening costs, fresh against warm pipes, large rings (see bench/rings.py)."""
    from bench import rings as measure

    return measure.rings(s, only, say)


SUITES: dict[str, Callable[[Settings, Callable[[str], bool], Log], list[Result]]] = {
    "overhead": overhead,
    "rings": rings,
    "throughput": throughput,
    "latency": latency,
    "fanout": fanout,
    "idle": idle,
    "rss": rss,
    "scaling": scaling,
    "pipeline": pipeline,
}
