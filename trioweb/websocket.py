"""WebSockets (RFC 6455): the handler's ``ws``, and the handshake that takes a connection over.

The protocol is the ``websockets`` package's sans-I/O ``ServerProtocol``: bytes in,
frames out; frames in, bytes out (framing, masking, limits, permessage-deflate, the
close handshake's rules). This module is the thin Trio loop around it, as
:mod:`._connection` is around the HTTP engine:

* the **handshake** is a route handler (:class:`WebSocketEndpoint`): request middleware
  has run, the request head was parsed by the HTTP engine, and ``ServerProtocol.accept``
  checks it. A refusal is an ordinary HTTP error response; an acceptance is a
  :class:`~trioweb.response.SwitchingProtocols` response, after whose head the
  connection hands its byte stream to :meth:`WebSocket._run`.
* a **reader task** is the only code that reads the stream after the 101. It feeds the
  protocol, assembles messages (checking text as UTF-8 frame by frame) and puts them
  in a bounded memory channel: while the channel is full it does not read, so a slow
  handler slows the client down (TCP flow control) instead of filling memory.
* the **handler** runs inline, in the connection's task, inside a nursery that also
  holds the reader and the keepalive task; a connection lost without a closing
  handshake cancels that nursery, handler and children included.
* **sends** take turns, so that whole messages never interleave; every task whose turn
  it is writes whatever the protocol has queued (pongs, the close echo) before it ends.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio
from websockets.datastructures import Headers as _WireHeaders
from websockets.exceptions import InvalidHeader, InvalidOrigin, NegotiationError
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request as _WireRequest
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from ._routing import require_async
from ._turns import Turns
from .errors import BadRequest, HTTPError
from .response import HTTPResponse, SwitchingProtocols

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from ._config import Config
    from .request import Request

__all__ = ["ConnectionClosed", "MessageAssembler", "WebSocket", "WebSocketEndpoint"]

log = logging.getLogger("trioweb")

#: A message: ``str`` for a text message, ``bytes`` for a binary one.
Message = str | bytes

# The closes that end ``async for message in ws`` quietly: normal, going away, and a
# close frame without a code (what a browser's ``ws.close()`` sends).
_NORMAL_CODES = frozenset({1000, 1001, 1005})
# Close codes an endpoint may send (RFC 6455 7.4.1, the IANA registry; 3000-4999 are
# for libraries and applications).
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})
_ABNORMAL = 1006  # never on the wire: the connection was lost without a close frame


class ConnectionClosed(Exception):
    """The WebSocket is closed; ``code`` and ``reason`` say how (RFC 6455 7.4).

    ``code`` is the close code the client sent (or, when the server closed first and
    got no answer, the one the server sent): 1000 normal, 1001 going away (a browser
    leaving the page, the server shutting down), 1005 a close frame without a code,
    1006 the connection was lost without a close frame, 1002 a protocol error,
    1007 invalid UTF-8, 1009 a message over ``WEBSOCKET_MAX_SIZE``, 1011 a server error.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed with {self.code}" + (f": {self.reason}" if self.reason else "")


def _close_code_check(code: int, reason: str) -> None:
    if not (code in _SENDABLE_CODES or 3000 <= code <= 4999):
        raise ValueError(f"{code} is not a close code an endpoint may send")
    if len(reason.encode()) > 123:
        raise ValueError("a close reason is at most 123 bytes of UTF-8")


def _only_closed(exc: BaseException) -> bool:
    """Whether ``exc`` is a :class:`ConnectionClosed`, or a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(ConnectionClosed)[1] is None
    return isinstance(exc, ConnectionClosed)


class WebSocket:
    """One WebSocket connection, as its handler sees it (the ``ws`` argument).

    ``await ws.recv()`` returns the next whole message (``str`` for text, ``bytes`` for
    binary); ``async for message in ws`` does the same until the client closes
    normally. ``await ws.send(message)`` waits while the client is slow; sends from
    several tasks take turns, whole message after whole message. Once the WebSocket is
    closed, these raise :class:`ConnectionClosed`.
    """

    def __init__(self, protocol: ServerProtocol, config: Config, client: tuple[str, int]) -> None:
        self._protocol = protocol
        self._client = client
        self._buffer_size: int = config.REQUEST_BUFFER_SIZE
        self._close_timeout: float = config.WEBSOCKET_CLOSE_TIMEOUT
        self._ping_interval: float | None = config.WEBSOCKET_PING_INTERVAL
        self._ping_timeout: float | None = config.WEBSOCKET_PING_TIMEOUT
        self._incoming_send, self._incoming = trio.open_memory_channel[Message](
            config.WEBSOCKET_QUEUE_SIZE
        )
        # Sends take turns, whole messages in the order asked (the compression
        # context's order is the wire's too).
        self._turns = Turns()
        # Bytes the protocol queued while the reader fed it, for the next writer.
        self._pending: list[bytes] = []
        # Pings waiting for their pong, oldest first, by payload.
        self._pings: dict[bytes, trio.Event] = {}
        self._reader_done = trio.Event()
        # Set when the reader waited on the full queue: a pong it has not read yet
        # does not make the client dead.
        self._paused = False
        # Set once the failure of the connection (bad input) has been logged.
        self._failed = False
        self._assembler = MessageAssembler()
        self._stream: trio.abc.HalfCloseableStream | None = None
        self._nursery: trio.Nursery | None = None
        #: The subprotocol agreed in the handshake, or ``None``.
        self.subprotocol: str | None = protocol.subprotocol

    def __repr__(self) -> str:
        return f"<WebSocket {self._client[0]}:{self._client[1]} {self._protocol.state.name}>"

    # -- the handler's calls ---------------------------------------------------------

    async def recv(self) -> Message:
        """The next message: ``str`` (text) or ``bytes`` (binary).

        Raises:
          ConnectionClosed: the WebSocket is closed (its ``code`` says how).
        """
        try:
            return await self._incoming.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._closed() from None

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.recv()
        except ConnectionClosed as exc:
            if exc.code in _NORMAL_CODES:
                raise StopAsyncIteration from None
            raise

    async def send(self, message: Message) -> None:
        """Send a message: ``str`` as text, ``bytes`` as binary. Waits while the client is slow.

        Raises:
          ConnectionClosed: the WebSocket is closed, or closing.
        """
        if isinstance(message, str):
            data, text = message.encode(), True
        elif isinstance(message, bytes | bytearray | memoryview):
            data, text = bytes(message), False
        else:
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        # self._turn(), written out: this is the path every message takes.
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._turns.take()
        try:
            protocol = self._protocol
            if protocol.state is not OPEN:
                raise self._closed()
            if text:
                protocol.send_text(data)
            else:
                protocol.send_binary(data)
            await self._flush()
        finally:
            self._turns.end()

    async def ping(self, data: bytes | None = None) -> None:
        """Send a ping and wait for its pong (``data``: 4 random bytes if not given).

        Raises:
          ConnectionClosed: the WebSocket closed before the pong came.
        """
        payload = os.urandom(4) if data is None else bytes(data)
        pong = trio.Event()
        async with self._turn():
            if self._protocol.state is not OPEN:
                raise self._closed()
            if payload in self._pings:
                raise ValueError("a ping with this payload is already waiting for its pong")
            self._pings[payload] = pong
            self._protocol.send_ping(payload)
            await self._flush()
        try:
            await pong.wait()
        finally:
            # Still listed: not answered (the reader set it as the connection closed).
            unanswered = self._pings.get(payload) is pong
            if unanswered:
                del self._pings[payload]
        if unanswered:
            raise self._closed()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close: send a close frame, then wait for the client's (WEBSOCKET_CLOSE_TIMEOUT).

        Messages not received yet are dropped. Closing a closed WebSocket does nothing.
        """
        _close_code_check(code, reason)
        with trio.move_on_after(self._close_timeout):
            await self._start_close(code, reason)
            await self._reader_done.wait()

    # -- closing --------------------------------------------------------------------

    def _closed(self) -> ConnectionClosed:
        protocol = self._protocol
        close: Close | None = protocol.close_rcvd or protocol.close_sent
        if close is None:
            return ConnectionClosed(_ABNORMAL, "the connection was lost")
        return ConnectionClosed(close.code, close.reason)

    async def _start_close(self, code: int, reason: str) -> None:
        async with self._turn():
            if self._protocol.state is OPEN:
                self._protocol.send_close(code, reason)
                with contextlib.suppress(ConnectionClosed):  # lost: nothing to close
                    await self._flush()
        # Then no more messages for the handler (its recv raises, which may cancel this
        # task: the close frame is out already); a reader waiting on the full queue goes
        # on, dropping what comes, so that it reads the client's close frame.
        self._incoming.close()

    def _going_away(self) -> None:
        """The server is shutting down: close with 1001 (``SwitchingProtocols.shutdown``)."""
        if self._nursery is not None:
            self._nursery.start_soon(self._start_close, 1001, "the server is shutting down")

    def _lost(self) -> None:
        """The connection is gone without a close frame: cancel the handler."""
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # -- writing --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._turns.take()
        try:
            yield
        finally:
            self._turns.end()

    def _queued(self) -> list[bytes]:
        chunks = self._protocol.data_to_send()
        if self._pending:
            chunks, self._pending = self._pending + chunks, []
        return chunks

    async def _flush(self) -> None:
        """Write what the protocol has queued (during a turn)."""
        stream = self._stream
        assert stream is not None
        while chunks := self._queued():
            # SEND_EOF (b"") comes last, after a close: the server half-closes first.
            data = b"".join(chunks)
            try:
                if data:
                    await stream.send_all(data)
                if not chunks[-1]:
                    await stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._lost()
                raise self._closed() from None

    async def _flush_from_reader(self) -> None:
        """Write what feeding the protocol queued (pongs, the close echo), if anything."""
        pending = self._pending
        pending += self._protocol.data_to_send()
        if not pending:
            return
        if self._turns.busy and sum(map(len, pending)) <= self._buffer_size:
            return  # the task whose turn it is writes these bytes too before it ends
        # Free, or too much waiting (pings flooding in while a send is stuck on a client
        # that does not read): wait for the turn, and read nothing meanwhile.
        async with self._turn():
            await self._flush()

    # -- the reader task --------------------------------------------------------------

    async def _read_loop(self) -> None:
        protocol = self._protocol
        stream = self._stream
        assert stream is not None
        try:
            while True:
                data = await stream.receive_some(self._buffer_size)
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                messages = self._messages(protocol.events_received())
                exc = protocol.parser_exc
                if exc is not None and not self._failed and not isinstance(exc, EOFError):
                    self._fail_logged(exc)
                await self._flush_from_reader()
                for message in messages:
                    await self._deliver(message)
                if not data or protocol.eof_sent:
                    # The end of the stream; or both close frames went by, or the server
                    # failed the connection: RFC 6455 7.1.1, the server closes the TCP
                    # connection now, without waiting for the client's end (which a TLS
                    # stream, unable to half-close, would never see first).
                    break
        finally:
            self._reader_done.set()
            self._incoming_send.close()  # recv raises ConnectionClosed after the queue
            for pong in self._pings.values():
                pong.set()  # ping() sees no answer, and raises
        if protocol.close_rcvd is None and protocol.close_sent is None:
            log.debug("WebSocket from %s:%s lost without a close frame", *self._client)
            self._lost()

    def _messages(self, frames: Sequence[Any]) -> list[Message]:
        """The whole messages in ``frames``; pongs answer their pings as they come."""
        messages: list[Message] = []
        for frame in frames:
            if frame.opcode is Opcode.PONG:
                self._pong(bytes(frame.data))
                continue
            try:
                message = self._assembler.feed(frame)
            except UnicodeDecodeError as exc:
                # RFC 6455 8.1: fail at once (a split code point waits for its rest).
                if self._protocol.state is OPEN:
                    self._protocol.fail(1007, "invalid UTF-8 in a text message")
                self._fail_logged(exc)
                break
            if message is not None:
                messages.append(message)
        return messages

    def _fail_logged(self, exc: Exception) -> None:
        """Log, once, why the server failed the connection (bad input: a quiet line)."""
        self._failed = True
        sent = self._protocol.close_sent
        code = sent.code if sent is not None else _ABNORMAL
        log.info("WebSocket from %s:%s failed (closing with %d): %s", *self._client, code, exc)

    def _pong(self, payload: bytes) -> None:
        """A pong answers its ping and every ping sent before it (RFC 6455 5.5.3)."""
        if payload not in self._pings:
            return  # unsolicited: allowed, and ignored
        while self._pings:
            sent, pong = next(iter(self._pings.items()))
            del self._pings[sent]
            pong.set()
            if sent == payload:
                break

    async def _deliver(self, message: Message) -> None:
        # Broken: the handler closed the WebSocket, and takes no more messages.
        with contextlib.suppress(trio.BrokenResourceError):
            try:
                self._incoming_send.send_nowait(message)
            except trio.WouldBlock:
                # The queue is full: the socket is not read until the handler catches up.
                self._paused = True
                await self._incoming_send.send(message)

    # -- liveness ---------------------------------------------------------------------

    async def _keepalive(self) -> None:
        """Ping every WEBSOCKET_PING_INTERVAL; a pong missing for WEBSOCKET_PING_TIMEOUT
        means the client is gone (unless the reader was held up by the full queue)."""
        interval, timeout = self._ping_interval, self._ping_timeout
        if interval is None:
            return
        while True:
            await trio.sleep(interval)
            self._paused = False
            with trio.move_on_after(timeout if timeout is not None else float("inf")) as waited:
                try:
                    await self.ping()
                except ConnectionClosed:
                    return
            if waited.cancelled_caught and not self._paused:
                log.info(
                    "WebSocket from %s:%s: no pong within WEBSOCKET_PING_TIMEOUT; closing",
                    *self._client,
                )
                if self._protocol.state is OPEN:
                    self._protocol.fail(1011, "keepalive ping timeout")
                if not self._turns.busy:
                    with trio.move_on_after(self._close_timeout):
                        async with self._turn():
                            await self._flush()
                self._lost()
                return

    # -- the session ------------------------------------------------------------------

    async def _run(
        self,
        handler: Callable[..., Awaitable[Any]],
        request: Request,
        params: dict[str, Any],
        stream: trio.abc.HalfCloseableStream,
    ) -> None:
        """Serve the WebSocket on ``stream`` until the handler is done and it is closed.

        The handler returning closes with 1000, an exception with 1011 (logged once).
        """
        self._stream = stream
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._read_loop)
                nursery.start_soon(self._keepalive)
                code = 1000
                try:
                    await handler(request, self, **params)
                except Exception as exc:
                    if not _only_closed(exc):
                        log.error("%s: the WebSocket handler failed", request, exc_info=exc)
                        code = 1011
                finally:
                    # From here on the nursery may close: a shutdown or a lost connection
                    # has nothing left to do (the close below is under way).
                    self._nursery = None
                # Close (unless it is already), and wait for the client's close frame,
                # for WEBSOCKET_CLOSE_TIMEOUT at most.
                with trio.move_on_after(self._close_timeout) as waited:
                    await self._start_close(code, "")
                    await self._reader_done.wait()
                if waited.cancelled_caught:
                    log.debug("WebSocket from %s:%s: no close frame in time", *self._client)
                nursery.cancel_scope.cancel()
        except Exception as exc:
            # The connection was lost, and the handler's tasks were told so as they
            # were cancelled: nothing to report.
            if not _only_closed(exc):
                raise


class MessageAssembler:
    """Whole messages from data frames, text checked as UTF-8 frame by frame.

    A text message split over frames is decoded as its frames come, so invalid UTF-8
    fails at the frame that holds it, and a code point split between two frames waits
    for its rest. Used by the server and by the test client alike.
    """

    def __init__(self) -> None:
        # The fragments so far, in one buffer (a list of many tiny pieces would cost
        # far more than their bytes); text is also checked as it comes.
        self._buffer = bytearray()
        self._text: codecs.IncrementalDecoder | None = None

    def feed(self, frame: Frame) -> Message | None:
        """The message ``frame`` completes, or ``None`` (a fragment, a control frame).

        Raises ``UnicodeDecodeError`` for text that is not UTF-8.
        """
        opcode = frame.opcode
        if opcode is Opcode.TEXT:
            if frame.fin:  # the usual case: one frame, one message
                return bytes(frame.data).decode()
            self._text = codecs.getincrementaldecoder("utf-8")()
        elif opcode is Opcode.BINARY:
            if frame.fin:
                return bytes(frame.data)
            self._text = None
        elif opcode is not Opcode.CONT:
            return None
        text = self._text
        if text is not None:
            text.decode(frame.data, frame.fin)  # raises at the first invalid byte
        self._buffer += frame.data
        if not frame.fin:
            return None
        data = bytes(self._buffer)
        self._buffer.clear()
        return data.decode() if text is not None else data


class WebSocketEndpoint:
    """The route handler of a WebSocket route: the handshake, then the 101.

    Made by ``app.websocket(...)``; request middleware has run by the time it is
    called. A request without ``Upgrade: websocket`` gets a 426; a handshake that
    ``websockets`` refuses gets its status (400, 403 for an origin not allowed...).
    """

    def __init__(
        self, handler: Callable[..., Awaitable[Any]], subprotocols: Sequence[str] | None
    ) -> None:
        require_async(handler, "WebSocket handler")
        self.handler = handler
        self.subprotocols = [Subprotocol(each) for each in subprotocols or ()]
        functools.update_wrapper(self, handler)  # its name, for routes and url_for

    async def __call__(self, request: Request, **params: Any) -> HTTPResponse:
        config = request.app.config
        headers = request.headers
        upgrade = ",".join(headers.getall("upgrade")).lower()
        if "websocket" not in (token.strip() for token in upgrade.split(",")):
            # RFC 9110 15.5.22: a 426 names the protocol to upgrade to.
            raise HTTPError(
                "this is a WebSocket endpoint: ask with Upgrade: websocket",
                status_code=426,
                headers={"upgrade": "websocket", "connection": "upgrade"},
            )
        if request.method != "GET":  # a HEAD, answered by GET routes
            raise HTTPError(
                "a WebSocket handshake is a GET", status_code=405, headers={"allow": "GET"}
            )
        if request.version != "1.1":  # RFC 6455 4.1: HTTP/1.1 or later
            raise HTTPError("a WebSocket handshake needs HTTP/1.1", status_code=505)
        if request.content_length or "transfer-encoding" in headers:
            raise BadRequest("a WebSocket handshake has no body")
        versions = headers.getall("sec-websocket-version")
        if versions != ["13"]:
            # RFC 6455 4.4: a version the server does not speak gets a 426 naming its own.
            log.info(
                "WebSocket handshake from %s:%s refused: %s", *request.client, "not version 13"
            )
            raise HTTPError(
                "only WebSocket version 13 is supported",
                status_code=426 if versions else 400,
                headers={"sec-websocket-version": "13"},
            )
        extensions = enable_server_permessage_deflate(None) if config.WEBSOCKET_COMPRESSION else []
        protocol = ServerProtocol(
            origins=config.WEBSOCKET_ORIGINS,
            extensions=extensions,
            subprotocols=self.subprotocols or None,
            # The HTTP engine read the head: the protocol starts with the frames.
            state=OPEN,
            max_size=config.WEBSOCKET_MAX_SIZE,
        )
        answer = protocol.accept(_WireRequest(request.raw_path, _WireHeaders(headers.items())))
        if answer.status_code != 101:
            problem = _refusal(protocol.handshake_exc)
            log.info("WebSocket handshake from %s:%s refused: %s", *request.client, problem)
            raise HTTPError(problem, status_code=answer.status_code)
        ws = WebSocket(protocol, config, request.client)
        return SwitchingProtocols(
            [
                (name.lower(), value)
                for name, value in answer.headers.raw_items()
                if name != "Date"
            ],
            functools.partial(ws._run, self.handler, request, params),
            ws._going_away,
        )


def _refusal(exc: Exception | None) -> str:
    """Why a handshake was refused, in words that never echo the client's bytes."""
    if isinstance(exc, InvalidOrigin):
        return "this Origin may not open a WebSocket here"
    if isinstance(exc, InvalidHeader):
        return f"missing or invalid {exc.name} header"
    if isinstance(exc, NegotiationError):
        return "no subprotocol in common with the client"
    return "invalid WebSocket handshake"
