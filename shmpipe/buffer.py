"""What reading a pipe means, written once for every transport.

No I/O and no asyncio here. Rows are numbered from 0 in the order they were written (absolute,
monotonic row counts); a transport tells the :class:`ReadCursor` how many rows exist, where the
next interval boundary is, and whether the stream has ended, and the cursor answers which rows
the next ``read()`` returns::

    rows:   0 ...        consumed ...        read_end ...        written
            |  consumed  |  returned again   |  new rows         |
                          <---- last read ---->
                          <------------- next read -------------->  (stops at a boundary)

Joule semantics:

* ``read()`` returns every unconsumed row up to the next interval boundary; rows returned
  before and not consumed come again, in front of new rows, even across a boundary.
* A boundary stops one read (``end_of_interval`` is True for it) and is then passed.
* A waiting read waits for something new (rows past ``read_end``, a boundary, or the end);
  ``read_nowait`` never waits.
* Once the stream has ended, the remaining rows are still returned; when none remain, read
  raises :class:`EmptyPipeError`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .errors import EmptyPipeError, PipeError


class PipeData(np.ndarray):
    """The array ``read()`` returns: an ndarray with an ``end_of_interval`` attribute."""

    end_of_interval: bool = False

    def __array_finalize__(self, obj: Any) -> None:
        self.end_of_interval = getattr(obj, "end_of_interval", False)


def tag(rows: np.ndarray, end_of_interval: bool) -> PipeData:
    """Return a view of ``rows`` carrying ``end_of_interval`` (no copy)."""
    view = rows.view(PipeData)
    view.end_of_interval = end_of_interval
    return view


class Span(NamedTuple):
    """Rows ``[start, stop)`` for one read; ``passed`` says a boundary at ``stop`` was used.
    (A named tuple: one is made per read, and a tuple is the cheapest record to make.)"""

    start: int
    stop: int
    end_of_interval: bool
    passed: bool


_span = tuple.__new__  # Span(...) without the generated __new__'s Python frame


class ReadCursor:
    """The reader's side of a pipe: consumed rows, the last read, the interval flag."""

    __slots__ = ("consumed", "end_of_interval", "ended", "read_end", "reread")

    def __init__(self, start: int = 0) -> None:
        self.reset(start)

    def reset(self, start: int) -> None:
        """Start afresh at row ``start``: nothing read, nothing to reread."""
        self.consumed = start
        self.read_end = start
        self.end_of_interval = False
        self.ended = False  # the last read returned the last rows of an ended stream
        self.reread = False

    @property
    def unconsumed(self) -> int:
        """Rows returned by the last read and not consumed since."""
        return self.read_end - self.consumed

    def next_read(
        self, written: int, boundary: int | None, ended: bool, stalled: bool = False, *,
        wait: bool,
    ) -> Span | None:
        """Decide the next read.

        ``written``: rows that exist; ``boundary``: the next unpassed interval boundary
        (``read_end <= boundary <= written``) or None; ``ended``: no row will ever be added;
        ``stalled``: nothing can be added until this reader consumes more (a full buffer), so
        a waiting read returns the unconsumed rows at once instead of waiting.
        Returns the span to return, or None when a waiting read must wait for news (only with
        ``wait=True``). Raises EmptyPipeError when the stream has ended and every row has
        been consumed. A returned span with ``passed`` means the caller must drop the boundary.
        """
        if self.reread:
            self.reread = False
            return Span(self.consumed, self.read_end, self.end_of_interval, False)
        if boundary is not None:
            if not self.read_end <= boundary <= written:
                raise PipeError(
                    f"corrupt stream: boundary at row {boundary} outside "
                    f"[{self.read_end}, {written}]"
                )
            stop, eoi = boundary, True
        else:
            stop, eoi = written, False
            if stop == self.read_end and not ended and not (stalled and stop > self.consumed) \
                    and wait:
                return None
        if stop == self.consumed == written and ended:
            raise EmptyPipeError("pipe is closed and every row has been consumed")
        self.read_end = stop
        self.end_of_interval = eoi
        self.ended = ended and stop == written
        return _span(Span, (self.consumed, stop, eoi, boundary is not None))

    def consume(self, num_rows: int) -> None:
        """Mark ``num_rows`` of the last read consumed.

        Raises PipeError (and changes nothing) unless ``0 <= num_rows <= unconsumed``.
        """
        if not isinstance(num_rows, (int, np.integer)) or isinstance(num_rows, bool):
            raise PipeError(f"consume expects an integer row count, got {num_rows!r}")
        num_rows = int(num_rows)
        if num_rows < 0:
            raise PipeError(f"consume called with negative offset: {num_rows}")
        if num_rows > self.unconsumed:
            raise PipeError(
                f"cannot consume {num_rows} rows: only {self.unconsumed} available"
            )
        self.consumed += num_rows

    def consume_all(self) -> None:
        """Consume every row returned by the last read."""
        self.consumed = self.read_end
