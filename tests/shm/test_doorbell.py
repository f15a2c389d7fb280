from __future__ import annotations

import asyncio
import os
import stat
from typing import Any

from shmpipe.shm.doorbell import Doorbell, Ringer


def test_a_ring_wakes_a_thread_waiting_and_a_quiet_bell_times_out(tmp_path: Any) -> None:
    bell = Doorbell(str(tmp_path / "bell"), 0o600)
    assert stat.S_IMODE(os.stat(bell.path).st_mode) == 0o600
    ringer = Ringer()
    assert not bell.wait_sync(0.01)
    ringer.ring(bell.path)
    ringer.ring(bell.path)  # several rings: one wake-up, then quiet again
    assert bell.wait_sync(1.0)
    assert not bell.wait_sync(0.01)
    ringer.close()
    bell.close()


def test_a_ring_wakes_the_event_loop_and_rings_while_nobody_waits_are_swallowed(
    tmp_path: Any,
) -> None:
    async def go() -> None:
        bell = Doorbell(str(tmp_path / "bell"), 0o600)
        ringer = Ringer()
        assert not await bell.wait(0.01)
        ringer.ring(bell.path)  # nobody waits: swallowed by the registered reader
        await asyncio.sleep(0)
        waiter = asyncio.create_task(bell.wait(5))
        await asyncio.sleep(0)
        assert not waiter.done()
        ringer.ring(bell.path)
        assert await asyncio.wait_for(waiter, 1)
        ringer.close()
        bell.close()

    asyncio.run(go())
