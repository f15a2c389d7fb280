"""The generated targets table: the network targets judge the rows they name."""

from __future__ import annotations

import pytest

pytest.importorskip("bench.targets", reason="the benchmarks live in the source tree (bench/)")


def test_the_network_targets_compare_like_with_like() -> None:
    from bench import targets
    from bench.suites import QUICK, Result

    def rate(label: str, rows_s: float) -> Result:
        return Result("throughput", label, {"layout": "float32_8", "block": 10_000},
                      {"rows_s": rows_s})

    def rtt(label: str, p50: float) -> Result:
        return Result("latency", label, {}, {"p50_us": p50})

    text = targets.section({
        "throughput": [rate("shmpipe net (tcp)", 1e6),  # the copying write: not the target's
                       rate("shmpipe net (tcp, lend)", 45e6), rate("pyzmq PUSH/PULL tcp", 50e6),
                       rate("shmpipe net (ipc, lend)", 40e6), rate("pyzmq PUSH/PULL ipc", 50e6)],
        "latency": [rtt("shmpipe net (tcp)", 110.0), rtt("pyzmq PUSH/PULL tcp", 100.0)],
    }, QUICK)
    assert "| 10k-row blocks: net tcp, lend >= 0.9x raw pyzmq tcp | 45M against 50M rows/s: " \
           "x0.90 | yes |" in text
    assert "| 10k-row blocks: net ipc, lend >= 0.9x raw pyzmq ipc | 40M against 50M rows/s: " \
           "x0.80 | **no** |" in text
    assert "| 1-row round trip p50: net tcp <= 1.2x raw pyzmq tcp | 110.0 against 100.0 µs: " \
           "x1.10 | yes |" in text
