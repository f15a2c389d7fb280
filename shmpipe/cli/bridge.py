"""``shmpipe bridge SRC DST``: forward a local pipe to an endpoint, or an endpoint into a local
pipe, until the source ends or a signal stops it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from ..errors import PipeError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bridge", help="forward a shared-memory pipe to the network, or the network into one",
        description="Forward rows and interval breaks from SRC to DST. Each is a shared-memory "
                    "pipe name or an endpoint (tcp://HOST:PORT, ipc://PATH). 'shmpipe bridge "
                    "a tcp://10.0.0.2:5601' sends pipe a there; 'shmpipe bridge tcp://:5601 b' "
                    "binds port 5601 (on 127.0.0.1: name an address such as 0.0.0.0 to listen "
                    "beyond this host) and writes into pipe b, created with the sender's layout "
                    "unless --layout says otherwise. Exits 0 when the source ends (the end goes "
                    "on to DST) or on Ctrl-C / SIGTERM (a network destination then keeps its "
                    "stream open and marks a break when a bridge comes back).")
    p.add_argument("src", metavar="SRC", help="pipe name or endpoint to read from")
    p.add_argument("dst", metavar="DST", help="pipe name or endpoint to write to")
    p.add_argument("--layout", help="layout of the pipes (default: the source's)")
    side = p.add_mutually_exclusive_group()
    side.add_argument("--bind", dest="bind", action="store_true", default=None,
                      help="the network side binds (default for a network source)")
    side.add_argument("--connect", dest="bind", action="store_false",
                      help="the network side connects (default for a network destination)")
    p.add_argument("--capacity", type=int, metavar="ROWS",
                   help="ring size of a pipe the bridge creates (default: 16 MiB of rows)")
    p.add_argument("--window", type=int, metavar="BYTES", default=None,
                   help="credit of a network source: bytes in flight and held (default 16 MiB)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", default=None,
                   help="give up when the network peer stays silent this long (default 30; "
                        "0: wait forever)")
    p.add_argument("--key", metavar="FILE", help="this end's CurveZMQ secret key (NAME.key)")
    p.add_argument("--server-key", metavar="FILE",
                   help="the binding peer's public key (NAME.key.pub), when connecting")
    p.add_argument("--allow", metavar="FILE|DIR", action="append", default=[],
                   help="client public keys accepted when binding (repeatable; a directory "
                        "means its *.key.pub files)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from .. import net
    except ImportError as e:
        raise PipeError(str(e)) from None
    if (args.server_key or args.allow) and not args.key:
        raise PipeError("--server-key and --allow need --key (this end's secret key)")
    curve = net.Curve(args.key, args.server_key, tuple(args.allow)) if args.key else None
    timeout = net.DEFAULT_TIMEOUT if args.timeout is None else (args.timeout or None)
    kwargs = {"layout": args.layout, "bind": args.bind, "capacity": args.capacity,
              "window": args.window or net.DEFAULT_WINDOW, "timeout": timeout, "curve": curve}
    return asyncio.run(_main(args.src, args.dst, kwargs))


async def _main(src: str, dst: str, kwargs: dict[str, object]) -> int:
    from ..net import bridge

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(bridge(src, dst, **kwargs))  # type: ignore[arg-type]
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await task
    except asyncio.CancelledError:
        if not stopped:
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    return 0
