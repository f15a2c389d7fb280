"""Markdown tables (stdout and RESULTS.md) and PNG plots from the results."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any

from bench.contenders import ALL, REFERENCE
from bench.harness import median
from bench.suites import Result, Settings

REF = REFERENCE.label


def si(value: float, unit: str = "") -> str:
    """3 significant digits with a k/M/G suffix."""
    if value is None or not math.isfinite(value):
        return "?"
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}"


def ratio(value: float | None, ref: float | None) -> str:
    if not value or not ref or not math.isfinite(value) or not math.isfinite(ref):
        return ""
    return f"x{value / ref:.2f}"


class Table:
    """A markdown table whose failed cells become numbered notes under it."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.rows: list[list[str]] = []
        self.notes: list[str] = []

    def add(
        self,
        label: str,
        cells: list[Result | None],
        fmt: Callable[[Result], str] | list[Callable[[Result], str]],
    ) -> None:
        """One row; ``fmt`` formats every cell, or is one formatter per cell."""
        fmts = fmt if isinstance(fmt, list) else [fmt] * len(cells)
        errors = {c.error for c in cells if c is not None}
        if len(errors) == 1 and None not in errors and all(c is not None for c in cells):
            self.rows.append([label, next(iter(errors)) or ""] + [""] * (len(cells) - 1))
            return
        row = [label]
        for cell, f in zip(cells, fmts, strict=True):
            if cell is None:
                row.append("")
            elif cell.error:
                self.notes.append(cell.error)
                row.append(f"— [{len(self.notes)}]")
            else:
                row.append(f(cell))
        self.rows.append(row)

    def render(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in self.rows]
        lines += [f"\n[{i}] {note}" for i, note in enumerate(self.notes, 1)]
        return "\n".join(lines)


def _labels(results: Iterable[Result]) -> list[str]:
    return list(dict.fromkeys(r.label for r in results))


def _find(results: list[Result], label: str, **params: Any) -> Result | None:
    for r in results:
        if r.label == label and all(r.params.get(k) == v for k, v in params.items()):
            return r
    return None


def _value(res: Result | None, key: str) -> float | None:
    return None if res is None or res.error else res.values.get(key)


def overhead_table(results: list[Result]) -> str:
    t = Table(["operation", "µs per call", "target", "met"])

    def target(r: Result) -> str:
        return f"<= {r.params['target']:g}" if r.params.get("target") else ""

    def met(r: Result) -> str:
        goal = r.params.get("target")
        return "" if not goal else ("yes" if r.values["us"] <= goal else "**no**")

    for res in results:
        t.add(res.label, [res, res, res], [lambda r: f"{r.values['us']:.2f}", target, met])
    return t.render()


PIPELINE_TARGETS = [  # (numerator, denominator, target ratio or None, what)
    ("procs", "jouled", 10.0, "shmpipe all processes / joule jouled-style"),
    ("procs", "direct", None, "shmpipe all processes / joule modules joined directly"),
    ("one", "jouled", None, "shmpipe one process / joule jouled-style"),
    ("one", "direct", None, "shmpipe one process / joule modules joined directly"),
    ("procs", "bare", 0.7, "shmpipe all processes / bare shm pipe"),
]


def _times(x: float) -> str:
    return f"x{x:.3g}" if x < 10 else f"x{x:.0f}"


def pipeline_table(results: list[Result]) -> str:
    """The arrangements' rows/s, then the ratios the issue sets targets for."""
    by_key = {r.params["key"]: r for r in results}
    table = Table(["arrangement", "rows/s (median)", "GB/s", "rows per run", "repetitions",
                   "run wall time, start-up included"])
    for r in results:
        table.add(
            r.label,
            [r] * 5,
            [
                lambda r: si(r.values["rows_s"]),
                lambda r: f"{r.values['gb_s']:.3g}",
                lambda r: f"{r.params['rows']:,}" if r.params["rows"] else "as throughput",
                lambda r: " / ".join(si(v) for v in r.values["runs"]),
                lambda r: f"{r.values['wall_s']:.1f} s" if math.isfinite(r.values["wall_s"])
                else "",
            ],
        )
    ratios = Table(["ratio", "of the medians", "median of the per-turn ratios", "target",
                    "met"])
    for num, den, goal, what in PIPELINE_TARGETS:
        a, b = by_key.get(num), by_key.get(den)
        if _value(a, "rows_s") is None or _value(b, "rows_s") is None:
            continue
        assert a is not None and b is not None
        value = a.values["rows_s"] / b.values["rows_s"]
        turns = zip(a.values["runs"], b.values["runs"], strict=False)  # the same turns, in order
        paired = median([x / y for x, y in turns])
        target = "" if goal is None else f">= {goal:g}"
        met = "" if goal is None else ("yes" if value >= goal else "**no**")
        ratios.rows.append([what, _times(value), _times(paired), target, met])
    return table.render() + ("\n\n" + ratios.render() if ratios.rows else "")


def throughput_tables(results: list[Result], s: Settings) -> str:
    out = []
    for layout in s.layouts:
        rs = [r for r in results if r.params.get("layout") == layout]
        if not rs:
            continue
        table = Table(["contender"] + [f"{b:,} rows/block" for b in s.blocks])
        for label in _labels(rs):
            cells = [_find(rs, label, block=b) for b in s.blocks]

            def fmt(r: Result, rs: list[Result] = rs) -> str:
                ref = _value(_find(rs, REF, block=r.params["block"]), "rows_s")
                return (
                    f"{si(r.values['rows_s'])} rows/s, {r.values['gb_s']:.3g} GB/s "
                    f"{ratio(r.values['rows_s'], ref)}"
                )

            table.add(label, cells, fmt)
        out.append(f"#### {layout} (row = {_itemsize(layout)} bytes)\n\n{table.render()}")
    return "\n\n".join(out)


def _itemsize(layout: str) -> int:
    from bench.harness import row_dtype

    return row_dtype(layout).itemsize


def latency_table(results: list[Result]) -> str:
    ref = _value(_find(results, REF), "p50_us")
    table = Table(["contender", "p50 µs", "p99 µs", "p99.9 µs", "p50 vs shm"])
    for label in _labels(results):
        r = _find(results, label)
        table.add(
            label,
            [r] * 4,
            [
                lambda r: f"{r.values['p50_us']:.1f}",
                lambda r: f"{r.values['p99_us']:.1f}",
                lambda r: f"{r.values['p999_us']:.1f}",
                lambda r: ratio(r.values["p50_us"], ref),
            ],
        )
    return table.render()


def fanout_table(results: list[Result], s: Settings) -> str:
    table = Table(["contender"] + [f"{k} reader{'s' * (k > 1)}" for k in s.fan_readers])
    for label in _labels(results):
        cells = [_find(results, label, readers=k) for k in s.fan_readers]

        def fmt(r: Result) -> str:
            ref = _value(_find(results, REF, readers=r.params["readers"]), "rows_s")
            return f"{si(r.values['rows_s'])} rows/s {ratio(r.values['rows_s'], ref)}"

        table.add(label, cells, fmt)
    return table.render()


def idle_table(results: list[Result]) -> str:
    table = Table(["contender", "waiting reader, % of a core", "idle writer, % of a core"])
    for r in results:
        table.add(
            r.label,
            [r, r],
            [lambda r: f"{r.values['reader_cpu']:.2f}", lambda r: f"{r.values['writer_cpu']:.2f}"],
        )
    return table.render()


def rss_table(results: list[Result]) -> str:
    table = Table(
        [
            "contender",
            "producer RSS MiB (start / max / end)",
            "consumer RSS MiB (start / max / end)",
        ]
    )

    def mib(who: str) -> Callable[[Result], str]:
        return lambda r: " / ".join(
            f"{r.values[f'{who}_{x}']:.0f}" for x in ("start", "max", "end")
        )

    for r in results:
        table.add(r.label, [r, r], [mib("p"), mib("c")])
    return table.render()


def scaling_tables(results: list[Result], s: Settings) -> str:
    out = []
    for key, title in (("read_us", "read() µs"), ("consume_us", "consume(1) µs")):
        table = Table(["contender"] + [f"{n:,}" for n in s.scale_levels])
        for label in _labels(results):
            cells = [_find(results, label, unconsumed=n) for n in s.scale_levels]

            def fmt(r: Result, key: str = key) -> str:
                short = r.values["returned"] < r.params["unconsumed"] + 1
                return f"{r.values[key]:.3g}" + (" *" if short else "")

            table.add(label, cells, fmt)
        out.append(f"{title}, by unconsumed rows:\n\n{table.render()}")
    return "\n\n".join(out)


# ------------------------------------------------------------------------------ plots
MARKERS = "os^vD<>pP*Xh"


def _style(label: str) -> dict[str, Any]:
    """The same colour and marker for a contender in every figure."""
    from matplotlib import colormaps

    i = next((k for k, c in enumerate(ALL) if c.label == label), len(ALL))
    ref = label == REF
    return {
        "label": label,
        "color": colormaps["tab20"]((2 * i) % 20 + (i >= 10)),
        "marker": MARKERS[i % len(MARKERS)],
        "linestyle": "--" if label.startswith("limit") else "-",
        "linewidth": 2.5 if ref else 1.2,
        "markersize": 7 if ref else 5,
        "zorder": 3 if ref else 2,
    }


def plots(results: dict[str, list[Result]], s: Settings, folder: str) -> list[str]:
    """Write the PNG figures; their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):  # no figure from an earlier run may outlive it
        if old.endswith(".png"):
            os.unlink(os.path.join(folder, old))
    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(os.path.join(folder, name), dpi=110)
        plt.close(fig)
        written.append(name)

    def lines(
        rs: list[Result],
        xkey: str,
        ykey: str,
        title: str,
        xlabel: str,
        ylabel: str,
        name: str,
        logx: bool = True,
    ) -> None:
        fig, ax = plt.subplots(figsize=(11, 5.5))
        for label in _labels(rs):
            pts = sorted(
                (r.params[xkey], r.values[ykey])
                for r in rs
                if r.label == label and not r.error and math.isfinite(r.values[ykey])
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), **_style(label))
        if logx:
            ax.set_xscale("log")
        else:
            ax.set_xticks(sorted({r.params[xkey] for r in rs}))
        ax.set_yscale("log")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
        save(fig, name)

    for layout in s.layouts:
        rs = [r for r in results.get("throughput", []) if r.params.get("layout") == layout]
        if rs:
            lines(
                rs,
                "block",
                "rows_s",
                f"Throughput, {layout}, 1 producer -> 1 consumer",
                "rows per block",
                "rows/s (median)",
                f"throughput_{layout}.png",
            )
    if results.get("fanout"):
        lines(
            results["fanout"],
            "readers",
            "rows_s",
            "Fan-out, 1 writer -> k readers",
            "readers",
            "aggregate rows/s",
            "fanout.png",
            logx=False,
        )
    if results.get("scaling"):
        lines(
            results["scaling"],
            "unconsumed",
            "read_us",
            "Cost of one read() vs unconsumed rows",
            "unconsumed rows",
            "read() µs (median)",
            "scaling.png",
        )
    lat = [r for r in results.get("latency", []) if not r.error]
    if lat:
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(lat) + 1.5))
        ys = range(len(lat))
        for i, (key, name) in enumerate(
            (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9"))
        ):
            ax.barh(
                [y + (i - 1) * 0.27 for y in ys], [r.values[key] for r in lat], 0.27, label=name
            )
        ax.set_yticks(list(ys), [r.label for r in lat], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set(title="One-row round trip between two processes", xlabel="µs")
        ax.grid(True, axis="x", which="both", alpha=0.3)
        ax.legend()
        save(fig, "latency.png")
    mem = [r for r in results.get("rss", []) if not r.error]
    if mem:
        fig, ax = plt.subplots(figsize=(9, 5))
        for r in mem:
            t, p, c = zip(*r.values["series"], strict=True)
            ax.plot(t, p, label=f"{r.label}: producer")
            ax.plot(t, c, "--", label=f"{r.label}: consumer")
        ax.set(title="RSS during a full-rate run", xlabel="s", ylabel="MiB")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "rss.png")
    return written
