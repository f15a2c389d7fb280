"""CurveZMQ keys in files: making key pairs, loading them safely, and who may connect.

A key pair named NAME is two text files holding one Z85-encoded key each (40 characters):
``NAME.key``, the secret key (mode 0600, refused if anyone but its owner may read it), and
``NAME.key.pub``, the public key (0644; it is safe to copy anywhere). The binding end of a pipe
is the CURVE server: it has its own key pair and a list of client public keys it accepts (any
other client is refused during the handshake, before it can send a single frame). The
connecting end is a client: its own key pair and the server's public key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PipeError

log = logging.getLogger("shmpipe")

SECRET_SUFFIX = ".key"
PUBLIC_SUFFIX = ".key.pub"
_Z85_LEN = 40


def _z85_decode(text: str, path: str) -> bytes:
    from zmq.utils import z85

    if len(text) != _Z85_LEN:
        raise PipeError(f"{path}: expected a {_Z85_LEN}-character Z85 key, got "
                        f"{len(text)} characters")
    try:
        return bytes(z85.decode(text.encode("ascii")))
    except (ValueError, UnicodeEncodeError, KeyError) as e:
        raise PipeError(f"{path}: expected a Z85 key, got {text[:8]!r}... ({e})") from None


def _read_key(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError as e:
        raise PipeError(f"cannot read key file {path}: {e.strerror}") from None
    if len(lines) != 1:
        raise PipeError(f"{path}: expected one Z85 key line, got {len(lines)} lines")
    return lines[0]


def make_keypair(directory: str, name: str) -> tuple[str, str]:
    """Write a new key pair ``DIR/NAME.key`` (secret, 0600) and ``DIR/NAME.key.pub``.

    Creates ``directory`` (mode 0700) if needed. Refuses (PipeError) to overwrite either file
    and names without a path separator. Returns the two paths (secret, public).
    """
    import zmq

    if not name or "/" in name or name.startswith("."):
        raise PipeError(f"expected a key name without '/' or a leading '.', got {name!r}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    secret_path = os.path.join(directory, name + SECRET_SUFFIX)
    public_path = os.path.join(directory, name + PUBLIC_SUFFIX)
    for p in (secret_path, public_path):
        if os.path.lexists(p):
            raise PipeError(f"{p} exists: remove it first to make a new key pair")
    public, secret = zmq.curve_keypair()
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, b"# shmpipe CURVE secret key: keep it private\n" + secret + b"\n")
    finally:
        os.close(fd)
    try:
        fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b"# shmpipe CURVE public key\n" + public + b"\n")
        finally:
            os.close(fd)
    except BaseException:
        os.unlink(secret_path)
        raise
    return secret_path, public_path


def load_secret(path: str) -> tuple[bytes, bytes]:
    """Load a secret key file; return ``(public, secret)`` Z85 keys (40 bytes each).

    Raises PipeError if the file is readable or writable by anyone but its owner (naming its
    mode and the fix), is not owned by this user, or does not hold one Z85 key.
    """
    import zmq

    try:
        st = os.stat(path)
    except OSError as e:
        raise PipeError(f"cannot read secret key file {path}: {e.strerror}") from None
    if st.st_mode & 0o077:
        raise PipeError(f"secret key file {path} is open to others (mode "
                        f"{stat.S_IMODE(st.st_mode):04o}), expected 0600: chmod 600 {path}")
    if st.st_uid != os.getuid():
        raise PipeError(f"secret key file {path} belongs to uid {st.st_uid}, expected this "
                        f"user's ({os.getuid()})")
    text = _read_key(path)
    _z85_decode(text, path)
    secret = text.encode("ascii")
    return bytes(zmq.curve_public(secret)), secret


def load_public(path: str) -> bytes:
    """Load a public key file; return its Z85 key (40 bytes). PipeError if it holds none."""
    text = _read_key(path)
    _z85_decode(text, path)
    return text.encode("ascii")


def public_key_files(paths: Iterable[str]) -> list[str]:
    """Expand ``paths``: a directory stands for every ``*.key.pub`` file in it."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, f) for f in os.listdir(p)
                          if f.endswith(PUBLIC_SUFFIX))
        else:
            out.append(p)
    return out


@dataclass(frozen=True)
class Curve:
    """CurveZMQ settings for one end of a network pipe.

    ``secret``: this end's secret key file (``NAME.key``). The end that binds is the server:
    ``allow`` lists the client public key files (or directories of ``*.key.pub``) it
    accepts; at least one is needed. The end that connects is a client: ``server`` is the
    server's public key file. Files are read when the pipe opens (PipeError if a file is
    missing, malformed or, for the secret key, open to others).
    """

    secret: str
    server: str | None = None
    allow: Sequence[str] = ()

    def options(self, bind: bool) -> tuple[dict[int, Any], set[bytes] | None]:
        """Socket options for this end, and (binding) the allowed client keys, binary."""
        import zmq
        from zmq.utils import z85

        public, secret = load_secret(self.secret)
        opts: dict[int, Any] = {zmq.CURVE_SECRETKEY: secret, zmq.CURVE_PUBLICKEY: public}
        if bind:
            files = public_key_files(self.allow)
            if not files:
                raise PipeError("a binding CURVE end needs the client public keys it accepts "
                                f"(allow=...), got none from {list(self.allow)!r}")
            opts[zmq.CURVE_SERVER] = 1
            return opts, {bytes(z85.decode(load_public(f))) for f in files}
        if self.server is None:
            raise PipeError("a connecting CURVE end needs the server's public key file "
                            "(server=...)")
        opts[zmq.CURVE_SERVERKEY] = load_public(self.server)
        return opts, None


class ZapHandler:
    """A ZAP handler (RFC 27) for one zmq context: it accepts CURVE clients whose public key is
    in ``allowed`` and refuses every other client (and every other mechanism).

    Runs in its own thread, so handshakes complete whether or not an event loop runs; it must
    be started before the context's server socket binds. :meth:`close` stops and joins it.
    """

    def __init__(self, context: Any, allowed: set[bytes]) -> None:
        import zmq

        self.allowed = allowed
        self.sock = context.socket(zmq.REP)
        self.sock.linger = 0
        try:
            self.sock.bind("inproc://zeromq.zap.01")
            stop = f"inproc://shmpipe-zap-stop-{id(self)}"
            self.stop_rx = context.socket(zmq.PAIR)
            self.stop_rx.linger = 0
            self.stop_rx.bind(stop)
            self.stop_tx = context.socket(zmq.PAIR)
            self.stop_tx.linger = 0
            self.stop_tx.connect(stop)
        except BaseException:
            self.sock.close()
            raise
        self.thread = threading.Thread(target=self._serve, name="shmpipe-zap", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.stop_rx, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if self.stop_rx in ready:
                    return
                if self.sock in ready:
                    self.sock.send_multipart(self._answer(self.sock.recv_multipart()))
        finally:
            self.sock.close()
            self.stop_rx.close()

    def _answer(self, req: list[bytes]) -> list[bytes]:
        version, request_id = [*req, b"1.0", b""][:2]
        if len(req) < 6:
            return [version, request_id, b"400", b"malformed ZAP request", b"", b""]
        address, mechanism = req[3], req[5]
        key = req[6] if mechanism == b"CURVE" and len(req) > 6 else b""
        if key in self.allowed:
            return [version, request_id, b"200", b"OK", key.hex().encode(), b""]
        from zmq.utils import z85

        who = z85.encode(key).decode() if len(key) == 32 else mechanism.decode(errors="replace")
        log.warning("shmpipe: refused a client from %s: key %s is not allowed",
                    address.decode(errors="replace") or "?", who)
        return [version, request_id, b"400", b"client key not allowed", b"", b""]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_tx.send(b"")
        self.thread.join()
        self.stop_tx.close()
