"""The request: its head, its body as a bounded stream, and ``respond()``."""

from __future__ import annotations

import itertools
import json as _json
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import trio

from ._cookies import parse_cookies
from ._forms import (
    FORM_DATA,
    FormLimits,
    FormParser,
    MultipartReader,
    Part,
    UploadedFile,
    media_type,
    parse_form,
)
from ._forwarded import ClientView, client_view, trusted_peers
from ._headers import Headers, HeadersInit, MultiDict
from ._streams import checked_max_bytes
from .errors import BadRequest, HTTPError, PayloadTooLarge
from .response import ResponseSink, ResponseStream

if TYPE_CHECKING:
    from ._app import App
    from ._routing import Route

__all__ = ["MultipartReader", "Part", "Request", "RequestStream", "UploadedFile"]

# An incoming request ID is kept when it is a token like this; anything else (too
# long, spaces, quotes, control bytes) could corrupt a log line, so it is replaced.
_SANE_ID = re.compile(rb"[A-Za-z0-9._~+/=-]{1,128}")


class _Ids:
    """Unique request IDs: a random prefix per process, then a counter.

    Much cheaper than ``uuid4()`` (no ``os.urandom`` per request), and as unique: the
    64-bit prefix is drawn again in each forked worker.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


_ids = _Ids()


class RequestStream(trio.abc.ReceiveStream):
    """The request body, as a Trio :class:`~trio.abc.ReceiveStream` fed by a bounded channel.

    The connection pushes at most ``REQUEST_QUEUE_SIZE`` chunks ahead of the reader;
    while the channel is full it does not read the socket, so a slow handler slows the
    client down instead of filling memory. Read it the Trio way, with
    :meth:`receive_some` (``b""`` at the end), or Sanic's, with :meth:`read` (``None`` at
    the end); ``async for chunk in stream`` yields non-empty ``bytes``. All of them share
    one position in the body, and one task may read at a time.

    ``max_size`` (bytes, ``None`` for no limit) may be changed before or while reading;
    passing it raises :class:`~trioweb.errors.PayloadTooLarge`. The size the client
    announced counts too: a ``Content-Length``, or the sum of the chunk sizes of a
    chunked body, over the limit raises at the next read, before those bytes are read.
    """

    def __init__(
        self,
        channel: trio.MemoryReceiveChannel[bytes] | None,
        content_length: int | None,
        max_size: float | None,
        on_first_read: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self._channel = channel
        #: The body size the client has announced so far (Content-Length, or the sum
        #: of the chunk sizes seen), kept up to date by the connection.
        self.declared = content_length or 0
        self.max_size = max_size
        self._on_first_read = on_first_read
        self._received = 0
        #: Set by the connection when the body cannot be completed (malformed framing).
        self.error: Exception | None = None
        # The part of a chunk that receive_some(max_bytes) has not returned yet:
        # _rest[_rest_start:].
        self._rest = b""
        self._rest_start = 0
        self._reading = False  # a read is under way (Trio's one-reader rule)
        self._closed = False  # closed by the application: close() or aclose()

    @property
    def received(self) -> int:
        """Body bytes read so far."""
        return self._received

    @property
    def complete(self) -> bool:
        """Whether nothing is left to read: the body ended, or the stream was closed."""
        return self._channel is None and not self._rest

    def _check_size(self, size: int) -> None:
        if self.max_size is not None and size > self.max_size:
            raise self._too_large()

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is larger than {self.max_size:.0f} bytes")

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The next bytes of the body, at most ``max_bytes``; ``b""`` once it has ended.

        Trio's :meth:`trio.abc.ReceiveStream.receive_some`. Without ``max_bytes``, a whole
        chunk as it arrived (at most ``REQUEST_BUFFER_SIZE`` bytes), without a copy; with
        it, the rest of a longer chunk is kept for the next call. After the end, every
        call returns ``b""``.

        Raises:
          PayloadTooLarge: the body passed ``max_size`` (a 413 for the client).
          HTTPError: the body's framing is malformed (a 400).
          trio.BrokenResourceError: the body was cut off (the client went away).
          trio.BusyResourceError: another task is reading this body.
          trio.ClosedResourceError: the stream was closed (:meth:`aclose`, :meth:`close`).
          ValueError: ``max_bytes`` is less than 1.
        """
        max_bytes = checked_max_bytes(max_bytes)
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("the request body stream was closed")
        return await self._receive(max_bytes) or b""

    async def read(self) -> bytes | None:
        """The next chunk of the body, or ``None`` once it has all been read.

        Sanic's name: also ``None`` after :meth:`close`. Raises as :meth:`receive_some`.
        """
        if self._closed:
            return None
        return await self._receive(None)

    async def _receive(self, max_bytes: int | None) -> bytes | None:
        if self._reading:
            raise trio.BusyResourceError("another task is already reading this request body")
        self._reading = True
        try:
            if self._rest:
                await trio.lowlevel.checkpoint()  # (cancelled here, the rest stays)
                chunk, start = self._rest, self._rest_start
            else:
                received = await self._receive_chunk()
                if received is None:
                    return None
                chunk, start = received, 0
            end = len(chunk) if max_bytes is None else min(len(chunk), start + max_bytes)
            if end < len(chunk):
                self._rest, self._rest_start = chunk, end
            else:
                self._rest = b""
            return chunk if start == 0 and end == len(chunk) else chunk[start:end]
        finally:
            self._reading = False

    async def _receive_chunk(self) -> bytes | None:
        """The next chunk from the channel, or ``None`` at the end; checks the limits."""
        if self._channel is not None:
            self._check_size(self.declared)
        if self._on_first_read is not None:
            first, self._on_first_read = self._on_first_read, None
            await first()
        if self._channel is None:
            if self.error is not None:
                raise self.error
            await trio.lowlevel.checkpoint()
            return None
        try:
            chunk = await self._channel.receive()
        except trio.EndOfChannel:
            self._channel = None
            await trio.lowlevel.cancel_shielded_checkpoint()  # (the end did not yield)
            if self.error is not None:
                raise self.error from None
            return None
        self._received += len(chunk)
        self._check_size(self._received)
        return chunk

    # Trio's __aiter__ returns the stream itself: a plain async iterator rather than an
    # async generator, so a loop that breaks early leaves no suspended generator behind.
    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        """Stop reading: the rest of the body is discarded by the connection."""
        self._closed = True
        self._rest = b""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    async def aclose(self) -> None:
        """Trio's :meth:`~trio.abc.AsyncResource.aclose`: :meth:`close`, then a checkpoint.

        Later calls to :meth:`receive_some` raise ``trio.ClosedResourceError`` (and
        :meth:`read` returns ``None``); closing again does nothing.
        """
        self.close()
        await trio.lowlevel.checkpoint()


class Request:
    """One HTTP request, as a handler sees it.

    The head is parsed lazily: headers, arguments and the decoded path cost nothing
    until asked for. ``body`` holds the whole body on buffered routes; streaming routes
    read ``stream`` instead (or ``await receive_body()`` to fill ``body``).
    """

    __slots__ = (
        "_args",
        "_client_view",
        "_cookies",
        "_ctx",
        "_form",
        "_headers",
        "_id",
        "_json",
        "_path",
        "_raw_headers",
        "_scheme",
        "_sink",
        "app",
        "body",
        "client",
        "method",
        "query_string",
        "raw_path",
        "response",
        "route",
        "stream",
        "version",
    )

    #: The :class:`~trioweb.App` serving this request.
    app: App

    def __init__(
        self,
        app: Any,
        method: str,
        target: str,
        raw_headers: Sequence[tuple[bytes, bytes]],
        version: str,
        client: tuple[str, int],
        scheme: str,
        stream: RequestStream,
        sink: ResponseSink,
    ) -> None:
        self.app = app
        self.method = method
        # The connection has made an absolute-form target origin-form (RFC 9112 3.2.2).
        path, _, self.query_string = target.partition("?")
        #: The path as sent, still percent-encoded, dot segments and all.
        self.raw_path = path
        # The path routing saw: raw_path without its dot segments, set by the
        # connection before routing (see _routing.normalize_path).
        self._path = path
        self._raw_headers = raw_headers
        self._headers: Headers | None = None
        self._id: str | None = None
        self._args: MultiDict | None = None
        self._cookies: MultiDict | None = None
        self._json: Any = _UNREAD
        self._ctx: SimpleNamespace | None = None
        # request.form and request.files once parsed, or the reader of multipart().
        self._form: tuple[MultiDict, MultiDict[UploadedFile]] | MultipartReader | None = None
        self.version = version
        self.client = client
        self._scheme = scheme
        self._client_view: ClientView | None = None
        self.stream = stream
        self._sink = sink
        self.body = b""
        #: The route that matched, once routing has run.
        self.route: Route | None = None
        #: The stream made by :meth:`respond`, if the handler called it.
        self.response: ResponseStream | None = None

    @property
    def headers(self) -> Headers:
        """Case-insensitive, multi-valued request headers (``get``, ``getall``)."""
        if self._headers is None:
            self._headers = Headers._trusted(
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw_headers]
            )
        return self._headers

    @property
    def id(self) -> str:
        """This request's ID: the client's (``REQUEST_ID_HEADER``) if it is a sane token.

        A token is 1 to 128 characters of ``A-Z a-z 0-9 . _ ~ + / = -``; otherwise, or
        when the header is absent, repeated or not read (``REQUEST_ID_HEADER = None``), a
        new unique ID (24 hex digits). Echoed in the response header and the access log.
        """
        if self._id is None:
            self._id = self._incoming_id() or _ids.next()
        return self._id

    def _incoming_id(self) -> str | None:
        name = self.app.config.REQUEST_ID_HEADER
        if name is None:
            return None
        key = name.lower().encode("ascii")
        values = [v for k, v in self._raw_headers if k == key]
        if len(values) == 1 and _SANE_ID.fullmatch(values[0]):
            return values[0].decode("ascii")
        return None

    @property
    def path(self) -> str:
        """The path routing saw: percent-decoded, without the query string, and with
        its dot segments (``.``, ``..``) removed. ``raw_path`` has it as sent."""
        return unquote(self._path)

    @property
    def args(self) -> MultiDict:
        """Query-string arguments, multi-valued (``get``, ``getlist``)."""
        if self._args is None:
            self._args = MultiDict(parse_qsl(self.query_string, keep_blank_values=True))
        return self._args

    @property
    def cookies(self) -> MultiDict:
        """The request's cookies, multi-valued (``get``, ``getlist``), parsed on first use.

        Read as browsers send them: a malformed pair is skipped, never an error;
        percent-escapes in values are decoded (``add_cookie`` encodes with them). A
        name sent twice (cookies with the same name for different paths) keeps every
        value, the most specific path first, as browsers order them.
        """
        if self._cookies is None:
            self._cookies = parse_cookies(self.headers.getall("cookie"))
        return self._cookies

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header, ``application/octet-stream`` when absent."""
        return self.headers.get("content-type", "application/octet-stream")

    @property
    def content_length(self) -> int | None:
        """The declared ``Content-Length``, or ``None`` (chunked or no body)."""
        value = self.headers.get("content-length")
        return int(value) if value is not None else None

    def _view(self) -> ClientView:
        # Worked out on first use: a request that never asks pays nothing.
        if self._client_view is None:
            self._client_view = client_view(
                self.client[0],
                self._scheme,
                self.headers.get("host", ""),
                self.headers.getall,
                trusted_peers(self.app.config.FORWARDED_ALLOW_IPS),
            )
        return self._client_view

    @property
    def remote_addr(self) -> str:
        """The client's address: the peer's, or the one a trusted proxy forwarded.

        From a peer in ``FORWARDED_ALLOW_IPS``, the ``X-Forwarded-For`` or
        ``Forwarded`` header walked from the right through trusted proxies; it may be an
        obfuscated identifier such as ``"_hidden"`` or ``"unknown"`` (RFC 7239 6).
        ``request.client`` stays the peer's ``(host, port)``.
        """
        return self._view().remote_addr

    @property
    def scheme(self) -> str:
        """``"http"`` or ``"https"``: the connection's, or the client's as forwarded by a
        trusted proxy (``X-Forwarded-Proto``, ``Forwarded: proto=``)."""
        return self._view().scheme

    @property
    def host(self) -> str:
        """The host and port the request is for (empty for HTTP/1.0 requests without one).

        The ``Host`` header, which trioweb has checked is a valid host and optional
        port. For an absolute-form target (``GET http://host/path``) it is the target's
        authority, which also replaces the ``Host`` header (RFC 9112 3.2.2). From a
        trusted proxy, the client's as forwarded (``X-Forwarded-Host``,
        ``Forwarded: host=``).
        """
        return self._view().host

    @property
    def url(self) -> str:
        """The full URL: scheme, host, path and query string, as the client sent them."""
        query = f"?{self.query_string}" if self.query_string else ""
        return f"{self.scheme}://{self.host}{self.raw_path}{query}"

    @property
    def ctx(self) -> SimpleNamespace:
        """A namespace for the application's own per-request data."""
        if self._ctx is None:
            self._ctx = SimpleNamespace()
        return self._ctx

    @property
    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body); invalid JSON is a 400."""
        if self._json is _UNREAD:
            if not self.body:
                self._json = None
            else:
                try:
                    self._json = _json.loads(self.body)
                except ValueError as exc:
                    raise BadRequest(f"invalid JSON body: {exc}") from None
        return self._json

    @property
    def form(self) -> MultiDict:
        """The fields of a urlencoded or multipart form body, as ``str`` (multi-valued).

        Parsed from :attr:`body` when first asked for, with the charset the browser
        names in a ``_charset_`` field (UTF-8 when none). A body of another type gives
        an empty MultiDict. Bad framing is a 400, a ``FORM_MAX_*`` limit passed a 413
        (431 for a part's headers). On a ``stream=True`` route, ``await
        receive_body()`` first, or read the parts with :meth:`multipart`.
        """
        return self._parsed_form()[0]

    @property
    def files(self) -> MultiDict[UploadedFile]:
        """The files of a multipart form body: :class:`UploadedFile` (name, type, body)."""
        return self._parsed_form()[1]

    def _parsed_form(self) -> tuple[MultiDict, MultiDict[UploadedFile]]:
        if isinstance(self._form, tuple):
            return self._form
        if not self.stream.complete:
            raise RuntimeError(
                "request.form needs the whole body: on a stream=True route, await "
                "request.receive_body() first, or use request.multipart()"
            )
        limits = FormLimits.from_config(self.app.config)
        self._form = parse_form(self.content_type, self.body, limits)
        return self._form

    def multipart(self) -> MultipartReader:
        """The parts of a ``multipart/form-data`` body, in order, as they arrive.

        ``async for part in request.multipart():`` gives each
        :class:`~trioweb.request.Part`, a Trio ``ReceiveStream`` with the backpressure
        of :attr:`stream`. Nothing is read until the first part is asked for. A body of
        another type is a 415, one without a boundary a 400. Call it once per request.
        """
        if self._form is not None:
            raise RuntimeError("request.multipart() was already called, or request.form read")
        if media_type(self.content_type)[0] != FORM_DATA:
            raise HTTPError("the request body is not multipart/form-data", status_code=415)
        parser = FormParser(self.content_type, FormLimits.from_config(self.app.config))
        self._form = MultipartReader(self.stream, self.body, parser)
        return self._form

    async def receive_body(self) -> bytes:
        """Read the rest of the body from :attr:`stream` into :attr:`body`, and return it."""
        parts = [self.body] if self.body else []
        async for chunk in self.stream:
            parts.append(chunk)
        self.body = b"".join(parts)
        return self.body

    @property
    def deadline(self) -> float:
        """When RESPONSE_TIMEOUT ends this request, in ``trio.current_time()`` terms.

        ``math.inf`` when no deadline applies (``response_timeout=None``, or the
        response head has been sent). Assign to move it: later to give a slow handler
        more time, earlier to fail sooner, ``math.inf`` to lift it. When it passes
        before the response starts, the client gets a 503. Once the head is sent,
        assigning raises ``RuntimeError``.
        """
        return self._sink.response_deadline()

    @deadline.setter
    def deadline(self, deadline: float) -> None:
        self._sink.move_response_deadline(deadline)

    def respond(
        self,
        status: int = 200,
        headers: HeadersInit = None,
        content_type: str | None = None,
    ) -> ResponseStream:
        """Start a streamed response (see :class:`~trioweb.response.ResponseStream`).

        Calling it twice for one request is an error.
        """
        if self.response is not None:
            raise RuntimeError("respond() was already called for this request")
        merged = Headers(headers)
        if content_type is not None:
            merged["content-type"] = content_type
        self.response = ResponseStream(self._sink, status, merged)
        return self.response

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.raw_path}>"


_UNREAD: Any = object()
