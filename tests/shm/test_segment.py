"""segment.py: the header mutex, recovery, space reservation, owners, failed opens."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import posix_ipc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shmpipe
from shmpipe import PipeError
from shmpipe.shm import locks, names, ring, segment
from shmpipe.shm.header import HEADER_BYTES, Header, check_cursors

LAYOUT = "float64_2"


def objects(name: str) -> list[str]:
    return sorted(os.path.basename(p) for p in names.entries_of(name))


def sem_value(name: str) -> int:
    sem = posix_ipc.Semaphore(names.lock_name(name))
    try:
        return int(sem.value)
    finally:
        sem.close()


def block(start: int, n: int) -> np.ndarray:
    ts = np.arange(start, start + n, dtype=np.float64)
    return np.column_stack([ts, ts * 0.5, -ts])


# ------------------------------------------------------------------ capacity and space
@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True, None.__class__, [3]])
def test_capacity_must_be_a_positive_whole_number(pipe_name: str, bad: Any) -> None:
    with pytest.raises(PipeError, match="capacity"):
        shmpipe.open_output(pipe_name, LAYOUT, capacity=bad)
    assert objects(pipe_name) == []


def test_capacity_beyond_any_ring_is_refused_before_anything_is_made(pipe_name: str) -> None:
    """10**18 rows overflowed the size computation and was reported as 'corrupted'."""
    with pytest.raises(PipeError, match="largest ring") as e:
        shmpipe.open_output(pipe_name, LAYOUT, capacity=10**18)
    assert "corrupt" not in str(e.value)
    assert objects(pipe_name) == []


def test_ring_larger_than_dev_shm_fails_at_open_naming_the_bytes(pipe_name: str) -> None:
    """10**10 rows (a 240 GB ring) used to be a sparse file that would SIGBUS on use."""
    need = HEADER_BYTES + 10**10 * 24
    with pytest.raises(PipeError, match=rf"needs {need} bytes .* are free") as e:
        shmpipe.open_output(pipe_name, LAYOUT, capacity=10**10)
    assert "/dev/shm" in str(e.value)
    assert objects(pipe_name) == [], "a failed open left objects behind"
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)  # the name is free
    out.write_nowait(block(0, 3))
    out._finish()


def test_the_whole_ring_is_allocated_at_creation(pipe_name: str) -> None:
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=1 << 16)
    try:
        st = os.stat(os.path.join(names.SHM_DIR, names.PREFIX + pipe_name))
        assert st.st_blocks * 512 >= st.st_size, "the segment is sparse: SIGBUS waits"
    finally:
        out._finish()


SMALL_SHM_CHILD = textwrap.dedent("""
    import json, os, numpy as np, shmpipe
    opened, error = [], None
    for i in range(8):
        name = f"small-{i}"
        try:
            out = shmpipe.open_output(name, "float32_7")  # 16 MiB ring, rows of 36 bytes
        except shmpipe.PipeError as e:
            error = str(e)
            break
        n = out.capacity
        rows = np.zeros((n, 8), np.float32)
        rows[:, 0] = 0  # constant timestamps are fine without check_timestamps
        out.write_nowait(rows)  # touches every page of the ring: SIGBUS if not backed
        opened.append(name)
    left = sorted(os.listdir("/dev/shm"))
    print(json.dumps({"opened": opened, "error": error, "left": left}))
""")


def test_small_dev_shm_fails_at_open_instead_of_sigbus(tmp_path: Any) -> None:
    """A 64 MiB /dev/shm (a container's default) in a private mount namespace: the fourth
    16 MiB pipe does not fit. It must fail at open with a PipeError, never kill the writer
    with SIGBUS, and leave nothing behind."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a small tmpfs on a private /dev/shm")
    script = tmp_path / "child.py"
    script.write_text(SMALL_SHM_CHILD)
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
           f"mount -t tmpfs -o size=64m tmpfs /dev/shm && exec {sys.executable} {script}"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the child did not finish")
    if p.returncode != 0 and "mount" in p.stderr and "permission" in p.stderr.lower():
        pytest.skip(f"cannot mount a private tmpfs here: {p.stderr.strip()}")
    assert p.returncode == 0, f"child died (signal {-p.returncode}?): {p.stderr}"
    res = json.loads(p.stdout)
    assert res["opened"] == ["small-0", "small-1", "small-2"]
    assert res["error"] and "needs" in res["error"] and "free" in res["error"]
    assert not [e for e in res["left"] if "small-3" in e], res["left"]


# ------------------------------------------------------------------ the mutex
def test_mutex_excludes_two_ends_of_one_process(pipe_name: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(segment, "LOCK_GIVE_UP", 0.2)
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    inp = shmpipe.open_input(pipe_name)
    try:
        out.segment.acquire()
        assert sem_value(pipe_name) == 0
        with pytest.raises(PipeError, match=r"held for .* alive"):
            inp.segment.acquire()
        out.segment.release()
        assert sem_value(pipe_name) == 1
        inp.segment.acquire()
        inp.segment.release()
        assert out.stats()["lock_recoveries"] == 0
    finally:
        inp._finish()
        out._finish()


class _InterruptAfterTaking:
    """A semaphore that takes, then raises KeyboardInterrupt (Ctrl-C between the two)."""

    def __init__(self, sem: Any) -> None:
        self.sem = sem

    def acquire(self, timeout: float | None = None) -> None:
        self.sem.acquire(timeout)
        raise KeyboardInterrupt

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.sem, attr)


def test_keyboard_interrupt_inside_acquire_leaves_no_lock_held(pipe_name: str) -> None:
    """A KeyboardInterrupt between taking the lock and entering the ``try`` used to leak it:
    now the mutex is free at once, the semaphore back to 1 after the next holder, and the
    rows already written are intact."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=100)
    inp = shmpipe.open_input(pipe_name)
    try:
        out.write_nowait(block(0, 5))
        seg = out.segment
        real = seg.sem
        seg.sem = _InterruptAfterTaking(real)
        with pytest.raises(KeyboardInterrupt):
            out.write_nowait(block(5, 5))
        seg.sem = real
        assert not locks.held_elsewhere(inp.segment.lock_fd, locks.MUTEX)
        with inp.segment.locked():  # the next holder: a recovery, not a wait
            pass
        got = inp.read_nowait()  # (reads take no lock)
        assert list(got["timestamp"]) == [0, 1, 2, 3, 4]
        assert out.stats()["lock_recoveries"] == 1
        assert sem_value(pipe_name) == 1
        out.write_nowait(block(5, 5))  # the pipe stays usable
        inp.consume(5)
        assert list(inp.read_nowait()["timestamp"]) == [5, 6, 7, 8, 9]
    finally:
        inp._finish()
        out._finish()


def test_recovery_rechecks_the_header(pipe_name: str) -> None:
    """A holder that died inside may have left a corrupted header: the next holder checks
    it and refuses it with PipeError, releasing the mutex."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=100)
    try:
        seg = out.segment
        seg.sem.acquire(0)  # as if a holder died inside
        seg.header.readers_hi = 1000  # ... in the middle of an update
        with pytest.raises(PipeError, match="reader table"):
            out.write_nowait(block(0, 1))
        assert not locks.held_elsewhere(os.open(names.lock_path(pipe_name), os.O_RDWR),
                                        locks.MUTEX)
        seg.header.readers_hi = 0
        out.write_nowait(block(0, 1))  # usable again
    finally:
        out._finish()


def test_high_water_mark_from_a_peer_is_a_pipe_error_not_an_index_error(pipe_name: str) -> None:
    """A peer setting readers_hi to 1000 made write_nowait raise IndexError."""
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=100)
    try:
        out.segment.header.readers_hi = 1000
        out.write_nowait(block(0, 2))  # bounded scans: no IndexError
        with pytest.raises(PipeError, match="reader table"):
            check_cursors(out.segment.header, pipe_name)
    finally:
        out.segment.header.readers_hi = 0
        out._finish()


def test_validate_refuses_write_more_than_capacity_past_retained() -> None:
    h = Header.from_buffer(bytearray(ctypes.sizeof(Header)))
    h.capacity = 10
    h.write, h.retained = 25, 10
    with pytest.raises(PipeError, match="more than 10 rows past retained"):
        check_cursors(h, "x")
    h.retained = 15
    check_cursors(h, "x")


FIELDS = [name for name, _ in Header._fields_
          if name not in ("magic", "layout", "readers", "boundaries")]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_corrupted_header_gives_pipe_error_or_a_bounded_answer(data: Any) -> None:
    """Whatever a peer writes into the header, a ring operation never raises anything but
    PipeError (no IndexError, no OverflowError) once ``check_cursors`` accepted it, and
    ``check_cursors`` itself raises only PipeError."""
    h = Header.from_buffer(bytearray(ctypes.sizeof(Header)))
    h.capacity = data.draw(st.integers(1, 64))
    for field in data.draw(st.lists(st.sampled_from(FIELDS), max_size=6)):
        ctype = dict(Header._fields_)[field]
        bits = ctypes.sizeof(ctype) * 8
        setattr(h, field, data.draw(st.integers(0, 2**bits - 1)) if bits else 0)
    slot = data.draw(st.integers(0, 63))
    s = h.readers[slot]
    s.state = data.draw(st.integers(0, 3))
    s.cursor = data.draw(st.integers(0, 2**64 - 1))
    s.bseq = data.draw(st.integers(0, 2**64 - 1))
    try:
        check_cursors(h, "x")
    except PipeError:
        return
    for op in (lambda: ring.free_rows(h), lambda: ring.commit(h, 1, 0),
               lambda: ring.attach(h, 1, 1),
               lambda: ring.add_boundary(h), lambda: ring.reap(h, lambda o: False, 0),
               lambda: ring.writer_wait(h, 1, 0), lambda: ring.unused(h)):
        with contextlib.suppress(PipeError):
            op()


# ------------------------------------------------------------------ owners and modes
def test_doorbells_take_the_segments_mode(pipe_name: str) -> None:
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10, mode=0o640)
    inp = shmpipe.open_input(pipe_name)  # asks for the default 0600: the pipe's mode wins
    try:
        for end in (out, inp):
            bell = end._role.bell
            assert bell is not None
            assert os.stat(bell.path).st_mode & 0o777 == 0o640
    finally:
        inp._finish()
        out._finish()


def test_owner_argument_is_checked(pipe_name: str) -> None:
    with pytest.raises(PipeError, match="not a user"):
        shmpipe.open_output(pipe_name, LAYOUT, owner="no-such-user-xyz")
    with pytest.raises(PipeError, match="owner must be"):
        shmpipe.open_output(pipe_name, LAYOUT, owner=-3)
    assert objects(pipe_name) == []


def test_failed_attach_to_a_foreign_segment_leaves_only_what_was_there(pipe_name: str) -> None:
    path = os.path.join(names.SHM_DIR, names.PREFIX + pipe_name)
    with open(path, "wb") as f:
        f.write(os.urandom(HEADER_BYTES + 4096))
    try:
        with pytest.raises(PipeError, match="not a shmpipe pipe"):
            shmpipe.open_input(pipe_name, wait=0)
        assert objects(pipe_name) == [names.PREFIX + pipe_name], "the semaphore stayed"
    finally:
        os.unlink(path)


def test_unlink_waits_for_the_mutex(pipe_name: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(segment, "LOCK_GIVE_UP", 0.2)
    out = shmpipe.open_output(pipe_name, LAYOUT, capacity=10)
    try:
        out.segment.acquire()
        with pytest.raises(PipeError, match="held"):
            shmpipe.unlink(pipe_name)
        assert objects(pipe_name), "unlinked under a holder"
        out.segment.release()
        shmpipe.unlink(pipe_name)
        assert objects(pipe_name) == []
    finally:
        out._finish()
