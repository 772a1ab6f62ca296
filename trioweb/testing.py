"""Testing without sockets: an httpx client served over in-memory Trio streams.

``TestClient(app)`` runs the app's whole server life (listeners, ``app.nursery``,
graceful shutdown) with the same connection code as real sockets; only the byte pipe is
different. The pipe has bounded buffers, like a socket's, so backpressure and slow
clients behave in tests as they do on the network.
"""

from __future__ import annotations

import collections
import math
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import trio

try:
    import httpcore
    import httpx
except ModuleNotFoundError as exc:  # the test extra is not installed
    raise ModuleNotFoundError(
        "trioweb.testing needs httpx (and its httpcore), from trioweb's test extra:"
        " pip install 'trioweb[test]'",
        name=exc.name,
    ) from exc

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response as _WireResponse
from websockets.protocol import CLOSED, OPEN
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from ._server import Server, serve_listeners
from ._streams import checked_max_bytes
from .websocket import ConnectionClosed, Message, MessageAssembler

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    import ssl

    from ._app import App

__all__ = ["TestClient", "WebSocketRejected", "WebSocketTestSession", "memory_pipe_pair"]


class _Buffer:
    """Bytes in flight one way, at most ``limit`` of them (0: hand-over, no buffer)."""

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit
        self.eof = False
        self.reader_closed = False
        self.receiver_waiting = False
        self.lot = trio.lowlevel.ParkingLot()

    def room(self) -> int:
        if self.limit == 0:
            # Hand-over: a reader waiting on the empty pipe takes a whole send at once.
            return sys.maxsize if self.receiver_waiting and not self.data else 0
        return self.limit - len(self.data)


class _PipeStream(trio.abc.HalfCloseableStream):
    """One end of an in-memory, bounded, full-duplex byte pipe.

    Follows Trio's stream contract (checked with ``trio.testing``'s stream checks):
    ``BusyResourceError`` for concurrent calls, ``ClosedResourceError`` after this end
    closed, ``BrokenResourceError`` once the other end stopped reading.
    """

    def __init__(self, incoming: _Buffer, outgoing: _Buffer) -> None:
        self._in = incoming
        self._out = outgoing
        self._closed = False
        self._sending = False
        self._receiving = False

    def _check_send(self) -> None:
        if self._closed or self._out.eof:
            raise trio.ClosedResourceError("this end was closed for sending")
        if self._out.reader_closed:
            raise trio.BrokenResourceError("the other end was closed")

    def _claim_send(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._claim_send()
        try:
            await trio.lowlevel.checkpoint()
            self._check_send()
            view = memoryview(data)
            out = self._out
            while view:
                self._check_send()
                room = out.room()
                if room <= 0:
                    await out.lot.park()
                    continue
                out.data += view[:room]
                view = view[room:]
                out.lot.unpark_all()
            # A hand-over pipe holds nothing once send_all returns: the reader took it.
            while out.limit == 0 and out.data:
                await out.lot.park()
                self._check_send()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        self._claim_send()
        try:
            await trio.lowlevel.checkpoint()
            self._check_send()
            while self._out.room() <= 0:
                await self._out.lot.park()
                self._check_send()
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        self._claim_send()
        try:
            await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("this end was closed")
            self._out.eof = True
            self._out.lot.unpark_all()
        finally:
            self._sending = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        max_bytes = checked_max_bytes(max_bytes)
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint()
            incoming = self._in
            while not incoming.data:
                if self._closed:
                    raise trio.ClosedResourceError("this end was closed")
                if incoming.eof:
                    return b""
                incoming.receiver_waiting = True
                incoming.lot.unpark_all()  # a hand-over sender may go ahead now
                try:
                    await incoming.lot.park()
                finally:
                    incoming.receiver_waiting = False
            if self._closed:
                raise trio.ClosedResourceError("this end was closed")
            size = len(incoming.data) if max_bytes is None else max_bytes
            chunk = bytes(incoming.data[:size])
            del incoming.data[: len(chunk)]
            incoming.lot.unpark_all()
            return chunk
        finally:
            self._receiving = False

    def readable(self) -> bool:
        """Whether ``receive_some()`` would return at once: data or the end is waiting."""
        return bool(self._in.data) or self._in.eof

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.eof = True
            self._in.reader_closed = True
            self._in.data.clear()
            self._out.lot.unpark_all()
            self._in.lot.unpark_all()
        await trio.lowlevel.checkpoint()


def memory_pipe_pair(
    buffer_size: int = 65536,
) -> tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]:
    """Two connected in-memory Trio streams: what one sends, the other receives.

    The pipe under :class:`TestClient`, for testing code of your own that reads or
    writes Trio streams. Each direction holds at most ``buffer_size`` bytes, and a
    sender waits while it is full, as on a socket. With ``buffer_size=0`` nothing is
    buffered: ``send_all`` waits for a reader, hands it the whole piece, and returns
    once the reader has taken all of it. Both ends follow Trio's stream contract, as
    checked by ``trio.testing.check_half_closeable_stream``: ``trio.BusyResourceError`` for two
    tasks sending (or receiving) at once, ``trio.ClosedResourceError`` after this end
    was closed, ``trio.BrokenResourceError`` once the other end has closed, and
    ``send_eof()`` to end one direction.

    Args:
      buffer_size: the most bytes in flight in each direction.

    Returns:
      The two ends, ``(a, b)``: ``a.send_all()`` reaches ``b.receive_some()``, and the
      other way round.
    """
    return _pipe_pair(buffer_size)


def _pipe_pair(buffer_size: int) -> tuple[_PipeStream, _PipeStream]:
    one, two = _Buffer(buffer_size), _Buffer(buffer_size)
    return _PipeStream(one, two), _PipeStream(two, one)


class _MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose connections come from :meth:`connect`, not from a socket."""

    def __init__(self, buffer_size: int) -> None:
        self._buffer_size = buffer_size
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](math.inf)

    async def accept(self) -> trio.abc.Stream:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("listener closed") from None

    async def aclose(self) -> None:
        # Connections made but never accepted: close them, so their clients see EOF.
        while True:
            try:
                stream = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            await trio.aclose_forcefully(stream)
        self._receive.close()
        await trio.lowlevel.checkpoint()

    def connect(self) -> _PipeStream:
        client, server = _pipe_pair(self._buffer_size)
        try:
            self._send.send_nowait(server)
        except trio.BrokenResourceError:
            raise httpx.ConnectError("the test server is not accepting connections") from None
        return client


class _NetworkStream(httpcore.AsyncNetworkStream):
    """httpcore's side of one in-memory connection.

    httpx's ``timeout=`` is ignored here on purpose: a test bounds its waits with
    ``trio.fail_after()``, which also holds under ``autojump_clock``.
    """

    def __init__(self, stream: _PipeStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await self._stream.receive_some(max_bytes)
        except trio.ClosedResourceError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            await self._stream.send_all(buffer)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError(
            "TestClient's connections are plain HTTP: use an http:// URL"
            " (to test TLS, serve the app on a loopback port)"
        )

    def get_extra_info(self, info: str) -> Any:
        # The pool asks before reusing an idle connection: readable means the server
        # closed it (or sent something unasked), so a new connection is opened instead.
        return self._stream.readable() if info == "is_readable" else None


class _NetworkBackend(httpcore.AsyncNetworkBackend):
    """Every connection httpcore opens, whatever its address, goes to the app."""

    def __init__(self, listener: _MemoryListener) -> None:
        self._listener = listener

    async def _connect(self) -> httpcore.AsyncNetworkStream:
        await trio.lowlevel.checkpoint()
        return _NetworkStream(self._listener.connect())

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._connect()

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._connect()

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


#: httpcore's errors and httpx's own for them, as httpx's transport maps them.
_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except tuple(_ERRORS) as exc:
        # The most specific match: the first of the error's classes in the table.
        mapped = next(_ERRORS[kind] for kind in type(exc).__mro__ if kind in _ERRORS)
        raise mapped(str(exc)) from exc


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for chunk in self._response.aiter_stream():
                yield chunk

    async def aclose(self) -> None:
        with _httpx_errors():
            await self._response.aclose()


class _Transport(httpx.AsyncBaseTransport):
    """httpx over httpcore's HTTP/1.1 connection pool, over in-memory connections."""

    def __init__(self, listener: _MemoryListener) -> None:
        # No limit and no expiry: connections are free here, and an expiry would run
        # on the real clock, not Trio's. Idle ones are closed by the server's
        # KEEP_ALIVE_TIMEOUT, which the pool notices (is_readable) before reusing one.
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=None, network_backend=_NetworkBackend(listener)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            # Without "timeout": see _NetworkStream.
            extensions={k: v for k, v in request.extensions.items() if k != "timeout"},
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseBody(response),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        with _httpx_errors():
            await self._pool.aclose()


class TestClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` talking to ``app`` over in-memory streams.

    ``async with TestClient(app) as client:`` starts the app's server life (its
    listeners run, ``app.nursery`` exists) and stops it gracefully on exit. Requests go
    through httpcore's HTTP/1.1 connection pool, over in-memory connections kept alive
    between requests; ``client.raw()`` opens one for raw bytes.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: App,
        *,
        base_url: str = "http://testserver",
        buffer_size: int = 65536,
        **kwargs: Any,
    ) -> None:
        self._listener = _MemoryListener(buffer_size)
        super().__init__(transport=_Transport(self._listener), base_url=base_url, **kwargs)
        self.app = app
        self._stack = AsyncExitStack()
        self._stopped = trio.Event()
        self.server: Server | None = None

    async def __aenter__(self) -> TestClient:
        async with AsyncExitStack() as stack:
            # If the server fails to start, the stack closes the nursery on the way out.
            self._nursery = await stack.enter_async_context(trio.open_nursery())
            self.server = await self._nursery.start(self._run_server)
            await super().__aenter__()
            self._stack = stack.pop_all()
        return self

    async def _run_server(self, task_status: trio.TaskStatus[Server]) -> None:
        try:
            await serve_listeners(
                self.app, [self._listener], handle_signals=False, task_status=task_status
            )
        finally:
            self._stopped.set()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        try:
            await self._stop(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The nursery wraps the block's own error. Alone in the group, it comes out
            # as itself (returning lets the with statement re-raise it untouched); with
            # any other error beside it (the server failed too), the group stays whole.
            if exc is None or group.split(lambda inner: inner is exc)[1] is not None:
                raise

    async def _stop(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
            assert self.server is not None
            self.server.shutdown()
            await self._stopped.wait()
            self._nursery.cancel_scope.cancel()
        finally:
            await self._stack.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def websocket_connect(
        self,
        url: str,
        subprotocols: Sequence[str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[WebSocketTestSession]:
        """Open a WebSocket to the app at ``url`` (a path, with its query) over a new
        in-memory connection; it is closed (1000) when the block exits.

        ``async with client.websocket_connect("/ws") as ws:`` then ``await ws.send("hi")``
        and ``await ws.recv()``. ``subprotocols``: the ones the client offers;
        ``headers``: added to the handshake (an ``Origin``, a cookie). A handshake the
        server answers with anything but a 101 raises :class:`WebSocketRejected`.
        """
        stream = self._listener.connect()
        try:
            protocol = ClientProtocol(
                parse_uri(f"ws://testserver{url}"),
                subprotocols=[Subprotocol(each) for each in subprotocols or ()] or None,
                max_size=None,  # the test sees whatever the server sends
            )
            request = protocol.connect()
            for name, value in (headers or {}).items():
                request.headers[name] = value
            protocol.send_request(request)
            await stream.send_all(b"".join(protocol.data_to_send()))
            response: _WireResponse | None = None
            frames: list[Any] = []
            while response is None:
                data = await stream.receive_some(65536)
                if not data:
                    raise httpx.RemoteProtocolError(
                        "the server closed during the WebSocket handshake"
                    )
                protocol.receive_data(data)
                for event in protocol.events_received():
                    if isinstance(event, _WireResponse):
                        response = event
                    else:
                        frames.append(event)
            if response.status_code != 101 or protocol.handshake_exc is not None:
                raise WebSocketRejected(
                    httpx.Response(
                        response.status_code,
                        headers=list(response.headers.raw_items()),
                        content=bytes(response.body or b""),
                    )
                )
            ws = WebSocketTestSession(protocol, stream)
            ws._take(frames)  # frames that came with the 101 (a ping to answer, say)
            await ws._write()
            yield ws
            await ws.close()
        finally:
            await stream.aclose()

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[trio.abc.Stream]:
        """A new connection to the app, as a Trio stream of raw bytes."""
        stream = self._listener.connect()
        try:
            yield stream
        finally:
            await stream.aclose()


class WebSocketRejected(Exception):
    """The server answered a WebSocket handshake with an HTTP response, not a 101.

    ``response`` is that response, as an ``httpx.Response``.
    """

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"the WebSocket handshake was refused with {response.status_code}")
        self.response = response


class WebSocketTestSession:
    """The client's side of a WebSocket opened with ``client.websocket_connect()``.

    ``send()``, ``recv()``, ``close()``, ``ping()`` and ``async for`` behave as on the
    server's ``ws``, and raise :class:`~trioweb.websocket.ConnectionClosed` once it is
    closed. It reads only while a call waits for the server (``recv``, ``close``,
    ``ping``), answering the server's pings meanwhile: a test that stops calling
    ``recv()`` is a client that stopped reading, as far as the server can tell.
    """

    def __init__(self, protocol: ClientProtocol, stream: _PipeStream) -> None:
        self._protocol = protocol
        self._stream = stream
        self._assembler = MessageAssembler()
        self._messages: collections.deque[Message] = collections.deque()
        self._pongs: set[bytes] = set()
        #: The subprotocol the server chose, or ``None``.
        self.subprotocol: str | None = protocol.subprotocol

    async def send(self, message: Message) -> None:
        """Send ``str`` as a text message, ``bytes`` as a binary one."""
        await trio.lowlevel.checkpoint()
        if self._protocol.state is not OPEN:
            raise self._closed()
        if isinstance(message, str):
            self._protocol.send_text(message.encode())
        else:
            self._protocol.send_binary(bytes(message))
        await self._write()

    async def recv(self) -> Message:
        """The next message from the server: ``str`` (text) or ``bytes`` (binary)."""
        while not self._messages:
            if self._protocol.close_rcvd is not None or self._protocol.state is CLOSED:
                await trio.lowlevel.checkpoint()
                raise self._closed()
            await self._read()
        await trio.lowlevel.checkpoint()
        return self._messages.popleft()

    def __aiter__(self) -> WebSocketTestSession:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.recv()
        except ConnectionClosed as exc:
            if exc.code in (1000, 1001, 1005):
                raise StopAsyncIteration from None
            raise

    async def ping(self, data: bytes = b"ping") -> None:
        """Send a ping and read until its pong (messages that come first are kept)."""
        self._protocol.send_ping(data)
        await self._write()
        while data not in self._pongs:
            if self._protocol.state is CLOSED:
                raise self._closed()
            await self._read()
        self._pongs.discard(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close, and read until the server ends the connection (messages are dropped)."""
        if self._protocol.state is OPEN:
            self._protocol.send_close(code, reason)
            await self._write()
        while self._protocol.state is not CLOSED:
            await self._read()
        self._messages.clear()

    def _closed(self) -> ConnectionClosed:
        close = self._protocol.close_rcvd or self._protocol.close_sent
        if close is None:
            return ConnectionClosed(1006, "the connection was lost")
        return ConnectionClosed(close.code, close.reason)

    async def _write(self) -> None:
        chunks = self._protocol.data_to_send()
        try:
            if any(chunks):
                await self._stream.send_all(b"".join(chunks))
            if chunks and not chunks[-1]:
                await self._stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the server is gone: the next read says so

    async def _read(self) -> None:
        try:
            data = await self._stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            self._protocol.receive_data(data)
        else:
            self._protocol.receive_eof()
        self._take(self._protocol.events_received())
        await self._write()

    def _take(self, frames: list[Any]) -> None:
        for frame in frames:
            if frame.opcode is Opcode.PONG:
                self._pongs.add(bytes(frame.data))
                continue
            try:
                message = self._assembler.feed(frame)
            except UnicodeDecodeError:
                self._protocol.fail(1007, "invalid UTF-8 in a text message")
                return
            if message is not None:
                self._messages.append(message)
