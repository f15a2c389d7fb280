"""iceoryx2 publish/subscribe, with an event service to wake the subscriber.

The publisher loans a slice, copies the block in and sends it, then notifies. The subscriber
wraps the payload with numpy (no copy) and releases the sample when the rows are consumed.
Nothing may be lost: no safe overflow, and a publisher that waits (``RetryUntilDelivered``)
when the subscriber's buffer is full.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import shutil
from typing import Any

import numpy as np

from bench.contenders.base import Channel, End, unique
from bench.harness import describe

WAIT_MS = 100  # the subscriber re-checks at least this often while it waits
SHM_FILES = "/dev/shm/iox2_*"  # where iceoryx2 0.10 keeps its shared memory
ROOT = "/tmp/iceoryx2"  # ... and its service and node descriptions


def files() -> set[str]:
    """iceoryx2's files on this host: its /dev/shm objects and everything under its root."""
    found = set(glob.glob(SHM_FILES))
    for folder, dirs, names in os.walk(ROOT):
        found.update(os.path.join(folder, n) for n in dirs + names)
    if os.path.isdir(ROOT):
        found.add(ROOT)
    return found


def remove_new(before: set[str]) -> list[str]:
    """Remove the iceoryx2 files that were not there in ``before`` (deepest first); return
    them. Files of iceoryx2 users that predate the benchmark stay."""
    gone = []
    for path in sorted(files() - before, key=len, reverse=True):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, PermissionError):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            gone.append(path)
    return gone


def _iox() -> Any:
    import iceoryx2

    iceoryx2.set_log_level(iceoryx2.LogLevel.Error)
    return iceoryx2


class _Ends:
    """A node with the pub/sub service and its companion event service."""

    def __init__(self, name: str, slots: int) -> None:
        iox = self.iox = _iox()
        self.node = iox.NodeBuilder.new().create(iox.ServiceType.Ipc)
        service_name = iox.ServiceName.new(name)
        self.service = (
            self.node.service_builder(service_name)
            .publish_subscribe(iox.Slice[ctypes.c_uint8])
            .payload_alignment(iox.Alignment.new(8))
            .enable_safe_overflow(False)
            .history_size(0)
            .subscriber_max_buffer_size(slots)
            .open_or_create()
        )
        self.event = self.node.service_builder(service_name).event().open_or_create()


class _Writer(End):
    def __init__(self, name: str, slots: int, block_bytes: int) -> None:
        self.ends = ends = _Ends(name, slots)
        iox = ends.iox
        self.pub = (
            ends.service.publisher_builder()
            .initial_max_slice_len(block_bytes)
            .allocation_strategy(iox.AllocationStrategy.Static)
            .backpressure_strategy(iox.BackpressureStrategy.RetryUntilDelivered)
            .create()
        )
        self.notifier = ends.event.notifier_builder().create()

    def _send(self, data: np.ndarray) -> None:
        sample = self.pub.loan_slice_uninit(data.nbytes)
        np.frombuffer(sample.payload().as_memory_view(), np.uint8)[:] = data
        sample.assume_init().send()
        self.notifier.notify()

    def send(self, block: np.ndarray) -> None:
        self._send(block.view(np.uint8))

    def close(self) -> None:
        self._send(np.zeros(1, np.uint8))  # shorter than a row: the end of the stream


class _Reader(End):
    def __init__(self, name: str, slots: int, dtype: np.dtype) -> None:
        self.ends = ends = _Ends(name, slots)
        iox = ends.iox
        self.sub = ends.service.subscriber_builder().buffer_size(slots).create()
        self.listener = ends.event.listener_builder().create()
        self.wait = iox.Duration.from_millis(WAIT_MS)
        self.dtype = dtype
        self.sample: Any = None

    def recv(self) -> np.ndarray:
        while (sample := self.sub.receive()) is None:
            self.listener.timed_wait(self.wait)
        payload = sample.payload()
        if payload.len() < self.dtype.itemsize:
            sample.delete()
            raise EOFError
        self.sample = sample
        return np.frombuffer(payload.as_memory_view(), self.dtype)

    def release(self, n: int) -> None:
        self.sample.delete()
        self.sample = None

    def close(self) -> None:
        pass


class Iceoryx(Channel):
    """iceoryx2 0.10 pub/sub of byte slices carrying whole blocks."""

    label = "iceoryx2 pub/sub"

    def __init__(self, layout: str, block: int) -> None:
        super().__init__(layout, block)
        self.name = unique("shmpipe-bench")
        self.before = files()  # what was there before this measurement

    @classmethod
    def probe(cls) -> str | None:
        try:
            _iox()
        except Exception as exc:
            return describe(exc, where=False)
        return None

    def sender(self) -> End:
        return _Writer(self.name, self.slots(256), self.block_bytes)

    def receiver(self) -> End:
        return _Reader(self.name, self.slots(256), self.dtype)

    def cleanup(self) -> None:
        """After the measurement (its processes are gone): remove what they left behind, the
        dead nodes by iceoryx2's own cleanup, then every iceoryx2 file that appeared since this
        channel was made (``/dev/shm/iox2_*``, ``/tmp/iceoryx2``)."""
        iox = _iox()
        node = iox.NodeBuilder.new().create(iox.ServiceType.Ipc)
        node.try_cleanup_dead_nodes()
        del node
        remove_new(self.before)
