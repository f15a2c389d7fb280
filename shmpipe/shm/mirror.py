"""Map a shared-memory object so that its ring appears twice, back to back.

Layout of the object: ``[header: hbytes][ring: rbytes]``. Layout of the mapping::

    addr                addr+hbytes          addr+hbytes+rbytes      addr+hbytes+2*rbytes
    | header            | ring               | ring again (same pages)|

so any run of up to ``rbytes`` bytes starting inside the ring is contiguous in memory. Both
sizes are multiples of the page size. The mapping is released when the last Python object
referring to it (an end, or any numpy view into it) is gone, so a view that outlives its pipe
never touches unmapped memory.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref

from ..errors import PipeError

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                  ctypes.c_long]
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

_madvise = _libc.madvise
_madvise.restype = ctypes.c_int
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

PAGE = mmap.PAGESIZE
HUGE = 2 << 20  # a transparent huge page (x86-64, arm64 with 4 KiB pages)
_PROT_NONE = 0
_MAP_FIXED = 0x10
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0x8000)  # Linux; Python >= 3.10 names it
_MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", 14)
_MAP_FAILED = ctypes.c_void_p(-1).value

# Map the ring's pages into the page tables at once (MAP_POPULATE): a fresh pipe then takes
# no page fault per page on its first pass, in either process.
# The pages themselves exist from creation (posix_fallocate). A knob for measurements
# (bench/rings.py), not an API: leave it on.
POPULATE = True


def page_round(n: int) -> int:
    """``n`` rounded up to a whole number of pages."""
    return -(-n // PAGE) * PAGE


def _check(addr: int | None, what: str) -> int:
    if addr is None or addr == _MAP_FAILED:
        err = ctypes.get_errno()
        raise PipeError(f"mmap of {what} failed: {os.strerror(err)}")
    return addr


def _unmap(addr: int, size: int) -> None:
    _munmap(addr, size)


def map_mirrored(fd: int, hbytes: int, rbytes: int) -> ctypes.Array:
    """Map ``fd`` (header + ring) with the ring mirrored; return a ctypes byte array over it.

    The returned array covers ``hbytes + 2 * rbytes`` bytes; numpy views made from it keep it
    alive, and the pages are unmapped when it is collected.
    """
    if hbytes % PAGE or rbytes % PAGE or rbytes == 0:
        raise PipeError(f"mirrored mapping needs page multiples, got {hbytes} and {rbytes}")
    total = hbytes + 2 * rbytes
    rw = mmap.PROT_READ | mmap.PROT_WRITE
    # reserve the address range at a huge-page boundary (with slack, trimmed after), so that
    # file offsets and addresses agree modulo a huge page wherever the kernel offers
    # transparent huge pages for shared memory (shmem_enabled, or /dev/shm mounted huge=)
    slack = HUGE if rbytes % HUGE == 0 else 0
    start = _check(_mmap(None, total + slack, _PROT_NONE,
                         mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0), "the address reservation")
    base = -(-start // HUGE) * HUGE if slack else start
    if base > start:
        _unmap(start, base - start)
    if start + slack > base:
        _unmap(base + total, start + slack - base)
    shared = mmap.MAP_SHARED | _MAP_FIXED
    populate = shared | (_MAP_POPULATE if POPULATE else 0)
    try:
        # the mirror is only reached by runs that cross the seam: its pages are left to fault
        # in as they are used (populating them too would double the page-table work at open)
        _check(_mmap(base, hbytes + rbytes, rw, populate, fd, 0), "the ring")
        _check(_mmap(base + hbytes + rbytes, rbytes, rw, shared, fd, hbytes), "the ring's mirror")
    except BaseException:
        _unmap(base, total)
        raise
    _madvise(base, total, _MADV_HUGEPAGE)  # a hint: refused or ignored where not offered

    class _Mapping(ctypes.c_char * total):  # type: ignore[misc]
        pass

    arr = _Mapping.from_address(base)
    weakref.finalize(arr, _unmap, base, total)
    return arr
