"""One HTTP/1.1 connection, from the first byte read to the last byte written.

Two tasks share a connection, both in its nursery:

* the **reader** (:meth:`Connection._read_loop`) is the only code that reads the
  socket. It feeds the bytes to h11 and routes the events: a request head goes to the
  connection task, body chunks go into the request's bounded memory channel (so while
  the handler does not read, the socket is not read either), the end of the body
  closes that channel. Between requests it keeps reading, so a client that goes away
  is noticed at once and cancels the handler.
* the **connection task** (:meth:`Connection.serve`) waits for a head, runs the
  handler inline, writes the response and starts the next cycle.

Every timeout is one cancel scope: the connection task's. Each timeout ends the
connection (silently, or after a 408 or 503), so a single scope per connection is
enough; its deadline moves as the connection goes through its :class:`Phase`, and when
it fires the phase says what it meant. This costs a deadline update per phase instead
of a new scope per wait, which matters on the per-request hot path.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import math
import os
import re
import socket
import struct
import sys
import time
from collections.abc import Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NoReturn, cast

import h11
import trio

from ._chunked import ChunkError, ChunkScanner
from ._files import FileReader
from ._routing import DEFAULT, Limit, Route, normalize_path
from ._strict import ProtocolError, check_head, head_end, origin_form, request_start
from .errors import HTTPError, NotFound, PayloadTooLarge, RequestTimeout, ServiceUnavailable
from .request import Request, RequestStream
from .response import FileResponse, HTTPResponse, ResponseStream, StreamingHTTPResponse

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from ._app import App
    from ._config import Config
    from ._server import Server

__all__ = ["Connection", "Phase", "linger"]

log = logging.getLogger("trioweb")

_Head = tuple[h11.Request, RequestStream] | ProtocolError

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}

# How a streamed response body is framed (see Connection._body_framing).
_NO_BODY, _LENGTH, _CHUNKED, _CLOSE = range(4)
# A streaming handler whose sends never wait still lets other tasks run this often.
_YIELD_EVERY = 1024 * 1024


# A whole response's body smaller than this is joined with its head into one write.
_JOIN_BELOW = 64 * 1024
# At most this much per sendfile call: a client on a fast link still lets the
# connection see cancellation, and other tasks run, between calls.
_SENDFILE_PIECE = 1024 * 1024
_HAS_SENDFILE = hasattr(os, "sendfile")


def _open_file(path: str) -> int:
    return os.open(path, os.O_RDONLY)


class _Written:
    """Stands for body bytes already written, so that h11 can account for them."""

    __slots__ = ("_size",)

    def __init__(self, size: int) -> None:
        self._size = size

    def __len__(self) -> int:
        return self._size


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """The ``Date`` header value, formatted at most once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


# h11's refusals in trioweb's words: h11's own messages quote the offending bytes as a
# Python repr. Matched on how h11's message starts; any other is a "malformed request".
# (h11 never gets to refuse chunk framing: the ChunkScanner sees those bytes first.)
_H11_WORDS = (
    ("illegal request line", "malformed request line"),
    ("illegal header line", "malformed header line"),
    ("continuation line at start", "folded header lines (obs-fold) are not allowed"),
    ("Missing mandatory Host", "no Host header"),
    ("Found multiple Host", "more than one Host header"),
    ("conflicting Content-Length", "Content-Length repeated or given as a list"),
    ("bad Content-Length", "Content-Length is not a decimal number"),
    ("Receive buffer too long", "request head too large"),
    # (in a head, _head_refused lets check_head judge these; in a trailer they stand)
    ("multiple Transfer-Encoding", "Transfer-Encoding repeated"),
    ("Only Transfer-Encoding", "a transfer coding other than chunked"),
)
_TRANSFER_ENCODING_LINE = re.compile(rb"\ntransfer-encoding[ \t]*:[^\n]*", re.IGNORECASE)


def _refusal(exc: h11.RemoteProtocolError) -> ProtocolError:
    """h11's refusal as trioweb's: the same status, in trioweb's words."""
    message = str(exc)
    for start, words in _H11_WORDS:
        if message.startswith(start):
            return ProtocolError(words, exc.error_status_hint)
    return ProtocolError("malformed request", exc.error_status_hint)


def _refused_transfer_encoding(exc: h11.RemoteProtocolError) -> bool:
    return str(exc).startswith(("multiple Transfer-Encoding", "Only Transfer-Encoding"))


def _single_chunked(head: bytes) -> bytes:
    """``head`` with its Transfer-Encoding lines replaced by one that h11 accepts.

    h11 refuses any Transfer-Encoding but a single plain ``chunked``, before trioweb's
    rules (:func:`check_head`, over the original bytes) can judge it. Whether the
    request is then served is theirs to say; this only gets h11 past its own refusal.
    """
    stripped, count = _TRANSFER_ENCODING_LINE.subn(b"", head)
    if not count:
        return head
    line_end = stripped.index(b"\n") + 1
    return stripped[:line_end] + b"Transfer-Encoding: chunked\r\n" + stripped[line_end:]


def _limit(route_value: Limit, config_value: float) -> float | None:
    return config_value if route_value is DEFAULT else route_value


def _deadline(timeout: float | None) -> float:
    return math.inf if timeout is None else trio.current_time() + timeout


def _only_broken(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``trio.BrokenResourceError``, or a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.BrokenResourceError)[1] is None
    return isinstance(exc, trio.BrokenResourceError)


def _encode_headers(response: HTTPResponse | ResponseStream) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in response.headers.items()]


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


class Phase(enum.Enum):
    """Where a connection is; decides which timeout its deadline stands for."""

    IDLE = "waiting for a request (KEEP_ALIVE_TIMEOUT; closes silently)"
    HEAD = "receiving a request head (REQUEST_TIMEOUT; 408)"
    BODY = "receiving a buffered request body (REQUEST_TIMEOUT; 408)"
    HANDLER = "running the handler before the response head (RESPONSE_TIMEOUT; 503)"
    WRITING = "waiting for the client to take response bytes (WRITE_TIMEOUT; abort)"
    STREAMING = "response head sent, handler still running (no deadline)"
    DRAINING = "discarding an unread request body (REQUEST_TIMEOUT; closes)"
    LINGERING = "closing while the client may still send (LINGER_TIMEOUT, own scope; closes)"


class Connection:
    """Serves the requests of one client stream, one after another."""

    def __init__(
        self,
        app: App,
        server: Server,
        stream: trio.abc.Stream,
        client: tuple[str, int],
        scheme: str,
    ) -> None:
        config = app.config
        self._app = app
        self._config = config
        self._server = server
        self._stream = stream
        # The socket's file descriptor for direct writes: plain TCP only (not TLS, not
        # the test client's in-memory streams).
        self._fd: int | None = (
            stream.socket.fileno() if type(stream) is trio.SocketStream else None
        )
        self._client = client
        self._scheme = scheme
        self._h11 = self._new_parser()
        self._heads_send, self._heads_receive = trio.open_memory_channel[_Head](1)
        # Reader side of the current request body; None when there is none or it ended.
        self._body_send: trio.MemorySendChannel[bytes] | None = None
        self._body_stream: RequestStream | None = None
        self._body_done: trio.Event | None = None
        self._discarded = 0
        # The framing of a chunked body, followed over the raw bytes (for chunk sizes).
        self._chunks: ChunkScanner | None = None
        # READ_IDLE_TIMEOUT for the current body (streaming routes) and the reader's scope
        # around its wait for body bytes, so that setting the timeout reaches a wait
        # already under way.
        self._read_idle_timeout: float | None = None
        self._body_read_scope: trio.CancelScope | None = None
        self._read_idle_expired = False
        # The connection task's cancel scope: every timeout, and the client leaving.
        self._scope = trio.CancelScope()
        self.phase = Phase.IDLE
        # Set when a new cycle starts while pipelined bytes wait in h11's buffer.
        self._cycle_started = trio.Event()
        # Whether the reader is parsing a request head (not yet handed over), and the
        # raw bytes of that head so far (for the checks h11's parsing would hide).
        self._reading_head = True
        self._head_raw = b""
        # After h11 refused a head that trioweb's rules accept: how many bytes at the
        # start of _head_raw h11 was not given, and how long _head_raw was then.
        self._reparsed: tuple[int, int] | None = None
        # The method of the head being answered, once h11 has parsed it.
        self._head_method = b""
        # Set while a timeout is being answered.
        self._timing_out = False
        self._request: Request | None = None
        self._head_sent = False
        # The framing of the streamed response being sent, and its progress.
        self._framing = _NO_BODY
        self._body_left = 0
        self._body_sent = 0
        self._file_least = 0
        self._unyielded = 0
        self._must_close = False
        self._gone = False
        self._aborted = False

    # -- the connection task --------------------------------------------------------

    async def serve(self) -> None:
        """Serve requests until the client leaves or the connection must close.

        Then, if the client may still be sending (an error answered before its body was
        read, say), linger: see :func:`linger`.
        """
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_loop)
                try:
                    with self._scope:
                        while await self._serve_one():
                            pass
                except Exception as exc:
                    # A handler's error that surfaced together with the cancellation
                    # of a timeout or a disconnect (the scope took the Cancelled).
                    log.error("%s failed while cancelled", self._request, exc_info=exc)
                    self._must_close = True
                if self._scope.cancelled_caught and not self._gone:
                    await self._timed_out()
                nursery.cancel_scope.cancel()
            if self._client_may_be_sending():
                self.phase = Phase.LINGERING
                await linger(self._stream, self._config)
        finally:
            if self._fd is not None and (self._aborted or self._h11.our_state is h11.SEND_BODY):
                # An abort, or a streamed body cut anywhere (a shutdown cancelling a
                # handler between two sends, say), must look like one even to a client
                # reading to EOF (an HTTP/1.0 body): close with a reset, not a FIN.
                self._stream.socket.setsockopt(  # type: ignore[attr-defined]
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            # The socket closes after this; its fd number may soon belong to another
            # client, so nothing may write to it from here on.
            self._fd = None
            self._request = None

    def _client_may_be_sending(self) -> bool:
        """Whether input may still come after the last response (then: linger)."""
        conn = self._h11
        if self._gone or self._aborted or conn.our_state is h11.SEND_BODY:
            # The client left, or the connection is reset on purpose (an abort, or a
            # response left unfinished).
            return False
        # A request body not read to its end, input h11 refused, or bytes after the last
        # request (pipelined, or part of a head).
        return conn.their_state in (h11.SEND_BODY, h11.ERROR) or bool(conn.trailing_data[0])

    def close_if_idle(self) -> None:
        """Close now if no request is in progress; otherwise after the current one."""
        self._must_close = True
        # IDLE with no head handed over: a head the reader has just passed on (still
        # IDLE until the connection task runs) is served, with Connection: close.
        if self.phase is Phase.IDLE and self._reading_head:
            self._scope.cancel()

    async def _timed_out(self) -> None:
        """The connection's deadline passed: answer as its phase says, then close."""
        phase, request = self.phase, self._request
        self._must_close = True
        self._timing_out = True
        if self._read_idle_expired and not self._head_sent:
            phase = Phase.BODY  # the body stalled: 408, like a buffered body
        if self._head_sent and (phase is Phase.HANDLER or phase is Phase.STREAMING):
            # The response had started (its head written just as a deadline passed, or
            # a streamed body stalled): cut it so the client cannot take it as whole.
            if not self._read_idle_expired:  # (else the reader logged the stall)
                log.info("%s: timed out after its response started", request)
            self._aborted = True
        elif phase is Phase.HEAD:
            log.info("request head from %s:%s timed out", *self._client)
            await self._send_error(408, "the request head took too long to arrive")
        elif (phase is Phase.BODY or phase is Phase.HANDLER) and request is not None:
            if phase is Phase.BODY:
                if not self._read_idle_expired:  # (else the reader logged the stall)
                    log.info("%s: the request body timed out", request)
            else:
                log.info("%s: no response within RESPONSE_TIMEOUT", request)
            error: HTTPError = (
                RequestTimeout("the request body took too long to arrive")
                if phase is Phase.BODY
                else ServiceUnavailable("the response took too long")
            )
            # Answered like any error (exception handlers, middleware), under a fresh
            # scope: the old one has fired.
            self._scope = trio.CancelScope(deadline=_deadline(self._config.WRITE_TIMEOUT))
            with self._scope:
                response = await self._app._error_response(request, error, logged=True)
                await self._send_whole(request, response)
        elif phase is Phase.WRITING:
            log.info("client %s:%s did not read for WRITE_TIMEOUT", *self._client)
            self._aborted = True  # reset: the kernel drops what the client never read

    async def _serve_one(self) -> bool:
        head = await self._receive_head()
        if head is None:
            return False
        if isinstance(head, ProtocolError):
            log.info("bad request from %s:%s: %s", *self._client, head)
            await self._send_error(head.status_code, str(head))
            return False
        event, body = head
        target = event.target
        headers: Sequence[tuple[bytes, bytes]] = event.headers
        if target[:1] != b"/" and target != b"*":
            target, headers = origin_form(target, headers)
        request = Request(
            self._app,
            event.method.decode("ascii"),
            target.decode("latin-1"),
            headers,
            event.http_version.decode("ascii"),
            self._client,
            self._scheme,
            body,
            self,
        )
        self._request = request
        self._head_sent = False
        # From here on the request is being answered, routed or not (an exception
        # handler for a 404 may take time too): RESPONSE_TIMEOUT, not KEEP_ALIVE_TIMEOUT.
        self.phase = Phase.HANDLER
        self._scope.deadline = _deadline(self._config.RESPONSE_TIMEOUT)
        await self._respond(request)
        if self._gone:
            return False
        return await self._next_cycle(request)

    async def _receive_head(self) -> _Head | None:
        """Wait for the next request head; ``None`` when the connection should close."""
        if self._must_close:
            return None
        self.phase = Phase.IDLE
        self._scope.deadline = _deadline(self._config.KEEP_ALIVE_TIMEOUT)
        try:
            head = await self._heads_receive.receive()
        except trio.EndOfChannel:
            return None
        if self._scope.cancel_called:
            # The deadline passed as the head came in: not served, so that no handler
            # starts only to be cancelled at its first checkpoint. The timeout is
            # answered as its phase says (silence for IDLE, 408 for HEAD).
            await trio.lowlevel.checkpoint()
        return head

    async def _respond(self, request: Request) -> None:
        """Route, run the handler and send its response or the error it raised."""
        app = self._app
        response: HTTPResponse | None
        try:
            request._path = path = normalize_path(request.raw_path)
            route, params = app.router.match(request.method, path)
            request.route = route
            response = await self._run_handler(request, route, params)
            if isinstance(response, FileResponse):
                response._apply(request.method, request.headers)
        except Exception as exc:
            if self._head_sent or self._aborted:
                self._abort(request, exc)
                return
            if isinstance(exc, PayloadTooLarge) or request.stream.error:
                self._must_close = True
            response = await app._error_response(request, exc)
        if isinstance(response, StreamingHTTPResponse) or (
            isinstance(response, FileResponse) and response.streamed
        ):
            try:
                await self._send_streamed(request, response)
                return
            except Exception as exc:
                if self._head_sent or self._aborted:
                    self._abort(request, exc)
                    return
                response = await app._error_response(request, exc)
        if response is not None:
            await self._send_whole(request, response)

    async def _send_streamed(
        self, request: Request, response: StreamingHTTPResponse | FileResponse
    ) -> None:
        """Send a response whose body is not in memory: a file, or a streaming_fn's."""
        if isinstance(response, FileResponse):
            await self._send_file(request, response)
        else:
            stream = request.respond(response.status, response.headers)
            await response.streaming_fn(stream)
            await stream.eof()

    async def _run_handler(
        self, request: Request, route: Route, params: dict[str, Any]
    ) -> HTTPResponse | None:
        config = self._config
        stream = request.stream
        read_body = False
        if route.stream:
            stream.max_size = _limit(route.request_max_size, math.inf)
            if not stream.complete:
                self._set_read_idle_timeout(config.READ_IDLE_TIMEOUT)
        else:
            stream.max_size = _limit(route.request_max_size, config.REQUEST_MAX_SIZE)
            if not stream.complete:
                self.phase = Phase.BODY
                self._scope.deadline = _deadline(
                    _limit(route.request_timeout, config.REQUEST_TIMEOUT)
                )
                await request.receive_body()
                if self._scope.cancel_called:  # timed out as the body completed: 408
                    await trio.lowlevel.checkpoint()
                self.phase = Phase.HANDLER
                read_body = True
        # The HANDLER deadline, set from the config when the head came in, starts over
        # after a buffered body, and follows the route's own response_timeout.
        if read_body or route.response_timeout is not DEFAULT:
            timeout = _limit(route.response_timeout, config.RESPONSE_TIMEOUT)
            self._scope.deadline = _deadline(timeout)
        response = await self._app._dispatch(request, route, params)
        if request.response is not None:
            if response is not None:
                log.warning("%s returned a response after responding; ignored", route.name)
            await request.response.eof()
            return None
        if not isinstance(response, HTTPResponse):
            raise TypeError(f"handler {route.name} returned {response!r}, not a response")
        return response

    def _abort(self, request: Request, exc: Exception) -> None:
        """The response has started (or was cut): abort so the client sees truncation."""
        if not (self._aborted and _only_broken(exc)):  # (else _cut has logged why)
            log.error("%s failed after its response started; aborting", request, exc_info=exc)
        self._must_close = True
        self._gone = True
        self._aborted = True

    def _abort_quietly(self) -> None:
        """Reset the connection and cancel its handler (the reason is already logged)."""
        self._aborted = True
        self._client_gone()

    async def _next_cycle(self, request: Request) -> bool:
        """Finish reading the request body and get h11 ready for the next request."""
        conn = self._h11
        if self._must_close or conn.our_state is not h11.DONE:
            return False
        if self._body_done is not None and not self._body_done.is_set():
            # The handler left body unread: discard it (up to REQUEST_MAX_SIZE, under
            # REQUEST_TIMEOUT) so the connection can be reused.
            self.phase = Phase.DRAINING
            self._scope.deadline = _deadline(self._config.REQUEST_TIMEOUT)
            request.stream.close()
            await self._body_done.wait()
        if conn.their_state is not h11.DONE:
            return False
        conn.start_next_cycle()
        self._request = None
        self._body_done = None
        self._reading_head = True
        self._reparsed = None
        self._head_method = b""
        pipelined = conn.trailing_data[0]
        self._head_raw = pipelined
        if pipelined:
            # A pipelined request is already buffered: wake the reader to parse it.
            self._cycle_started.set()
        return True

    # -- writing --------------------------------------------------------------------

    def _extra_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        if not any(name == b"date" for name, _ in headers):
            headers.append((b"date", _http_date()))
        if self._h11.they_are_waiting_for_100_continue:
            # Answered without reading: the client holds its body back, so there is
            # nothing to drain and no telling what it sends next. Close.
            self._must_close = True
        if self._must_close or self._server.closing or not self._config.KEEP_ALIVE:
            headers.append((b"connection", b"close"))

    async def _send_whole(
        self, request: Request, response: HTTPResponse, *, middleware: bool = True
    ) -> None:
        if self._aborted:  # a 100 Continue was cut: the client's stream is broken
            return
        try:
            if middleware and self._app._response_middleware:
                response = await self._app._apply_response_middleware(request, response)
        except Exception as exc:
            log.error("response middleware failed for %s", request, exc_info=exc)
            response = self._app._default_error_response(exc)
        headers = _encode_headers(response)
        status = response.status
        body = response.body
        if status < 200 or status == 204 or status == 304:
            body = b""  # these statuses never carry a body (RFC 9110 6.4.1)
        elif request.method == "HEAD" and not body and "content-length" in response.headers:
            pass  # a HEAD handler's own Content-Length tells what a GET would send
        else:
            headers = [h for h in headers if h[0] != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        self._extra_headers(headers)
        conn = self._h11
        try:
            head = h11.Response(
                status_code=status, headers=headers, reason=_REASONS.get(status, b"")
            )
        except h11.LocalProtocolError as exc:  # a header name or status h11 refuses
            log.error("invalid response for %s: %s", request, exc)
            # Plain 500, without the middleware that may have caused this.
            fallback = self._app._default_error_response(exc)
            await self._send_whole(request, fallback, middleware=False)
            return
        try:
            data = conn.send(head)
            large = b""
            if body and request.method != "HEAD":
                if len(body) < _JOIN_BELOW:
                    data += conn.send(h11.Data(data=body))
                else:
                    # Written after the head, not copied into one buffer with it: a
                    # body shared by many responses stays shared while slow clients
                    # take it. (Content-Length framing adds nothing around it.)
                    pieces = conn.send_with_data_passthrough(h11.Data(data=body)) or []
                    if len(pieces) == 1 and pieces[0] is body:
                        large = body
                    else:  # framed by h11 some other way: as usual
                        data += b"".join(pieces)
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            self._abort(request, exc)
            return
        self._head_sent = True
        if large:
            await self._send(data)
            await self._send(large, last=True)
        else:
            await self._send(data, last=True)

    def _current(self, response: ResponseStream) -> Request:
        """The request ``response`` answers, if that exchange is still going on."""
        request = self._request
        if request is None or request.response is not response:
            # A response kept past its request (say, by a task in app.nursery): its
            # connection has moved on or closed, and may even be another client's now.
            if self._gone:  # the client left, or the connection was aborted
                raise trio.BrokenResourceError("this response's connection is gone")
            raise trio.ClosedResourceError("this response's request is over")
        if self._aborted:
            # A send was cut short (or the response failed): writing more would put
            # bytes where the client expects the rest of the cut piece.
            raise trio.BrokenResourceError("the connection was aborted; nothing more can be sent")
        return request

    async def send_head(self, response: ResponseStream) -> None:
        """Send a streamed response's head (the :class:`ResponseSink` interface)."""
        request = self._current(response)
        await self._app._apply_response_middleware(request, response)
        # Before h11 takes the head as sent: cancelled now, the response can still start.
        await trio.lowlevel.checkpoint_if_cancelled()
        headers = _encode_headers(response)
        self._extra_headers(headers)
        try:
            head = h11.Response(
                status_code=response.status,
                headers=headers,
                reason=_REASONS.get(response.status, b""),
            )
            data = self._h11.send(head)
        except h11.LocalProtocolError as exc:  # a header name or status h11 refuses
            raise ValueError(f"invalid response head: {exc}") from None
        self._framing, self._body_left = self._body_framing(request, response)
        self._body_sent = 0
        self._head_sent = True
        await self._send(data)

    def _body_framing(self, request: Request, response: ResponseStream) -> tuple[int, int]:
        """How the body of a streamed response is framed: h11's rules, decided once.

        The body bytes are then framed here rather than by h11, which saves h11's
        per-event bookkeeping and a copy of every piece. h11 is told how much was sent
        when the response ends, so it still checks the framing and ends the exchange.
        """
        if request.method == "HEAD" or response.status in (204, 304):
            return _NO_BODY, 0
        headers = response.headers
        if "transfer-encoding" not in headers:
            length = headers.get("content-length")
            if length is not None:  # h11 has validated it
                return _LENGTH, int(length.partition(",")[0])
        version = self._h11.their_http_version
        if version is not None and version >= b"1.1":
            return _CHUNKED, 0
        return _CLOSE, 0

    def response_deadline(self) -> float:
        """The RESPONSE_TIMEOUT deadline of the request being handled (``request.deadline``)."""
        return self._scope.deadline if self.phase is Phase.HANDLER else math.inf

    def move_response_deadline(self, deadline: float) -> None:
        """Move the RESPONSE_TIMEOUT deadline (``request.deadline = ...``)."""
        if self.phase is not Phase.HANDLER:
            raise RuntimeError("the response has started: RESPONSE_TIMEOUT no longer applies")
        self._scope.deadline = deadline

    async def send_data(self, response: ResponseStream, data: bytes) -> None:
        """Send a piece of a streamed response body."""
        request = self._current(response)
        framing = self._framing
        size = len(data)
        # Counted once written: a send cancelled before its first byte sent nothing.
        if framing == _CHUNKED:
            # One buffer: copying the piece costs less than the kernel's three-part writev.
            await self._send(b"%x\r\n%b\r\n" % (size, data), body=True)
            self._body_sent += size
        elif framing == _LENGTH:
            if size > self._body_left:
                await self._framing_error(request, "more data than its Content-Length")
            await self._send(data, body=True)
            self._body_left -= size
            self._body_sent += size
        elif framing == _CLOSE:
            await self._send(data, body=True)
            self._body_sent += size
        elif request.method != "HEAD":  # a 204 or 304 has no body
            await self._framing_error(request, f"a body for status {response.status}")

    async def send_end(self, response: ResponseStream) -> None:
        """End a streamed response."""
        request = self._current(response)
        # Before h11 takes the end as sent: cancelled now, the response is left unended,
        # so the connection closes (with a reset) instead of serving another request.
        await trio.lowlevel.checkpoint_if_cancelled()
        conn = self._h11
        try:
            if self._body_sent:
                # Tell h11 what was written, with a stand-in object that has only a
                # length (h11 supports this for sendfile); it checks Content-Length.
                written = cast(bytes, _Written(self._body_sent))
                conn.send_with_data_passthrough(h11.Data(data=written))
            out = conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            await self._framing_error(request, str(exc))
        if out:
            await self._send(out)

    async def wait_writable(self, response: ResponseStream) -> None:
        """Wait until the client can take more bytes, within WRITE_TIMEOUT.

        ``wait_send_all_might_not_block`` of a streamed response: the socket itself on
        plain TCP, else the stream's own wait (TLS, the test client's pipe).
        """
        self._current(response)
        phase, deadline = self.phase, self._scope.deadline
        self.phase, self._scope.deadline = Phase.WRITING, self._write_deadline()
        try:
            if self._fd is not None:
                await trio.lowlevel.wait_writable(self._fd)
            else:
                await self._stream.wait_send_all_might_not_block()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self._lost()
        finally:
            if not self._scope.cancel_called:  # (else the phase says which timeout fired)
                self.phase, self._scope.deadline = phase, deadline
        if self._scope.cancel_called:  # WRITE_TIMEOUT passed as the wait ended
            await trio.lowlevel.checkpoint()

    def abort(self, response: ResponseStream) -> None:
        """A streamed response was closed before its end went out: reset the connection.

        So that the client cannot take the part it got for the whole response. When the
        connection is already ending (a timeout, the client gone), it does its own.
        """
        request = self._request
        if request is None or request.response is not response or self._scope.cancel_called:
            return
        log.info("%s: its response was closed before its end; aborting", request)
        self._abort_quietly()

    # -- files ------------------------------------------------------------------------

    async def _send_file(self, request: Request, response: FileResponse) -> None:
        """Send a streamed file: with ``sendfile`` where it can be, else read and send."""
        # Opened before the head goes out, so that a file gone since file_stream()
        # looked at it gets an error response, not a 200 cut short. Not abandoned on
        # cancellation, so the fd is always ours to close.
        file_fd = None
        if request.method != "HEAD":
            try:
                file_fd = await trio.to_thread.run_sync(_open_file, response.path)
            except FileNotFoundError:
                raise NotFound("the file is gone") from None
        try:
            stream = request.respond(response.status, response.headers)
            await stream.send(b"")  # the head, after the response middleware
            framing = self._framing
            if framing != _NO_BODY and file_fd is not None:
                # How much to send: what the head promised, or the range, or all there
                # is (but at least what the headers' size promised: a file that shrank
                # cannot be sent as if complete).
                count = self._body_left if framing == _LENGTH else response.length
                self._file_least = response.size - response.start if count is None else 0
                offset = response.start
                rest: tuple[int, int | None] | None = (offset, count)
                if framing != _CHUNKED and self._fd is not None and _HAS_SENDFILE:
                    rest = await self._sendfile(request, file_fd, offset, count)
                if rest is not None:
                    await self._copy_file(request, file_fd, *rest, response.chunk_size)
            await stream.eof()
        finally:
            # At once on every way out: the end, an error, a timeout, a disconnect.
            if file_fd is not None:
                os.close(file_fd)

    async def _file_ended(self, request: Request, count: int | None) -> None:
        """The file ended: fine when sending to its end, unless it shrank; else abort."""
        if count is not None or self._body_sent < self._file_least:
            await self._framing_error(request, "a file that ended before its length")

    async def _sendfile(
        self, request: Request, file_fd: int, offset: int, count: int | None
    ) -> tuple[int, int | None] | None:
        """Send with zero-copy ``os.sendfile``, waiting for the socket as it fills.

        Returns ``None`` once ``count`` bytes (``None``: up to the end of the file) are
        sent, or the offset and count still to send when this file cannot be sent with
        ``sendfile`` (then the caller reads and sends the rest).
        """
        fd = self._fd
        assert fd is not None
        while count is None or count > 0:
            await trio.lowlevel.checkpoint_if_cancelled()
            piece = _SENDFILE_PIECE if count is None else min(count, _SENDFILE_PIECE)
            try:
                sent = os.sendfile(fd, file_fd, offset, piece)
            except BlockingIOError:
                # The client has not taken what was sent: WRITE_TIMEOUT bounds each wait.
                self.phase, self._scope.deadline = Phase.WRITING, self._write_deadline()
                await trio.lowlevel.wait_writable(fd)
                if self._scope.cancel_called:  # WRITE_TIMEOUT passed as it woke
                    await trio.lowlevel.checkpoint()
                self.phase, self._scope.deadline = Phase.STREAMING, math.inf
                continue
            except (BrokenPipeError, ConnectionResetError):
                await self._lost()
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                return offset, count  # not for this file (or file system)
            if not sent:
                await self._file_ended(request, count)
                return None
            offset += sent
            self._body_sent += sent
            self._body_left -= sent
            if count is not None:
                count -= sent
            await self._wrote(sent)
        return None

    async def _copy_file(
        self, request: Request, file_fd: int, offset: int, count: int | None, chunk_size: int
    ) -> None:
        """Read the file in ``chunk_size`` pieces and send each (TLS, tests, chunked)."""
        chunked = self._framing == _CHUNKED
        # One buffer for the whole file, with room for a chunk's framing around the data
        # so that a piece goes out in one write, without a copy.
        room = 18 if chunked else 0  # up to 16 hex digits and CRLF
        view = memoryview(bytearray(room + chunk_size + 2))
        reader = FileReader(file_fd)
        while count is None or count > 0:
            want = chunk_size if count is None else min(chunk_size, count)
            size = await reader.read_into(view[room : room + want], offset)
            if not size:
                await self._file_ended(request, count)
                return
            offset += size
            self._body_sent += size
            if count is not None:
                count -= size
            if chunked:
                line = b"%x\r\n" % size
                start = room - len(line)
                view[start:room] = line
                view[room + size : room + size + 2] = b"\r\n"
                await self._send(view[start : room + size + 2])
            else:
                self._body_left -= size
                await self._send(view[room : room + size])

    def _write_deadline(self) -> float:
        return _deadline(self._config.WRITE_TIMEOUT)

    async def _send(
        self, data: bytes | bytearray | memoryview, *, last: bool = False, body: bool = False
    ) -> None:
        """Write to the client under WRITE_TIMEOUT; a client gone cancels the connection.

        ``last``: nothing follows in this cycle, so the phase needs no restoring.
        ``body``: a piece of a streamed body, which nothing has counted as sent yet, so
        cancelled before its first byte it is simply not sent. Any other piece was taken
        as sent by h11 already (a head, a final chunk, 100 Continue) or belongs to a
        response that the cancellation ends (a whole one, a file).

        Cancellation is checked before writing, never after: a send that raises
        ``Cancelled`` wrote none of its piece, or cut the response (see :meth:`_cut`).
        """
        if not last:
            await trio.lowlevel.checkpoint_if_cancelled()
        fd = self._fd
        sent = 0
        if fd is not None:
            # Plain TCP: try the write now. When the kernel takes it all (the usual
            # case) there is nothing to wait for, so no deadline to arm and no trip
            # through the scheduler.
            size = len(data)
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                pass
            except OSError:
                await self._lost()
            if sent == size:
                if not last:  # (else the wait for the next head checkpoints)
                    await self._wrote(size)
                return
        phase = self.phase
        deadline = self._scope.deadline
        self.phase = Phase.WRITING
        self._scope.deadline = self._write_deadline()
        try:
            if fd is None:
                await self._send_all(data)
            else:
                # Waiting here rather than in the socket's send_all, which does not say
                # how much it wrote before a cancellation.
                view = memoryview(data)
                while sent < size:
                    await trio.lowlevel.wait_writable(fd)
                    try:
                        sent += os.write(fd, view[sent:])
                    except BlockingIOError:
                        pass
                    except OSError:
                        await self._lost()
        except trio.Cancelled:
            # Part of the piece is out (or may be: other streams do not say), or h11
            # has it as sent: the client's stream no longer matches the framing.
            if sent or fd is None or not body:
                self._cut()
            if not self._scope.cancel_called:  # a scope of the handler's, not a timeout
                self._resume(phase, deadline)
            raise
        if last:
            return
        if self._scope.cancel_called:  # WRITE_TIMEOUT passed as the send completed
            await trio.lowlevel.checkpoint()
        self._resume(phase, deadline)

    def _resume(self, phase: Phase, deadline: float) -> None:
        """After a wait for the client: back to the phase the write interrupted."""
        if self._head_sent:
            self.phase, self._scope.deadline = Phase.STREAMING, math.inf
        else:  # 100 Continue: back to the handler's deadline
            self.phase, self._scope.deadline = phase, deadline

    def _cut(self) -> None:
        """A cancellation cut a write short: the client's stream is broken, so reset it.

        The bytes on the wire no longer match what the framing announced, and there is
        no telling where a next piece would start (Trio's own SSLStream is broken by a
        cancelled send for the same reason). So the connection is aborted: later sends
        on the response raise ``BrokenResourceError``, no other request is read, and it
        closes with a reset once the handler is done.
        """
        if not self._aborted and not self._scope.cancel_called:
            # (The connection's own timeouts, and a client gone, are logged as such.)
            log.info("%s: a send was cancelled part-way; resetting the connection", self._request)
        self._aborted = True
        self._must_close = True

    async def _wrote(self, size: int) -> None:
        """After a write that did not wait: leave RESPONSE_TIMEOUT, and let others run."""
        if self._head_sent and self.phase is not Phase.STREAMING:
            # The head is out: RESPONSE_TIMEOUT no longer applies.
            self.phase, self._scope.deadline = Phase.STREAMING, math.inf
        # Cancellation was checked before the write (the piece is out now, so raising
        # here would hide that), but yielding to other tasks costs a trip through the
        # scheduler: do it once per _YIELD_EVERY bytes.
        self._unyielded += size
        if self._unyielded >= _YIELD_EVERY:
            self._unyielded = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self._lost()

    async def _framing_error(self, request: Request, problem: str) -> NoReturn:
        """The body does not fit the response's framing: abort, and log why."""
        log.error("%s: the handler sent %s; aborting the connection", request, problem)
        self._abort_quietly()
        await trio.lowlevel.checkpoint()  # raises Cancelled inside the connection's scope
        raise RuntimeError(f"response body does not match its framing: {problem}")

    async def _lost(self) -> NoReturn:
        """A write failed: the client is gone. Cancel the connection, handler included."""
        log.debug("client %s:%s went away during the response", *self._client)
        self._client_gone()
        await trio.lowlevel.checkpoint()  # raises Cancelled inside the connection's scope
        raise trio.BrokenResourceError("the client went away")  # a writer outside it

    async def _send_error(self, status: int, message: str) -> None:
        """Answer a request that got no response from a handler, then close."""
        conn = self._h11
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        self._must_close = True
        response = self._app._default_error_response(HTTPError(message, status_code=status))
        headers = _encode_headers(response)
        headers.append((b"content-length", str(len(response.body)).encode()))
        self._extra_headers(headers)
        data = conn.send(
            h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))
        )
        if self._head_method != b"HEAD":  # h11 parsed a HEAD: the head only
            data += conn.send(h11.Data(data=response.body))
        data += conn.send(h11.EndOfMessage())
        # Outside the connection scope (it may have fired): a deadline of its own.
        with (
            trio.move_on_after(self._config.WRITE_TIMEOUT),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            try:
                await self._stream.send_all(data)
            except trio.Cancelled:
                self._aborted = True  # cut short: a reset, as for every write (_cut)
                raise

    # -- the reader task --------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                conn = self._h11  # (a new one after _head_refused)
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    refusal = self._head_refused(exc) if self._reading_head else _refusal(exc)
                    if refusal is not None:
                        self._protocol_error(refusal)
                        return
                    if self._h11 is conn and not await self._receive():
                        return  # (not parsed again: judged again with more bytes)
                    continue
                if event is h11.NEED_DATA:
                    if self.phase is Phase.IDLE and conn.trailing_data[0]:
                        # The first bytes of a head: REQUEST_TIMEOUT for the rest of it.
                        self.phase = Phase.HEAD
                        self._scope.deadline = _deadline(self._config.REQUEST_TIMEOUT)
                    if not await self._receive():
                        return
                elif event is h11.PAUSED:
                    if conn.trailing_data[0]:
                        # A pipelined request waits: read no more until its turn.
                        await self._cycle_started.wait()
                        self._cycle_started = trio.Event()
                    elif not await self._receive():
                        return
                elif type(event) is h11.Request:
                    if not await self._start_request(event):
                        return
                elif type(event) is h11.Data:
                    await self._push_body(event.data)
                elif type(event) is h11.EndOfMessage:
                    self._end_body()
                else:  # ConnectionClosed
                    self._client_gone()
                    return
        finally:
            self._heads_send.close()
            if self._body_send is not None:
                # The body will never end: a read must not take what came for all of it.
                stream = self._body_stream
                if stream is not None and stream.error is None:
                    stream.error = trio.BrokenResourceError("the request body was cut off")
                self._body_send.close()

    def _set_read_idle_timeout(self, timeout: float | None) -> None:
        self._read_idle_timeout = timeout
        if self._body_read_scope is not None:
            self._body_read_scope.deadline = self._read_idle_deadline()

    def _read_idle_deadline(self) -> float:
        # A client waiting for 100 Continue sends nothing until the handler reads: that
        # silence is ours, not a stall, so the clock starts once 100 Continue is out.
        if self._h11.they_are_waiting_for_100_continue:
            return math.inf
        return _deadline(self._read_idle_timeout)

    async def _receive(self) -> bool:
        """Read the next bytes into h11; False when the reader must stop."""
        data = await self._read_some()
        if data is None:
            return False
        if not data:
            self._client_gone()
            return False
        if self._chunks is not None and not self._scan_chunks(data):
            return False
        if self._reading_head:
            # Usually the whole head comes in one read: then no copy at all.
            self._head_raw = self._head_raw + data if self._head_raw else data
        self._h11.receive_data(data)
        return True

    async def _read_some(self) -> bytes | None:
        """The next bytes from the client; ``b""`` when it is gone, ``None`` if it stalled.

        On plain TCP the read is tried first, and only when nothing is there does the
        reader wait for the socket: during a fast upload most reads find data, and need
        neither a trip through the scheduler nor a cancel scope.
        """
        size = self._config.REQUEST_BUFFER_SIZE
        fd = self._fd
        while True:
            if fd is not None:
                try:
                    return os.read(fd, size)
                except BlockingIOError:
                    pass
                except OSError:  # a reset
                    return b""
            try:
                if self._body_send is None:
                    if fd is None:
                        return bytes(await self._stream.receive_some(size))
                    await trio.lowlevel.wait_readable(fd)
                    continue
                # A body is being read: READ_IDLE_TIMEOUT bounds the wait for its bytes.
                with trio.CancelScope(deadline=self._read_idle_deadline()) as scope:
                    self._body_read_scope = scope
                    if fd is None:
                        data = bytes(await self._stream.receive_some(size))
                    else:
                        await trio.lowlevel.wait_readable(fd)
                self._body_read_scope = None
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return b""
            if scope.cancelled_caught:
                # No body byte for READ_IDLE_TIMEOUT: cancel the handler; 408 if it had
                # not started its response, else the connection just closes.
                log.info("request body from %s:%s stalled", *self._client)
                self._read_idle_expired = True
                if not self._timing_out:  # (else it would cut that timeout's answer)
                    self._scope.cancel()
                return None
            if fd is None:
                return data

    def _scan_chunks(self, data: bytes | bytearray) -> bool:
        """Check the chunk lines in ``data`` before h11 sees it; False to stop reading."""
        chunks = self._chunks
        assert chunks is not None
        try:
            chunks.feed(data)
        except ChunkError as exc:
            self._protocol_error(exc)
            return False
        if chunks.done:
            self._chunks = None
        stream = self._body_stream
        if stream is not None:
            stream.declared = chunks.declared
            if stream.max_size is not None and chunks.declared > stream.max_size:
                # A chunk announced more than the limit allows: read none of it. The
                # handler's next read raises the 413, and the connection closes.
                log.info("chunked body from %s:%s announced too much", *self._client)
                stream.error = stream._too_large()
                self._must_close = True
                self._end_body()
                return False
        return True

    async def _start_request(self, event: h11.Request) -> bool:
        """Hand a request head over with its body stream; False to stop reading."""
        self._head_method = event.method
        # h11 limits only heads still incomplete in its buffer; count every head.
        size = len(event.method) + len(event.target) + 12
        content_length = None
        chunked = False
        for name, value in event.headers:
            size += len(name) + len(value) + 4
            if name == b"content-length":
                content_length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
        limit = self._config.REQUEST_MAX_HEADER_SIZE
        if size > limit:
            # RFC 9110 15.5.15: a request line alone over the limit is a 414.
            line = len(event.method) + len(event.target) + 12
            self._protocol_error(
                ProtocolError("request target too long", 414)
                if line > limit
                else ProtocolError("request head too large", 431)
            )
            return False
        raw = self._head_raw
        self._head_raw = b""
        # (after an empty line that h11 was not given, the head starts later)
        start = 0 if self._reparsed is None else self._reparsed[0]
        refused = check_head(
            event.method,
            event.target,
            event.http_version,
            event.headers,
            raw[start : head_end(raw, start)],
        )
        if refused is not None:
            self._protocol_error(refused)
            return False
        self._reading_head = False
        # The body bytes already received, for the chunk scanner: h11 is about to
        # consume some of them.
        pending = self._h11.trailing_data[0] if chunked else b""
        following: Any
        try:
            following = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            following = _refusal(exc)
        if type(following) is h11.EndOfMessage:
            self._heads_send.send_nowait((event, RequestStream(None, None, None, None)))
            return True
        self._read_idle_timeout = None
        send, receive = trio.open_memory_channel[bytes](self._config.REQUEST_QUEUE_SIZE)
        stream = RequestStream(receive, content_length, None, self._continue)
        self._body_send, self._body_stream = send, stream
        self._body_done = trio.Event()
        self._discarded = 0
        self._heads_send.send_nowait((event, stream))
        if chunked:
            self._chunks = ChunkScanner(self._config.REQUEST_MAX_HEADER_SIZE)
            if pending and not self._scan_chunks(pending):
                return False
        if type(following) is h11.Data:
            await self._push_body(following.data)
        elif isinstance(following, ProtocolError):
            self._protocol_error(following)
            return False
        return True

    async def _push_body(self, data: bytes | bytearray) -> None:
        size = self._config.REQUEST_BUFFER_SIZE
        view = memoryview(data)
        for start in range(0, len(data), size):
            piece = bytes(view[start : start + size])  # the one copy out of h11's buffer
            if self._body_send is not None:
                try:
                    await self._body_send.send(piece)
                    continue
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._body_send = None
            self._discarded += len(piece)
            await trio.lowlevel.checkpoint()  # a fast client cannot monopolise the loop
        if self._discarded > self._config.REQUEST_MAX_SIZE:
            # Too much left unread to drain for keep-alive: give up on this connection.
            log.debug("unread request body too large to drain; closing")
            self._must_close = True
            self._end_body()
            await trio.sleep_forever()

    def _end_body(self) -> None:
        self._chunks = None
        if self._body_send is not None:
            self._body_send.close()
            self._body_send = None
        self._body_stream = None
        if self._body_done is not None:
            self._body_done.set()

    async def _continue(self) -> None:
        """Send ``100 Continue`` when the handler first reads a body the client holds back."""
        if self._h11.they_are_waiting_for_100_continue and not self._head_sent:
            await trio.lowlevel.checkpoint_if_cancelled()  # before h11 takes it as sent
            continue_ = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
            await self._send(self._h11.send(continue_))
            self._set_read_idle_timeout(self._read_idle_timeout)  # the clock starts now

    def _new_parser(self) -> h11.Connection:
        return h11.Connection(
            h11.SERVER, max_incomplete_event_size=self._config.REQUEST_MAX_HEADER_SIZE
        )

    def _head_refused(self, exc: h11.RemoteProtocolError) -> ProtocolError | None:
        """h11 refused the head being read: the error to answer, or ``None`` to go on.

        h11 refuses two things trioweb's rules allow: an empty line before the request
        line (RFC 9112 2.2), and any ``Transfer-Encoding`` but one plain ``chunked``
        (empty list elements, RFC 9110 5.6.1, included). Then a fresh h11 is given the
        same bytes without that empty line and with one ``Transfer-Encoding: chunked``
        line, and :func:`check_head` judges the original bytes. Each such parse applies
        every fix the bytes so far need, so a refusal without new bytes is final. A lone
        CR is judged again once more bytes have come (h11 goes on refusing until then).
        """
        raw = self._head_raw
        error = _refusal(exc)
        start = 0
        if self._reparsed is not None:
            start, parsed_at = self._reparsed
            if len(raw) == parsed_at:
                return error
        if error.status_code == 431 and raw.find(b"\n", start) == -1:
            # h11 gave up on a head over the limit before its request line ended.
            return ProtocolError("request target too long", 414)
        try:
            skip = request_start(raw)
        except ProtocolError as refusal:
            return refusal
        if skip == -1:
            return None  # a lone CR, refused by h11 at once: its LF may be on the way
        if skip == start and not _refused_transfer_encoding(exc):
            return error
        data = raw[skip:]
        end = head_end(data)
        if end != -1:
            data = _single_chunked(data[:end]) + data[end:]
        self._h11 = self._new_parser()
        if data:  # (b"" would tell h11 the client closed)
            self._h11.receive_data(data)
        self._reparsed = skip, len(raw)
        return None

    def _protocol_error(self, exc: ProtocolError) -> None:
        self._must_close = True
        if self._body_stream is not None:
            # Malformed body framing: the handler's next read raises a 400.
            self._body_stream.error = HTTPError(str(exc), status_code=exc.status_code)
            self._end_body()
        elif self._reading_head:
            self._reading_head = False
            self._heads_send.send_nowait(exc)

    def _client_gone(self) -> None:
        self._gone = True
        self._must_close = True
        self._scope.cancel()
