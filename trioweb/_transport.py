"""The byte pipe under one connection: reads, writes, ``sendfile``, and how it closes.

A :class:`Transport` wraps a Trio stream. On plain TCP it also holds the socket's file
descriptor and tries each read and write directly first (``os.read``, ``os.write``,
``os.sendfile``): when the kernel has the bytes or the room, which is the usual case,
that costs no trip through the scheduler. Only when it would block does the caller
wait, through Trio. TLS and the test client's in-memory streams go through the stream.

The transport has no policy: the connection decides how long a wait may take (its
cancel scope), when to stop, and how to close.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from ._config import Config

__all__ = ["Transport", "TransportLost", "linger"]

log = logging.getLogger("trioweb")

_HAS_SENDFILE = hasattr(os, "sendfile")


class TransportLost(Exception):
    """The client is gone: a write failed, or the connection was reset."""


class Transport:
    """Reads and writes for one client connection (see the module docstring)."""

    __slots__ = ("_fd", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        # The socket's file descriptor for direct reads and writes: plain TCP only.
        self._fd: int | None = (
            stream.socket.fileno() if type(stream) is trio.SocketStream else None
        )

    @property
    def direct(self) -> bool:
        """Whether reads and writes go straight to the socket's fd (plain TCP)."""
        return self._fd is not None

    @property
    def can_sendfile(self) -> bool:
        """Whether :meth:`sendfile` may be used (plain TCP on a system that has it)."""
        return self._fd is not None and _HAS_SENDFILE

    # -- reading ----------------------------------------------------------------------

    def read_nowait(self, max_bytes: int) -> bytes | None:
        """Bytes the kernel already holds; ``b""`` at EOF or reset, ``None`` if none yet.

        Always ``None`` where there is no file descriptor: use :meth:`receive`.
        """
        fd = self._fd
        if fd is None:
            return None
        try:
            return os.read(fd, max_bytes)
        except BlockingIOError:
            return None
        except OSError:  # a reset
            return b""

    async def receive(self, max_bytes: int) -> bytes:
        """Wait for bytes; ``b""`` at EOF. Call after :meth:`read_nowait` found none."""
        fd = self._fd
        try:
            if fd is None:
                return bytes(await self.stream.receive_some(max_bytes))
            while True:
                await trio.lowlevel.wait_readable(fd)
                data = self.read_nowait(max_bytes)
                if data is not None:
                    return data
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    # -- writing ----------------------------------------------------------------------

    def write_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Write what the kernel takes now; how many bytes (0 with no fd)."""
        fd = self._fd
        if fd is None:
            return 0
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            raise TransportLost from None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data``, waiting for the client as needed."""
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise TransportLost from None

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until a write would take some bytes: the socket on TCP, else the stream."""
        try:
            if self._fd is not None:
                await trio.lowlevel.wait_writable(self._fd)
            else:
                await self.stream.wait_send_all_might_not_block()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise TransportLost from None

    def sendfile(self, file_fd: int, offset: int, count: int) -> int:
        """Send file bytes with zero copies; raises ``BlockingIOError`` when full."""
        assert self._fd is not None
        try:
            return os.sendfile(self._fd, file_fd, offset, count)
        except (BrokenPipeError, ConnectionResetError):
            raise TransportLost from None

    async def wait_writable(self) -> None:
        """Wait until the socket has room (after a direct write said it had none)."""
        assert self._fd is not None
        await trio.lowlevel.wait_writable(self._fd)

    # -- closing ----------------------------------------------------------------------

    async def send_eof(self) -> bool:
        """Half-close: the client reads EOF after what was sent. False if not possible."""
        stream = self.stream
        if not isinstance(stream, trio.abc.HalfCloseableStream):
            return False
        try:
            await stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    def reset_on_close(self) -> None:
        """Make the coming close a TCP reset, so that a cut response looks cut."""
        if self._fd is not None:
            self.stream.socket.setsockopt(  # type: ignore[attr-defined]
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )

    def forget(self) -> None:
        """No more direct use of the fd: after this the stream's close releases it.

        Its number may soon belong to another client, so nothing may write to it.
        """
        self._fd = None


async def linger(stream: trio.abc.Stream, config: Config) -> None:
    """End a connection whose client may still be sending, so that it reads the response.

    Closing a socket with input unread makes the kernel answer with a reset, and the
    reset can reach the client (a proxy still writing a request body, say) before it has
    read the response, which is then lost. So, like nginx's ``lingering_close``: shut the
    write side (the response is followed by a FIN), then read and drop what comes until
    the client closes, for at most ``LINGER_MAX_SIZE`` bytes and ``LINGER_TIMEOUT``
    seconds. The caller closes the stream after. Streams that cannot half-close (TLS)
    only drain: the response's framing tells the client it is complete.
    """
    with trio.move_on_after(config.LINGER_TIMEOUT):
        try:
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            left = config.LINGER_MAX_SIZE
            while left > 0:
                data = await stream.receive_some(min(left, config.REQUEST_BUFFER_SIZE))
                if not data:
                    return
                left -= len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the client reset the connection: nothing left to protect
    log.debug("client still sending after LINGER_TIMEOUT or LINGER_MAX_SIZE; closing")
