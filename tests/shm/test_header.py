"""Attaching to corrupted or foreign segments gives a PipeError, never a crash."""

from __future__ import annotations

import asyncio
import ctypes
import mmap
import os
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

import shmpipe
from shmpipe.shm import names
from shmpipe.shm.header import HEADER_BYTES, Header

LAYOUT = "int16_2"


@pytest.fixture
def pname() -> Iterator[str]:
    name = "h-" + uuid.uuid4().hex[:12]
    yield name
    shmpipe.unlink(name)


def make_pipe(name: str) -> None:
    """A pipe with 5 unread rows and no end attached."""

    async def go() -> None:
        out = shmpipe.open_output(name, LAYOUT, capacity=100)
        await out.write(np.column_stack([np.arange(5), np.ones((5, 2))]))
        await out.close()

    asyncio.run(go())


def poke(name: str, **fields: object) -> None:
    path = os.path.join(names.SHM_DIR, names.PREFIX + name)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), HEADER_BYTES) as m:
        h = Header.from_buffer(m)
        for k, v in fields.items():
            if k.startswith("reader0_"):
                setattr(h.readers[0], k[len("reader0_") :], v)
            else:
                setattr(h, k, v)
        del h


CORRUPTIONS = [
    ({"magic": b"NOTOURS"}, "magic"),
    ({"version": 99}, "version"),
    ({"header_bytes": 4096}, "header size"),
    ({"layout": b"float77_3"}, "layout"),
    ({"layout": b"\xff\xfe"}, "layout"),
    ({"row_size": 3}, "row size"),
    ({"ring_bytes": 1 << 40}, "ring"),
    ({"ring_bytes": 4097}, "ring"),
    ({"capacity": 1 << 40}, "capacity"),
    ({"capacity": 0}, "capacity"),
    ({"max_readers": 5}, "table sizes"),
    ({"retained": 1 << 50}, "retained"),
    ({"writer_state": 77}, "writer state"),
    ({"readers_hi": 1000}, "reader table"),
    ({"reader0_state": 1, "reader0_cursor": 1 << 60}, "reader slot 0"),
    ({"reader0_state": 9}, "reader slot 0"),
]


@pytest.mark.parametrize(("fields", "what"), CORRUPTIONS)
def test_corrupted_header_is_refused_by_name(pname: str, fields: dict, what: str) -> None:
    make_pipe(pname)
    poke(pname, **fields)
    for opener in (lambda: shmpipe.open_input(pname), lambda: shmpipe.open_output(pname, LAYOUT)):
        with pytest.raises(shmpipe.PipeError, match=what):
            opener()


def test_foreign_and_truncated_objects_are_refused(pname: str) -> None:
    path = os.path.join(names.SHM_DIR, names.PREFIX + pname)
    for content in (b"x" * 10, os.urandom(HEADER_BYTES + 8192)):
        with open(path, "wb") as f:
            f.write(content)
        with pytest.raises(shmpipe.PipeError, match="not a shmpipe pipe"):
            shmpipe.open_input(pname)


def test_cursor_corrupted_after_attach_gives_pipe_error_not_a_bad_read(pname: str) -> None:
    async def go() -> None:
        out = shmpipe.open_output(pname, LAYOUT, capacity=100)
        inp = shmpipe.open_input(pname)
        inp.read_nowait()
        await out.write([[1, 2, 3]])
        out.segment.header.write = 1 << 40  # a stray write into the header
        with pytest.raises(shmpipe.PipeError, match="corrupted"):
            await inp.read()
        out.segment.header.write = 1
        h = out.segment.header
        h.boundaries[0] = 1 << 30
        h.boundary_count = 1
        with pytest.raises(shmpipe.PipeError, match="boundary"):
            await inp.read()
        h.boundary_count = 0
        data = await inp.read()  # repaired: the pipe works again
        assert list(data["timestamp"]) == [1]
        inp.consume_all()
        await out.close()
        await inp.close()

    asyncio.run(go())


def test_header_is_fixed_size_and_page_aligned() -> None:
    assert HEADER_BYTES % mmap.PAGESIZE == 0
    assert ctypes.sizeof(Header) <= HEADER_BYTES


def test_a_copy_taken_while_cursors_move_is_checked_against_the_write_cursor_read_after() -> None:
    """Cursors move without the mutex: a copy of the header may hold a reader's cursor past
    the write cursor copied before it. Checked against the write cursor read after the copy,
    such a copy is sane; a cursor past that one too is still corruption."""
    from shmpipe import PipeError
    from shmpipe.shm import ring
    from shmpipe.shm.header import check_cursors

    h = Header.from_buffer(bytearray(ctypes.sizeof(Header)))
    h.capacity = 100
    slot = ring.attach(h, ring.new_id(h), 1)
    ring.commit(h, 10, 0)
    copy = Header.from_buffer_copy(bytes(h))
    copy.readers[slot].cursor = 15  # consumed rows written after ``write`` was copied
    check_cursors(copy, "p", write_now=20)
    with pytest.raises(PipeError, match="reader slot 0"):
        check_cursors(copy, "p", write_now=12)
    with pytest.raises(PipeError, match="reader slot 0"):
        check_cursors(copy, "p")
