"""``shmpipe bridge`` as a command: options, signals, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing
import os
import signal
from collections.abc import Iterator
from typing import Any

import netprocs
import numpy as np
import pytest
from conftest import free_port
from netprocs import LAYOUT, rows

import shmpipe
from shmpipe import PipeError
from shmpipe.cli import bridge as bridge_cli
from shmpipe.net import NetOutputPipe
from shmpipe.shm import list_pipes

SPAWN = multiprocessing.get_context("spawn")
_n = itertools.count()


@pytest.fixture
def name() -> Iterator[str]:
    n = f"nettest-cli-{os.getpid()}-{next(_n)}"
    yield n
    shmpipe.unlink(n)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="shmpipe")
    bridge_cli.register(parser.add_subparsers())
    return parser.parse_args(["bridge", *argv])


def test_options_are_parsed() -> None:
    a = parse("a", "tcp://127.0.0.1:5601", "--connect", "--layout", "int16_2", "--timeout", "0",
              "--key", "k.key", "--server-key", "s.key.pub")
    assert (a.src, a.dst, a.bind, a.layout, a.timeout) == \
        ("a", "tcp://127.0.0.1:5601", False, "int16_2", 0.0)
    assert parse("tcp://:5601", "b", "--allow", "d1", "--allow", "d2").allow == ["d1", "d2"]
    assert parse("x", "y").bind is None
    with pytest.raises(SystemExit):
        parse("x", "y", "--bind", "--connect")


def test_curve_options_without_a_key_are_refused() -> None:
    with pytest.raises(PipeError, match="--server-key and --allow need --key"):
        bridge_cli.run(parse("a", "tcp://127.0.0.1:5601", "--server-key", "s.key.pub"))


def test_a_missing_secret_key_is_a_one_line_error(tmp_path: Any) -> None:
    args = parse("tcp://127.0.0.1:*", "b", "--key", str(tmp_path / "none.key"),
                 "--allow", str(tmp_path))
    with pytest.raises(PipeError, match="cannot read secret key file"):
        bridge_cli.run(args)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_connecting_to_a_binding_writer_then_a_signal_exits_0(name: str, sig: int
                                                                    ) -> None:
    out = NetOutputPipe("tcp://127.0.0.1:*", LAYOUT, bind=True, timeout=30)
    p = SPAWN.Process(target=netprocs.run_bridge,
                      args=([out.endpoint, name, "--connect", "--layout", LAYOUT],), daemon=True)
    p.start()
    try:
        inp = shmpipe.open_input(name, LAYOUT)
        await out.write(rows(0, 100))
        await out.close_interval()
        got = []
        while True:  # the rows, then the break (sent as two messages: maybe two reads)
            d = await asyncio.wait_for(inp.read(), 30)
            got.append(np.array(d))
            inp.consume(len(d))
            if d.end_of_interval:
                break
        np.testing.assert_array_equal(np.concatenate(got), rows(0, 100))
        os.kill(p.pid, sig)  # Ctrl-C or SIGTERM: a clean stop
        await asyncio.to_thread(p.join, 30)
        assert p.exitcode == 0
        with pytest.raises(shmpipe.EmptyPipeError):  # the bridge closed its writer
            await asyncio.wait_for(inp.read(), 30)
        await inp.close()
        assert name not in list_pipes()  # nothing left that it created
    finally:
        if p.is_alive():
            p.kill()
        out.timeout = 1
        with contextlib.suppress(PipeError):  # the bridge is gone: unconfirmed is expected
            await out.disconnect()


def test_a_relay_whose_destination_stays_silent_raises() -> None:
    async def relay() -> None:
        from shmpipe.net import bridge

        src = f"tcp://127.0.0.1:{free_port()}"
        task = asyncio.create_task(bridge(src, f"tcp://127.0.0.1:{free_port()}", timeout=0.5))
        out = NetOutputPipe(src, LAYOUT, timeout=10)
        await out.write(rows(0, 5))  # the relay takes it, then finds nobody downstream
        with pytest.raises(PipeError, match="no reader answered"):
            await asyncio.wait_for(task, 30)
        out.timeout = 0.5
        with pytest.raises(PipeError, match="may be lost"):  # the relay took them, then failed
            await out.disconnect()

    asyncio.run(relay())
