"""The bridge: rows from a local pipe to a network endpoint, or from an endpoint into a local
pipe, with interval breaks and backpressure kept end to end.

Each side is a shared-memory pipe name or an endpoint (``tcp://...``, ``ipc://...``). The
receiving end of a network side binds and the sending end connects, unless ``bind`` says
otherwise. Backpressure: the bridge consumes a block from its source only once the
destination took it, so a full destination fills the source, which slows its writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from ..errors import EmptyPipeError, PipeError
from ..pipe import InputPipe, OutputPipe
from ..shm import open_input, open_output
from .endpoint import is_endpoint
from .ends import DEFAULT_TIMEOUT, DEFAULT_WINDOW, NetInputPipe, NetOutputPipe
from .keys import Curve

log = logging.getLogger("shmpipe")

STOP_GRACE = 5.0  # seconds a stopped bridge waits for the rows it sent to be confirmed


async def bridge(
    src: str,
    dst: str,
    *,
    layout: str | None = None,
    bind: bool | None = None,
    capacity: int | None = None,
    window: int = DEFAULT_WINDOW,
    timeout: float | None = DEFAULT_TIMEOUT,
    curve: Curve | None = None,
    key: str | None = None,
) -> int:
    """Forward every row and interval break from ``src`` to ``dst``; return the rows moved.

    ``src`` / ``dst``: a shared-memory pipe name or an endpoint. A pipe source without
    ``layout`` must exist (waited for, up to ``timeout`` s; with ``layout`` it is created if
    needed). A pipe destination is opened (created if needed, with ``capacity`` rows) once the
    layout is known: ``layout``, else the source's (a network source's first message).
    ``bind``: whether the network side binds (default: a network source binds, a network
    destination connects). ``window``, ``timeout``, ``curve``: as for
    :class:`~shmpipe.net.NetInputPipe` / :class:`~shmpipe.net.NetOutputPipe`. ``key``: a
    pipe source's durable reader key (see :func:`shmpipe.shm.prepare`).

    Runs until the source ends: then it closes the destination (the end of the stream goes
    on) and returns. Cancelled, it stops reading, closes what it opened and re-raises
    CancelledError: a network destination is disconnected without an end mark (after up to
    5 s for the rows already sent to be confirmed), so the far side keeps its stream and
    marks a break when a bridge comes back; a pipe destination is closed as any writer (shm
    ownership rules: its readers drain it, then see the end). Raises PipeError if an end
    cannot be opened, layouts differ, or a network peer stays silent past ``timeout``.
    """
    if is_endpoint(src) and is_endpoint(dst) and bind is not None:
        raise PipeError("bind= is ambiguous when both sides are endpoints")
    inp = await _open_source(src, layout, bind, window, timeout, curve, key)
    out: OutputPipe | None = None
    moved = 0
    done = False
    try:
        while True:
            try:
                data = await inp.read()
            except EmptyPipeError:
                break
            if out is None:
                out = _open_destination(dst, inp.layout, bind, capacity, timeout, curve)
            if len(data) and inp.end_of_interval:
                # the rows and the break in one step (a reader never sees one without the
                # other), through the hook close_interval uses for cached rows
                await out._write_rows_then_break(data)
            elif len(data):
                await out.write(data)
            elif inp.end_of_interval:
                await out.close_interval()
            inp.consume(len(data))
            moved += len(data)
        if out is None:
            out = _open_destination(dst, layout or inp.layout, bind, capacity, timeout, curve)
        done = True
        await out.close()
        return moved
    finally:
        try:
            if out is not None and not done:
                await _stop_destination(out)
        finally:
            await inp.close()


async def _open_source(src: str, layout: str | None, bind: bool | None, window: int,
                       timeout: float | None, curve: Curve | None,
                       key: str | None = None) -> InputPipe:
    if is_endpoint(src):
        return NetInputPipe(src, layout, bind=True if bind is None else bind, window=window,
                            curve=curve)
    if layout is not None:
        return open_input(src, layout, key=key)
    wait = 10.0 if timeout is None else timeout
    return await asyncio.to_thread(functools.partial(open_input, src, wait=wait, key=key))


def _open_destination(dst: str, layout: str, bind: bool | None, capacity: int | None,
                      timeout: float | None, curve: Curve | None) -> OutputPipe:
    if is_endpoint(dst):
        return NetOutputPipe(dst, layout, bind=False if bind is None else bind,
                             timeout=timeout, curve=curve)
    return open_output(dst, layout, capacity)


async def _stop_destination(out: OutputPipe) -> None:
    if isinstance(out, NetOutputPipe):
        if out.timeout is None or out.timeout > STOP_GRACE:
            out.timeout = STOP_GRACE
        try:
            await out.disconnect()
        except PipeError as e:
            log.warning("bridge stopped: %s", e)
        return
    with contextlib.suppress(PipeError):
        await out.close()
