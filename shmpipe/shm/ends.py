"""Opening the two ends of a shared-memory pipe: :func:`open_output` and :func:`open_input`.

The ends themselves are in ``output.py`` and ``input.py``, what they share (the role an end
holds, its lifecycle, hand-over and fork rules) in ``end.py``, every protocol decision in the
pure ``ring.py``.

Ownership rules (how ends move between processes)
--------------------------------------------------
* Ends pickle, so an end can be passed to ``multiprocessing.Process`` under any start method.
  Pickling hands the end over: the process that unpickles it takes its registration (same
  stream position, no gap, no duplicate); the local copy is retired at once (using it raises
  PipeError; closing it, at any time, only drops its handles). A handed-over end that nobody
  takes over within 30 s is released. With ``fork``, the child's first use of an inherited
  end takes it over; a child that never uses it (or closes it) changes nothing for the parent.
  A writer holding ``reserve()``d rows cannot be taken over until it commits them.
* An input end takes its reader slot (its cursor in the header) when it is opened: it
  receives every row written from then on (or, if it is the only reader, from the oldest row
  no reader has consumed). Handing it to a child moves the slot with it, so the parent keeps
  no phantom reader that would stall the writer.
* The writer registers when it opens: a second ``open_output`` while the first writer
  lives raises PipeError naming its pid. Liveness is a kernel lock each end holds (see
  ``locks.py``): exact across PID namespaces, never fooled by a reused pid or a stopped
  process. A writer that replaces a dead (or closed) one
  takes over, and its first row starts a new interval.
* The segment and its semaphore and doorbells are unlinked when the last end closes, unless
  rows remain that no reader has consumed: then the pipe stays in /dev/shm, and the next reader
  to attach gets them (``shmpipe.unlink(name)`` removes it for good). An end dropped without
  ``close()`` is closed by a finalizer; an end whose process dies is released by the next end
  that looks.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import names, ring
from .input import OPEN_WAIT, ShmInputPipe
from .output import ShmOutputPipe
from .segment import DEFAULT_MODE, open_segment
from .segment import unlink as _unlink_segment


def open_output(
    name: str,
    layout: str,
    capacity: int | None = None,
    *,
    mode: int = DEFAULT_MODE,
    owner: int | str | None = None,
    check_timestamps: bool = False,
) -> ShmOutputPipe:
    """Open the writing end of shared-memory pipe ``name``, creating the pipe if needed.

    ``capacity`` is the ring size in rows (rounded up to whole pages); by default the ring
    holds 16 MiB of rows whatever the row width. The whole ring is reserved in /dev/shm when
    the pipe is created. If the pipe exists, its capacity is kept (a smaller one than asked
    for is logged as a warning): the end that creates a pipe sets its size, so give the
    capacity to whichever end may come first.
    ``mode`` is the permission of the /dev/shm objects (default 0600; e.g. 0o660 or 0o666 to
    share with other users). ``owner`` (a user name or uid) is the user expected to have
    created the pipe when that is neither you nor root: pipe objects of any other user are
    refused, so nobody can plant a pipe for you to write into.
    Raises PipeError if the name or capacity is invalid, if /dev/shm cannot hold the ring
    (naming the bytes asked and free), if the pipe exists with another layout (naming both),
    if another live process is its writer (naming its pid), or if the segment is corrupted,
    foreign or owned by an untrusted user; ValueError for a bad layout. A failed open leaves
    nothing behind. Blocks only to take the header lock (microseconds, unless a process
    holding it is stopped: PipeError after 30 s).
    """
    return ShmOutputPipe(name, layout, capacity, mode=mode, owner=owner,
                         check_timestamps=check_timestamps)


def open_input(
    name: str, layout: str | None = None, *, capacity: int | None = None,
    mode: int = DEFAULT_MODE, owner: int | str | None = None, spin: float | None = None,
    wait: float = OPEN_WAIT, key: str | None = None,
) -> ShmInputPipe:
    """Open a reading end of shared-memory pipe ``name``.

    With ``layout``, creates the pipe if it does not exist yet (with ``capacity`` rows, as
    :func:`open_output`) and checks it otherwise. Without, waits up to ``wait`` seconds
    (default 10) for a writer to create it, blocking the calling thread (in a process that
    runs other coroutines, pass the layout instead: then nothing waits). The end joins the
    stream now: at the oldest row no reader has consumed if it is the only reader, else at
    the write position. Raises PipeError when the pipe already has MAX_READERS (64) readers,
    when it does not appear within ``wait``, and as :func:`open_output` does.

    ``spin``: seconds to poll the header before sleeping on the doorbell when a read finds
    nothing new. ``None`` (default) adapts: it polls only while news has recently come within
    200 µs of a read finding none, for at most twice that typical gap, and never while other
    tasks of the event loop are ready to run; an idle pipe never polls. ``0`` never polls; a
    number polls that long every time (lowest latency, more CPU).

    ``spin=math.inf`` is *busy-poll mode*, for latency-critical pipes: a waiting read never
    sleeps, it looks at the header until news comes (letting other ready tasks of its event
    loop run between looks, checking the writer's liveness every 0.5 s), so the writer never
    rings its doorbell (a system call and a wake-up saved per hand-off). Its cost: **one CPU
    core at 100 % for as long as the reader waits**, idle pipe or not (the two ends of a
    round trip take two cores), and where fewer cores are free than readers spin, every
    process slows down. ``read_sync`` polls in bursts of at most 0.5 s (or its timeout)
    between doorbell waits.

    ``key`` names a durable reader (see :func:`prepare`): in a durable pipe, the end adopts
    the slot its key left when its process died, or that :func:`prepare` reserved, and reads
    on from the oldest row that slot has not consumed. PipeError if a live end holds the key.
    """
    return ShmInputPipe(name, layout, capacity=capacity, mode=mode, owner=owner, spin=spin,
                        wait=wait, key=key)


def prepare(name: str, layout: str, capacity: int | None = None, *,
            readers: Sequence[str] = (), mode: int = DEFAULT_MODE,
            owner: int | str | None = None) -> None:
    """Create pipe ``name`` (or open it, checking the layout) as a *durable* pipe, for a
    supervisor that restarts the processes at its ends:

    * a writer that dies is a break in the stream, not its end: readers wait for the writer
      that replaces it (only a writer's ``close()`` ends the stream);
    * each name in ``readers`` gets a reader slot now, at the oldest unconsumed row, so
      the rows written before its end opens (``open_input(name, key=...)``) are kept for
      it; when that end's process dies, the slot stays with its cursor for the next end of
      the same key, so no row it has not consumed is lost. The writer waits for such a slot
      like for any reader.

    A durable pipe is never unlinked by its ends closing: remove it with :func:`unlink`.
    Raises PipeError as :func:`open_output` does, and if the slots do not fit. Blocks only
    to take the header lock.
    """
    seg, created = open_segment(name, layout, capacity, mode, owner)
    try:
        try:
            ring.make_durable(seg.header, [names.key(r) for r in readers])
        finally:
            seg.release()
    except BaseException:
        if created:
            _unlink_segment(name)
        raise
    finally:
        seg.close()


def unlink(name: str) -> None:
    """Remove pipe ``name`` from /dev/shm. Attached ends keep working until they close.

    Takes the pipe's header lock first, so it waits (at most 30 s) for an end in the middle
    of an operation on it. Objects of another user that this process may not remove stay.
    """
    _unlink_segment(name)


__all__ = ["ShmInputPipe", "ShmOutputPipe", "open_input", "open_output", "prepare", "unlink"]
