"""Joule's wire format over asyncio streams (OS pipes, Unix and TCP sockets).

``codec`` is the format, pure (bytes in, rows and breaks out; rows in, bytes out);
``ends`` is the thin async shell the stream :class:`~shmpipe.InputPipe` and
:class:`~shmpipe.OutputPipe` run on; ``factories`` opens OS-pipe file descriptors as streams.
"""

from .factories import reader_factory, writer_factory

__all__ = ["reader_factory", "writer_factory"]
