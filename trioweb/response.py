"""Responses: whole ones returned by handlers, and streams written piece by piece."""

from __future__ import annotations

import json as _json
import mimetypes
import os
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

import trio

from ._headers import Headers, HeadersInit

__all__ = [
    "HTTPResponse",
    "ResponseStream",
    "StreamingHTTPResponse",
    "empty",
    "file",
    "file_stream",
    "html",
    "json",
    "raw",
    "redirect",
    "stream",
    "text",
]


class HTTPResponse:
    """A whole response: status, headers and a body held in memory.

    ``headers`` may be changed in place until the response is sent (response
    middleware does). ``Content-Length`` is always set from the body.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: HeadersInit = None,
        content_type: str | None = None,
    ) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.headers = Headers(headers)
        if content_type is not None:
            if headers is None:
                self.headers.add("content-type", content_type)
            else:
                self.headers["content-type"] = content_type

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header, if any."""
        return self.headers.get("content-type")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status} {len(self.body)} bytes>"


class StreamingHTTPResponse(HTTPResponse):
    """A response whose body is written by ``streaming_fn(response)`` (Sanic's style).

    The function receives a :class:`ResponseStream` and calls ``await
    response.write(data)``; the response ends when it returns.
    """

    __slots__ = ("streaming_fn",)

    def __init__(
        self,
        streaming_fn: Callable[[ResponseStream], Awaitable[None]],
        status: int = 200,
        headers: HeadersInit = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(b"", status, headers, content_type)
        self.streaming_fn = streaming_fn


class ResponseSink(Protocol):
    """Where a :class:`ResponseStream` writes: the connection serving the request.

    Each call names the response it is for, so the connection can refuse one whose
    request is over (raising ``trio.ClosedResourceError``).
    """

    async def send_head(self, response: ResponseStream) -> None: ...
    async def send_data(self, response: ResponseStream, data: bytes) -> None: ...
    async def send_end(self, response: ResponseStream) -> None: ...


class ResponseStream:
    """A response sent piece by piece; made by ``request.respond()``.

    Use it as ``async with request.respond() as resp: await resp.send(...)`` (the
    response ends when the block exits), or ``resp = await request.respond()``, then
    ``await resp.send(...)`` and ``await resp.eof()``. ``status`` and ``headers`` may be
    changed until the first send. ``send`` waits while the client is slow to read.
    """

    def __init__(self, sink: ResponseSink, status: int, headers: Headers) -> None:
        self.status = status
        self.headers = headers
        self._sink = sink
        # Sends are serialised in FIFO order (tasks of one nursery may share a stream).
        # A flag plus a parking lot rather than a trio.Lock: taking the lock would cost
        # a trip through the scheduler on every send, even when nobody else is sending.
        self._busy = False
        self._waiting = trio.lowlevel.ParkingLot()
        self.head_sent = False
        self.ended = False

    async def _take_turn(self) -> None:
        if self._busy:
            await self._waiting.park()  # the sender before us hands its turn over
        else:
            self._busy = True

    def _end_turn(self) -> None:
        if self._waiting:
            self._waiting.unpark()
        else:
            self._busy = False

    async def send(self, data: bytes | str) -> None:
        """Send a piece of the body (the headers first, if not sent yet)."""
        if isinstance(data, str):
            data = data.encode()
        await self._take_turn()
        try:
            if self.ended:
                raise RuntimeError("the response has already ended")
            if not self.head_sent:
                await self._sink.send_head(self)
                self.head_sent = True
            if data:
                await self._sink.send_data(self, data)
        finally:
            self._end_turn()

    async def write(self, data: object) -> None:
        """Sanic's callback-style :meth:`send`: also takes other objects, as ``str(data)``.

        A database record's ``int`` can be written as it is, as in Sanic's examples.
        """
        if not isinstance(data, (bytes, str)):
            data = bytes(data) if isinstance(data, (bytearray, memoryview)) else str(data)
        await self.send(data)

    async def eof(self) -> None:
        """End the response. Calling it again does nothing."""
        await self._take_turn()
        try:
            if self.ended:
                return
            if not self.head_sent:
                await self._sink.send_head(self)
                self.head_sent = True
            self.ended = True
            await self._sink.send_end(self)
        finally:
            self._end_turn()

    async def __aenter__(self) -> ResponseStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # On an exception the response is left unfinished: the connection turns it into
        # an error response, or aborts so the client sees the body was cut short.
        if exc is None:
            await self.eof()

    def __await__(self) -> Generator[Any, None, ResponseStream]:
        return self._self().__await__()

    async def _self(self) -> ResponseStream:
        return self


def text(
    body: str,
    status: int = 200,
    headers: HeadersInit = None,
    content_type: str = "text/plain; charset=utf-8",
) -> HTTPResponse:
    """A plain-text response."""
    return HTTPResponse(body, status, headers, content_type)


def html(
    body: str,
    status: int = 200,
    headers: HeadersInit = None,
    content_type: str = "text/html; charset=utf-8",
) -> HTTPResponse:
    """An HTML response."""
    return HTTPResponse(body, status, headers, content_type)


def json(
    body: Any,
    status: int = 200,
    headers: HeadersInit = None,
    content_type: str = "application/json",
    dumps: Callable[..., str] = _json.dumps,
    **kwargs: Any,
) -> HTTPResponse:
    """``body`` serialised with ``dumps`` (extra keyword arguments go to it)."""
    if dumps is _json.dumps and not kwargs:
        kwargs = {"separators": (",", ":"), "ensure_ascii": False}
    return HTTPResponse(dumps(body, **kwargs), status, headers, content_type)


def raw(
    body: bytes,
    status: int = 200,
    headers: HeadersInit = None,
    content_type: str = "application/octet-stream",
) -> HTTPResponse:
    """Bytes as they are."""
    return HTTPResponse(body, status, headers, content_type)


def empty(status: int = 204, headers: HeadersInit = None) -> HTTPResponse:
    """A response with no body (204 unless told otherwise)."""
    return HTTPResponse(b"", status, headers)


def redirect(to: str, status: int = 302, headers: HeadersInit = None) -> HTTPResponse:
    """Send the client to ``to`` (302 unless told otherwise); ``to`` is percent-quoted."""
    response = HTTPResponse(b"", status, headers, "text/html; charset=utf-8")
    response.headers["location"] = quote(to, safe=":/%#?&=@[]!$&'()*+,;")
    return response


def stream(
    streaming_fn: Callable[[ResponseStream], Awaitable[None]],
    status: int = 200,
    headers: HeadersInit = None,
    content_type: str = "text/plain; charset=utf-8",
) -> StreamingHTTPResponse:
    """A response written by ``streaming_fn(response)`` with ``await response.write()``."""
    return StreamingHTTPResponse(streaming_fn, status, headers, content_type)


def _file_headers(
    location: str | os.PathLike[str],
    size: int | None,
    mime_type: str | None,
    headers: HeadersInit,
    filename: str | None,
) -> Headers:
    result = Headers(headers)
    if mime_type is None:
        mime_type = mimetypes.guess_type(os.fspath(location))[0] or "application/octet-stream"
    result.setdefault("content-type", mime_type)
    if size is not None:
        result.setdefault("content-length", str(size))
    if filename is not None:
        result["content-disposition"] = _content_disposition(filename)
    return result


def _content_disposition(filename: str) -> str:
    # RFC 6266: a plain ASCII fallback, plus filename* for names that need UTF-8.
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "'")
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


async def file(
    location: str | os.PathLike[str],
    status: int = 200,
    mime_type: str | None = None,
    headers: HeadersInit = None,
    filename: str | None = None,
) -> HTTPResponse:
    """A small file, read whole into memory (use :func:`file_stream` for large ones)."""
    body = await trio.Path(location).read_bytes()
    result = _file_headers(location, None, mime_type, headers, filename)
    return HTTPResponse(body, status, result)


async def file_stream(
    location: str | os.PathLike[str],
    chunk_size: int = 65536,
    mime_type: str | None = None,
    headers: HeadersInit = None,
    filename: str | None = None,
    chunked: bool = True,
) -> StreamingHTTPResponse:
    """A file sent in ``chunk_size`` pieces, never read whole.

    ``chunked=True`` sends it with chunked encoding to HTTP/1.1 clients and no
    ``Content-Length``; ``chunked=False`` sends ``Content-Length`` (the file's size,
    unless ``headers`` already has one) and no chunked framing.
    """
    size = None if chunked else (await trio.Path(location).stat()).st_size
    result = _file_headers(location, size, mime_type, headers, filename)
    if chunked:
        result.pop("content-length", None)

    async def send_file(response: ResponseStream) -> None:
        async with await trio.open_file(location, "rb") as f:
            while chunk := await f.read(chunk_size):
                await response.send(chunk)

    return StreamingHTTPResponse(send_file, 200, result)
