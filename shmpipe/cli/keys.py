"""``shmpipe keys DIR [NAME ...]``: make CurveZMQ key pairs for network pipes."""

from __future__ import annotations

import argparse
import socket

from ..errors import PipeError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keys", help="make CurveZMQ key pairs for network pipes",
        description="Write DIR/NAME.key (the secret key, mode 0600) and DIR/NAME.key.pub (the "
                    "public key) for each NAME. The binding end of a network pipe or bridge "
                    "uses its own NAME.key and accepts the clients whose .key.pub files it is "
                    "given (--allow); a connecting end uses its own NAME.key and the server's "
                    ".key.pub (--server-key). Existing files are never overwritten.")
    p.add_argument("dir", metavar="DIR", help="directory for the key files (made 0700 if new)")
    p.add_argument("names", metavar="NAME", nargs="*",
                   help="key pair names (default: this host's name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..net.keys import make_keypair
    except ImportError as e:
        raise PipeError(str(e)) from None
    for name in args.names or [socket.gethostname()]:
        secret, public = make_keypair(args.dir, name)
        print(f"{secret}\tsecret key: keep it on this host (mode 0600)")
        print(f"{public}\tpublic key: give it to the peers")
    return 0
