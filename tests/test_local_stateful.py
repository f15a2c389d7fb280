"""LocalPipe against a reference model: random writes, reads, consumes, intervals, caches and
subscribers. Every row must arrive exactly once, in order, with ``end_of_interval`` at the
right rows, on the pipe and on every subscriber."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from shmpipe import EmptyPipeError, LocalPipe, PipeError, compute_dtype

LAYOUT = "int32_2"
DTYPE = compute_dtype(LAYOUT)
FORMS = ["list", "float64", "int64", "structured"]


def values(ts: list[int]) -> np.ndarray:
    """The data columns of the rows with timestamps ``ts`` (exact in every form)."""
    t = np.array(ts, dtype=np.int64)
    return np.column_stack([t * 2, -t]).reshape(len(ts), 2)


def make_block(ts: list[int], form: str) -> Any:
    data = values(ts)
    if form == "structured":
        rows = np.empty(len(ts), DTYPE)
        rows["timestamp"] = ts
        rows["data"] = data
        return rows
    flat = np.column_stack([np.array(ts, dtype=np.int64), data]).reshape(len(ts), 3)
    if form == "list":
        return flat.tolist()
    return flat.astype(form)


class Reader:
    """What one pipe (the main one or a subscriber) should hold and return."""

    def __init__(self, pipe: LocalPipe) -> None:
        self.pipe = pipe
        self.sent: list[int] = []  # timestamps that reached this pipe, in order
        self.marks: deque[int] = deque()  # unpassed boundaries, as row positions
        self.all_marks: list[int] = []  # every boundary ever closed on this pipe
        self.consumed = 0
        self.read_end = 0
        self.eoi = False
        self.reread = False
        self.closed = False
        # what the pipe actually delivered
        self.last: np.ndarray = np.empty(0, DTYPE)  # last returned rows (a copy)
        self.received: list[int] = []  # timestamps of consumed rows, in order
        self.eoi_seen: list[int] = []  # positions of boundaries reads stopped at

    def has_news(self) -> bool:
        return (
            self.reread or bool(self.marks) or len(self.sent) > self.read_end or self.closed
        )

    def expect_read(self) -> tuple[list[int] | None, bool, bool]:
        """(expected timestamps or None for EmptyPipeError, end_of_interval, boundary passed).
        Updates the model as the read does."""
        if self.reread:
            self.reread = False
            return self.sent[self.consumed : self.read_end], self.eoi, False
        if self.marks:
            stop, eoi = self.marks[0], True
        else:
            stop, eoi = len(self.sent), False
        if self.closed and stop == self.consumed == len(self.sent):
            return None, False, False
        if eoi:
            self.marks.popleft()
        self.read_end, self.eoi = stop, eoi
        return self.sent[self.consumed : stop], eoi, eoi

    def check(self, data: np.ndarray, expected: list[int], eoi: bool, passed: bool,
              flatten: bool) -> None:
        if flatten:
            assert data.ndim == 2 and data.shape[1] == 3
            ts = [int(t) for t in data[:, 0]]
            assert np.array_equal(data[:, 1:], values(ts))
        else:
            assert data.dtype == DTYPE
            ts = [int(t) for t in data["timestamp"]]
            assert np.array_equal(data["data"], values(ts))
        assert ts == expected
        assert data.end_of_interval is eoi
        assert self.pipe.end_of_interval is eoi
        if passed:
            self.eoi_seen.append(self.read_end)
        if not flatten:
            self.last = np.array(data)
        else:
            self.last = np.empty(len(data), DTYPE)
            self.last["timestamp"] = data[:, 0]
            self.last["data"] = data[:, 1:]

    def consumed_rows(self, n: int) -> None:
        start = len(self.last) - (self.read_end - self.consumed)
        self.received.extend(int(t) for t in self.last["timestamp"][start : start + n])
        self.consumed += n


class LocalPipeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pipe = LocalPipe(LAYOUT, name="main")
        self.main = Reader(self.pipe)
        self.readers: list[Reader] = [self.main]
        self.attached: list[Reader] = []  # subscribers receiving now
        self.late: Reader | None = None
        self.unsubscribe_late: Any = None
        self.cache_size: int | None = None
        self.cache: list[int] = []
        self.written: list[int] = []  # every timestamp accepted by write, in order
        self.next_ts = 1_000
        self.closed = False

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    # ------------------------------------------------------------------ model of the writer
    def send(self, ts: list[int]) -> None:
        for reader in [self.main, *self.attached]:
            reader.sent.extend(ts)

    def model_write(self, ts: list[int]) -> None:
        self.written.extend(ts)
        if self.cache_size is None:
            if ts:
                self.send(ts)
            return
        self.cache.extend(ts)
        while len(self.cache) >= self.cache_size:
            self.send(self.cache[: self.cache_size])
            self.cache = self.cache[self.cache_size :]

    def model_flush(self) -> None:
        if self.cache:
            self.send(self.cache)
            self.cache = []

    def model_close_interval(self) -> None:
        self.model_flush()
        for reader in [self.main, *self.attached]:
            reader.marks.append(len(reader.sent))
            reader.all_marks.append(len(reader.sent))

    def reader(self, data: st.DataObject) -> Reader:
        return self.readers[data.draw(st.integers(0, len(self.readers) - 1), label="reader")]

    # ------------------------------------------------------------------ rules
    @initialize(
        cache=st.one_of(st.none(), st.integers(1, 6)), via_add=st.booleans()
    )
    def setup(self, cache: int | None, via_add: bool) -> None:
        sub = LocalPipe(LAYOUT, name="sub0")
        (self.pipe.add_subscriber if via_add else self.pipe.subscribe)(sub)
        reader = Reader(sub)
        self.readers.append(reader)
        self.attached.append(reader)
        if cache is not None:
            self.pipe.enable_cache(cache)
            self.cache_size = cache

    @rule(
        n=st.integers(0, 10), gap=st.integers(1, 3), form=st.sampled_from(FORMS),
        nowait=st.booleans(),
    )
    def write(self, n: int, gap: int, form: str, nowait: bool) -> None:
        ts = [self.next_ts + i * gap for i in range(n)]
        block = make_block(ts, form)
        if self.closed:
            with pytest.raises(PipeError, match="closed"):
                if nowait:
                    self.pipe.write_nowait(block)
                else:
                    self.run(self.pipe.write(block))
            return
        if nowait:
            self.pipe.write_nowait(block)
        else:
            self.run(self.pipe.write(block))
        self.next_ts += n * gap
        self.model_write(ts)

    @rule(nowait=st.booleans())
    def close_interval(self, nowait: bool) -> None:
        if self.closed:
            with pytest.raises(PipeError):
                if nowait:
                    self.pipe.close_interval_nowait()
                else:
                    self.run(self.pipe.close_interval())
            return
        if nowait:
            self.pipe.close_interval_nowait()
        else:
            self.run(self.pipe.close_interval())
        self.model_close_interval()

    @precondition(lambda self: not self.closed)
    @rule()
    def flush_cache(self) -> None:
        self.run(self.pipe.flush_cache())
        self.model_flush()

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        self.run(self.pipe.close())
        self.model_flush()
        self.closed = True
        for reader in [self.main, *self.attached]:
            reader.closed = True

    @precondition(lambda self: self.late is None and not self.closed)
    @rule()
    def subscribe_late(self) -> None:
        sub = LocalPipe(LAYOUT, name="late")
        self.unsubscribe_late = self.pipe.subscribe(sub)
        self.late = Reader(sub)
        self.readers.append(self.late)
        self.attached.append(self.late)

    @precondition(lambda self: self.late is not None and self.late in self.attached)
    @rule()
    def unsubscribe(self) -> None:
        self.unsubscribe_late()
        assert self.late is not None
        self.attached.remove(self.late)
        assert self.late.pipe not in self.pipe.subscribers

    @rule(data=st.data(), flatten=st.booleans())
    def read_nowait(self, data: st.DataObject, flatten: bool) -> None:
        r = self.reader(data)
        reread = r.reread
        expected, eoi, passed = r.expect_read()
        if expected is None:
            with pytest.raises(EmptyPipeError):
                r.pipe.read_nowait(flatten=flatten)
            return
        r.check(r.pipe.read_nowait(flatten=flatten), expected, eoi, passed and not reread,
                flatten)

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        r = self.reader(data)
        if not r.has_news():
            self.run(self.read_waits(r.pipe))
            return
        reread = r.reread
        expected, eoi, passed = r.expect_read()
        if expected is None:
            with pytest.raises(EmptyPipeError):
                self.run(r.pipe.read())
            return
        r.check(self.run(r.pipe.read()), expected, eoi, passed and not reread, False)

    async def read_waits(self, pipe: LocalPipe) -> None:
        task = asyncio.ensure_future(pipe.read())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done(), "read returned without news"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    @precondition(lambda self: any(r.has_news() for r in self.readers))
    @rule(data=st.data())
    def is_empty(self, data: st.DataObject) -> None:
        r = data.draw(st.sampled_from([r for r in self.readers if r.has_news()]), label="r")
        if r.reread:
            assert self.run(r.pipe.is_empty()) is False
            return
        expected, eoi, passed = r.expect_read()
        empty = self.run(r.pipe.is_empty())
        assert empty is (expected is None)
        if not empty:
            assert expected is not None
            if passed:
                r.eoi_seen.append(r.read_end)
            assert r.pipe.end_of_interval is eoi
            # the next read returns what is_empty read, and nothing new
            r.check(r.pipe.read_nowait(), expected, eoi, False, False)
            r.pipe.reread_last()
            r.reread = True

    @rule(data=st.data(), kind=st.sampled_from(["zero", "some", "all", "too_many", "negative"]))
    def consume(self, data: st.DataObject, kind: str) -> None:
        r = self.reader(data)
        available = r.read_end - r.consumed
        if kind in ("too_many", "negative"):
            n = available + data.draw(st.integers(1, 3)) if kind == "too_many" else -1
            with pytest.raises(PipeError):
                r.pipe.consume(n)
            return
        n = {"zero": 0, "all": available}.get(kind)
        if n is None:
            n = data.draw(st.integers(0, available), label="n")
        r.pipe.consume(n)
        r.consumed_rows(n)

    @rule(data=st.data())
    def consume_all(self, data: st.DataObject) -> None:
        r = self.reader(data)
        r.pipe.consume_all()
        r.consumed_rows(r.read_end - r.consumed)

    @rule(data=st.data())
    def reread_last(self, data: st.DataObject) -> None:
        r = self.reader(data)
        r.pipe.reread_last()
        r.reread = True

    # ------------------------------------------------------------------ invariants
    @invariant()
    def rows_arrive_once_in_order(self) -> None:
        for r in self.readers:
            assert r.received == r.sent[: len(r.received)]
            assert len(r.received) == r.consumed
            assert r.eoi_seen == r.all_marks[: len(r.eoi_seen)]
            assert r.pipe.end_of_interval is r.eoi
            assert r.pipe.closed is r.closed
        # nothing lost or duplicated on the way: sent rows plus the cache are all rows written
        assert self.main.sent + self.cache == self.written
        if len(self.readers) > 1:
            assert self.readers[1].sent + self.cache == self.written

    def teardown(self) -> None:
        try:
            if self.main.pipe.closed is False:
                self.close()
            for r in self.readers:
                if not r.closed:
                    r.pipe.close_nowait()
                    r.closed = True
            for r in self.readers:
                r.pipe.consume_all()
                r.consumed_rows(r.read_end - r.consumed)
                for _ in range(len(r.sent) + len(r.marks) + 2):
                    expected, eoi, passed = r.expect_read()
                    if expected is None:
                        with pytest.raises(EmptyPipeError):
                            r.pipe.read_nowait()
                        break
                    r.check(r.pipe.read_nowait(), expected, eoi, passed, False)
                    r.pipe.consume_all()
                    r.consumed_rows(r.read_end - r.consumed)
                else:
                    raise AssertionError("the pipe never became empty")
                assert r.received == r.sent
                # boundaries after the last row of a closed stream are not reported (Joule)
                assert all(m == len(r.sent) for m in r.marks)
                assert r.eoi_seen == r.all_marks[: len(r.all_marks) - len(r.marks)]
            # the pipe and the subscriber attached from the start got every row written
            assert self.main.received == self.written
            assert self.readers[1].received == self.written
        finally:
            self.loop.close()


LocalPipeMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
TestLocalPipeMachine = LocalPipeMachine.TestCase
