"""Bodies as Trio streams (issue 18): ``request.stream`` is a ``trio.abc.ReceiveStream``,
the ``request.respond()`` stream a ``trio.abc.SendStream``; and sending on a finished
response raises ``trio.ClosedResourceError`` (issue 10, defect 7).
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import h11
import pytest
import trio
import trio.testing
from _helpers import DEADLINE, SERVER_DEADLINE, RawClient, serving

from trioweb import App, Request
from trioweb.errors import HTTPError
from trioweb.request import RequestStream
from trioweb.response import HTTPResponse, ResponseStream, empty, text
from trioweb.testing import TestClient


def get(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode()


async def test_send_on_a_finished_response_raises_closed_resource_error() -> None:
    # Issue 10, defect 7: API.md documents trio.ClosedResourceError, not RuntimeError.
    app = App("finished")
    errors: list[str] = []
    done = trio.Event()

    @app.get("/")
    async def index(request: Request) -> None:
        resp = await request.respond()
        await resp.send(b"whole")
        await resp.eof()
        for late in (lambda: resp.send(b"late"), lambda: resp.write("late"), resp.eof):
            try:
                await late()
            except trio.ClosedResourceError:
                errors.append("closed")
        done.set()

    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(get("/"))
        response = await raw.read_response()
        with trio.fail_after(DEADLINE):
            await done.wait()  # (leaving first would cancel the handler)
    assert (response.status, response.body) == (200, b"whole")
    assert errors == ["closed", "closed"]


# -- Trio's generic stream checks, over a real connection ------------------------------
#
# trio.testing.check_one_way_stream drives a connected (SendStream, ReceiveStream) pair.
# Each side under test gets its peer from the client end of a real connection, served
# by the real connection code (in memory and over loopback TCP):
#
# * the response: (the handler's ResponseStream, the client's reader of its body);
# * the request body: (the client's writer of a chunked body, the handler's
#   request.stream).
#
# The handler hands its stream over to the test, which then calls it from its own task.
# What does not fit, and why:
#
# * The clogged checks (a pair whose sender blocks until the receiver reads) run for the
#   response over a hand-over pipe (TestClient(buffer_size=0)). For the request body
#   they would exercise only the test's client-side writer: the body's own sender is
#   the connection, and there the channel, h11's buffer and the socket all hold bytes.
# * A request body closed by its reader is discarded by the connection (keep-alive
#   draining); the client sees a broken connection only once the server has answered.
#   So the handler here answers as soon as its stream is complete (ended or closed),
#   which the check's "closing the receiver breaks the sender, eventually" needs.

_REQUEST_HEAD = b"POST /request HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"


def pair_app(handed: trio.MemorySendChannel[object]) -> App:
    """Routes that hand their streams over to the test: a response, a request body."""
    app = App("pairs")
    app.config.REQUEST_MAX_SIZE = 4096  # (the most the connection drains after a close)

    @app.get("/response")
    async def response(request: Request) -> None:
        handed.send_nowait(await request.respond())
        await trio.sleep_forever()  # until the client leaves

    @app.post("/request", stream=True, response_timeout=None)
    async def body(request: Request) -> HTTPResponse:
        handed.send_nowait(request.stream)
        while not request.stream.complete:  # noqa: ASYNC110 (the test does the reading)
            await trio.sleep(0.005)
        return empty()

    return app


class ResponseBodyReader(trio.abc.ReceiveStream):
    """The client's end of a streamed response: its body, decoded with h11."""

    def __init__(self, stream: trio.abc.Stream, method: bytes = b"GET") -> None:
        self._stream = stream
        self._conn = h11.Connection(h11.CLIENT)
        self.request = self._conn.send(
            h11.Request(method=method, target="/response", headers=[("host", "test")])
        )
        self.request += self._conn.send(h11.EndOfMessage())
        self.response: h11.Response | None = None
        self._buffer = b""
        self._ended = False
        self._closed = False
        self._receiving = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError("max_bytes must be at least 1")
        if self._receiving:
            raise trio.BusyResourceError("already receiving")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("closed")
            while not self._buffer and not self._ended:
                await self._next_event()
            size = len(self._buffer) if max_bytes is None else max_bytes
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        finally:
            self._receiving = False

    async def _next_event(self) -> None:
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as exc:  # cut off mid-body
            raise trio.BrokenResourceError(str(exc)) from None
        if event is h11.NEED_DATA:
            try:
                data = await self._stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            self._conn.receive_data(bytes(data))
        elif type(event) is h11.Response:
            self.response = event
        elif type(event) is h11.Data:
            self._buffer += event.data
        elif type(event) is h11.EndOfMessage:
            self._ended = True
        else:
            raise trio.BrokenResourceError(f"unexpected {event!r}")

    async def aclose(self) -> None:
        self._closed = True
        await self._stream.aclose()


class ChunkedBodyWriter(trio.abc.SendStream):
    """The client's end of a chunked request body; closing it ends the body."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("closed")
        if data:
            await self._stream.send_all(b"%x\r\n%b\r\n" % (len(data), bytes(data)))
        else:
            await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("closed")
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            await self._stream.send_all(b"0\r\n\r\n")  # (cancelled: the body is cut off)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await self._stream.aclose()


@dataclass
class Pairs:
    """Makes stream pairs over new connections to a served :func:`pair_app`."""

    connect: Callable[[], Awaitable[trio.abc.Stream]]
    handed: trio.MemoryReceiveChannel[object]

    async def response(self) -> tuple[ResponseStream, ResponseBodyReader]:
        stream = await self.connect()
        reader = ResponseBodyReader(stream)
        await stream.send_all(reader.request)
        with trio.fail_after(DEADLINE):
            response = await self.handed.receive()
        assert isinstance(response, ResponseStream)
        return response, reader

    async def request(self) -> tuple[ChunkedBodyWriter, RequestStream]:
        stream = await self.connect()
        await stream.send_all(_REQUEST_HEAD)
        with trio.fail_after(DEADLINE):
            body = await self.handed.receive()
        assert isinstance(body, RequestStream)
        return ChunkedBodyWriter(stream), body


@asynccontextmanager
async def pairs(transport: str, buffer_size: int | None = None) -> AsyncIterator[Pairs]:
    """:class:`Pairs` for ``transport``; a ``buffer_size`` makes it an in-memory one."""
    send, receive = trio.open_memory_channel[object](math.inf)
    app = pair_app(send)
    async with AsyncExitStack() as stack:
        if buffer_size is None:
            served = await stack.enter_async_context(serving(app, transport))
            open_connection = served.connect
        else:
            client = await stack.enter_async_context(TestClient(app, buffer_size=buffer_size))
            open_connection = client.raw

        async def connect() -> trio.abc.Stream:
            opened = await stack.enter_async_context(open_connection())
            return opened.stream if isinstance(opened, RawClient) else opened

        yield Pairs(connect, receive)


async def test_the_response_passes_trios_one_way_stream_checks(transport: str) -> None:
    async with AsyncExitStack() as stack:
        normal = await stack.enter_async_context(pairs(transport))
        # Clogged: a hand-over pipe, where a send waits until the client reads.
        clogged = await stack.enter_async_context(pairs("memory", buffer_size=0))
        with trio.fail_after(SERVER_DEADLINE):
            await trio.testing.check_one_way_stream(
                normal.response, clogged.response if transport == "memory" else None
            )


async def test_the_request_body_passes_trios_one_way_stream_checks(transport: str) -> None:
    async with pairs(transport) as made:
        with trio.fail_after(SERVER_DEADLINE):
            await trio.testing.check_one_way_stream(made.request, None)


# -- request.stream: edge cases ---------------------------------------------------------


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    """A POST with a Content-Length body, head and body in one piece."""
    head = b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n%s\r\n"
    return head % (path.encode(), len(body), extra) + body


async def test_request_stream_and_response_are_trio_streams() -> None:
    app = App("abc")
    seen: list[bool] = []

    @app.post("/", stream=True)
    async def index(request: Request) -> None:
        seen.append(isinstance(request.stream, trio.abc.ReceiveStream))
        async with request.respond() as resp:
            seen.append(isinstance(resp, trio.abc.SendStream))

    async with TestClient(app) as client:
        assert (await client.post("/", content=b"x")).status_code == 200
    assert seen == [True, True]


async def test_receive_some_keeps_the_rest_of_a_chunk_for_the_next_read() -> None:
    app = App("partial")
    pieces: list[bytes | None] = []

    @app.post("/", stream=True)
    async def index(request: Request) -> HTTPResponse:
        stream = request.stream
        pieces.extend([await stream.receive_some(3), await stream.receive_some(3)])
        pieces.append(await stream.read())  # Sanic's read() goes on where it stopped
        pieces.extend([await stream.receive_some(5), await stream.receive_some()])
        pieces.append(await stream.read())
        return empty()

    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(post("/", b"abcdefghij"))  # one read, one chunk for the handler
        assert (await raw.read_response()).status == 204
    assert pieces == [b"abc", b"def", b"ghij", b"", b"", None]


async def test_every_way_of_reading_gets_the_whole_body_in_order(transport: str) -> None:
    app = App("whole")
    body = bytes(range(256)) * 1000  # many chunks

    @app.post("/", stream=True)
    async def index(request: Request) -> HTTPResponse:
        got = bytearray()
        size = 1
        while data := await request.stream.receive_some(size):
            assert len(data) <= size
            got += data
            size = size * 3 + 1  # 1, 4, 13, ... up past a chunk's size
        return text(hashlib.sha256(got).hexdigest())

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(post("/", body))
        response = await client.read_response()
    assert response.body.decode() == hashlib.sha256(body).hexdigest()


async def test_concurrent_reads_raise_busy_resource_error() -> None:
    app = App("busy")
    outcome: list[str] = []
    checked = trio.Event()

    @app.post("/", stream=True)
    async def index(request: Request) -> HTTPResponse:
        stream = request.stream
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.receive_some)  # waits: no body byte yet
            await trio.testing.wait_all_tasks_blocked()
            for second in (stream.receive_some, stream.read, stream.__anext__):
                try:
                    await second()
                except trio.BusyResourceError:
                    outcome.append("busy")
            checked.set()
            nursery.cancel_scope.cancel()
        outcome.append((await stream.receive_some()).decode())  # nothing was lost
        return empty()

    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\n")
        with trio.fail_after(DEADLINE):
            await checked.wait()
        await raw.send(b"body")
        assert (await raw.read_response()).status == 204
    assert outcome == ["busy", "busy", "busy", "body"]


async def test_a_cancelled_receive_some_loses_no_data() -> None:
    app = App("cancelled")
    got: list[bytes] = []
    cancelled = trio.Event()

    @app.post("/", stream=True)
    async def index(request: Request) -> HTTPResponse:
        stream = request.stream
        with trio.CancelScope() as scope:  # cancelled while it waits for the body
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.receive_some)
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()
        cancelled.set()
        got.append(await stream.receive_some(2))
        with trio.CancelScope() as scope:  # cancelled with the rest of a chunk kept
            scope.cancel()
            await stream.receive_some()
        got.append(await stream.receive_some())
        return empty()

    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 6\r\n\r\n")
        with trio.fail_after(DEADLINE):
            await cancelled.wait()
        await raw.send(b"abcdef")
        assert (await raw.read_response()).status == 204
    assert got == [b"ab", b"cdef"]


async def test_aclose_discards_the_rest_and_closes_the_stream(transport: str) -> None:
    app = App("aclose")
    outcome: list[object] = []

    @app.post("/", stream=True)
    async def index(request: Request) -> HTTPResponse:
        stream = request.stream
        await stream.receive_some(1)
        await stream.aclose()
        await stream.aclose()  # again: nothing happens
        try:
            await stream.receive_some()
        except trio.ClosedResourceError:
            outcome.append("closed")
        # Sanic's read() and async for: the end, as after close() (no error).
        outcome.append(await stream.read())
        outcome.append([chunk async for chunk in stream])
        return text("stopped")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(post("/", b"x" * 1000))
        assert (await client.read_response()).body == b"stopped"
        # The rest was discarded: the connection serves the next request.
        await client.send(post("/", b"y"))
        assert (await client.read_response()).body == b"stopped"
    assert outcome == ["closed", None, []] * 2


async def test_a_body_cut_off_raises_broken_resource_error(transport: str) -> None:
    # Not b"" as at the end: a reader outside the handler (the handler itself is
    # cancelled) must not take part of a body for all of it.
    async with pairs(transport) as made:
        writer, body = await made.request()
        await writer.send_all(b"abc")
        with trio.fail_after(DEADLINE):
            assert await body.receive_some() == b"abc"
            await trio.aclose_forcefully(writer)
            with pytest.raises(trio.BrokenResourceError):
                await body.receive_some()
            with pytest.raises(trio.BrokenResourceError):
                await body.read()


def limited_app(outcome: list[str]) -> App:
    app = App("limited")

    @app.post("/", stream=True, request_max_size=10)
    async def index(request: Request) -> HTTPResponse:
        try:
            while await request.stream.receive_some(4):
                pass
        except HTTPError as exc:
            outcome.append(f"{type(exc).__name__} {exc.status_code}")
            raise
        return empty()

    return app


async def test_receive_some_enforces_the_size_limit_before_100_continue() -> None:
    outcome: list[str] = []
    app = limited_app(outcome)
    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n"
        )
        response = await raw.read_response()
    assert (response.status, response.informational) == (413, [])
    assert outcome == ["PayloadTooLarge 413"]


async def test_receive_some_refuses_a_chunk_announced_past_the_limit() -> None:
    outcome: list[str] = []
    app = limited_app(outcome)
    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
        await raw.send(b"6\r\nsixsix\r\n")
        await trio.testing.wait_all_tasks_blocked()
        await raw.send(b"5\r\n")  # 11 bytes announced; none of this chunk is sent
        response = await raw.read_response("POST")
    assert response.status == 413
    assert outcome == ["PayloadTooLarge 413"]


async def test_receive_some_raises_400_for_malformed_chunk_framing() -> None:
    outcome: list[str] = []
    app = limited_app(outcome)
    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(
            b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n"
        )
        response = await raw.read_response("POST")
    assert response.status == 400
    assert outcome == ["HTTPError 400"]


async def test_100_continue_goes_out_on_the_first_receive_some() -> None:
    app = App("continue")

    @app.put("/", stream=True)
    async def index(request: Request) -> HTTPResponse:
        if request.headers.get("authorization") != "yes":
            return text("no", status=401)
        return text((await request.stream.receive_some(100)).decode())

    def put(authorization: bytes) -> bytes:
        return (
            b"PUT / HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\nAuthorization: %s\r\n\r\n" % authorization
        )

    async with TestClient(app) as client:
        async with client.raw() as stream:
            raw = RawClient(stream)
            await raw.send(put(b"no"))  # refused before reading: no 100 Continue
            response = await raw.read_response("PUT")
            assert (response.status, response.informational) == (401, [])
        async with client.raw() as stream:
            raw = RawClient(stream)
            await raw.send(put(b"yes"))
            assert (await raw.read_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
            await raw.send(b"body")
            response = await raw.read_response("PUT")
            assert (response.status, response.body) == (200, b"body")


# -- the respond() stream: edge cases ----------------------------------------------------


async def test_send_all_and_wait_after_the_end_raise_closed_resource_error() -> None:
    app = App("closed")
    errors: list[str] = []

    @app.get("/")
    async def index(request: Request) -> None:
        resp = await request.respond()
        await resp.send_all(bytearray(b"ab"))
        await resp.aclose()
        await resp.aclose()  # again: nothing happens
        await resp.eof()  # (nor here)
        for late in (lambda: resp.send_all(b"x"), resp.wait_send_all_might_not_block):
            try:
                await late()
            except trio.ClosedResourceError:
                errors.append("closed")

    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(get("/"))
        response = await raw.read_response()
        assert (response.status, response.body) == (200, b"ab")
        assert response.raw_body.endswith(b"0\r\n\r\n")  # aclose() sent the last chunk
        await raw.send(get("/"))  # the connection goes on
        assert (await raw.read_response()).body == b"ab"
        with trio.fail_after(DEADLINE):
            while len(errors) < 4:  # noqa: ASYNC110 (the second handler may still run)
                await trio.sleep(0.001)
    assert errors == ["closed", "closed"] * 2


async def test_send_all_takes_bytes_only() -> None:
    app = App("types")
    errors: list[str] = []

    @app.get("/")
    async def index(request: Request) -> None:
        async with request.respond() as resp:
            try:
                await resp.send_all("text")  # type: ignore[arg-type]
            except TypeError:
                errors.append("TypeError")
            await resp.send_all(memoryview(b"bytes"))

    async with TestClient(app) as client:
        assert (await client.get("/")).content == b"bytes"
    assert errors == ["TypeError"]


async def test_a_second_send_all_raises_busy_while_send_queues() -> None:
    app = App("busy-send")
    outcome: list[str] = []
    checked = trio.Event()

    @app.get("/")
    async def index(request: Request) -> None:
        async with request.respond() as resp, trio.open_nursery() as nursery:
            nursery.start_soon(resp.send_all, b"a" * 1000)  # waits: the client is slow
            await trio.testing.wait_all_tasks_blocked()
            for second in (lambda: resp.send_all(b"b"), resp.wait_send_all_might_not_block):
                try:
                    await second()
                except trio.BusyResourceError:
                    outcome.append("busy")
            checked.set()
            await resp.send(b"c")  # Sanic's send() takes its turn after the first piece

    async with TestClient(app, buffer_size=100) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(get("/"))
        with trio.fail_after(DEADLINE):
            await checked.wait()  # before reading anything
        assert outcome == ["busy", "busy"]
        assert (await raw.read_response()).body == b"a" * 1000 + b"c"


async def test_wait_send_all_might_not_block_waits_for_the_client() -> None:
    app = App("wait")
    record: list[str] = []
    head_read = trio.Event()

    @app.get("/")
    async def index(request: Request) -> None:
        async with request.respond(headers={"content-length": "200"}) as resp:
            await resp.send_all(b"")  # the head
            await head_read.wait()
            await resp.send_all(b"x" * 100)  # the pipe is full now
            record.append("waiting")
            await resp.wait_send_all_might_not_block()
            record.append("writable")
            await resp.send_all(b"y" * 100)

    async with TestClient(app, buffer_size=100) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(get("/"))
        await raw.read_until(b"\r\n\r\n")
        head_read.set()
        await trio.testing.wait_all_tasks_blocked()
        assert record == ["waiting"]
        record.append("client reads")
        assert await raw.read_until(b"y" * 100) == b"x" * 100 + b"y" * 100
    assert record == ["waiting", "client reads", "writable"]


async def test_wait_send_all_might_not_block_gives_up_after_write_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    app = App("stuck")
    app.config.WRITE_TIMEOUT = 3
    outcome: list[float] = []
    head_read = trio.Event()

    @app.get("/")
    async def index(request: Request) -> None:
        async with request.respond() as resp:
            await resp.send_all(b"")  # the head
            await head_read.wait()
            await resp.send_all(b"x" * 94)  # fills the pipe: 100 bytes with the framing
            started = trio.current_time()
            try:
                await resp.wait_send_all_might_not_block()
            except trio.Cancelled:
                outcome.append(trio.current_time() - started)
                raise

    async with TestClient(app, buffer_size=100) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(get("/"))
        await raw.read_until(b"\r\n\r\n")
        head_read.set()  # and no more reading: the client is stuck
        with trio.fail_after(DEADLINE):
            while not outcome:  # noqa: ASYNC110 (virtual time: the clock jumps)
                await trio.sleep(1)
        assert await raw.read_to_eof() == b"5e\r\n" + b"x" * 94 + b"\r\n"  # reset, no end
    assert outcome == [3]


async def test_aclose_forcefully_resets_the_connection(transport: str) -> None:
    app = App("forceful")
    outcome: list[str] = []

    @app.get("/")
    async def index(request: Request) -> None:
        resp = await request.respond()
        await resp.send_all(b"partial")
        try:
            await trio.aclose_forcefully(resp)  # the end never goes out
            await trio.sleep_forever()
        except trio.Cancelled:  # the reset cancels the handler, as a disconnect does
            outcome.append("cancelled")
            raise

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/"))
        raw = await client.read_to_eof()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(b"7\r\npartial\r\n")  # no last chunk: the client sees the cut
    assert outcome == ["cancelled"]


async def test_aclose_on_a_timeout_leaves_the_timeout_its_answer(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Cancelled by the connection's own deadline, aclose() does not reset: the 503 goes out.
    app = App("timeout")
    app.config.RESPONSE_TIMEOUT = 5

    @app.get("/")
    async def index(request: Request) -> None:
        resp = await request.respond()
        try:
            await trio.sleep(60)
        finally:
            await resp.aclose()

    async with TestClient(app) as client:
        assert (await client.get("/")).status_code == 503
