"""The request: its head, its body as a bounded stream, and ``respond()``."""

from __future__ import annotations

import json as _json
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import trio

from ._headers import Headers, HeadersInit, MultiDict
from .errors import BadRequest, PayloadTooLarge
from .response import ResponseSink, ResponseStream

if TYPE_CHECKING:
    from ._app import App
    from ._routing import Route

__all__ = ["Request", "RequestStream"]


class RequestStream:
    """The request body, chunk by chunk, from a bounded Trio memory channel.

    The connection pushes at most ``REQUEST_QUEUE_SIZE`` chunks ahead of the reader;
    while the channel is full it does not read the socket, so a slow handler slows the
    client down instead of filling memory. ``async for chunk in stream`` yields non-empty
    ``bytes``; ``await stream.read()`` returns the next chunk, or ``None`` at the end.

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

    @property
    def received(self) -> int:
        """Body bytes read so far."""
        return self._received

    @property
    def complete(self) -> bool:
        """Whether nothing is left to read: the body ended, or the stream was closed."""
        return self._channel is None

    def _check_size(self, size: int) -> None:
        if self.max_size is not None and size > self.max_size:
            raise self._too_large()

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is larger than {self.max_size:.0f} bytes")

    async def read(self) -> bytes | None:
        """The next chunk of the body, or ``None`` once it has all been read."""
        if self._channel is not None:
            self._check_size(self.declared)
        if self._on_first_read is not None:
            first, self._on_first_read = self._on_first_read, None
            await first()
        if self._channel is None:
            if self.error is not None:
                raise self.error
            return None
        try:
            chunk = await self._channel.receive()
        except trio.EndOfChannel:
            self._channel = None
            if self.error is not None:
                raise self.error from None
            return None
        self._received += len(chunk)
        self._check_size(self._received)
        return chunk

    # A plain async iterator rather than an async generator: a loop that breaks early
    # leaves no suspended generator behind for the garbage collector to finalize.
    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        """Stop reading: the rest of the body is discarded by the connection."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None


class Request:
    """One HTTP request, as a handler sees it.

    The head is parsed lazily: headers, arguments and the decoded path cost nothing
    until asked for. ``body`` holds the whole body on buffered routes; streaming routes
    read ``stream`` instead (or ``await receive_body()`` to fill ``body``).
    """

    __slots__ = (
        "_args",
        "_ctx",
        "_headers",
        "_json",
        "_raw_headers",
        "_sink",
        "app",
        "body",
        "client",
        "method",
        "query_string",
        "raw_path",
        "response",
        "route",
        "scheme",
        "stream",
        "version",
    )

    def __init__(
        self,
        app: App,
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
        #: The path as sent, still percent-encoded.
        self.raw_path = path
        self._raw_headers = raw_headers
        self._headers: Headers | None = None
        self._args: MultiDict | None = None
        self._json: Any = _UNREAD
        self._ctx: SimpleNamespace | None = None
        self.version = version
        self.client = client
        self.scheme = scheme
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
    def path(self) -> str:
        """The percent-decoded path, without the query string."""
        return unquote(self.raw_path)

    @property
    def args(self) -> MultiDict:
        """Query-string arguments, multi-valued (``get``, ``getlist``)."""
        if self._args is None:
            self._args = MultiDict(parse_qsl(self.query_string, keep_blank_values=True))
        return self._args

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header, ``application/octet-stream`` when absent."""
        return self.headers.get("content-type", "application/octet-stream")

    @property
    def content_length(self) -> int | None:
        """The declared ``Content-Length``, or ``None`` (chunked or no body)."""
        value = self.headers.get("content-length")
        return int(value) if value is not None else None

    @property
    def host(self) -> str:
        """The host and port the request is for (empty for HTTP/1.0 requests without one).

        The ``Host`` header, which trioweb has checked is a valid host and optional
        port. For an absolute-form target (``GET http://host/path``) it is the target's
        authority, which also replaces the ``Host`` header (RFC 9112 3.2.2).
        """
        return self.headers.get("host", "")

    @property
    def url(self) -> str:
        """The full URL: scheme, host, path and query string."""
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
