"""Read semantics core: ReadCursor, Span, PipeData (shmpipe/buffer.py)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

import shmpipe
from shmpipe.buffer import PipeData, ReadCursor, Span, tag
from shmpipe.errors import EmptyPipeError, PipeError


def snapshot(cursor: ReadCursor) -> tuple[int, int, bool, bool]:
    return cursor.consumed, cursor.read_end, cursor.end_of_interval, cursor.reread


# ----------------------------------------------------------------------------- PipeData / tag
def test_pipedata_is_exported() -> None:
    assert shmpipe.PipeData is PipeData
    assert issubclass(PipeData, np.ndarray)


def test_tag_is_a_view_carrying_the_flag() -> None:
    rows = np.zeros(4, shmpipe.compute_dtype("float32_2"))
    rows["timestamp"] = [1, 2, 3, 4]
    data = tag(rows, True)
    assert isinstance(data, PipeData)
    assert data.end_of_interval is True
    assert np.shares_memory(data, rows)
    assert data["timestamp"].tolist() == [1, 2, 3, 4]
    assert not hasattr(rows, "end_of_interval")  # the source array is not touched
    assert tag(rows, False).end_of_interval is False


def test_flag_survives_slicing_and_field_access() -> None:
    data = tag(np.zeros(4, shmpipe.compute_dtype("int8_1")), True)
    assert data[1:].end_of_interval is True
    assert data["timestamp"].end_of_interval is True
    assert PipeData.end_of_interval is False
    assert np.zeros(2).view(PipeData).end_of_interval is False


# ----------------------------------------------------------------------------- ReadCursor
def test_fresh_cursor() -> None:
    cursor = ReadCursor()
    assert snapshot(cursor) == (0, 0, False, False)
    assert cursor.unconsumed == 0
    assert cursor.next_read(0, None, False, wait=True) is None
    assert cursor.next_read(0, None, False, wait=False) == Span(0, 0, False, False)
    started = ReadCursor(10)
    assert (started.consumed, started.read_end) == (10, 10)
    assert started.next_read(15, None, False, wait=True) == Span(10, 15, False, False)


def test_read_returns_unconsumed_then_new_rows() -> None:
    cursor = ReadCursor()
    assert cursor.next_read(3, None, False, wait=True) == Span(0, 3, False, False)
    assert cursor.unconsumed == 3
    cursor.consume(2)
    assert cursor.unconsumed == 1
    # no news: a waiting read waits, a non-waiting read returns the unconsumed row
    assert cursor.next_read(3, None, False, wait=True) is None
    assert cursor.next_read(3, None, False, wait=False) == Span(2, 3, False, False)
    assert cursor.next_read(6, None, False, wait=True) == Span(2, 6, False, False)
    cursor.consume_all()
    assert cursor.consumed == 6
    assert cursor.unconsumed == 0


def test_boundary_stops_one_read_and_sets_the_flag() -> None:
    cursor = ReadCursor()
    assert cursor.next_read(5, 3, False, wait=True) == Span(0, 3, True, True)
    assert cursor.end_of_interval is True
    # boundary passed by the caller; unconsumed rows come again with the next interval
    assert cursor.next_read(5, None, False, wait=True) == Span(0, 5, False, False)
    assert cursor.end_of_interval is False


def test_boundary_at_the_read_end_is_news() -> None:
    cursor = ReadCursor()
    cursor.next_read(2, None, False, wait=True)
    assert cursor.next_read(2, 2, False, wait=True) == Span(0, 2, True, True)
    cursor.consume_all()
    assert cursor.next_read(2, 2, False, wait=True) == Span(2, 2, True, True)


@pytest.mark.parametrize(("written", "boundary"), [(5, 1), (5, 6)])
def test_boundary_outside_the_unread_rows_is_refused(written: int, boundary: int) -> None:
    cursor = ReadCursor()
    cursor.next_read(2, None, False, wait=True)
    before = snapshot(cursor)
    with pytest.raises(PipeError, match="corrupt"):
        cursor.next_read(written, boundary, False, wait=True)
    assert snapshot(cursor) == before


def test_reread_returns_the_last_read_once_and_keeps_the_flag() -> None:
    cursor = ReadCursor()
    cursor.next_read(4, 4, False, wait=True)
    cursor.consume(1)
    cursor.reread = True
    assert cursor.next_read(9, None, False, wait=True) == Span(1, 4, True, False)
    assert cursor.reread is False
    assert cursor.end_of_interval is True
    assert cursor.next_read(9, None, False, wait=True) == Span(1, 9, False, False)


def test_ended_stream_returns_remaining_rows_then_raises_empty() -> None:
    cursor = ReadCursor()
    cursor.next_read(3, None, False, wait=True)
    # ended with unconsumed rows: they come again, even to a waiting read
    assert cursor.next_read(3, None, True, wait=True) == Span(0, 3, False, False)
    cursor.consume(3)
    before = snapshot(cursor)
    for wait in (True, False):
        with pytest.raises(EmptyPipeError):
            cursor.next_read(3, None, True, wait=wait)
    assert snapshot(cursor) == before


def test_empty_interval_at_the_end_is_empty() -> None:
    cursor = ReadCursor()
    with pytest.raises(EmptyPipeError):
        cursor.next_read(0, 0, True, wait=True)


def test_ended_stream_with_rows_after_an_empty_interval_is_not_empty() -> None:
    # rows 0-2, boundary, boundary, rows 3-4, end: after consuming rows 0-2 the second
    # boundary is at the consumed position, but rows 3-4 are still to come
    cursor = ReadCursor()
    assert cursor.next_read(5, 3, True, wait=True) == Span(0, 3, True, True)
    cursor.consume(3)
    assert cursor.next_read(5, 3, True, wait=True) == Span(3, 3, True, True)
    assert cursor.next_read(5, None, True, wait=True) == Span(3, 5, False, False)
    cursor.consume(2)
    with pytest.raises(EmptyPipeError):
        cursor.next_read(5, None, True, wait=True)


@pytest.mark.parametrize("bad", [-1, 4, 2.0, True, "1", None, [1]], ids=repr)
def test_consume_refuses_bad_counts_and_changes_nothing(bad: object) -> None:
    cursor = ReadCursor()
    cursor.next_read(3, None, False, wait=True)
    before = snapshot(cursor)
    with pytest.raises(PipeError):
        cursor.consume(bad)  # type: ignore[arg-type]
    assert snapshot(cursor) == before


def test_consume_messages() -> None:
    cursor = ReadCursor()
    cursor.next_read(3, None, False, wait=True)
    with pytest.raises(PipeError, match="negative"):
        cursor.consume(-1)
    with pytest.raises(PipeError, match="cannot consume 4 rows: only 3 available"):
        cursor.consume(4)


def test_consume_accepts_numpy_integers() -> None:
    cursor = ReadCursor()
    cursor.next_read(3, None, False, wait=True)
    cursor.consume(np.int64(2))
    assert cursor.consumed == 2
    assert isinstance(cursor.consumed, int)
    cursor.consume(np.uint8(1))
    assert cursor.consumed == 3


# ----------------------------------------------------------------------------- state machine
class ReadCursorMachine(RuleBasedStateMachine):
    """ReadCursor against a model of Joule's LocalPipe: a queue of row blocks and interval
    tokens (None), and a buffer holding the rows of the last read not yet consumed."""

    def __init__(self) -> None:
        super().__init__()
        self.cursor = ReadCursor()
        # the transport the cursor is told about
        self.written = 0
        self.boundaries: collections.deque[int] = collections.deque()
        self.ended = False
        # the model
        self.queue: collections.deque[list[int] | None] = collections.deque()
        self.buffer: list[int] = []
        self.eoi = False
        self.reread = False
        self.empty_seen = False

    # --- the writer
    @precondition(lambda self: not self.ended)
    @rule(n=st.integers(1, 5))
    def add_rows(self, n: int) -> None:
        self.queue.append(list(range(self.written, self.written + n)))
        self.written += n

    @precondition(lambda self: not self.ended)
    @rule()
    def add_boundary(self) -> None:
        self.boundaries.append(self.written)
        self.queue.append(None)

    @precondition(lambda self: not self.ended)
    @rule()
    def end(self) -> None:
        self.ended = True

    # --- the reader
    def model_read(self, wait: bool) -> tuple[str, list[int], bool, bool]:
        if self.reread:
            self.reread = False
            return "rows", list(self.buffer), self.eoi, False
        if not self.queue and not self.ended and wait:
            return "wait", [], False, False
        taken = 0
        pulled: list[int] = []
        eoi = False
        for item in self.queue:
            taken += 1
            if item is None:
                eoi = True
                break
            pulled.extend(item)
        rows = self.buffer + pulled
        rows_left = any(item for item in list(self.queue)[taken:])
        if self.ended and not rows and not rows_left:
            return "empty", [], False, False
        for _ in range(taken):
            self.queue.popleft()
        self.buffer = rows
        self.eoi = eoi
        return "rows", rows, eoi, eoi

    @rule(wait=st.booleans())
    def read(self, wait: bool) -> None:
        kind, rows, eoi, passed = self.model_read(wait)
        boundary = self.boundaries[0] if self.boundaries else None
        try:
            span = self.cursor.next_read(self.written, boundary, self.ended, wait=wait)
        except EmptyPipeError:
            assert kind == "empty"
            self.empty_seen = True
            return
        assert kind != "empty", "EmptyPipeError expected"
        if kind == "wait":
            assert span is None
            return
        assert span is not None
        assert list(range(span.start, span.stop)) == rows
        if not rows:
            assert span.start == span.stop == self.cursor.consumed
        assert span.end_of_interval == eoi
        assert span.passed == passed
        if span.passed:
            self.boundaries.popleft()

    @rule(data=st.data())
    def consume(self, data: st.DataObject) -> None:
        n = data.draw(st.integers(-2, len(self.buffer) + 2), label="num_rows")
        before = snapshot(self.cursor)
        if 0 <= n <= len(self.buffer):
            self.cursor.consume(n)
            self.buffer = self.buffer[n:]
        else:
            with pytest.raises(PipeError):
                self.cursor.consume(n)
            assert snapshot(self.cursor) == before

    @rule()
    def consume_all(self) -> None:
        self.cursor.consume_all()
        self.buffer = []

    @rule()
    def reread_last(self) -> None:
        self.cursor.reread = True
        self.reread = True

    @invariant()
    def agrees_with_model(self) -> None:
        c = self.cursor
        assert c.unconsumed == len(self.buffer)
        assert c.end_of_interval == self.eoi
        assert c.reread == self.reread
        if self.buffer:
            assert self.buffer == list(range(c.consumed, c.read_end))
        assert 0 <= c.consumed <= c.read_end <= self.written
        # every unpassed boundary lies ahead of the last read
        assert all(c.read_end <= b <= self.written for b in self.boundaries)
        assert list(self.boundaries) == sorted(self.boundaries)

    def teardown(self) -> None:
        # drain: every row comes out once, in order, and then the stream is empty
        self.ended = True
        self.reread = False
        self.cursor.reread = False
        self.consume_all()
        got: list[int] = []
        for _ in range(self.written + len(self.boundaries) + 2):
            boundary = self.boundaries[0] if self.boundaries else None
            try:
                span = self.cursor.next_read(self.written, boundary, True, wait=True)
            except EmptyPipeError:
                break
            assert span is not None
            if span.passed:
                self.boundaries.popleft()
            got.extend(range(span.start, span.stop))
            self.cursor.consume_all()
        else:
            raise AssertionError("the stream never became empty")
        assert got == list(range(self.cursor.consumed - len(got), self.written))
        assert self.cursor.consumed == self.written


ReadCursorMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestReadCursorMachine = ReadCursorMachine.TestCase
