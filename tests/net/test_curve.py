"""CurveZMQ: key files made by ``shmpipe keys``, who may connect, secret keys kept secret."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat

import numpy as np
import pytest
from conftest import LAYOUT, rows

from shmpipe import PipeError
from shmpipe.cli import keys as keys_cli
from shmpipe.net import Curve, NetInputPipe, NetOutputPipe
from shmpipe.net.keys import load_secret, make_keypair


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="shmpipe")
    keys_cli.register(parser.add_subparsers())
    args = parser.parse_args(["keys", *argv])
    return int(args.func(args))


def test_keys_command_writes_a_secret_0600_and_a_public_file(tmp_path: str,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    d = os.path.join(tmp_path, "keys")
    assert cli(d, "server", "client") == 0
    for name in ("server", "client"):
        secret = os.path.join(d, f"{name}.key")
        assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
        assert os.path.exists(secret + ".pub")
        public, _ = load_secret(secret)
        with open(secret + ".pub") as f:
            assert public.decode() in f.read()
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert "server.key.pub" in capsys.readouterr().out
    with pytest.raises(PipeError, match="exists: remove it first"):
        cli(d, "server")


def test_a_secret_key_open_to_others_is_refused(tmp_path: str) -> None:
    secret, _ = make_keypair(str(tmp_path), "lax")
    os.chmod(secret, 0o644)
    with pytest.raises(PipeError, match=r"is open to others \(mode 0644\), expected 0600: "
                                        r"chmod 600"):
        NetInputPipe("tcp://127.0.0.1:*", LAYOUT, curve=Curve(secret, allow=[str(tmp_path)]))


def test_bad_key_files_are_clear_errors(tmp_path: str) -> None:
    secret, _ = make_keypair(str(tmp_path), "k")
    bad = os.path.join(tmp_path, "bad.key.pub")
    with open(bad, "w") as f:
        f.write("not a key\n")
    with pytest.raises(PipeError, match="expected a 40-character Z85 key, got 9 characters"):
        NetOutputPipe("tcp://127.0.0.1:5601", LAYOUT, curve=Curve(secret, server=bad))
    with pytest.raises(PipeError, match=r"cannot read key file .*missing"):
        NetOutputPipe("tcp://127.0.0.1:5601", LAYOUT,
                      curve=Curve(secret, server=os.path.join(tmp_path, "missing")))
    with pytest.raises(PipeError, match="needs the server's public key file"):
        NetOutputPipe("tcp://127.0.0.1:5601", LAYOUT, curve=Curve(secret))
    with pytest.raises(PipeError, match="needs the client public keys it accepts"):
        NetInputPipe("tcp://127.0.0.1:*", LAYOUT, curve=Curve(secret))


@pytest.fixture
def keydir(tmp_path: str) -> str:
    d = str(tmp_path)
    for name in ("server", "client", "intruder"):
        make_keypair(d, name)
    os.makedirs(os.path.join(d, "allowed"))
    os.rename(os.path.join(d, "client.key.pub"), os.path.join(d, "allowed", "client.key.pub"))
    return d


async def test_a_listed_client_is_served_and_an_unlisted_one_sends_not_a_row(
        keydir: str, caplog: pytest.LogCaptureFixture) -> None:
    k = lambda name: os.path.join(keydir, name)  # noqa: E731
    server = Curve(k("server.key"), allow=[k("allowed")])
    inp = NetInputPipe("tcp://127.0.0.1:*", LAYOUT, curve=server)

    intruder = NetOutputPipe(inp.endpoint, LAYOUT, timeout=1, heartbeat=0.1,
                             curve=Curve(k("intruder.key"), server=k("server.key.pub")))
    with pytest.raises(PipeError, match="no reader answered"):
        await intruder.write(rows(0, 5))
    await intruder.close()
    plain = NetOutputPipe(inp.endpoint, LAYOUT, timeout=1, heartbeat=0.1)  # no CURVE at all
    with pytest.raises(PipeError, match="no reader answered"):
        await plain.write(rows(0, 5))
    await plain.close()
    assert inp.read_nowait().size == 0  # nothing came through
    assert "key" in caplog.text and "is not allowed" in caplog.text

    client = NetOutputPipe(inp.endpoint, LAYOUT, timeout=10,
                           curve=Curve(k("client.key"), server=k("server.key.pub")))
    await client.write(rows(0, 5))
    await client.close()
    data = await asyncio.wait_for(inp.read(), 10)
    np.testing.assert_array_equal(data, rows(0, 5))
    await inp.close()


async def test_curve_with_the_sender_binding(keydir: str) -> None:
    k = lambda name: os.path.join(keydir, name)  # noqa: E731
    out = NetOutputPipe("tcp://127.0.0.1:*", LAYOUT, bind=True, timeout=10,
                        curve=Curve(k("server.key"), allow=[k("allowed/client.key.pub")]))
    inp = NetInputPipe(out.endpoint, LAYOUT, bind=False,
                       curve=Curve(k("client.key"), server=k("server.key.pub")))
    await out.write(rows(0, 3))
    await out.close()
    data = await asyncio.wait_for(inp.read(), 10)
    np.testing.assert_array_equal(data, rows(0, 3))
    await inp.close()
