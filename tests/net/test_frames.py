"""The network protocol's pure core: header frames, the reader's and the writer's decisions."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shmpipe import PipeError, compute_dtype
from shmpipe.net import frames
from shmpipe.net.frames import (
    BREAK,
    END,
    HEADER,
    HEADER_SIZE,
    MIN_COST,
    FrameError,
    Header,
    Kind,
    Reader,
    Refusal,
    Writer,
    decode,
    encode,
)

LAYOUT = "float32_2"
ITEM = compute_dtype(LAYOUT).itemsize
LAYOUTS = st.sampled_from(["float32_8", "int16_2", "uint64_65536", "float64_1", "int8_3"])
U64 = st.integers(0, 2**64 - 1)


@st.composite
def headers(draw: st.DrawFn) -> Header:
    kind = draw(st.sampled_from(list(Kind)))
    if kind == Kind.DATA:
        flags = draw(st.integers(0, frames.FLAGS))
    elif kind == Kind.REFUSE:
        flags = int(draw(st.sampled_from(list(Refusal))))
    elif kind == Kind.ACK:
        flags = draw(st.sampled_from([0, END]))
    else:
        flags = 0
    layout = draw(LAYOUTS) if kind in (Kind.DATA, Kind.PING) else draw(
        st.one_of(st.just(""), LAYOUTS))
    return Header(kind, flags, layout, *(draw(U64) for _ in range(6)))


@given(headers())
def test_every_header_round_trips(h: Header) -> None:
    frame = encode(h)
    assert len(frame) == HEADER_SIZE == 72
    assert decode(frame) == h
    assert decode(memoryview(frame)) == h


def raw(magic: bytes = b"SHMN", version: int = 1, kind: int = 1, flags: int = 0,
        layout: bytes = b"float32_2", *rest: int) -> bytes:
    nums = (list(rest) + [0] * 6)[:6]
    return HEADER.pack(magic, version, kind, flags, layout, *nums)


@pytest.mark.parametrize(("frame", "expected", "ours"), [
    (b"", "starting with b'SHMN', got a 0-byte frame", False),
    (b"GET / HTTP/1.1\r\n\r\n", "starting with b'SHMN', got b'GET / HTTP/1.1\\r\\n'...", False),
    (raw(magic=b"JOUL"), "starting with b'SHMN', got b'JOUL", False),
    (raw(version=2), "expected format version 1, got version 2", True),
    (raw()[:40], "expected a 72-byte header frame, got 40 bytes", True),
    (raw() + b"x", "expected a 72-byte header frame, got 73 bytes", True),
    (raw(kind=9), "expected a message kind of [1, 2, 3, 4], got 9", True),
    (raw(flags=4), "expected flags within 0x3 for a DATA message, got 0x4", True),
    (raw(kind=2, flags=1), "expected flags within 0x0 for a PING message, got 0x1", True),
    (raw(kind=3, flags=1), "expected flags within 0x2 for a ACK message, got 0x1", True),
    (raw(kind=4, flags=7), "expected a refusal reason of [1, 2, 3, 4], got 7", True),
    (raw(layout=b"float33_2"), "expected a layout like 'float32_8' in the header, got", True),
    (raw(layout=b""), "expected a layout like 'float32_8' in the header, got", True),
    (raw(layout=b"float\x0032_2"), "expected a layout like 'float32_8' in the header", True),
    (raw(layout=b"\xff" * 16), "expected a layout like 'float32_8' in the header", True),
])
def test_malformed_headers_are_refused_saying_what_came(frame: bytes, expected: str,
                                                         ours: bool) -> None:
    with pytest.raises(FrameError) as e:
        decode(frame)
    assert expected in str(e.value)
    assert e.value.ours is ours
    assert isinstance(e.value, PipeError)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_frame_error(data: bytes) -> None:
    try:
        h = decode(data)
    except FrameError as e:
        assert str(e).startswith("expected")
    else:
        assert encode(h) == data or data.rstrip(b"\0") != data  # only well-formed frames


@given(headers(), st.integers(0, HEADER_SIZE - 1), st.integers(1, 255))
def test_a_corrupted_byte_is_refused_or_decodes_to_what_was_sent(h: Header, at: int,
                                                                  xor: int) -> None:
    frame = bytearray(encode(h))
    frame[at] ^= xor
    try:
        got = decode(bytes(frame))
    except FrameError:
        return
    assert encode(got) == bytes(frame)  # a valid header: exactly what the bytes say


def test_an_ack_may_have_no_layout_but_data_must() -> None:
    assert decode(encode(Header(Kind.ACK))).layout == ""
    with pytest.raises(FrameError):
        decode(encode(Header(Kind.DATA)))


def test_a_layout_too_long_for_the_field_is_refused() -> None:
    with pytest.raises(PipeError, match="longer than 16"):
        encode(Header(Kind.DATA, layout="float32_6553600000"))


# --------------------------------------------------------------------------- the reader
def data(session: int, seq: int, rows: int, flags: int = 0, layout: str = LAYOUT) -> bytes:
    return encode(Header(Kind.DATA, flags, layout, session, 0, seq, rows))


def ping(session: int, seq: int, layout: str = LAYOUT) -> bytes:
    return encode(Header(Kind.PING, 0, layout, session, 0, seq))


def feed(r: Reader, header: bytes, rows: int | None = None) -> frames.Verdict:
    h = decode(header)
    n = h.rows if rows is None else rows
    lengths = [HEADER_SIZE, n * ITEM] if h.kind == Kind.DATA else [HEADER_SIZE]
    return r.receive(lengths, header)


def test_rows_in_order_with_breaks_and_end() -> None:
    r = Reader(LAYOUT, 10_000)
    v = feed(r, ping(7, 0))
    assert v.reply is not None and decode(v.reply).kind == Kind.ACK and v.current
    assert (feed(r, data(7, 0, 5)).rows, r.rows) == (5, 5)
    v = feed(r, data(7, 1, 3, BREAK))
    assert (v.rows, v.break_after, v.break_before) == (3, True, False)
    v = feed(r, data(7, 2, 0, END))
    assert v.end and v.reply is not None
    ack = decode(v.reply)
    assert (ack.seq, ack.ack, ack.session) == (3, 0, 7)  # all received, nothing consumed
    assert ack.flags == END  # and the end with them


def test_a_sequence_gap_is_a_break_before_the_next_rows() -> None:
    r = Reader(LAYOUT, 10_000)
    feed(r, data(7, 0, 5))
    v = feed(r, data(7, 3, 2))
    assert v.break_before and v.rows == 2
    assert "messages 1..2 were lost" in (v.warning or "")
    assert r.expected == 4


def test_a_ping_past_the_expected_number_is_a_gap_too() -> None:
    r = Reader(LAYOUT, 10_000)
    feed(r, data(7, 0, 5))
    v = feed(r, ping(7, 4))
    assert v.break_before and not v.rows
    assert decode(v.reply or b"").seq == 4
    assert not feed(r, data(7, 4, 1)).break_before


def test_a_gap_without_rows_since_the_last_boundary_adds_no_break() -> None:
    r = Reader(LAYOUT, 10_000)
    assert not feed(r, data(7, 5, 1)).break_before  # a fresh reader: nothing before
    feed(r, data(7, 6, 1, BREAK))
    assert not feed(r, data(7, 9, 1)).break_before  # a boundary is already there


def test_a_new_writer_session_is_a_break_and_the_old_one_is_dropped() -> None:
    r = Reader(LAYOUT, 10_000)
    feed(r, data(7, 0, 5))
    v = feed(r, data(8, 0, 2))
    assert v.break_before and v.rows == 2 and "replaced" in (v.warning or "")
    v = feed(r, data(7, 1, 2))
    assert v.rows == 0 and "late message of a replaced writer" in (v.warning or "")


def test_rows_of_a_replaced_writer_still_held_are_not_the_new_writers_business() -> None:
    r = Reader(LAYOUT, 100 * ITEM)
    feed(r, data(7, 5, 60))  # held, not consumed
    ack = decode(feed(r, ping(8, 0)).reply or b"")  # a new writer asks for credit
    assert (ack.session, ack.ack, ack.seq) == (8, 0, 0)  # not message 5 of session 7
    assert ack.window == 40 * ITEM  # what the old rows leave of the window
    feed(r, data(8, 0, 10))
    assert decode(r.release(60) or b"").window == 100 * ITEM  # old rows gone: all of it


def test_a_duplicate_is_dropped_never_delivered_twice() -> None:
    r = Reader(LAYOUT, 10_000)
    feed(r, data(7, 0, 5))
    feed(r, data(7, 1, 5))
    v = feed(r, data(7, 1, 5))
    assert v.rows == 0 and "already received" in (v.warning or "")


def test_another_layout_is_refused_and_dropped() -> None:
    r = Reader(LAYOUT, 10_000)
    v = r.receive([HEADER_SIZE, 24], data(7, 0, 1, layout="float64_2"))
    assert v.rows == 0 and not v.news
    reply = decode(v.reply or b"")
    assert reply.kind == Kind.REFUSE and reply.flags == Refusal.LAYOUT
    assert "expected layout 'float32_2', got 'float64_2'" in (v.warning or "")
    w = Writer("float64_2", session=7)
    assert w.on_reply([HEADER_SIZE], v.reply) is None
    assert w.refused == "the reader expects layout 'float32_2', this pipe writes 'float64_2'"


def test_a_reader_without_layout_takes_the_first_writers() -> None:
    r = Reader(None, 10_000)
    v = feed(r, ping(7, 0, layout="int16_2"))
    assert v.layout == "int16_2" and r.layout == "int16_2"
    assert decode(v.reply or b"").layout == "int16_2"
    assert r.receive([HEADER_SIZE, ITEM], data(8, 0, 1)).rows == 0  # then holds to it


@pytest.mark.parametrize("payload", [0, ITEM - 1, 3 * ITEM, 10**6])
def test_a_row_count_that_does_not_match_the_payload_is_dropped_and_counted_lost(
        payload: int) -> None:
    r = Reader(LAYOUT, 10_000)
    feed(r, data(7, 0, 5))
    v = r.receive([HEADER_SIZE, payload], data(7, 1, 2))
    assert v.rows == 0
    assert f"expected 2 rows of {ITEM} bytes ({2 * ITEM} bytes) in the rows frame, got " \
           f"{payload} bytes" in (v.warning or "")
    assert v.break_before  # its rows are missing
    assert decode(v.reply or b"").flags == Refusal.MALFORMED
    assert not feed(r, data(7, 2, 1)).break_before  # no second break for the same hole


@pytest.mark.parametrize(("lengths", "expected"), [
    ([HEADER_SIZE], "expected 2 frame(s) for a DATA message, got 1"),
    ([HEADER_SIZE, 8, 8], "expected 2 frame(s) for a DATA message, got 3"),
])
def test_a_data_message_with_the_wrong_frames_is_dropped(lengths: list[int],
                                                         expected: str) -> None:
    r = Reader(LAYOUT, 10_000)
    v = r.receive(lengths, data(7, 0, 1))
    assert expected in (v.warning or "") and v.rows == 0


def test_strangers_are_dropped_without_a_reply_and_leave_the_stream_alone() -> None:
    r = Reader(LAYOUT, 10_000)
    feed(r, data(7, 0, 5))
    for frame in (b"", b"hello", b"SHMN", raw(magic=b"XXXX")):
        v = r.receive([len(frame)], frame)
        assert v.warning and v.reply is None and not v.news
    v = r.receive([], None)
    assert v.warning and not v.news
    v = r.receive([HEADER_SIZE], encode(Header(Kind.ACK, 0, LAYOUT, 7)))
    assert "a reader takes DATA and PING only" in (v.warning or "")
    assert (r.rows, r.expected, r.session) == (5, 1, 7)


def test_another_version_is_refused_with_a_reply() -> None:
    r = Reader(LAYOUT, 10_000)
    v = r.receive([HEADER_SIZE], raw(version=9))
    assert decode(v.reply or b"").flags == Refusal.VERSION
    w = Writer(LAYOUT, session=0)
    w.on_reply([HEADER_SIZE], v.reply)
    assert w.refused == "the reader speaks format version 1 only"


def test_after_the_end_a_new_writer_is_refused() -> None:
    r = Reader(LAYOUT, 10_000)
    feed(r, data(7, 0, 1, END))
    v = feed(r, data(8, 0, 1))
    assert v.rows == 0 and decode(v.reply or b"").flags == Refusal.ENDED


def test_release_grants_credit_once_a_quarter_window_is_consumed() -> None:
    r = Reader(LAYOUT, 4 * 100 * ITEM)
    for i in range(4):
        feed(r, data(7, i, 100))
    assert r.held_cost == 4 * 100 * ITEM
    assert r.release(99) is None  # message 0 not all consumed
    ack = r.release(100)
    assert ack is not None and decode(ack).ack == 1
    assert r.release(150) is None
    assert decode(r.release(400) or b"").ack == 4
    assert r.held_cost == 0


# --------------------------------------------------------------------------- the writer
def ack(session: int, received: int, released: int, window: int, peer: int = 99) -> bytes:
    return encode(Header(Kind.ACK, 0, LAYOUT, session, peer, received, 0, released, window))


def test_the_writer_has_no_credit_until_the_first_ack() -> None:
    w = Writer(LAYOUT, session=7)
    assert not w.may_send(0)
    assert w.on_reply([HEADER_SIZE], ack(7, 0, 0, 1000)) is None
    assert w.may_send(1000) and w.may_send(10**9)  # nothing in flight: any size goes
    w.sent(10)
    assert w.may_send(1000 - 10 * ITEM)
    assert not w.may_send(1000 - 10 * ITEM + 1)
    w.on_reply([HEADER_SIZE], ack(7, 1, 1, 1000))
    assert w.inflight_cost == 0 and w.delivered(0)


def test_the_writer_ignores_acks_of_other_sessions_and_drops_bad_ones() -> None:
    w = Writer(LAYOUT, session=7)
    assert w.on_reply([HEADER_SIZE], ack(8, 0, 0, 1000)) is None
    assert w.window == 0
    assert "never sent" in (w.on_reply([HEADER_SIZE], ack(7, 5, 5, 1000)) or "")
    assert "dropped a reply" in (w.on_reply([5], b"hello") or "")
    assert "expected 1" in (w.on_reply([HEADER_SIZE, 3], ack(7, 0, 0, 9)) or "")
    ping = encode(Header(Kind.PING, 0, LAYOUT, 7))
    assert "a writer takes ACK and REFUSE only" in (w.on_reply([HEADER_SIZE], ping) or "")


def test_a_new_reader_restarts_the_writers_accounting() -> None:
    w = Writer(LAYOUT, session=7)
    w.on_reply([HEADER_SIZE], ack(7, 0, 0, 100 * ITEM, peer=1))
    for _ in range(3):
        w.sent(40)
    assert not w.may_send(40 * ITEM)
    w.on_reply([HEADER_SIZE], ack(7, 3, 3, 100 * ITEM, peer=2))  # a restarted reader
    assert w.inflight_cost == 0 and w.may_send(40 * ITEM)


def test_max_rows_is_half_the_window() -> None:
    w = Writer(LAYOUT, session=7)
    w.on_reply([HEADER_SIZE], ack(7, 0, 0, 100 * ITEM))
    assert w.max_rows() == 50


# --------------------------------------------------------------------------- both, stateful
class Link(RuleBasedStateMachine):
    """A writer and a reader joined by two FIFO queues that may lose messages (a broken
    connection), with restarts of either side. Rows carry global ids; the reader's
    verdicts are applied as the shell applies them."""

    def __init__(self) -> None:
        super().__init__()
        self.window = 20 * ITEM
        self.writer = Writer(LAYOUT)
        self.reader = Reader(LAYOUT, self.window)
        self.to_reader: list[tuple[bytes, list[int], list[int]]] = []
        self.to_writer: list[bytes] = []
        self.next_id = 0
        self.got: list[int] = []  # row ids received by the current reader
        self.bounds: list[int] = []  # boundary positions in ``got``
        self.consumed = 0
        self.faults = False
        self.sent: list[int] = []

    def send(self, header: bytes, ids: list[int]) -> None:
        self.to_reader.append((header, [HEADER_SIZE, len(ids) * ITEM], ids))

    @rule(n=st.integers(0, 12), flags=st.sampled_from([0, BREAK]))
    def write(self, n: int, flags: int) -> None:
        if not self.writer.may_send(n * ITEM) or (n == 0 and not flags):
            self.send_ping()
            return
        header = self.writer.data(n, flags)
        self.writer.sent(n)
        ids = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        self.sent += ids
        self.send(header, ids)

    @rule()
    def send_ping(self) -> None:
        self.to_reader.append((self.writer.ping(), [HEADER_SIZE], []))

    @precondition(lambda self: self.to_reader)
    @rule()
    def deliver(self) -> None:
        header, lengths, ids = self.to_reader.pop(0)
        # as the shell does: the common case first, every other message to ``receive``
        n = self.reader.receive_rows(header, lengths[1]) if len(lengths) == 2 else -1
        v = frames.Verdict(rows=n, current=True) if n >= 0 else \
            self.reader.receive(lengths, header)
        if v.break_before:
            self.bounds.append(len(self.got))
        if v.rows:
            assert v.rows == len(ids)
            self.got += ids
        if v.break_after:
            self.bounds.append(len(self.got))
        if v.reply is not None:
            self.to_writer.append(v.reply)

    @precondition(lambda self: self.to_writer)
    @rule()
    def reply(self) -> None:
        assert self.writer.on_reply([HEADER_SIZE], self.to_writer.pop(0)) is None

    @rule(k=st.integers(0, 20))
    def consume(self, k: int) -> None:
        self.consumed = min(len(self.got), self.consumed + k)
        a = self.reader.release(self.consumed)
        if a is not None:
            self.to_writer.append(a)

    @precondition(lambda self: self.to_reader)
    @rule(k=st.integers(1, 3))
    def lose(self, k: int) -> None:
        self.faults = True
        del self.to_reader[:k]

    @rule()
    def restart_writer(self) -> None:
        self.faults = True
        self.writer = Writer(LAYOUT)
        self.to_writer.clear()

    @rule()
    def restart_reader(self) -> None:
        self.faults = True
        self.reader = Reader(LAYOUT, self.window)
        self.got, self.bounds, self.consumed = [], [], 0
        self.to_writer.clear()

    @invariant()
    def rows_arrive_once_in_order_and_every_hole_is_a_break(self) -> None:
        got = self.got
        assert all(a < b for a, b in itertools.pairwise(got))
        for i in range(1, len(got)):
            if got[i] != got[i - 1] + 1:
                assert i in self.bounds, (i, got, self.bounds)

    @invariant()
    def memory_is_bounded_by_the_window(self) -> None:
        w, r = self.writer, self.reader
        assert len(w.inflight) <= 1 or w.inflight_cost <= self.window
        assert r.held_cost <= self.window + max(12 * ITEM, MIN_COST) + MIN_COST

    @invariant()
    def without_faults_everything_sent_arrives(self) -> None:
        if not self.faults and not self.to_reader:
            assert self.got == self.sent


Link.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
TestLink = Link.TestCase


@given(st.lists(st.tuples(st.integers(0, 50), st.booleans()), max_size=30))
def test_without_faults_rows_and_breaks_arrive_exactly(blocks: list[tuple[int, bool]]) -> None:
    assume(blocks)
    w, r = Writer(LAYOUT), Reader(LAYOUT, 10**6)
    w.on_reply([HEADER_SIZE], r.receive([HEADER_SIZE], w.ping()).reply)
    got, sent = [], []
    for n, brk in blocks:
        header = w.data(n, BREAK if brk else 0)
        w.sent(n)
        v = r.receive([HEADER_SIZE, n * ITEM], header)
        got.append((v.rows, v.break_after, v.break_before))
        sent.append((n, brk, False))
    assert got == sent


def _state(r: Reader) -> tuple[object, ...]:
    return (r.session, r.expected, r.rows, r.boundary, r.ended, list(r.held), r.held_cost,
            r.layout, r.old_cost)


@st.composite
def near_messages(draw: st.DrawFn, session: int, seq: int) -> tuple[bytes, int]:
    """(header frame, rows frame size) of the DATA message a reader expects next, or of one
    differing from it in a field, a byte or a size."""
    def often(usual: object, *other: object) -> object:
        return usual if draw(st.booleans()) else draw(st.sampled_from([usual, *other]))

    rows = draw(st.integers(0, 5))
    frame = bytearray(encode(Header(
        often(Kind.DATA, *Kind), often(0, BREAK, END), often(LAYOUT, "float32_3"),  # type: ignore[arg-type]
        often(session, session + 1), 0, often(seq, seq + 1, max(0, seq - 1)), rows)))  # type: ignore[arg-type]
    if not draw(st.integers(0, 3)):
        frame[draw(st.integers(0, HEADER_SIZE - 1))] = draw(st.integers(0, 255))
    if not draw(st.integers(0, 9)):
        frame += b"\0"
    nbytes = often(rows * ITEM, 0, ITEM, rows * ITEM + 1, 7)
    return bytes(frame), nbytes  # type: ignore[return-value]


@given(st.data(), st.integers(0, 4), st.sampled_from([False, False, False, True]))
def test_the_fast_path_takes_what_receive_would_take_alike_and_nothing_else(
        data_: st.DataObject, before: int, ended: bool) -> None:
    """``receive_rows`` either takes a message exactly as ``receive`` does (rows, no break,
    no reply, no warning) or leaves the reader untouched for ``receive``."""
    fast, full = Reader(LAYOUT, 10_000), Reader(LAYOUT, 10_000)
    for r in (fast, full):
        for seq in range(before):
            feed(r, data(5, seq, 2))
        if ended:
            feed(r, data(5, before, 0, END))
    header, nbytes = data_.draw(near_messages(5, full.expected))
    start = _state(fast)
    n = fast.receive_rows(header, nbytes)
    v = full.receive([len(header), nbytes], header)
    if n < 0:
        assert _state(fast) == start
    else:
        assert v == frames.Verdict(rows=n, current=True)
        assert _state(fast) == _state(full)


def test_struct_layout_is_little_endian_and_72_bytes() -> None:
    assert HEADER.format == "<4sBBH16sQQQQQQ"
    assert struct.calcsize(HEADER.format) == 72
