"""One HTTP/1.1 connection, from the first byte read to the last byte written.

Two tasks share a connection, both in its nursery:

* the **reader** (:meth:`Connection._read_loop`) is the only code that reads the
  socket. It feeds the bytes to the HTTP engine (:mod:`._engine`, sans-I/O) and routes
  its events: a request head goes to the
  connection task, body chunks go into the request's bounded memory channel (so while
  the handler does not read, the socket is not read either), the end of the body
  closes that channel. Between requests it keeps reading, so a client that goes away
  is noticed at once and cancels the handler.
* the **connection task** (:meth:`Connection.serve`) waits for a head, runs the
  handler inline, writes the response and starts the next cycle.

The engine owns the protocol (parsing, the rules, framing, serialising heads), the
:class:`~._transport.Transport` owns the reads and writes, and this module owns the
lifecycle: phases, timeouts, the hand-over between the two tasks, and how the connection
ends (one :class:`Ending` value).

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
import sys
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import trio

from ._engine import Engine
from ._events import (
    END_OF_BODY,
    NEED_DATA,
    PAUSED,
    SWITCHED,
    Data,
    Framing,
    ProtocolError,
    RequestHead,
)
from ._files import FileReader
from ._headers import date_now
from ._routing import DEFAULT, HANDSHAKE, Limit, Route, normalize_path
from ._transport import Transport, TransportLost, linger
from .errors import HTTPError, NotFound, PayloadTooLarge, RequestTimeout, ServiceUnavailable
from .request import Request, RequestStream
from .response import (
    FileResponse,
    HTTPResponse,
    ResponseStream,
    StreamingHTTPResponse,
    SwitchingProtocols,
)

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from ._config import Config
    from ._routing import Router

__all__ = ["Application", "Connection", "Ending", "Phase", "ServerState"]

log = logging.getLogger("trioweb")
access_log = logging.getLogger("trioweb.access")

_Head = tuple[RequestHead, RequestStream] | ProtocolError

# A streaming handler whose sends never wait still lets other tasks run this often.
_YIELD_EVERY = 1024 * 1024


# A whole response's body smaller than this is joined with its head into one write.
_JOIN_BELOW = 64 * 1024
# At most this much per sendfile call: a client on a fast link still lets the
# connection see cancellation, and other tasks run, between calls.
_SENDFILE_PIECE = 1024 * 1024


def _open_file(path: str) -> int:
    return os.open(path, os.O_RDONLY)


def _limit(route_value: Limit, config_value: float) -> float | None:
    if route_value is DEFAULT or route_value is HANDSHAKE:  # (HANDSHAKE: see _run_handler)
        return config_value
    return route_value


def _deadline(timeout: float | None) -> float:
    return math.inf if timeout is None else trio.current_time() + timeout


def _only_broken(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``trio.BrokenResourceError``, or a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.BrokenResourceError)[1] is None
    return isinstance(exc, trio.BrokenResourceError)


def _encode_headers(response: HTTPResponse | ResponseStream) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in response.headers.items()]


class Application(Protocol):
    """What a connection needs of the application it serves (an :class:`~trioweb.App`)."""

    config: Config
    router: Router

    async def dispatch(
        self, request: Request, route: Route, params: dict[str, Any]
    ) -> HTTPResponse | None: ...
    async def run_response_middleware(self, request: Request, response: Any) -> Any: ...
    async def error_response(
        self, request: Request, exc: Exception, *, logged: bool = False
    ) -> HTTPResponse: ...
    def default_error_response(self, exc: Exception) -> HTTPResponse: ...


class ServerState(Protocol):
    """What a connection needs of its server: whether it is shutting down."""

    closing: bool


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


class Ending(enum.IntEnum):
    """How the connection will end; it only ever moves down this list."""

    #: Another request may follow (keep-alive).
    OPEN = 0
    #: Close after the current response (``Connection: close``), with a FIN.
    CLOSE = 1
    #: The client went away: nothing more can be written.
    GONE = 2
    #: A response was cut short: close with a reset, so the client cannot take it as whole.
    ABORT = 3


class Connection:
    """Serves the requests of one client stream, one after another."""

    def __init__(
        self,
        app: Application,
        server: ServerState,
        stream: trio.abc.Stream,
        client: tuple[str, int],
        scheme: str,
        engine: Engine,
    ) -> None:
        config = app.config
        self._app = app
        self._config = config
        self._server = server
        self._transport = Transport(stream)
        self._client = client
        self._scheme = scheme
        self._engine = engine
        self.ending = Ending.OPEN
        self._heads_send, self._heads_receive = trio.open_memory_channel[_Head](1)
        # Reader side of the current request body; None when there is none or it ended.
        self._body_send: trio.MemorySendChannel[bytes] | None = None
        self._body_stream: RequestStream | None = None
        self._body_done: trio.Event | None = None
        self._discarded = 0
        # READ_IDLE_TIMEOUT for the current body (streaming routes) and the reader's scope
        # around its wait for body bytes, so that setting the timeout reaches a wait
        # already under way.
        self._read_idle_timeout: float | None = None
        self._body_read_scope: trio.CancelScope | None = None
        self._read_idle_expired = False
        # Whether the last read emptied the socket (see _read_some).
        self._drained = False
        # The connection task's cancel scope: every timeout, and the client leaving.
        self._scope = trio.CancelScope()
        self.phase = Phase.IDLE
        # Set when a new cycle starts while pipelined bytes wait in the engine.
        self._cycle_started = trio.Event()
        # Whether the reader is parsing a request head (not yet handed over).
        self._reading_head = True
        # Set while a timeout is being answered.
        self._timing_out = False
        self._request: Request | None = None
        # For the access log (read once: the hot path tests one flag): the status of
        # the head that went out, and when the request's head was handed over.
        self._access_log: bool = config.ACCESS_LOG
        self._status = 0
        self._started = 0.0
        # The response header echoing request.id (lower case), if any.
        id_header = config.REQUEST_ID_HEADER
        self._id_header = None if id_header is None else id_header.lower().encode("ascii")
        self._head_sent = False
        self._response_done = False
        # The progress of the streamed response body being sent.
        self._body_left = 0
        self._body_sent = 0
        self._file_least = 0
        self._unyielded = 0
        # After a 101: the protocol that took the connection over, and set once the
        # reader has stopped reading HTTP.
        self._switched_to: SwitchingProtocols | None = None
        self._reader_stopped: trio.Event | None = None

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
                    self._end(Ending.CLOSE)
                if self._scope.cancelled_caught and self.ending < Ending.GONE:
                    await self._timed_out()
                nursery.cancel_scope.cancel()
            if (
                self.ending < Ending.GONE
                and self._engine.input_pending
                and not (self._response_unfinished)
            ):
                # A body not read to its end, a refused request, or bytes after the
                # last request: the client may still be sending.
                self.phase = Phase.LINGERING
                await linger(self._transport.stream, self._config)
        finally:
            if self.ending is Ending.ABORT or self._response_unfinished:
                # An abort, or a response cut anywhere (a shutdown cancelling a handler
                # between two sends, say), must look like one even to a client reading
                # to EOF (an HTTP/1.0 body): close with a reset, not a FIN.
                self._transport.reset_on_close()
            self._transport.forget()
            self._finish()

    def _finish(self) -> None:
        """The current request's exchange is over, however it ended: log it, let it go."""
        request = self._request
        if request is None:
            return
        self._request = None
        if self._access_log:
            self._log_access(request)

    def _log_access(self, request: Request) -> None:
        # A handler that raises (an unwritable file, say) is logging's to report, in
        # Handler.handleError; anything else (a formatter's bug) must not end the
        # connection either.
        complete = self._response_done
        status = self._status if self._head_sent else None
        sent = self._body_sent
        duration = trio.current_time() - self._started
        target = request.raw_path
        if request.query_string:
            target += "?" + request.query_string
        try:
            access_log.info(
                '%s - "%s %s HTTP/%s" %s %d %.6fs %s%s',
                request.remote_addr,
                request.method,
                target,
                request.version,
                "-" if status is None else status,
                sent,
                duration,
                request.id,
                "" if complete else " (incomplete)",
                extra={
                    "remote_addr": request.remote_addr,
                    "method": request.method,
                    "path": target,
                    "status": status,
                    "bytes": sent,
                    "duration": duration,
                    "request_id": request.id,
                    "complete": complete,
                },
            )
        except Exception:
            log.exception("the access log failed")

    def _end(self, ending: Ending) -> None:
        if ending > self.ending:
            self.ending = ending

    @property
    def _response_unfinished(self) -> bool:
        """Whether a response head went out and its body did not end."""
        return self._head_sent and not self._response_done

    def close_if_idle(self) -> None:
        """Close now if no request is in progress; otherwise after the current one."""
        self._end(Ending.CLOSE)
        if self._switched_to is not None:
            self._switched_to.shutdown()  # the new protocol closes in its own way
            return
        # IDLE with no head handed over: a head the reader has just passed on (still
        # IDLE until the connection task runs) is served, with Connection: close.
        if self.phase is Phase.IDLE and self._reading_head:
            self._scope.cancel()

    async def _timed_out(self) -> None:
        """The connection's deadline passed: answer as its phase says, then close."""
        phase, request = self.phase, self._request
        self._end(Ending.CLOSE)
        self._timing_out = True
        if self._read_idle_expired and not self._head_sent:
            phase = Phase.BODY  # the body stalled: 408, like a buffered body
        if self._head_sent and (phase is Phase.HANDLER or phase is Phase.STREAMING):
            # The response had started (its head written just as a deadline passed, or
            # a streamed body stalled): cut it so the client cannot take it as whole.
            if not self._read_idle_expired:  # (else the reader logged the stall)
                log.info("%s: timed out after its response started", request)
            self._end(Ending.ABORT)
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
                response = await self._app.error_response(request, error, logged=True)
                await self._send_whole(request, response)
        elif phase is Phase.WRITING:
            log.info("client %s:%s did not read for WRITE_TIMEOUT", *self._client)
            self._end(Ending.ABORT)  # reset: the kernel drops what the client never read

    async def _serve_one(self) -> bool:
        head = await self._receive_head()
        if head is None:
            return False
        if isinstance(head, ProtocolError):
            log.info("bad request from %s:%s: %s", *self._client, head)
            await self._send_error(head.status_code, str(head))
            return False
        event, body = head
        request = Request(
            self._app,
            event.method.decode("ascii"),
            event.target.decode("latin-1"),
            event.headers,
            event.version.decode("ascii"),
            self._client,
            self._scheme,
            body,
            self,
        )
        self._request = request
        if self._access_log:
            self._started = trio.current_time()
        self._head_sent = False
        self._response_done = False
        self._body_sent = 0
        # From here on the request is being answered, routed or not (an exception
        # handler for a 404 may take time too): RESPONSE_TIMEOUT, not KEEP_ALIVE_TIMEOUT.
        self.phase = Phase.HANDLER
        self._scope.deadline = _deadline(self._config.RESPONSE_TIMEOUT)
        await self._respond(request)
        if self.ending >= Ending.GONE:
            return False
        return await self._next_cycle(request)

    async def _receive_head(self) -> _Head | None:
        """Wait for the next request head; ``None`` when the connection should close."""
        if self.ending is not Ending.OPEN:
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
            if self._head_sent or self.ending is Ending.ABORT:
                self._abort(request, exc)
                return
            if isinstance(exc, PayloadTooLarge) or request.stream.error:
                self._end(Ending.CLOSE)
            response = await app.error_response(request, exc)
        if isinstance(response, StreamingHTTPResponse) or (
            isinstance(response, FileResponse) and response.streamed
        ):
            try:
                await self._send_streamed(request, response)
                return
            except Exception as exc:
                if self._head_sent or self.ending is Ending.ABORT:
                    self._abort(request, exc)
                    return
                response = await app.error_response(request, exc)
        if response is not None:
            await self._send_whole(request, response)

    async def _send_streamed(
        self, request: Request, response: StreamingHTTPResponse | FileResponse
    ) -> None:
        """Send a response whose body is not in memory: a file, or a streaming_fn's."""
        if isinstance(response, FileResponse):
            await self._send_file(request, response)
        elif isinstance(response, SwitchingProtocols):
            await self._switch(request, response)
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
            if route.response_timeout is HANDSHAKE:  # a WebSocket route, up to its 101
                timeout = config.WEBSOCKET_HANDSHAKE_TIMEOUT
            else:
                timeout = _limit(route.response_timeout, config.RESPONSE_TIMEOUT)
            self._scope.deadline = _deadline(timeout)
        response = await self._app.dispatch(request, route, params)
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
        if not (self.ending is Ending.ABORT and _only_broken(exc)):  # (else logged by _cut)
            log.error("%s failed after its response started; aborting", request, exc_info=exc)
        self._end(Ending.ABORT)

    def _abort_quietly(self) -> None:
        """Reset the connection and cancel its handler (the reason is already logged)."""
        self._end(Ending.ABORT)
        self._scope.cancel()

    async def _next_cycle(self, request: Request) -> bool:
        """Finish reading the request body and get the engine ready for the next request."""
        self._finish()  # the response is out (or cut): draining is not the client's time
        if self.ending is not Ending.OPEN or not self._response_done:
            return False
        if self._body_done is not None and not self._body_done.is_set():
            # The handler left body unread: discard it (up to REQUEST_MAX_SIZE, under
            # REQUEST_TIMEOUT) so the connection can be reused.
            self.phase = Phase.DRAINING
            self._scope.deadline = _deadline(self._config.REQUEST_TIMEOUT)
            request.stream.close()
            await self._body_done.wait()
        if self.ending is not Ending.OPEN or not self._engine.start_next_cycle():
            return False
        self._body_done = None
        self._reading_head = True
        self._head_sent = self._response_done = False
        if self._engine.buffered:
            # A pipelined request is already buffered: wake the reader to parse it.
            self._cycle_started.set()
        return True

    # -- writing --------------------------------------------------------------------

    def _response_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The bytes of a response head, ``Date`` and ``Connection`` as this connection needs.

        Raises ``ValueError`` for a status or header the engine refuses to send.
        """
        id_header = self._id_header
        dated = has_id = False
        for name, _ in headers:
            if name == b"date":
                dated = True
            elif name == id_header:
                has_id = True  # the app's own
        if not dated:
            headers.append((b"date", date_now()))
        if id_header is not None and not has_id and self._request is not None:
            headers.append((id_header, self._request.id.encode("ascii")))
        self._status = status
        if self._engine.waiting_for_continue:
            # Answered without reading: the client holds its body back, so there is
            # nothing to drain and no telling what it sends next. Close.
            self._end(Ending.CLOSE)
        close = (
            self.ending is not Ending.OPEN or self._server.closing or not self._config.KEEP_ALIVE
        )
        data = self._engine.response_head(status, headers, close=close)
        self._head_sent = True
        return data

    async def _send_whole(
        self, request: Request, response: HTTPResponse, *, middleware: bool = True
    ) -> None:
        if self.ending is Ending.ABORT:  # a 100 Continue was cut: the client's stream is broken
            return
        try:
            if middleware:
                response = await self._app.run_response_middleware(request, response)
        except Exception as exc:
            log.error("response middleware failed for %s", request, exc_info=exc)
            response = self._app.default_error_response(exc)
        headers = _encode_headers(response)
        status = response.status
        body = response.body
        if status < 200 or status == 204 or status == 304:
            body = b""  # these statuses never carry a body (RFC 9110 6.4.1)
        elif request.method == "HEAD" and not body and "content-length" in response.headers:
            pass  # a HEAD handler's own Content-Length tells what a GET would send
        else:
            if "content-length" in response.headers:
                headers = [h for h in headers if h[0] != b"content-length"]
            headers.append((b"content-length", b"%d" % len(body)))
        try:
            data = self._response_head(status, headers)
        except ValueError as exc:  # a header name, value or status the engine refuses
            log.error("invalid response for %s: %s", request, exc)
            # Plain 500, without the middleware that may have caused this.
            fallback = self._app.default_error_response(exc)
            await self._send_whole(request, fallback, middleware=False)
            return
        if self._engine.framing is Framing.NONE or not body:
            await self._send(data, last=True)
        else:
            if len(body) < _JOIN_BELOW:
                await self._send(data + body, last=True)
            else:
                # Written after the head, not copied into one buffer with it: a body
                # shared by many responses stays shared while slow clients take it.
                await self._send(data)
                await self._send(body, last=True)
            self._body_sent = len(body)
        self._response_done = True

    def _current(self, response: ResponseStream) -> Request:
        """The request ``response`` answers, if that exchange is still going on."""
        request = self._request
        if request is None or request.response is not response:
            # A response kept past its request (say, by a task in app.nursery): its
            # connection has moved on or closed, and may even be another client's now.
            if self.ending >= Ending.GONE:  # the client left, or the connection was aborted
                raise trio.BrokenResourceError("this response's connection is gone")
            raise trio.ClosedResourceError("this response's request is over")
        if self.ending is Ending.ABORT:
            # A send was cut short (or the response failed): writing more would put
            # bytes where the client expects the rest of the cut piece.
            raise trio.BrokenResourceError("the connection was aborted; nothing more can be sent")
        return request

    async def send_head(self, response: ResponseStream) -> None:
        """Send a streamed response's head (the :class:`ResponseSink` interface)."""
        request = self._current(response)
        await self._app.run_response_middleware(request, response)
        # Before the head counts as sent: cancelled now, the response can still start.
        await trio.lowlevel.checkpoint_if_cancelled()
        headers = _encode_headers(response)
        try:
            data = self._response_head(response.status, headers)
        except ValueError as exc:  # a header name, value or status the engine refuses
            raise ValueError(f"invalid response head: {exc}") from None
        framing = self._engine.framing
        self._body_left = (
            int(response.headers["content-length"]) if framing is Framing.LENGTH else 0
        )
        self._body_sent = 0
        await self._send(data)

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
        framing = self._engine.framing
        size = len(data)
        # Counted once written: a send cancelled before its first byte sent nothing.
        if framing is Framing.CHUNKED:
            # One buffer: copying the piece costs less than the kernel's three-part writev.
            await self._send(self._engine.chunk(data), body=True)
            self._body_sent += size
        elif framing is Framing.LENGTH:
            if size > self._body_left:
                await self._framing_error(request, "more data than its Content-Length")
            await self._send(data, body=True)
            self._body_left -= size
            self._body_sent += size
        elif framing is Framing.CLOSE:
            await self._send(data, body=True)
            self._body_sent += size
        elif request.method != "HEAD":  # a 204 or 304 has no body
            await self._framing_error(request, f"a body for status {response.status}")

    async def send_end(self, response: ResponseStream) -> None:
        """End a streamed response."""
        request = self._current(response)
        # Before the end counts as sent: cancelled now, the response is left unended, so
        # the connection closes (with a reset) instead of serving another request.
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._engine.framing is Framing.LENGTH and self._body_left:
            await self._framing_error(request, "fewer bytes than its Content-Length")
        end = self._engine.end_of_body()
        if end:
            await self._send(end)
        self._response_done = True

    async def wait_writable(self, response: ResponseStream) -> None:
        """Wait until the client can take more bytes, within WRITE_TIMEOUT.

        ``wait_send_all_might_not_block`` of a streamed response: the socket itself on
        plain TCP, else the stream's own wait (TLS, the test client's pipe).
        """
        self._current(response)
        phase, deadline = self.phase, self._scope.deadline
        self.phase, self._scope.deadline = Phase.WRITING, self._write_deadline()
        try:
            await self._transport.wait_send_all_might_not_block()
        except TransportLost:
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

    # -- switching protocols (WebSocket) -----------------------------------------------

    async def _switch(self, request: Request, response: SwitchingProtocols) -> None:
        """Answer ``101 Switching Protocols`` and hand the connection's bytes to ``response.run``.

        No HTTP request follows on this connection. The reader stops reading HTTP at its
        next read (it may be waiting for the client's first bytes): what it read after
        the head is the new protocol's, and :class:`_SwitchedStream` hands it on first.
        """
        self._end(Ending.CLOSE)
        headers = _encode_headers(response)
        headers.append((b"date", date_now()))
        data = self._engine.switching_protocols(headers)
        self._head_sent = True
        self._status = 101
        self._switched_to = response
        self._reader_stopped = trio.Event()
        self._cycle_started.set()  # a reader holding bytes after the head stops now
        await self._send(data)  # then STREAMING: no deadline but WRITE_TIMEOUT per write
        await response.run(_SwitchedStream(self))
        self._response_done = True

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
            framing = self._engine.framing
            if framing is not Framing.NONE and file_fd is not None:
                # How much to send: what the head promised, or the range, or all there
                # is (but at least what the headers' size promised: a file that shrank
                # cannot be sent as if complete).
                count = self._body_left if framing is Framing.LENGTH else response.length
                self._file_least = response.size - response.start if count is None else 0
                offset = response.start
                rest: tuple[int, int | None] | None = (offset, count)
                if framing is not Framing.CHUNKED and self._transport.can_sendfile:
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
        transport = self._transport
        while count is None or count > 0:
            await trio.lowlevel.checkpoint_if_cancelled()
            piece = _SENDFILE_PIECE if count is None else min(count, _SENDFILE_PIECE)
            try:
                sent = transport.sendfile(file_fd, offset, piece)
            except BlockingIOError:
                # The client has not taken what was sent: WRITE_TIMEOUT bounds each wait.
                self.phase, self._scope.deadline = Phase.WRITING, self._write_deadline()
                await transport.wait_writable()
                if self._scope.cancel_called:  # WRITE_TIMEOUT passed as it woke
                    await trio.lowlevel.checkpoint()
                self.phase, self._scope.deadline = Phase.STREAMING, math.inf
                continue
            except TransportLost:
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
        chunked = self._engine.framing is Framing.CHUNKED
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
        cancelled before its first byte it is simply not sent. Any other piece counts as
        sent already (a head, a final chunk, 100 Continue) or belongs to a response that
        the cancellation ends (a whole one, a file).

        Cancellation is checked before writing, never after: a send that raises
        ``Cancelled`` wrote none of its piece, or cut the response (see :meth:`_cut`).
        """
        if not last:
            await trio.lowlevel.checkpoint_if_cancelled()
        transport = self._transport
        # Try the write now (plain TCP). When the kernel takes it all (the usual case)
        # there is nothing to wait for, so no deadline to arm and no trip through the
        # scheduler.
        try:
            sent = transport.write_nowait(data)
        except TransportLost:
            await self._lost()
        size = len(data)
        if sent == size:
            if not last:  # (else the wait for the next head checkpoints)
                await self._wrote(size)
            return
        phase = self.phase
        deadline = self._scope.deadline
        self.phase = Phase.WRITING
        self._scope.deadline = self._write_deadline()
        try:
            if transport.direct:
                # Waiting here rather than in the socket's send_all, which does not say
                # how much it wrote before a cancellation.
                view = memoryview(data)
                while sent < size:
                    await transport.wait_writable()
                    sent += transport.write_nowait(view[sent:])
            else:
                await transport.send_all(data)
        except TransportLost:
            await self._lost()
        except trio.Cancelled:
            # Part of the piece is out (or may be: other streams do not say), or it
            # counts as sent: the client's stream no longer matches the framing.
            if sent or not transport.direct or not body:
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
        if self.ending is not Ending.ABORT and not self._scope.cancel_called:
            # (The connection's own timeouts, and a client gone, are logged as such.)
            log.info("%s: a send was cancelled part-way; resetting the connection", self._request)
        self._end(Ending.ABORT)

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
        if self._head_sent:
            return
        self._end(Ending.CLOSE)
        response = self._app.default_error_response(HTTPError(message, status_code=status))
        headers = _encode_headers(response)
        headers.append((b"content-length", str(len(response.body)).encode()))
        data = self._response_head(status, headers)
        if self._engine.framing is not Framing.NONE:  # (a refused HEAD: the head only)
            data += response.body
        # Outside the connection scope (it may have fired): a deadline of its own.
        with (
            trio.move_on_after(self._config.WRITE_TIMEOUT),
            contextlib.suppress(TransportLost),
        ):
            try:
                await self._transport.send_all(data)
            except trio.Cancelled:
                self._end(Ending.ABORT)  # cut short: a reset, as for every write (_cut)
                raise
            self._response_done = True

    # -- the reader task --------------------------------------------------------------

    async def _read_loop(self) -> None:
        engine = self._engine
        try:
            while True:
                try:
                    event = engine.next_event()
                except ProtocolError as exc:
                    self._protocol_error(exc)
                    return
                if type(event) is Data:
                    if not await self._push_body(event.data):
                        return
                elif event is NEED_DATA:
                    if self._body_stream is not None and not self._check_declared():
                        return
                    if self.phase is Phase.IDLE and engine.head_started:
                        # The first bytes of a head: REQUEST_TIMEOUT for the rest of it.
                        self.phase = Phase.HEAD
                        self._scope.deadline = _deadline(self._config.REQUEST_TIMEOUT)
                    if not await self._receive():
                        return
                elif type(event) is RequestHead:
                    if not self._start_request(event):
                        return
                elif event is END_OF_BODY:
                    self._end_body()
                elif event is PAUSED:
                    # A pipelined request waits: read no more until its turn.
                    await self._cycle_started.wait()
                    self._cycle_started = trio.Event()
                else:  # PEER_CLOSED, or SWITCHED: the bytes are another protocol's now
                    if event is SWITCHED:
                        assert self._reader_stopped is not None
                        self._reader_stopped.set()
                    else:
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
        if self._engine.waiting_for_continue:
            return math.inf
        return _deadline(self._read_idle_timeout)

    async def _receive(self) -> bool:
        """Read the next bytes into the engine; False when the reader must stop."""
        data = await self._read_some()
        if data is None:
            return False
        if not data:
            # EOF: in the middle of a request or between two, nobody is left to answer.
            self._client_gone()
            return False
        self._engine.receive_data(data)
        return True

    async def _read_some(self) -> bytes | None:
        """The next bytes from the client; ``b""`` when it is gone, ``None`` if it stalled.

        On plain TCP the read is tried first, and only when nothing is there does the
        reader wait for the socket: during a fast upload most reads find data, and need
        neither a trip through the scheduler nor a cancel scope.
        """
        size = self._config.REQUEST_BUFFER_SIZE
        transport = self._transport
        if not self._drained:
            # (After a read that emptied the socket, the next would most likely find
            # nothing: go straight to waiting, and save that read.)
            ready = transport.read_nowait(size)
            if ready is not None:
                self._drained = len(ready) < size
                return ready
        if self._body_send is None:
            data = await transport.receive(size)
        else:
            # A body is being read: READ_IDLE_TIMEOUT bounds the wait for its bytes.
            with trio.CancelScope(deadline=self._read_idle_deadline()) as scope:
                self._body_read_scope = scope
                data = await transport.receive(size)
            self._body_read_scope = None
            if scope.cancelled_caught:
                # No body byte for READ_IDLE_TIMEOUT: cancel the handler; 408 if it had
                # not started its response, else the connection just closes.
                log.info("request body from %s:%s stalled", *self._client)
                self._read_idle_expired = True
                if not self._timing_out:  # (else it would cut that timeout's answer)
                    self._scope.cancel()
                return None
        self._drained = len(data) < size
        return data

    def _start_request(self, head: RequestHead) -> bool:
        """Hand a request head over with its body stream; False to stop reading."""
        self._reading_head = False
        if not head.has_body:
            self._heads_send.send_nowait((head, RequestStream(None, None, None, None)))
            return True
        self._read_idle_timeout = None
        send, receive = trio.open_memory_channel[bytes](self._config.REQUEST_QUEUE_SIZE)
        stream = RequestStream(receive, head.content_length, None, self._continue)
        self._body_send, self._body_stream = send, stream
        self._body_done = trio.Event()
        self._discarded = 0
        self._heads_send.send_nowait((head, stream))
        return True

    def _check_declared(self) -> bool:
        """Whether the body the client announced so far fits the limit; False to stop."""
        stream = self._body_stream
        assert stream is not None
        declared = self._engine.declared
        stream.declared = declared
        if stream.max_size is not None and declared > stream.max_size:
            # The client announced more than the limit allows: read none of it. The
            # handler's next read raises the 413, and the connection closes.
            log.info("request body from %s:%s announced too much", *self._client)
            stream.error = stream._too_large()
            self._end(Ending.CLOSE)
            self._end_body()
            return False
        return True

    async def _push_body(self, data: bytes) -> bool:
        """Hand body bytes to the handler's channel; False when the reader must stop."""
        if self._body_stream is not None and not self._check_declared():
            return False
        size = self._config.REQUEST_BUFFER_SIZE
        if len(data) <= size:
            pieces: Any = (data,)  # the usual case: handed on as it was read, no copy
        else:
            view = memoryview(data)
            pieces = (bytes(view[i : i + size]) for i in range(0, len(data), size))
        for piece in pieces:
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
            self._end(Ending.CLOSE)
            self._end_body()
            await trio.sleep_forever()
        return True

    def _end_body(self) -> None:
        if self._body_send is not None:
            self._body_send.close()
            self._body_send = None
        self._body_stream = None
        if self._body_done is not None:
            self._body_done.set()

    async def _continue(self) -> None:
        """Send ``100 Continue`` when the handler first reads a body the client holds back."""
        engine = self._engine
        if engine.waiting_for_continue and not self._head_sent:
            await trio.lowlevel.checkpoint_if_cancelled()  # before it counts as sent
            await self._send(engine.informational_continue())
            self._set_read_idle_timeout(self._read_idle_timeout)  # the clock starts now

    def _protocol_error(self, exc: ProtocolError) -> None:
        self._end(Ending.CLOSE)
        if self._body_stream is not None:
            # Malformed body framing: the handler's next read raises a 400.
            self._body_stream.error = HTTPError(str(exc), status_code=exc.status_code)
            self._end_body()
        elif self._reading_head:
            self._reading_head = False
            self._heads_send.send_nowait(exc)

    def _client_gone(self) -> None:
        self._end(Ending.GONE)
        self._scope.cancel()


class _SwitchedStream(trio.abc.HalfCloseableStream):
    """The connection's bytes after a 101, for the protocol that took it over.

    Writes go through the connection (:meth:`Connection._send`): each waits at most
    WRITE_TIMEOUT for the client, a client gone cancels the connection, and a write cut
    short by a cancellation resets it. Reads start with what the HTTP reader had
    already read past the head; the connection closes the stream itself once
    ``run`` returns, so :meth:`aclose` leaves it open.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._size = connection._config.REQUEST_BUFFER_SIZE

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        connection = self._connection
        stopped = connection._reader_stopped
        assert stopped is not None
        if not stopped.is_set():
            await stopped.wait()
        first = connection._engine.take_buffered()
        if first:
            return first
        size = self._size if max_bytes is None else max_bytes
        data = connection._transport.read_nowait(size)
        if data is None:
            return await connection._transport.receive(size)
        await trio.lowlevel.checkpoint()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        connection = self._connection
        if connection.ending is Ending.ABORT:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("a write was cut short; the connection is reset")
        await connection._send(data, body=True)

    async def wait_send_all_might_not_block(self) -> None:
        await self._connection._transport.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._connection._transport.send_eof()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
