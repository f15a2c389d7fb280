"""The network pipe's protocol, pure: header frames in and out, and every decision on them.

No I/O, no asyncio, no zmq here (like h11): the shell in ``ends.py`` moves frames between
ZeroMQ sockets and these objects. Every message starts with one fixed 72-byte header frame::

    offset size field    DATA (writer->reader)     PING (writer->reader)  ACK, REFUSE (to writer)
    0      4    magic    b"SHMN"
    4      1    version  1
    5      1    kind     1                         2                      3, 4
    6      2    flags    BREAK=1, END=2            0                      ACK: END=2 (end seen)
                                                                         REFUSE: the reason
    8      16   layout   the writer's layout (ASCII, NUL-padded)          the reader's, or ""
    24     8    session  the writer's random id (new per writer)          the writer's, echoed
    32     8    peer     0                         0                      the reader's random id
    40     8    seq      this message's number     the next number        received through
    48     8    rows     rows in the rows frame    0                      0
    56     8    ack      0                         0                      released through
    64     8    window   0                         0                      window in bytes

A DATA message is two frames: the header, then the rows (``rows * itemsize`` bytes, possibly
empty). The other kinds are the header alone. Integers are little-endian.

Flow control is a credit window in bytes, as in the ZeroMQ guide's credit-based flow
control: the writer numbers its messages 0, 1, 2... and may have messages whose cost adds up
to at most the reader's window in flight (sent and not yet released), or one message of any
size when nothing is in flight. A message's cost is its rows' bytes, at least
:data:`MIN_COST`. The reader releases a message once its rows are consumed (a lost or dropped
message at once) and says so in an ACK: ``ack`` is the first number not yet released. An ACK
is absolute state, never an increment, so a lost ACK is repaired by any later one. The writer
starts with no credit: it sends a PING and waits for the first ACK; when it runs out of credit
it sends a PING at once and then at every heartbeat, and the reader answers every PING with an
ACK (a restarted reader learns the writer's position this way).

Sequence numbers make faults visible: a gap (messages lost when a connection broke) or a new
writer session (the writer restarted) becomes an interval break before the next rows, so
rows on either side of a hole never join one interval; a message numbered below the next
expected one (a late duplicate) is dropped, so nothing is delivered twice.
"""

from __future__ import annotations

import collections
import enum
import os
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import PipeError
from ..layout import compute_dtype

MAGIC = b"SHMN"
VERSION = 1
HEADER = struct.Struct("<4sBBH16sQQQQQQ")
HEADER_SIZE = HEADER.size  # 72
LAYOUT_FIELD = 16
MIN_COST = HEADER_SIZE  # an empty message still costs its header: breaks are bounded too
U64 = 2**64 - 1
_SEQ_ROWS = struct.Struct("<QQ")  # seq and rows, at offset 40 of a header


class Kind(enum.IntEnum):
    DATA = 1
    PING = 2
    ACK = 3
    REFUSE = 4


BREAK = 1
END = 2  # DATA: the stream ends after these rows; ACK: this reader received the end
FLAGS = BREAK | END
_ALLOWED = {Kind.DATA: FLAGS, Kind.PING: 0, Kind.ACK: END}
_KINDS = {int(k): k for k in Kind}


class Refusal(enum.IntEnum):
    """Why a reader refused a writer's message (the ``flags`` of a REFUSE)."""

    VERSION = 1
    LAYOUT = 2
    MALFORMED = 3
    ENDED = 4


class FrameError(PipeError):
    """A frame that is not a well-formed message of this protocol; says what was expected
    and what came. ``ours`` is True when the frame carries our magic and version (a peer
    speaking this protocol wrongly), False for a stranger's message."""

    def __init__(self, message: str, ours: bool = False, refusal: Refusal | None = None
                 ) -> None:
        super().__init__(message)
        self.ours = ours
        self.refusal = refusal


class Header(NamedTuple):
    kind: Kind
    flags: int = 0
    layout: str = ""
    session: int = 0
    peer: int = 0
    seq: int = 0
    rows: int = 0
    ack: int = 0
    window: int = 0


def new_id() -> int:
    """A random non-zero 64-bit id (sessions and reader incarnations)."""
    return int.from_bytes(os.urandom(8), "little") or 1


def encode(h: Header) -> bytes:
    """The 72-byte header frame of ``h``. Raises PipeError for a layout that does not fit."""
    layout = h.layout.encode("ascii")
    if len(layout) > LAYOUT_FIELD:
        raise PipeError(f"layout {h.layout!r} is longer than {LAYOUT_FIELD} characters")
    return HEADER.pack(MAGIC, VERSION, int(h.kind), h.flags, layout, h.session, h.peer, h.seq,
                       h.rows, h.ack, h.window)


def _show(data: bytes) -> str:
    return repr(bytes(data[:16])) + ("..." if len(data) > 16 else "")


def decode(frame: bytes | memoryview) -> Header:
    """Parse and check one header frame.

    Raises FrameError naming what was expected and what came: a frame of another size, a
    wrong magic, another format version (``refusal`` VERSION), an unknown kind, unknown flag
    bits, a layout field that is not a layout (``refusal`` MALFORMED).
    """
    data = bytes(frame)
    if len(data) < 6 or data[:4] != MAGIC:
        got = _show(data) if len(data) >= 4 else f"a {len(data)}-byte frame"
        raise FrameError(f"expected a shmpipe header frame starting with {MAGIC!r}, got {got}")
    if data[4] != VERSION:
        raise FrameError(f"expected format version {VERSION}, got version {data[4]}",
                         ours=True, refusal=Refusal.VERSION)
    if len(data) != HEADER_SIZE:
        raise FrameError(f"expected a {HEADER_SIZE}-byte header frame, got {len(data)} bytes",
                         ours=True, refusal=Refusal.MALFORMED)
    _magic, _version, kind, flags, raw, session, peer, seq, rows, ack, window = \
        HEADER.unpack(data)
    k = _KINDS.get(kind)
    if k is None:
        raise FrameError(f"expected a message kind of {[int(x) for x in Kind]}, got {kind}",
                         ours=True, refusal=Refusal.MALFORMED)
    if k == Kind.REFUSE:
        if flags not in {int(r) for r in Refusal}:
            raise FrameError(f"expected a refusal reason of {[int(r) for r in Refusal]}, "
                             f"got {flags}", ours=True, refusal=Refusal.MALFORMED)
    elif flags & ~_ALLOWED[k]:
        raise FrameError(f"expected flags within {_ALLOWED[k]:#x} for a {k.name} message, "
                         f"got {flags:#x}", ours=True, refusal=Refusal.MALFORMED)
    text = raw.rstrip(b"\0")
    try:
        layout = text.decode("ascii")
        if b"\0" in text:
            raise ValueError("NUL inside")
        if layout or k in (Kind.DATA, Kind.PING):
            compute_dtype(layout)
    except (UnicodeDecodeError, ValueError):
        raise FrameError(f"expected a layout like 'float32_8' in the header, got {raw!r}",
                         ours=True, refusal=Refusal.MALFORMED) from None
    return Header(k, flags, layout, session, peer, seq, rows, ack, window)


def describe_refusal(h: Header) -> str:
    """What a REFUSE header tells the writer, as one sentence."""
    reason = Refusal(h.flags)
    if reason == Refusal.LAYOUT:
        return f"the reader expects layout {h.layout!r}"
    if reason == Refusal.VERSION:
        return f"the reader speaks format version {VERSION} only"
    if reason == Refusal.ENDED:
        return "the reader's stream has ended (it takes no new writer)"
    return "the reader found a malformed message of this writer"


# --------------------------------------------------------------------- the reader's decisions
@dataclass
class Verdict:
    """What the reader's shell does with one received message.

    ``rows``: rows to append from the rows frame (0: none); ``break_before`` /
    ``break_after``: an interval boundary before / after them; ``end``: the stream ends after
    them; ``reply``: a header frame to send back to the peer that sent the message;
    ``warning``: a line to log; ``layout``: the layout just learned from the first message;
    ``current``: the message came from the current writer (replies to it go to its peer).
    """

    rows: int = 0
    break_before: bool = False
    break_after: bool = False
    end: bool = False
    reply: bytes | None = None
    warning: str | None = None
    layout: str | None = None
    current: bool = False

    @property
    def news(self) -> bool:
        return bool(self.rows or self.break_before or self.break_after or self.end)


@dataclass
class _Held:
    session: int
    seq: int
    end_row: int  # the row count once this message's rows are in
    cost: int


@dataclass
class Reader:
    """The receiving side's state: one writer session at a time, its next sequence number,
    the messages held until their rows are consumed, and when to grant credit.

    Feed it every received message with :meth:`receive` and the consumed row count with
    :meth:`release`; it answers with verdicts and ACK frames. ``window`` is the credit in
    bytes granted to the writer; rows held (received, not consumed) never exceed it by more
    than one message.
    """

    layout: str | None
    window: int
    ident: int = field(default_factory=new_id)
    session: int | None = None
    expected: int = 0  # the next sequence number of the current session
    rows: int = 0  # rows accepted so far (all sessions)
    boundary: int = 0  # row count at the last boundary
    ended: bool = False
    held: collections.deque[_Held] = field(default_factory=collections.deque)
    held_cost: int = 0
    acked: int = 0  # ``ack`` of the last ACK sent
    freed: int = 0  # cost released since the last ACK
    old_cost: int = 0  # cost held of earlier writers' messages
    retired: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=16))

    def __post_init__(self) -> None:
        if self.window < MIN_COST:
            raise PipeError(f"window must be at least {MIN_COST} bytes, got {self.window}")
        self.itemsize = compute_dtype(self.layout).itemsize if self.layout else 0
        self._prefix_key: tuple[str | None, int | None] | None = None
        self._prefix_bytes: bytes | None = None

    # -- state the shell reads
    @property
    def released(self) -> int:
        """The first sequence number of the current writer not yet released (messages of
        earlier writers still held are not its business)."""
        for h in self.held:
            if h.session == self.session:
                return h.seq
        return self.expected

    @property
    def granted(self) -> int:
        """The window offered to the current writer: what rows of earlier writers still
        held leave of ``window`` (at least one message's worth)."""
        return max(MIN_COST, self.window - self.old_cost)

    def ack(self, session: int | None = None) -> bytes:
        """An ACK frame with the current state (for ``session``, default the current one)."""
        self.acked = self.released
        self.freed = 0
        sid = session if session is not None else self.session or 0
        flags = END if self.ended else 0
        return encode(Header(Kind.ACK, flags, self.layout or "", sid, self.ident,
                             self.expected, 0, self.acked, self.granted))

    def _refuse(self, h: Header, reason: Refusal) -> bytes:
        return encode(Header(Kind.REFUSE, int(reason), self.layout or "", h.session, self.ident))

    def _fault_break(self) -> bool:
        """A break for a hole in the stream: only if rows came since the last boundary."""
        if self.rows > self.boundary:
            self.boundary = self.rows
            return True
        return False

    # -- decisions
    def receive(self, frames: list[int], header: bytes | memoryview | None) -> Verdict:
        """Decide about one message: ``header`` is its first frame (None if it had none),
        ``frames`` the byte lengths of all its frames.

        Never raises for bad input: a message that is not ours is dropped with a warning
        (the stream is untouched; if one of our messages was lost instead, the next one
        shows the gap); ours with another version or layout is refused (a REFUSE tells the
        writer, whose write then raises PipeError) and dropped; a DATA message of the
        current writer whose row count does not match its rows frame is dropped, refused,
        and counted as lost (a break: its rows are missing).
        """
        if header is None or not frames:
            return Verdict(warning="dropped an empty message")
        try:
            h = decode(header)
        except FrameError as e:
            reply = None
            if e.refusal is not None:
                reply = encode(Header(Kind.REFUSE, int(e.refusal), self.layout or ""))
            return Verdict(reply=reply, warning=f"dropped a message: {e}")
        if h.kind in (Kind.ACK, Kind.REFUSE):
            return Verdict(warning=f"dropped a {h.kind.name} message: a reader takes DATA and "
                                   "PING only (is another reader on this endpoint?)")
        want = 2 if h.kind == Kind.DATA else 1
        if len(frames) != want:
            return self._bad(h, f"expected {want} frame(s) for a {h.kind.name} message, got "
                                f"{len(frames)}")
        if self.layout is not None and h.layout != self.layout:
            return Verdict(reply=self._refuse(h, Refusal.LAYOUT),
                           warning=f"refused a writer: expected layout {self.layout!r}, got "
                                   f"{h.layout!r}")
        if h.kind == Kind.DATA:
            itemsize = self.itemsize or compute_dtype(h.layout).itemsize
            if h.rows * itemsize != frames[1]:
                return self._bad(h, f"expected {h.rows} rows of {itemsize} bytes "
                                    f"({h.rows * itemsize} bytes) in the rows frame, got "
                                    f"{frames[1]} bytes")
        v = Verdict()
        if self.layout is None:
            self.layout = v.layout = h.layout
            self.itemsize = compute_dtype(h.layout).itemsize
        if h.session != self.session:
            if h.session in self.retired:
                return Verdict(warning=f"dropped a late message of a replaced writer "
                                       f"(session {h.session:#x})")
            if self.ended:
                return Verdict(reply=self._refuse(h, Refusal.ENDED),
                               warning="refused a writer: the stream has ended")
            if self.session is not None:
                self.retired.append(self.session)
                self.old_cost = self.held_cost
                v.break_before = self._fault_break()
                v.warning = (f"a new writer (session {h.session:#x}) replaced session "
                             f"{self.session:#x}: interval break, rows may be missing")
            self.session, self.expected = h.session, h.seq
        elif h.seq < self.expected:
            return Verdict(warning=f"dropped message {h.seq}: already received "
                                   f"(expected {self.expected})")
        elif h.seq > self.expected:
            v.break_before = self._fault_break()
            v.warning = (f"messages {self.expected}..{h.seq - 1} were lost (connection lost?): "
                         "interval break")
            self.expected = h.seq
        v.current = True
        if h.kind == Kind.PING:
            v.reply = self.ack()
            return v
        if self.ended:
            return Verdict(warning=f"dropped message {h.seq}: after the end of the stream")
        self.expected = h.seq + 1
        v.rows = h.rows
        self.rows += h.rows
        cost = max(frames[1], MIN_COST)
        self.held.append(_Held(h.session, h.seq, self.rows, cost))
        self.held_cost += cost
        if h.flags & BREAK:
            v.break_after = True
            self.boundary = self.rows
        if h.flags & END:
            v.end = self.ended = True
            v.reply = self.ack()  # the writer's close waits for this
        return v

    def receive_rows(self, header: bytes, nbytes: int) -> int:
        """The common case of :meth:`receive`, without building a Verdict: a two-frame DATA
        message without flags from the current writer, numbered as expected, whose rows
        frame holds ``nbytes`` = rows * itemsize. Takes it (the same state change as
        ``receive``) and returns its row count; returns -1 without changing anything for
        any other message, which then goes to ``receive``."""
        if (self._prefix is None or header[:32] != self._prefix or self.ended
                or len(header) != HEADER_SIZE):
            return -1
        seq, rows = _SEQ_ROWS.unpack_from(header, 40)
        if seq != self.expected or rows * self.itemsize != nbytes:
            return -1
        self.expected = seq + 1
        self.rows += rows
        cost = nbytes if nbytes > MIN_COST else MIN_COST
        self.held.append(_Held(self.session, seq, self.rows, cost))  # type: ignore[arg-type]
        self.held_cost += cost
        return rows

    @property
    def _prefix(self) -> bytes | None:
        """The first 32 bytes of a flagless DATA header of the current writer (None before
        the first writer): magic, version, kind, flags, layout, session."""
        key = (self.layout, self.session)
        if self._prefix_key != key:
            self._prefix_key = key
            self._prefix_bytes = None if self.layout is None or self.session is None else \
                HEADER.pack(MAGIC, VERSION, int(Kind.DATA), 0, self.layout.encode("ascii"),
                            self.session, 0, 0, 0, 0, 0)[:32]
        return self._prefix_bytes

    def _bad(self, h: Header, what: str) -> Verdict:
        v = Verdict(reply=self._refuse(h, Refusal.MALFORMED),
                    warning=f"dropped a malformed {h.kind.name} message: {what}")
        if h.session == self.session and h.seq >= self.expected:  # ours, and now lost
            v.break_before = self._fault_break()
            self.expected = h.seq + 1
        return v

    def release(self, consumed: int) -> bytes | None:
        """Release the messages whose rows are all consumed (``consumed`` rows so far);
        return an ACK frame when enough credit came back to be worth sending (a quarter of
        the window), else None. A writer short of credit asks with a PING anyway."""
        held = self.held
        while held and held[0].end_row <= consumed:
            done = held.popleft()
            self.held_cost -= done.cost
            self.freed += done.cost  # either way the writer may send more
            if done.session != self.session:
                self.old_cost -= done.cost
        if self.session is not None and self.freed * 4 >= self.window:
            return self.ack()
        return None


# --------------------------------------------------------------------- the writer's decisions
@dataclass
class Writer:
    """The sending side's state: its session, sequence numbers, messages in flight, the
    credit the reader granted, and whether the reader refused it.

    Messages are numbered by :meth:`data`; :meth:`may_send` says whether one of a given cost
    fits the credit; :meth:`on_reply` takes every frame the reader sends back.
    """

    layout: str
    session: int = field(default_factory=new_id)
    seq: int = 0  # the next sequence number
    window: int = 0  # no credit until the first ACK
    reader: int = 0  # the reader's id from its last ACK
    received: int = 0  # the reader's ``seq``: every message below it arrived
    released: int = 0
    inflight: collections.deque[tuple[int, int]] = field(default_factory=collections.deque)
    inflight_cost: int = 0
    refused: str | None = None
    heard: int = 0  # ACKs taken: the shell's sign of life from the reader
    ended: bool = False  # the current reader said it received the end mark
    readers: int = 0  # readers seen (a new one after a restart: an end mark must go again)

    def __post_init__(self) -> None:
        self.itemsize = compute_dtype(self.layout).itemsize
        self._layout = self.layout.encode("ascii")

    @staticmethod
    def cost(nbytes: int) -> int:
        return max(nbytes, MIN_COST)

    def may_send(self, nbytes: int) -> bool:
        """Whether a message of ``nbytes`` row bytes fits the credit now."""
        if self.refused is not None or self.window == 0:
            return False
        return not self.inflight or self.inflight_cost + self.cost(nbytes) <= self.window

    def max_rows(self) -> int:
        """The most rows one message should carry: half the reader's window (at least one
        row), so that two messages are in flight and the link never idles."""
        return max(1, (self.window or 2 * MIN_COST) // 2 // self.itemsize)

    def data(self, rows: int, flags: int = 0) -> bytes:
        """The header of the next DATA message; :meth:`sent` counts it once it is sent."""
        return HEADER.pack(MAGIC, VERSION, 1, flags, self._layout, self.session, 0, self.seq,
                           rows, 0, 0)  # encode(), without its checks: all fields are ours

    def sent(self, rows: int) -> int:
        """Count the message just sent as in flight; return its sequence number."""
        cost = self.cost(rows * self.itemsize)
        self.inflight.append((self.seq, cost))
        self.inflight_cost += cost
        self.seq += 1
        return self.seq - 1

    def ping(self) -> bytes:
        return encode(Header(Kind.PING, 0, self.layout, self.session, 0, self.seq))

    def delivered(self, seq: int) -> bool:
        """Whether the reader said it received message ``seq``."""
        return self.received > seq

    def on_reply(self, frames: list[int], header: bytes | memoryview | None) -> str | None:
        """Take one message from the reader; return a warning to log, or None.

        An ACK for this session updates the credit; a REFUSE sets :attr:`refused` (every
        later write raises PipeError with it); anything else is dropped with a warning.
        """
        if header is None or len(frames) != 1:
            return f"dropped a reply of {len(frames)} frames (expected 1)"
        try:
            h = decode(header)
        except FrameError as e:
            return f"dropped a reply: {e}"
        if h.kind == Kind.REFUSE:
            if h.session not in (0, self.session):
                return None  # meant for an earlier writer
            self.refused = describe_refusal(h) + (
                f", this pipe writes {self.layout!r}" if h.flags == Refusal.LAYOUT else "")
            return None
        if h.kind != Kind.ACK:
            return f"dropped a {h.kind.name} message: a writer takes ACK and REFUSE only " \
                   "(is another writer on this endpoint?)"
        if h.session != self.session:
            return None  # an ACK for an earlier writer
        if h.layout and h.layout != self.layout:
            self.refused = f"the reader expects layout {h.layout!r}, this pipe writes " \
                           f"{self.layout!r}"
            return None
        if h.ack > self.seq or h.seq > self.seq:
            return (f"dropped an ACK of messages never sent (released {h.ack}, received "
                    f"{h.seq}, sent {self.seq})")
        if h.peer != self.reader:
            # a new reader (or the first): it starts from what it says; what the old one
            # held is gone
            self.reader = h.peer
            self.readers += 1
            self.received = h.seq
            self.released = h.ack
        else:
            self.received = max(self.received, h.seq)
            self.released = max(self.released, h.ack)
        self.window = max(h.window, MIN_COST)
        self.ended = bool(h.flags & END)
        self.heard += 1
        while self.inflight and self.inflight[0][0] < self.released:
            self.inflight_cost -= self.inflight.popleft()[1]
        return None
