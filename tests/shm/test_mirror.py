from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from shmpipe.errors import PipeError
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
