"""The vocabulary of the HTTP engines: request events, framing, and ProtocolError.

Shared by the engines (:mod:`._engine`), the rules they apply (:mod:`._strict`) and the
connection that drives them; this module imports nothing of trioweb's.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "END_OF_BODY",
    "NEED_DATA",
    "PAUSED",
    "PEER_CLOSED",
    "SWITCHED",
    "Data",
    "Event",
    "Framing",
    "ProtocolError",
    "RequestHead",
    "Signal",
]


class ProtocolError(Exception):
    """The client broke the protocol: answer ``status_code``, then close.

    The message says what was wrong in words; it never echoes the client's bytes.
    """

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


class RequestHead:
    """A request head that passed every check.

    ``headers`` are ``(name, value)`` pairs in order, names lowercased, values without
    surrounding whitespace.
    """

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "target",
        "version",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.method = method
        self.target = target
        #: ``b"1.1"`` or ``b"1.0"``.
        self.version = version
        self.headers = headers
        #: Filled in by the engine's shared checks.
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.keep_alive = True

    @property
    def has_body(self) -> bool:
        """Whether body bytes follow the head."""
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<RequestHead {self.method!r} {self.target!r} HTTP/{self.version.decode()}>"


class Data:
    """A piece of the request body (non-empty)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<Data {len(self.data)} bytes>"


class Signal(enum.Enum):
    """Events that carry nothing."""

    #: Nothing more can be parsed until more bytes arrive.
    NEED_DATA = "need data"
    #: The next request's bytes are buffered: call :meth:`Engine.start_next_cycle`.
    PAUSED = "paused"
    #: The request body is complete.
    END_OF_BODY = "end of body"
    #: The client closed its side between requests.
    PEER_CLOSED = "peer closed"
    #: A ``101 Switching Protocols`` went out: the bytes that follow are another
    #: protocol's (:meth:`Engine.take_buffered` has those already read).
    SWITCHED = "switched protocols"


NEED_DATA: Final = Signal.NEED_DATA
PAUSED: Final = Signal.PAUSED
END_OF_BODY: Final = Signal.END_OF_BODY
PEER_CLOSED: Final = Signal.PEER_CLOSED
SWITCHED: Final = Signal.SWITCHED

Event = RequestHead | Data | Signal


class Framing(enum.Enum):
    """How a response body is delimited on the wire."""

    NONE = "no body (HEAD, 1xx, 204, 304)"
    LENGTH = "Content-Length"
    CHUNKED = "chunked"
    CLOSE = "until the connection closes (HTTP/1.0 without Content-Length)"
