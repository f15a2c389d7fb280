"""Pipe names and the OS objects they stand for.

A pipe named ``sensor-1`` owns, all in ``/dev/shm`` and all starting ``shmpipe.``:

* ``shmpipe.sensor-1``             the shared-memory segment (header + ring)
* ``sem.shmpipe.sensor-1.lock``    the header semaphore
* ``shmpipe.sensor-1.bell.<id>``   the doorbell FIFO of the end registered as owner ``id``
                                   (the writer or a reader: see header.py)
"""

from __future__ import annotations

import hashlib
import os
import re

from ..errors import PipeError

PREFIX = "shmpipe."
SHM_DIR = "/dev/shm"
MAX_NAME = 64
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def validate(name: object) -> str:
    """Return ``name`` if it is a valid pipe name, else raise PipeError saying why.

    Valid: 1..64 characters of ``A-Z a-z 0-9 _ . -``, starting with a letter or digit, without
    ``..`` or ``.bell.`` (doorbell FIFOs are named ``<pipe>.bell.*``).
    """
    if not isinstance(name, str):
        raise PipeError(f"a pipe name must be a string, got {type(name).__name__} {name!r}")
    if (not 1 <= len(name) <= MAX_NAME or not _NAME_RE.match(name) or ".." in name
            or ".bell." in name):
        raise PipeError(
            f"bad pipe name {name!r}: expected 1..{MAX_NAME} characters of A-Z a-z 0-9 _ . - "
            "starting with a letter or digit (no slash, no '..', no '.bell.')"
        )
    return name


def shm_name(name: str) -> str:
    """The posix_ipc name of the segment."""
    return "/" + PREFIX + name


def lock_name(name: str) -> str:
    """The posix_ipc name of the header semaphore."""
    return "/" + PREFIX + name + ".lock"


def lock_path(name: str) -> str:
    """Where Linux keeps the header semaphore."""
    return os.path.join(SHM_DIR, "sem." + PREFIX + name + ".lock")


def bell(name: str, owner: int) -> str:
    """The doorbell FIFO of the end registered as owner ``owner`` of pipe ``name``."""
    return os.path.join(SHM_DIR, f"{PREFIX}{name}.bell.{owner}")


def pipe_of(entry: str) -> str | None:
    """The pipe name a /dev/shm entry belongs to, or None if it is not ours."""
    if entry.startswith("sem." + PREFIX) and entry.endswith(".lock"):
        return entry[len("sem." + PREFIX) : -len(".lock")]
    if not entry.startswith(PREFIX):
        return None
    rest = entry[len(PREFIX) :]
    m = re.match(r"^(.*)\.bell\.(w|r?[0-9]+)$", rest)
    return m.group(1) if m else rest


def list_pipes() -> list[str]:
    """Names of the pipes that have anything in /dev/shm."""
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted({p for e in entries if (p := pipe_of(e))})


def entries_of(name: str) -> list[str]:
    """Paths in /dev/shm that belong to pipe ``name``."""
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(SHM_DIR, e) for e in entries if pipe_of(e) == name)


def key(text: str) -> int:
    """The nonzero 64-bit number a durable reader's name is kept as in the header."""
    if not isinstance(text, str) or not text:
        raise PipeError(f"a reader key must be a non-empty string, got {text!r}")
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1
