"""Responses: whole ones returned by handlers, and streams written piece by piece."""

from __future__ import annotations

import contextlib
import errno
import json as _json
import mimetypes
import os
from collections.abc import Awaitable, Callable, Generator, Iterator
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

import trio

from ._cookies import CookieSetter
from ._files import content_disposition, etag, inside, is_regular, last_modified, select
from ._headers import Headers, HeadersInit
from ._turns import Turns
from .errors import HTTPError, NotFound, RangeNotSatisfiable

__all__ = [
    "FileResponse",
    "HTTPResponse",
    "ResponseStream",
    "StreamingHTTPResponse",
    "SwitchingProtocols",
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


class HTTPResponse(CookieSetter):
    """A whole response: status, headers and a body held in memory.

    ``headers`` may be changed in place until the response is sent (response
    middleware does). ``Content-Length`` is always set from the body.
    :meth:`add_cookie` and :meth:`delete_cookie` add ``Set-Cookie`` lines.
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


async def _no_body(response: ResponseStream) -> None:
    raise RuntimeError("a 101 response has no body")


class SwitchingProtocols(StreamingHTTPResponse):
    """``101 Switching Protocols``: after its head, the connection belongs to ``run``.

    Made by a protocol that takes a connection over (a WebSocket), never by handlers.
    ``run(stream)`` gets the connection's bytes as a :class:`trio.abc.HalfCloseableStream`
    and speaks the new protocol on it until it returns; the connection then closes.
    ``shutdown()`` is called (a plain call) when the server begins to shut down.

    A streaming response as far as the connection's first test of a handler's result
    goes, so that plain responses pay no extra check for it.
    """

    __slots__ = ("run", "shutdown")

    def __init__(
        self,
        headers: HeadersInit,
        run: Callable[[trio.abc.HalfCloseableStream], Awaitable[None]],
        shutdown: Callable[[], None],
    ) -> None:
        super().__init__(_no_body, 101, headers)
        self.run = run
        self.shutdown = shutdown


class ResponseSink(Protocol):
    """Where a :class:`ResponseStream` writes: the connection serving the request.

    Each call names the response it is for, so the connection can refuse one whose
    request is over (raising ``trio.ClosedResourceError``, or
    ``trio.BrokenResourceError`` when the connection is gone).
    """

    async def send_head(self, response: ResponseStream) -> None: ...
    async def send_data(self, response: ResponseStream, data: bytes) -> None: ...
    async def send_end(self, response: ResponseStream) -> None: ...
    async def wait_writable(self, response: ResponseStream) -> None: ...
    def abort(self, response: ResponseStream) -> None: ...
    def response_deadline(self) -> float: ...
    def move_response_deadline(self, deadline: float) -> None: ...


class ResponseStream(trio.abc.SendStream, CookieSetter):
    """A response sent piece by piece, made by ``request.respond()``; a Trio ``SendStream``.

    Use it as ``async with request.respond() as resp: await resp.send(...)`` (the
    response ends when the block exits), or ``resp = await request.respond()``, then
    ``await resp.send(...)`` and ``await resp.eof()``. ``status`` and ``headers`` may be
    changed until the first send, and :meth:`add_cookie` and :meth:`delete_cookie`
    called. ``send`` waits while the client is slow to read.

    As a :class:`trio.abc.SendStream` it works with any Trio code that writes to a
    stream: :meth:`send_all`, :meth:`wait_send_all_might_not_block`, and :meth:`aclose`,
    which ends the response. Sending on a response that has ended raises
    ``trio.ClosedResourceError``.
    """

    def __init__(self, sink: ResponseSink, status: int, headers: Headers) -> None:
        self.status = status
        self.headers = headers
        self._sink = sink
        # Sends are serialised in FIFO order (tasks of one nursery may share a stream).
        self._turns = Turns()
        # A send_all or wait_send_all_might_not_block is under way: Trio's rule allows
        # one at a time (a second raises BusyResourceError); send() just queues.
        self._trio_sending = False
        self.head_sent = False
        self.ended = False

    def _check_cookies_settable(self) -> None:
        if self.head_sent:
            raise RuntimeError("the response head has been sent: too late to set a cookie")

    async def send(self, data: bytes | str) -> None:
        """Send a piece of the body (the headers first, if not sent yet).

        ``str`` is sent encoded as UTF-8. Several tasks may send at once: their pieces
        go out whole, one after another, in the order they called.

        Raises:
          trio.ClosedResourceError: the response has ended.
          trio.BrokenResourceError: the connection is gone (when not cancelled first).
        """
        if isinstance(data, str):
            data = data.encode()
        await self._send_piece(data)

    async def _send_piece(self, data: bytes) -> None:
        await self._turns.take()
        try:
            if self.ended:
                raise trio.ClosedResourceError("the response has already ended")
            if not self.head_sent:
                await self._sink.send_head(self)
                self.head_sent = True
            if data:
                await self._sink.send_data(self, data)
        finally:
            self._turns.end()

    async def write(self, data: object) -> None:
        """Sanic's callback-style :meth:`send`: also takes other objects, as ``str(data)``.

        A database record's ``int`` can be written as it is, as in Sanic's examples.
        """
        if not isinstance(data, (bytes, str)):
            data = bytes(data) if isinstance(data, (bytearray, memoryview)) else str(data)
        await self.send(data)

    async def eof(self) -> None:
        """End the response. Calling it again does nothing."""
        await self._turns.take()
        try:
            if self.ended:
                return
            if not self.head_sent:
                await self._sink.send_head(self)
                self.head_sent = True
            self.ended = True
            await self._sink.send_end(self)
        finally:
            self._turns.end()

    @contextlib.contextmanager
    def _trio_send(self) -> Iterator[None]:
        """Trio's rules around :meth:`send_all` and :meth:`wait_send_all_might_not_block`."""
        if self._trio_sending:
            raise trio.BusyResourceError("another task is already sending on this response")
        self._trio_sending = True
        try:
            yield
        except trio.BrokenResourceError:
            if self.ended:  # closed while this call waited: Trio says so, not "broken"
                raise trio.ClosedResourceError("the response was closed") from None
            raise
        finally:
            self._trio_sending = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` as the next piece of the body (the head first, if not sent yet).

        Trio's :meth:`trio.abc.SendStream.send_all`: returns once the data is written,
        waiting while the client is slow to read (up to ``WRITE_TIMEOUT``). It is always
        a Trio checkpoint, and cancelled there it sends nothing; :meth:`send` yields to
        other tasks less often, which is faster for many small pieces.

        Raises:
          trio.BusyResourceError: another task is in ``send_all`` or
            ``wait_send_all_might_not_block`` on this response (:meth:`send` queues
            instead).
          trio.ClosedResourceError: the response has ended (or was closed meanwhile).
          trio.BrokenResourceError: the connection is gone (when not cancelled first).
          TypeError: ``data`` is a ``str`` (:meth:`send` encodes one).
        """
        if isinstance(data, str):
            raise TypeError("send_all() takes bytes; send() also takes str")
        if type(data) is not bytes:
            data = bytes(data)  # the framing takes bytes: one copy of a bytearray
        with self._trio_send():
            await trio.lowlevel.checkpoint()
            await self._send_piece(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the client's connection can take more bytes.

        Trio's :meth:`trio.abc.SendStream.wait_send_all_might_not_block`: on plain TCP
        it waits until the socket is writable, on TLS (and the test client's streams)
        it asks the stream underneath. It waits at most ``WRITE_TIMEOUT``, like a send.

        Raises:
          trio.BusyResourceError: another task is in ``send_all`` or
            ``wait_send_all_might_not_block`` on this response.
          trio.ClosedResourceError: the response has ended.
          trio.BrokenResourceError: the connection is gone.
        """
        with self._trio_send():
            await trio.lowlevel.checkpoint()
            await self._turns.take()
            try:
                if self.ended:
                    raise trio.ClosedResourceError("the response has already ended")
                await self._sink.wait_writable(self)
            finally:
                self._turns.end()

    async def aclose(self) -> None:
        """End the response, as :meth:`eof` does; Trio's :meth:`~trio.abc.AsyncResource.aclose`.

        Closing again does nothing. A connection that is gone leaves nothing to end,
        so that is not an error here. Cancelled before the end went out (as by
        ``trio.aclose_forcefully``), the response is closed all the same: the
        connection is reset, so the client cannot take what it got for the whole body.
        """
        if self.ended:
            await trio.lowlevel.checkpoint()
            return
        try:
            await trio.lowlevel.checkpoint()
            await self.eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.ended = True  # the connection is gone, or the request is over
        except BaseException:
            self.ended = True
            self._sink.abort(self)
            raise

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
        # Compact and UTF-8, by one encoder made once: json.dumps with arguments builds
        # a new encoder on every call, which costs more than the encoding.
        return HTTPResponse(_COMPACT.encode(body), status, headers, content_type)
    return HTTPResponse(dumps(body, **kwargs), status, headers, content_type)


_COMPACT = _json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


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


class FileResponse(HTTPResponse):
    """A file: made by :func:`file` (held in ``body``) or :func:`file_stream`.

    When it is sent for a GET or HEAD with status 200, the request's preconditions
    (``If-Match``, ``If-None-Match``, ``If-Modified-Since``, ``If-Unmodified-Since``)
    and ``Range`` (with ``If-Range``) are applied, against the ``ETag`` and
    ``Last-Modified`` in ``headers``: the result is a 200, 206, 304, 412 or 416.
    A streamed file is opened only then, and read in ``chunk_size`` pieces (or sent
    with ``sendfile`` where the connection allows).
    """

    __slots__ = ("chunk_size", "chunked", "length", "path", "size", "start", "streamed")

    def __init__(
        self,
        path: str,
        st: os.stat_result,
        body: bytes | None,
        status: int,
        headers: Headers,
        chunk_size: int = 65536,
        chunked: bool = False,
    ) -> None:
        super().__init__(body or b"", status, headers)
        self.path = path
        self.size = st.st_size
        self.streamed = body is None
        self.chunk_size = chunk_size
        self.chunked = chunked
        # The bytes to send, [start, start + length); length None: to the end of file.
        self.start = 0
        length = headers.get("content-length")
        self.length = None if chunked or length is None else int(length)

    def _apply(self, method: str, request_headers: Headers) -> None:
        """Apply a request's preconditions and ``Range``; raises for a 412 or 416."""
        if self.status != 200 or method not in ("GET", "HEAD"):
            return
        selection = select(method, request_headers, self.headers, self.size)
        status = selection.status
        if status == 200:
            return
        if status == 304:
            self.status, self.body, self.streamed = 304, b"", False
            for name in _NOT_IN_304:
                self.headers.pop(name, None)
        elif status == 412:
            raise HTTPError("a precondition of the request failed", status_code=412)
        elif status == 416:
            raise RangeNotSatisfiable(
                "the requested range is not in the file",
                headers={"content-range": f"bytes */{self.size}"},
            )
        else:
            start, length = selection.start, selection.length
            self.status, self.start, self.length = 206, start, length
            self.headers["content-range"] = f"bytes {start}-{start + length - 1}/{self.size}"
            self.headers["content-length"] = str(length)
            if not self.streamed:
                self.body = self.body[start : start + length]


# A 304 carries the validators and caching headers, not the representation's own.
_NOT_IN_304 = ("content-type", "content-length", "content-disposition", "accept-ranges")


def _file_headers(
    path: str,
    st: os.stat_result,
    mime_type: str | None,
    headers: HeadersInit,
    filename: str | None,
) -> Headers:
    result = Headers(headers)
    if mime_type is None:
        mime_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    result.setdefault("content-type", mime_type)
    result.setdefault("accept-ranges", "bytes")
    result.setdefault("last-modified", last_modified(st))
    result.setdefault("etag", etag(st))
    if filename is not None:
        result["content-disposition"] = content_disposition(filename)
    return result


def _under(path: str, root: str | os.PathLike[str] | None) -> str:
    """``path``, or with a ``root`` its resolved form, which must lie under ``root``.

    A relative ``path`` is taken from ``root``. Anything that resolves elsewhere
    (``..``, an absolute path, a symlink out) is a NotFound, whether it exists or not.
    Runs in a worker thread: resolving symlinks touches the disk.
    """
    if root is None:
        return path
    real_root = os.path.realpath(root)
    try:
        found = inside(real_root, os.path.join(real_root, path))
    except ValueError:  # a NUL byte: no file has that name
        found = None
    if found is None:
        raise NotFound()
    return found


def _read_whole(
    path: str, root: str | os.PathLike[str] | None
) -> tuple[str, bytes, os.stat_result]:
    path = _under(path, root)
    with open(path, "rb") as f:
        # The validators come from the open file, so they describe the bytes read.
        return path, f.read(), os.fstat(f.fileno())


def _stat(path: str, root: str | os.PathLike[str] | None) -> tuple[str, os.stat_result]:
    path = _under(path, root)
    return path, os.stat(path)


async def file(
    location: str | os.PathLike[str],
    status: int = 200,
    mime_type: str | None = None,
    headers: HeadersInit = None,
    filename: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> FileResponse:
    """A small file, read whole into memory (use :func:`file_stream` for large ones).

    Same headers, request rules and ``root`` as :func:`file_stream`; ``status`` other
    than 200 turns the request rules off.
    """
    path, body, st = await trio.to_thread.run_sync(_read_whole, os.fspath(location), root)
    result = _file_headers(path, st, mime_type, headers, filename)
    result["content-length"] = str(len(body))
    return FileResponse(path, st, body, status, result)


async def file_stream(
    location: str | os.PathLike[str],
    chunk_size: int = 65536,
    mime_type: str | None = None,
    headers: HeadersInit = None,
    filename: str | None = None,
    chunked: bool = True,
    root: str | os.PathLike[str] | None = None,
) -> FileResponse:
    """A file sent in ``chunk_size`` pieces, never read whole.

    ``chunked=True`` sends it with chunked encoding to HTTP/1.1 clients (to HTTP/1.0
    clients, delimited by closing the connection) and no ``Content-Length``;
    ``chunked=False`` sends ``Content-Length`` (the file's size, unless ``headers``
    already has one) and no chunked framing, which lets a plain TCP connection send it
    with ``sendfile``. A 206 always carries ``Content-Length``.

    With ``root``, the file must lie under that directory once symlinks are resolved
    (a relative ``location`` is taken from ``root``); anything else raises
    :class:`~trioweb.errors.NotFound`, a 404. Use it whenever the path comes from the
    request.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    path, st = await trio.to_thread.run_sync(_stat, os.fspath(location), root)
    if not is_regular(st):
        raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
    return _streamed(path, st, chunk_size, mime_type, headers, filename, chunked)


def _streamed(
    path: str,
    st: os.stat_result,
    chunk_size: int = 65536,
    mime_type: str | None = None,
    headers: HeadersInit = None,
    filename: str | None = None,
    chunked: bool = True,
) -> FileResponse:
    """A :func:`file_stream` response for a file already looked at (``st``)."""
    result = _file_headers(path, st, mime_type, headers, filename)
    if chunked:
        result.pop("content-length", None)
    else:
        result.setdefault("content-length", str(st.st_size))
    return FileResponse(path, st, None, 200, result, chunk_size, chunked)
