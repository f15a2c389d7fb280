from __future__ import annotations

import ctypes
import gc
import os

import numpy as np
import pytest

from shmpipe.errors import PipeError
from shmpipe.shm import mirror
from shmpipe.shm.mirror import PAGE, map_mirrored


def test_ring_appears_twice_back_to_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "seg"
    hbytes, rbytes = PAGE, 2 * PAGE
    with open(path, "wb") as f:
        f.truncate(hbytes + rbytes)
    fd = os.open(path, os.O_RDWR)
    try:
        m = map_mirrored(fd, hbytes, rbytes)
    finally:
        os.close(fd)  # the mapping outlives the descriptor
    mem = np.frombuffer(memoryview(m).cast("B"), np.uint8)
    assert len(mem) == hbytes + 2 * rbytes
    mem[hbytes : hbytes + 10] = 7
    assert (mem[hbytes + rbytes : hbytes + rbytes + 10] == 7).all()
    mem[hbytes + 2 * rbytes - 3 :] = 9  # the end of the mirror is the end of the ring
    assert (mem[hbytes + rbytes - 3 : hbytes + rbytes] == 9).all()
    tail = mem[hbytes + rbytes - 4 : hbytes + rbytes + 4]  # one run across the seam
    del m, mem
    gc.collect()
    assert list(tail) == [0, 9, 9, 9, 7, 7, 7, 7]  # still mapped while a view lives


def test_sizes_must_be_page_multiples() -> None:
    with pytest.raises(PipeError, match="page"):
        map_mirrored(-1, 100, PAGE)


def _resident(addr: int, size: int) -> int:
    """Bytes of [addr, addr + size) in this process's page tables (from /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo >= addr and hi <= addr + size
            elif inside and head == "Rss:":
                total += int(line.split()[1]) * 1024
    return total


@pytest.mark.parametrize("populate", [True, False])
def test_a_fresh_mapping_has_its_pages_mapped_at_once(
        populate: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """With MAP_POPULATE (the default), the ring's pages are in the page tables as soon as
    the pipe is opened: no page fault on the first pass; without, none is (the mirror, only
    reached across the seam, is left to fault in). The mapping starts on a huge-page
    boundary (so that huge pages could back it)."""
    monkeypatch.setattr(mirror, "POPULATE", populate)
    ring = 4 << 20
    fd = os.memfd_create("populate-test")
    try:
        os.ftruncate(fd, mirror.PAGE + ring)
        os.posix_fallocate(fd, 0, mirror.PAGE + ring)
        arr = mirror.map_mirrored(fd, mirror.PAGE, ring)
        addr = ctypes.addressof(arr)
        assert addr % mirror.HUGE == 0
        resident = _resident(addr, mirror.PAGE + 2 * ring)
        if populate:
            assert ring <= resident < ring + ring // 4
        else:
            assert resident < ring // 4
        del arr
    finally:
        os.close(fd)
