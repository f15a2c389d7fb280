"""Every contender, in the order the tables list them."""

from __future__ import annotations

from bench.contenders.base import Channel
from bench.contenders.fifo import FasterFifo
from bench.contenders.iceoryx import Iceoryx
from bench.contenders.joule import JouleLocal, JoulePipe
from bench.contenders.limits import BareShm, Memcpy
from bench.contenders.mpq import MpPipe, MpQueue
from bench.contenders.net import (
    NetBridge,
    NetIpc,
    NetIpcLend,
    NetTcp,
    NetTcpLend,
    NetTcpNoPoll,
    ZmqAsyncTcp,
    ZmqTcp,
)
from bench.contenders.ospipe import OsPipe, PipeFloor
from bench.contenders.shm import (
    ShmBusyPoll,
    ShmCopy,
    ShmFillThenCopy,
    ShmLocal,
    ShmStream,
    ShmZeroCopy,
)
from bench.contenders.zeromq import Zmq

REFERENCE = ShmCopy

ALL: list[type[Channel]] = [
    ShmCopy,
    ShmFillThenCopy,
    ShmZeroCopy,
    ShmBusyPoll,
    ShmStream,
    ShmLocal,
    OsPipe,
    JoulePipe,
    JouleLocal,
    MpQueue,
    MpPipe,
    FasterFifo,
    Zmq,
    ZmqTcp,
    ZmqAsyncTcp,
    NetTcp,
    NetIpc,
    NetTcpNoPoll,
    NetTcpLend,
    NetIpcLend,
    NetBridge,
    Iceoryx,
    Memcpy,
    BareShm,
    PipeFloor,
]


def in_suite(suite: str) -> list[type[Channel]]:
    return [c for c in ALL if suite in c.suites]
