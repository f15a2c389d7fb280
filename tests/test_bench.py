"""The benchmark's own behaviour: where a run writes, what it pins, what it leaves behind."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

bench_cli = pytest.importorskip("bench.cli",
                                reason="the benchmarks live in the source tree (bench/)")


def test_a_quick_run_writes_to_its_own_folder_and_says_where(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quick run leaves the committed RESULTS.md and plots alone: it writes bench/quick/
    (here under a stand-in for bench/) and names the file it wrote; the report says the
    processes were unpinned and carries the targets section."""
    committed = tmp_path / "RESULTS.md"
    committed.write_text("the committed full run\n")
    monkeypatch.setattr(bench_cli, "HERE", str(tmp_path))
    assert bench_cli.main(["--quick", "--suite", "overhead", "--only", "LocalPipe"]) == 0
    assert committed.read_text() == "the committed full run\n"
    written = tmp_path / "quick" / "RESULTS.md"
    text = written.read_text()
    assert "## Per-call overhead" in text
    # the case measured is in the table with its figure, and its target is checked with it
    assert re.search(r"\| LocalPipe `write` \+ `read` \+ `consume`, 1 row \| [\d.]+ \| <= 4 \| "
                     r"(yes|\*\*no\*\*) \|", text), text
    assert "unpinned: processes placed by the OS" in text
    assert "## Targets, with this run's figures" in text
    assert re.search(r"\| 1-row LocalPipe `write` \+ `read` \+ `consume` <= 4 µs \| [\d.]+ µs \| "
                     r"(yes|\*\*no\*\*) \|", text), text
    assert "not measured in this run" in text  # the throughput targets: not run here
    assert os.path.relpath(written) in capsys.readouterr().err


def test_unpinned_by_default_pinned_with_pin_and_no_pin_still_accepted() -> None:
    assert bench_cli.parse([]).pin is False
    assert bench_cli.parse(["--pin"]).pin is True
    assert bench_cli.parse(["--no-pin"]).pin is False


def test_iceoryx2_files_made_during_a_measurement_are_removed_after_it() -> None:
    """A publish/subscribe exchange leaves iceoryx2's service files in /dev/shm and
    /tmp/iceoryx2 after its ends are gone; the channel's cleanup removes every one that
    appeared since the channel was made, and nothing that was there before."""
    pytest.importorskip("iceoryx2", reason="an optional benchmark peer: pip install -e '.[bench]'")
    import numpy as np

    from bench.contenders import iceoryx

    theirs = f"/dev/shm/iox2_not_ours_{os.getpid()}"  # another iceoryx2 user's file
    with open(theirs, "w"):
        pass
    try:
        before = iceoryx.files()
        chan = iceoryx.Iceoryx("float32_8", 4)
        tx, rx = chan.sender(), chan.receiver()
        block = np.zeros(4, chan.dtype)
        tx.send(block)
        assert len(rx.recv()) == 4
        rx.release(4)
        del tx, rx
        made = iceoryx.files() - before
        assert made, "expected iceoryx2 to leave files for the service"
        chan.cleanup()
        assert iceoryx.files() - before == set()
        assert os.path.exists(theirs), "a file that predates the channel was removed"
    finally:
        os.unlink(theirs)
