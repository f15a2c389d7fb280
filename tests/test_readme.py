"""The README's snippets, run as written (a newcomer copies them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import shmpipe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snippets() -> dict[str, str]:
    """The README's python blocks, keyed by their first line."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    return {b.splitlines()[0]: b for b in blocks}


def run(path: Any, timeout: float = 60) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def finish(p: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return out


@pytest.fixture
def sensor_pipe() -> Iterator[None]:
    shmpipe.unlink("sensor-1")  # the README's pipe name
    yield
    shmpipe.unlink("sensor-1")


def test_local_pipe_snippet(tmp_path: Any) -> None:
    code = snippets()["import asyncio, numpy as np, shmpipe"]
    (tmp_path / "local.py").write_text(code)
    assert finish(run(tmp_path / "local.py")).strip() == "[1000 2000] True"


@pytest.mark.parametrize("first", ["consumer", "producer"])
def test_producer_and_consumer_snippets_in_either_order(
    tmp_path: Any, sensor_pipe: None, first: str,
) -> None:
    blocks = snippets()
    (tmp_path / "producer.py").write_text(blocks["# producer.py"])
    consumer = next(v for k, v in blocks.items() if k.startswith("# consumer.py"))
    (tmp_path / "consumer.py").write_text(consumer)
    if first == "consumer":
        c = run(tmp_path / "consumer.py")  # before the pipe exists: it waits
        finish(run(tmp_path / "producer.py"))
    else:
        finish(run(tmp_path / "producer.py"))  # done before any consumer: the rows wait
        c = run(tmp_path / "consumer.py")
    assert finish(c).strip() == "2000 rows"


def test_stream_pipe_snippet(tmp_path: Any) -> None:
    code = snippets()["import asyncio, os, numpy as np, shmpipe"]
    (tmp_path / "stream.py").write_text(code)
    assert finish(run(tmp_path / "stream.py")).strip() == "[1000 2000] True"


def test_network_pipe_snippet(tmp_path: Any) -> None:
    pytest.importorskip("zmq", reason="network pipes need pyzmq: pip install -e '.[net]'")
    code = snippets()["import asyncio, numpy as np"]
    assert "from shmpipe.net import" in code
    (tmp_path / "net.py").write_text(code)
    assert finish(run(tmp_path / "net.py")).strip() == "[1000 2000] True"


def test_lend_snippet_sends_every_block_and_hands_each_back() -> None:
    pytest.importorskip("zmq", reason="network pipes need pyzmq: pip install -e '.[net]'")
    import asyncio
    import textwrap

    import numpy as np

    from shmpipe.net import NetInputPipe, NetOutputPipe

    code = next(v for k, v in snippets().items() if "async def send(out, blocks)" in k)
    scope: dict[str, Any] = {}
    exec(textwrap.dedent(code), scope)  # defines send(out, blocks) as the README shows it

    async def main() -> np.ndarray:
        inp = NetInputPipe("tcp://127.0.0.1:*", "float32_2")
        out = NetOutputPipe(inp.endpoint, "float32_2")
        block = np.zeros(10_000, shmpipe.compute_dtype("float32_2"))  # 160 kB: lent
        block["timestamp"] = np.arange(10_000)
        blocks = [block, block]  # the same block twice: it may change once handed back
        sender = asyncio.create_task(scope["send"](out, blocks))
        got = []
        while sum(map(len, got)) < 20_000:
            rows = await asyncio.wait_for(inp.read(), 10)
            got.append(np.array(rows))
            inp.consume(len(rows))
        await sender
        await out.close()
        await inp.close()
        return np.concatenate(got)

    got = asyncio.run(main())
    np.testing.assert_array_equal(got["timestamp"], np.tile(np.arange(10_000), 2))


def _block(lang: str, first: str) -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    blocks = re.findall(rf"```{lang}\n(.*?)```", text, re.S)
    return next(b for b in blocks if b.startswith(first))


@pytest.mark.parametrize("shared", [False, True], ids=["own processes", "shared process"])
def test_pipeline_snippets_run_as_written(tmp_path: Any, shared: bool) -> None:
    """mymodules.py and pipeline.toml as the README gives them, run with the README's
    commands from the directory holding them; uncommenting the process lines (the README's
    suggestion) gives the same output."""
    (tmp_path / "mymodules.py").write_text(_block("python", "# mymodules.py"))
    toml = _block("toml", "# pipeline.toml")
    if shared:
        assert toml.count('# process = "dsp"') == 2
        toml = toml.replace('# process = "dsp"', 'process = "dsp"')
    (tmp_path / "pipeline.toml").write_text(toml)
    commands = [line.split("#")[0].split() for line in
                _block("sh", "shmpipe run pipeline.toml --check").splitlines()]
    assert commands == [["shmpipe", "run", "pipeline.toml", "--check"],
                        ["shmpipe", "run", "pipeline.toml"]]
    for argv in commands:
        p = subprocess.run([sys.executable, "-m", "shmpipe", *argv[1:]], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "sink: 1000 rows, 2 interval breaks"
    assert "pipeline.toml: ok: 2 streams, 3 modules" in subprocess.run(
        [sys.executable, "-m", "shmpipe", *commands[0][1:]], cwd=tmp_path,
        capture_output=True, text=True, timeout=60).stdout


def test_the_bad_config_message_is_the_one_the_readme_shows(tmp_path: Any) -> None:
    with open(os.path.join(ROOT, "README.md")) as f:
        shown = re.search(r"key: `(shmpipe run: pipeline.toml:.*?)`", f.read(), re.S)
    assert shown is not None
    (tmp_path / "mymodules.py").write_text(_block("python", "# mymodules.py"))
    toml = _block("toml", "# pipeline.toml").replace("mymodules:scale", "mymodules:scal")
    (tmp_path / "pipeline.toml").write_text(toml)
    p = subprocess.run([sys.executable, "-m", "shmpipe", "run", "pipeline.toml"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.strip() == " ".join(shown.group(1).split())
