"""Streaming bodies both ways (issue 3): registration, the request stream, duplex,
backpressure, size limits, 100-continue, disconnects, truncation, and ``respond()``.

Raw-byte tests run over the in-memory transport and a loopback socket (``serving``);
backpressure is measured exactly on the in-memory transport, whose pipe buffers a known
number of bytes, and as "the sender stalls far short of the total" over TCP.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

import h11
import pytest
import trio
import trio.testing
from _helpers import DEADLINE, RawClient, serving

from trioweb import App, Blueprint, CompositionView, Config, HTTPMethodView, Request, stream
from trioweb.errors import PayloadTooLarge
from trioweb.response import HTTPResponse, ResponseStream, json, text
from trioweb.response import stream as stream_response
from trioweb.testing import TestClient

LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def chunked(method: str, path: str, extra: bytes = b"") -> bytes:
    """A request head announcing a chunked body."""
    return b"%s %s HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n%s\r\n" % (
        method.encode(),
        path.encode(),
        extra,
    )


def sized(method: str, path: str, length: int, extra: bytes = b"") -> bytes:
    """A request head announcing a ``Content-Length`` body."""
    return b"%s %s HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n%s\r\n" % (
        method.encode(),
        path.encode(),
        length,
        extra,
    )


def get(path: str, version: bytes = b"1.1") -> bytes:
    return b"GET %s HTTP/%s\r\nHost: test\r\n\r\n" % (path.encode(), version)


def payload(size: int) -> bytes:
    """``size`` bytes in which every position matters (every byte value, in turn)."""
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def echo_app() -> App:
    """``POST /echo`` streams the body back as it arrives; ``GET /`` says hello."""
    app = App("streaming")

    @app.post("/echo", stream=True)
    async def echo(request: Request) -> None:
        async with request.respond(content_type=request.content_type) as resp:
            async for piece in request.stream:
                await resp.send(piece)

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text("hello")

    return app


async def read_chunk(client: RawClient) -> bytes:
    """One chunk of a chunked response body, framing checked (no CR/LF in the data)."""
    size_line = await client.read_until(b"\r\n")
    data = (await client.read_until(b"\r\n"))[:-2]
    assert int(size_line[:-2], 16) == len(data), (size_line, data)
    return data


async def read_echo(client: RawClient, size: int) -> bytes:
    """``size`` bytes of chunked response body, however the server split them."""
    data = b""
    while len(data) < size:
        piece = await read_chunk(client)
        assert piece, "the response ended early"
        data += piece
    return data


def assert_truncated_chunked(raw: bytes, method: str = "GET") -> None:
    """``raw`` is a chunked response cut short: an h11 client must not see its end."""
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert not body.endswith(LAST_CHUNK)
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method=method, target="/", headers=[("Host", "test")]))
    parser.send(h11.EndOfMessage())
    parser.receive_data(raw)
    parser.receive_data(b"")
    with pytest.raises(h11.RemoteProtocolError):
        while type(parser.next_event()) is not h11.EndOfMessage:
            pass


async def wait(event: trio.Event) -> None:
    with trio.fail_after(DEADLINE):
        await event.wait()


# -- every way to declare a streaming route ----------------------------------------------


def registration_app() -> tuple[App, defaultdict[tuple[str, str], trio.Event]]:
    """One route per way of registering a handler; each answers "<body at entry>|<body>".

    ``entered[method, path]`` is set when that handler starts.
    """
    app = App("forms")
    bp = Blueprint("bp", url_prefix="/bp")
    entered: defaultdict[tuple[str, str], trio.Event] = defaultdict(trio.Event)

    async def report(request: Request) -> HTTPResponse:
        entered[request.method, request.path].set()
        at_entry = request.body
        body = await request.receive_body()
        return text(f"{at_entry.decode()}|{body.decode()}")

    app.route("/route", methods=["POST"], stream=True)(report)
    app.post("/post", stream=True)(report)
    app.put("/put", stream=True)(report)
    app.patch("/patch", stream=True)(report)
    app.add_route(report, "/add_route", methods=["POST"], stream=True)
    bp.put("/put", stream=True)(report)
    bp.post("/post", stream=True)(report)
    bp.patch("/patch", stream=True)(report)
    bp.route("/route", methods=["PUT"], stream=True)(report)
    bp.add_route(report, "/add_route", methods=["POST"], stream=True)

    class View(HTTPMethodView):
        @stream
        async def post(self, request: Request) -> HTTPResponse:
            return await report(request)

        async def put(self, request: Request) -> HTTPResponse:  # not marked: buffered
            return await report(request)

    app.add_route(View.as_view(), "/view")
    composition = CompositionView()
    composition.add(["POST"], report, stream=True)
    composition.add(["PUT"], report)
    app.add_route(composition, "/composition")
    # The same forms without stream=True: buffered.
    app.post("/buffered")(report)
    bp.route("/buffered", methods=["PUT"])(report)
    app.add_route(report, "/buffered", methods=["PATCH"])
    app.blueprint(bp)
    return app, entered


STREAMING_FORMS = [
    ("POST", "/route"),
    ("POST", "/post"),
    ("PUT", "/put"),
    ("PATCH", "/patch"),
    ("POST", "/add_route"),
    ("PUT", "/bp/put"),
    ("POST", "/bp/post"),
    ("PATCH", "/bp/patch"),
    ("PUT", "/bp/route"),
    ("POST", "/bp/add_route"),
    ("POST", "/view"),
    ("POST", "/composition"),
]
BUFFERED_FORMS = [
    ("POST", "/buffered"),
    ("PUT", "/bp/buffered"),
    ("PATCH", "/buffered"),
    ("PUT", "/view"),
    ("PUT", "/composition"),
]


@pytest.mark.parametrize(
    ("method", "path"), STREAMING_FORMS, ids=[" ".join(f) for f in STREAMING_FORMS]
)
async def test_every_stream_registration_form_reaches_a_streaming_handler(
    method: str, path: str
) -> None:
    app, entered = registration_app()
    started_before_second: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"first,"
        # A streaming handler starts with the body still coming.
        with trio.move_on_after(DEADLINE):
            await entered[method, path].wait()
        started_before_second.append(entered[method, path].is_set())
        yield b"second"

    async with TestClient(app) as client:
        r = await client.request(method, path, content=body())
    assert (r.status_code, r.text) == (200, "|first,second")
    assert started_before_second == [True]


@pytest.mark.parametrize(
    ("method", "path"), BUFFERED_FORMS, ids=[" ".join(f) for f in BUFFERED_FORMS]
)
async def test_routes_without_stream_get_the_body_buffered(method: str, path: str) -> None:
    app, entered = registration_app()
    started_before_second: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"first,"
        await trio.testing.wait_all_tasks_blocked()
        started_before_second.append(entered[method, path].is_set())
        yield b"second"

    async with TestClient(app) as client:
        r = await client.request(method, path, content=body())
    assert (r.status_code, r.text) == (200, "first,second|first,second")
    assert started_before_second == [False]


# -- the request stream ------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_async_for_yields_only_non_empty_bytes(transport: str, framing: str) -> None:
    app = App("stream")
    received: list[bytes] = []

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> HTTPResponse:
        async for piece in request.stream:
            received.append(piece)
        return text("done")

    body = b"hello, streaming world"
    if framing == "chunked":
        wire = chunked("POST", "/upload") + chunk(body[:5]) + chunk(body[5:]) + LAST_CHUNK
    else:
        wire = sized("POST", "/upload", len(body)) + body
    async with serving(app, transport) as served, served.connect() as client:
        # One byte at a time: chunk sizes, data and CRLFs all split.
        for index in range(len(wire)):
            await client.send(wire[index : index + 1])
        response = await client.read_response("POST")
        assert (response.status, response.body) == (200, b"done")
    assert received, "no chunk at all"
    assert all(type(piece) is bytes and piece for piece in received), received
    assert b"".join(received) == body


async def test_read_returns_chunks_then_none_and_none_again(transport: str) -> None:
    app = App("stream")

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> HTTPResponse:
        parts = []
        while (piece := await request.stream.read()) is not None:
            parts.append(piece)
        return json(
            {
                "body": b"".join(parts).decode(),
                "after_end": [await request.stream.read(), await request.stream.read()],
                "iterated_after_end": [p.decode() async for p in request.stream],
                "complete": request.stream.complete,
            }
        )

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(chunked("POST", "/upload") + chunk(b"abc"))
        await client.send(chunk(b"def"))
        await client.send(chunk(b"ghi") + LAST_CHUNK)
        response = await client.read_response("POST")
        assert response.status == 200
        assert response.body == (
            b'{"body":"abcdefghi","after_end":[null,null],"iterated_after_end":[],"complete":true}'
        )


@pytest.mark.parametrize(
    "head",
    [sized("POST", "/upload", 0), chunked("POST", "/upload") + LAST_CHUNK],
    ids=["content-length-0", "last-chunk-only"],
)
async def test_empty_body_reads_none_at_once(transport: str, head: bytes) -> None:
    app = App("stream")

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> HTTPResponse:
        first = await request.stream.read()
        return json({"first": first, "iterated": [p.decode() async for p in request.stream]})

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(head)
        response = await client.read_response("POST")
        assert (response.status, response.body) == (200, b'{"first":null,"iterated":[]}')


async def test_receive_body_fills_request_body_on_a_stream_route(transport: str) -> None:
    app = App("stream")

    @app.put("/upload", stream=True)
    async def upload(request: Request) -> HTTPResponse:
        before = request.body
        returned = await request.receive_body()
        again = await request.receive_body()
        return json(
            {
                "before": before.decode(),
                "returned": digest(returned),
                "body": digest(request.body),
                "again": digest(again),
            }
        )

    body = payload(300_000)
    async with serving(app, transport) as served, served.connect() as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send, sized("PUT", "/upload", len(body)) + body)
            response = await client.read_response("PUT")
        assert response.status == 200
        assert response.body == (
            b'{"before":"","returned":"%s","body":"%s","again":"%s"}'
            % ((digest(body).encode(),) * 3)
        )


# -- full duplex -------------------------------------------------------------------------


async def test_echo_is_full_duplex_chunk_by_chunk(transport: str) -> None:
    rounds = [b"a", b"bb" * 5, b"c" * 1000, b"d" * 20_000, b"e" * 3, b"f" * 4096]
    async with serving(echo_app(), transport) as served, served.connect() as client:
        await client.send(chunked("POST", "/echo", b"Content-Type: text/x-rounds\r\n"))
        await client.send(chunk(rounds[0]))
        # The head comes with the first echo: the handler sends it on its first send.
        head = await client.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"transfer-encoding: chunked\r\n" in head.lower()
        assert b"content-type: text/x-rounds\r\n" in head.lower()
        assert await read_echo(client, len(rounds[0])) == rounds[0]
        for data in rounds[1:]:
            # Each piece comes back before the next one is sent.
            await client.send(chunk(data))
            assert await read_echo(client, len(data)) == data
        await client.send(LAST_CHUNK)
        assert await client.read_until(b"\r\n\r\n") == LAST_CHUNK
        # Keep-alive: the connection serves the next request.
        await client.send(get("/"))
        assert (await client.read_response()).body == b"hello"


async def test_http10_streamed_request_and_close_delimited_response_at_once(
    transport: str,
) -> None:
    parts = [b"alpha", b"bravo", b"charlie"]
    total = sum(map(len, parts))
    async with serving(echo_app(), transport) as served, served.connect() as client:
        await client.send(b"POST /echo HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % total)
        await client.send(parts[0])
        head = (await client.read_until(b"\r\n\r\n")).lower()
        assert head.startswith(b"http/1.1 200 ")
        assert b"transfer-encoding" not in head
        assert b"content-length" not in head
        assert b"connection: close\r\n" in head
        # No chunk framing: each echo is the very next bytes.
        assert await client.read_until(parts[0]) == parts[0]
        for data in parts[1:]:
            await client.send(data)
            assert await client.read_until(data) == data
        # The body ends with the connection.
        assert await client.read_to_eof() == b""


# -- backpressure ------------------------------------------------------------------------

BUFFER = 1024  # REQUEST_BUFFER_SIZE for the backpressure tests
QUEUE = 2  # REQUEST_QUEUE_SIZE
PIPE = 4096  # each direction of the in-memory pipe
MIB = 1 << 20


def upload_app(may_read: trio.Event, started: trio.Event, sizes: list[int]) -> App:
    """``POST /upload`` waits for ``may_read``, then reads the whole body."""
    app = App("backpressure", config=Config(REQUEST_BUFFER_SIZE=BUFFER, REQUEST_QUEUE_SIZE=QUEUE))

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> HTTPResponse:
        started.set()
        await may_read.wait()
        hashed = hashlib.sha256()
        async for piece in request.stream:
            sizes.append(len(piece))
            hashed.update(piece)
        return text(f"{sum(sizes)} {hashed.hexdigest()}")

    return app


async def test_request_backpressure_in_memory_holds_at_most_the_queue() -> None:
    may_read, started = trio.Event(), trio.Event()
    sizes: list[int] = []
    app = upload_app(may_read, started, sizes)
    body = payload(MIB)
    piece = 256
    sent = 0

    async def push(stream: trio.abc.Stream) -> None:
        nonlocal sent
        for start in range(0, len(body), piece):
            await stream.send_all(body[start : start + piece])
            sent += piece

    async with TestClient(app, buffer_size=PIPE) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(sized("POST", "/upload", len(body)))
        await wait(started)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push, stream)
            await trio.testing.wait_all_tasks_blocked()
            # The client is stuck with the pipe full; the server took no more than its
            # queue of chunks and the one it holds while waiting for room in it.
            assert PIPE - piece <= sent <= PIPE + (QUEUE + 1) * BUFFER, sent
            assert sizes == []
            may_read.set()
            response = await raw.read_response("POST")
    assert response.status == 200
    assert response.body == f"{len(body)} {digest(body)}".encode()
    assert max(sizes) <= BUFFER


async def stall(progress: list[int]) -> int:
    """Wait until ``progress[0]`` has not moved for half a second; return it."""
    with trio.fail_after(30):
        last = -1
        while progress[0] != last:
            last = progress[0]
            await trio.sleep(0.5)
    return last


async def test_request_backpressure_over_tcp_stalls_the_sender() -> None:
    may_read, started = trio.Event(), trio.Event()
    sizes: list[int] = []
    app = upload_app(may_read, started, sizes)
    total = 64 * MIB
    piece = payload(64 * 1024)
    sent = [0]

    async def push(client: RawClient) -> None:
        for _ in range(total // len(piece)):
            await client.stream.send_all(piece)
            sent[0] += len(piece)

    async with serving(app, "tcp") as served, served.connect() as client:
        await client.send(sized("POST", "/upload", total))
        await wait(started)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push, client)
            stalled_at = await stall(sent)
            # Far short of the total: what the kernel buffers, plus a few chunks.
            assert stalled_at < total // 4, stalled_at
            assert sizes == []
            may_read.set()
            response = await client.read_response("POST", timeout=60)
    assert response.status == 200
    assert response.body == f"{total} {digest(piece * (total // len(piece)))}".encode()
    assert max(sizes) <= BUFFER


def sender_app(body: bytes, piece: int, progress: list[int]) -> App:
    """``GET /big`` streams ``body`` in ``piece``-sized sends, counting what went out."""
    app = App("backpressure")

    @app.get("/big")
    async def big(request: Request) -> None:
        async with request.respond(content_type="application/octet-stream") as resp:
            for start in range(0, len(body), piece):
                await resp.send(body[start : start + piece])
                progress[0] += len(body[start : start + piece])

    return app


async def read_hashed(client: RawClient) -> tuple[int, str]:
    """Read a whole response body, returning its length and digest."""
    parser = client.parser()
    event = await parser.next_event()
    assert type(event) is h11.Response
    assert event.status_code == 200
    hashed = hashlib.sha256()
    size = 0
    while type(event := await parser.next_event()) is h11.Data:
        hashed.update(event.data)
        size += len(event.data)
    assert type(event) is h11.EndOfMessage
    return size, hashed.hexdigest()


async def test_response_backpressure_in_memory_holds_the_handler() -> None:
    body = payload(MIB)
    progress = [0]
    app = sender_app(body, 512, progress)
    async with TestClient(app, buffer_size=PIPE) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(get("/big"))
        await trio.testing.wait_all_tasks_blocked()
        stalled = progress[0]
        # Everything the handler managed to send sits in the pipe, head and framing too.
        assert 0 < stalled <= PIPE, stalled
        assert await read_hashed(raw) == (len(body), digest(body))
    assert stalled < progress[0] == len(body)


async def test_response_backpressure_over_tcp_stalls_the_handler() -> None:
    total = 64 * MIB
    body = payload(total)
    progress = [0]
    app = sender_app(body, 64 * 1024, progress)
    async with serving(app, "tcp") as served, served.connect() as client:
        await client.send(get("/big"))
        stalled_at = await stall(progress)
        assert 0 < stalled_at < total // 4, stalled_at
        with trio.fail_after(60):
            assert await read_hashed(client) == (total, digest(body))
    assert progress[0] == total


# -- size limits on streaming routes ---------------------------------------------------


def limited_app(reached: list[str]) -> App:
    app = App("limits")

    @app.post("/before", stream=True)
    async def before(request: Request) -> HTTPResponse:
        request.stream.max_size = 100
        body = await request.receive_body()
        reached.append("end")
        return text(str(len(body)))

    return app


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_max_size_set_before_reading(transport: str, framing: str) -> None:
    reached: list[str] = []
    app = limited_app(reached)

    def request(size: int) -> bytes:
        body = payload(size)
        if framing == "content-length":
            return sized("POST", "/before", size) + body
        # Small chunks, none larger than the limit by itself.
        pieces = [body[start : start + 10] for start in range(0, size, 10)]
        return chunked("POST", "/before") + b"".join(map(chunk, pieces)) + LAST_CHUNK

    async with serving(app, transport) as served:
        async with served.connect() as client:
            await client.send(request(100))  # at the limit: fine
            response = await client.read_response("POST")
            assert (response.status, response.body) == (200, b"100")
        async with served.connect() as client:
            await client.send(request(101))
            response = await client.read_response("POST")
            assert response.status == 413
            assert response.header("connection") == "close"
            assert await client.read_to_eof() == b""
    assert reached == ["end"]


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_max_size_lowered_while_reading_gives_413(transport: str, framing: str) -> None:
    app = App("limits")
    first_read = trio.Event()
    raised: list[type[BaseException]] = []

    @app.post("/during", stream=True)
    async def during(request: Request) -> HTTPResponse:
        first = await request.stream.read()
        assert first is not None
        first_read.set()
        request.stream.max_size = len(first) + 10
        try:
            await request.receive_body()
        except PayloadTooLarge as exc:
            raised.append(type(exc))
            raise
        return text("unreachable")

    first, second = b"x" * 50, b"y" * 50
    async with serving(app, transport) as served, served.connect() as client:
        if framing == "chunked":
            await client.send(chunked("POST", "/during") + chunk(first))
            await wait(first_read)
            await client.send(chunk(second) + LAST_CHUNK)
        else:
            await client.send(sized("POST", "/during", 100) + first)
            await wait(first_read)
            await client.send(second)
        response = await client.read_response("POST")
        assert response.status == 413
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""
    assert raised == [PayloadTooLarge]


async def test_max_size_passed_after_the_response_started_aborts(transport: str) -> None:
    app = App("limits")

    @app.post("/echo", stream=True)
    async def echo(request: Request) -> None:
        request.stream.max_size = 60
        async with request.respond() as resp:
            async for piece in request.stream:
                await resp.send(piece)

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(chunked("POST", "/echo") + chunk(b"x" * 50))
        head = await client.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert await read_echo(client, 50) == b"x" * 50
        await client.send(chunk(b"y" * 50) + LAST_CHUNK)
        # Too late for a 413: the client sees a body cut short, then the end.
        rest = await client.read_to_eof()
        assert_truncated_chunked(head + chunk(b"x" * 50) + rest, "POST")


async def test_route_request_max_size_on_a_stream_route(transport: str) -> None:
    app = App("limits")

    @app.post("/limited", stream=True, request_max_size=100)
    async def limited(request: Request) -> HTTPResponse:
        return text(str(len(await request.receive_body())))

    @app.post("/lifted", stream=True, request_max_size=100)
    async def lifted(request: Request) -> HTTPResponse:
        request.stream.max_size = None  # the handler may lift it before reading
        return text(str(len(await request.receive_body())))

    def request(path: str, size: int) -> bytes:
        body = payload(size)
        pieces = [body[start : start + 10] for start in range(0, size, 10)]
        return chunked("POST", path) + b"".join(map(chunk, pieces)) + LAST_CHUNK

    async with serving(app, transport) as served:
        async with served.connect() as client:
            await client.send(request("/limited", 100))
            assert (await client.read_response("POST")).body == b"100"
            await client.send(sized("POST", "/lifted", 1000) + payload(1000))
            assert (await client.read_response("POST")).body == b"1000"
            await client.send(request("/lifted", 1000))
            assert (await client.read_response("POST")).body == b"1000"
        async with served.connect() as client:
            await client.send(request("/limited", 101))
            response = await client.read_response("POST")
            assert response.status == 413
            assert response.header("connection") == "close"
            assert await client.read_to_eof() == b""


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_stream_routes_have_no_size_limit_by_default(transport: str, framing: str) -> None:
    app = App("limits")  # REQUEST_MAX_SIZE is 1 MiB
    size = app.config.REQUEST_MAX_SIZE + 1
    body = payload(size)

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> HTTPResponse:
        return text(f"{len(await request.receive_body())} {digest(request.body)}")

    @app.post("/buffered")
    async def buffered(request: Request) -> HTTPResponse:
        return text("unreachable")

    if framing == "chunked":
        wire = chunked("POST", "/upload") + chunk(body) + LAST_CHUNK
    else:
        wire = sized("POST", "/upload", size) + body
    async with serving(app, transport) as served:
        async with served.connect() as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.send, wire)
                response = await client.read_response("POST")
            assert (response.status, response.body) == (200, f"{size} {digest(body)}".encode())
        async with served.connect() as client:  # the same size on a buffered route
            await client.send(sized("POST", "/buffered", size))
            assert (await client.read_response("POST")).status == 413


# -- Expect: 100-continue ----------------------------------------------------------------


async def test_100_continue_then_a_duplex_chunked_echo(transport: str) -> None:
    async with serving(echo_app(), transport) as served, served.connect() as client:
        await client.send(chunked("POST", "/echo", b"Expect: 100-continue\r\n"))
        # The handler reads at once: 100 Continue, and nothing else until the body comes.
        assert (await client.read_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
        await client.send(chunk(b"first"))
        head = await client.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert await read_echo(client, 5) == b"first"
        await client.send(chunk(b"second"))
        assert await read_echo(client, 6) == b"second"
        await client.send(LAST_CHUNK)
        assert await client.read_until(b"\r\n\r\n") == LAST_CHUNK
        await client.send(get("/"))
        assert (await client.read_response()).body == b"hello"


@pytest.mark.parametrize("style", ["returned", "respond", "callback"])
async def test_100_continue_refused_without_reading_never_sends_100_and_closes(
    transport: str, style: str
) -> None:
    app = App("continue")

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> HTTPResponse | None:
        if style == "returned":
            return text("no thanks", status=403)
        if style == "callback":

            async def refuse(response: ResponseStream) -> None:
                await response.write("no thanks")

            return stream_response(refuse, status=403)
        async with request.respond(status=403) as resp:
            await resp.send("no thanks")
        return None

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(sized("POST", "/upload", 5, b"Expect: 100-continue\r\n"))
        response = await client.read_response("POST")
        assert response.informational == []
        assert (response.status, response.body) == (403, b"no thanks")
        # The client still holds the body back: the connection cannot be reused.
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


# -- the client going away ---------------------------------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
@pytest.mark.parametrize("handler_is", ["reading", "busy", "responding"])
async def test_client_leaving_mid_upload_cancels_the_handler_and_its_children(
    transport: str, framing: str, handler_is: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("disconnect")
    child_started = trio.Event()
    child_cancelled = trio.Event()
    first_chunk = trio.Event()
    handler_cancelled = trio.Event()
    finished = trio.Event()
    received: list[bytes] = []

    async def child() -> None:
        child_started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            child_cancelled.set()
            raise

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> HTTPResponse:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child)
                await child_started.wait()
                received.append(await request.stream.read() or b"")
                first_chunk.set()
                try:
                    if handler_is == "busy":  # with something else than the body
                        await trio.sleep_forever()
                    elif handler_is == "reading":
                        async for piece in request.stream:
                            received.append(piece)
                    else:  # "responding": the response has started
                        async with request.respond() as resp:
                            await resp.send("got the first chunk")
                            async for piece in request.stream:
                                received.append(piece)
                except trio.Cancelled:
                    handler_cancelled.set()
                    raise
        finally:
            finished.set()
        return text("unreachable")

    caplog.set_level(logging.DEBUG)
    if framing == "chunked":
        head = chunked("POST", "/upload") + b"3e8\r\n"  # a chunk of 1000 bytes
    else:
        head = sized("POST", "/upload", 1000)
    async with serving(app, transport) as served:
        async with served.connect() as client:
            await client.send(head + b"z" * 100)
            await wait(first_chunk)
            if handler_is == "responding":
                await client.read_until(b"got the first chunk\r\n")
        # The client is gone, with 900 bytes of body never sent.
        with trio.fail_after(2):
            await finished.wait()
        assert handler_cancelled.is_set()
        assert child_cancelled.is_set()
        assert b"".join(received) == b"z" * 100
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == [], [r.getMessage() for r in problems]


# -- truncation and aborts ---------------------------------------------------------------


def failing_app() -> App:
    """Responses that fail after their first bytes went out.

    test_protocol.py covers a plain ``async with request.respond()`` block; these are the
    callback style and a child task feeding the response.
    """
    app = App("truncation")

    @app.get("/callback")
    async def callback(request: Request) -> HTTPResponse:
        async def write(response: ResponseStream) -> None:
            await response.write("partial data")
            raise RuntimeError("mid-stream failure")

        return stream_response(write)

    @app.get("/child")
    async def child(request: Request) -> None:
        async with request.respond() as resp:

            async def feed() -> None:
                await resp.send("partial data")
                raise RuntimeError("mid-stream failure in a child")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed)

    return app


@pytest.mark.parametrize("path", ["/callback", "/child"])
async def test_failure_after_the_first_send_truncates_the_chunked_response(
    transport: str, path: str
) -> None:
    async with serving(failing_app(), transport) as served, served.connect() as client:
        await client.send(get(path))
        raw = await client.read_to_eof()
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert raw.partition(b"\r\n\r\n")[2] == chunk(b"partial data")
        assert_truncated_chunked(raw)


@pytest.mark.parametrize("path", ["/callback", "/child"])
async def test_failure_after_the_first_send_resets_an_http10_response_over_tcp(
    path: str,
) -> None:
    async with serving(failing_app(), "tcp") as served, served.connect() as client:
        await client.send(get(path, version=b"1.0"))
        received = b""
        with trio.fail_after(DEADLINE), pytest.raises(trio.BrokenResourceError):
            while data := await client.stream.receive_some(65536):
                received += data
        assert received.endswith(b"\r\n\r\npartial data")


@pytest.mark.parametrize("sent", [b"short", b"much too long"], ids=["fewer", "more"])
async def test_content_length_mismatch_in_callback_style_aborts(
    transport: str, sent: bytes
) -> None:
    app = App("truncation")

    @app.get("/sized")
    async def sized_body(request: Request) -> HTTPResponse:
        async def write(response: ResponseStream) -> None:
            await response.write(sent)

        return stream_response(write, headers={"content-length": "8"})

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/sized"))
        raw = await client.read_to_eof()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"content-length: 8\r\n" in head.lower() + b"\r\n"
        assert b"transfer-encoding" not in head.lower()
        # Fewer bytes than announced, then the end: the client knows it is cut short.
        assert len(body) < 8
        assert sent.startswith(body)


# -- HEAD --------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["respond", "callback"])
async def test_head_on_a_streamed_get_route_keeps_the_handlers_content_length(
    transport: str, style: str
) -> None:
    app = App("head")

    @app.get("/sized")
    async def sized_get(request: Request) -> HTTPResponse | None:
        headers = {"content-length": "11", "x-style": style}
        if style == "callback":

            async def write(response: ResponseStream) -> None:
                await response.write("hello ")
                await response.write("world")

            return stream_response(write, headers=headers, content_type="text/plain")
        async with request.respond(headers=headers, content_type="text/plain") as resp:
            await resp.send("hello ")
            await resp.send("world")
        return None

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(b"HEAD /sized HTTP/1.1\r\nHost: test\r\n\r\n")
        response = await client.read_response("HEAD")
        assert response.status == 200
        assert response.header("content-length") == "11"
        assert response.header("content-type") == "text/plain"
        assert response.header("x-style") == style
        assert response.header("transfer-encoding") is None
        assert response.raw_body == b""
        # Nothing followed the head: the next response on the connection is intact.
        await client.send(get("/sized"))
        response = await client.read_response()
        assert (response.status, response.raw_body) == (200, b"hello world")


# -- respond(), Sanic style --------------------------------------------------------------


async def test_awaited_respond_sends_status_and_headers_changed_before_the_first_send(
    transport: str,
) -> None:
    app = App("respond")

    @app.get("/")
    async def index(request: Request) -> None:
        resp = await request.respond(content_type="text/plain")
        resp.status = 201
        resp.headers["x-early"] = "yes"
        await resp.send("one ")
        resp.headers["x-late"] = "too late"
        await resp.send("two")
        await resp.eof()

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/"))
        response = await client.read_response()
        assert (response.status, response.body) == (201, b"one two")
        assert response.header("content-type") == "text/plain"
        assert response.header("x-early") == "yes"
        assert response.header("x-late") is None


async def test_second_respond_raises_runtime_error(transport: str) -> None:
    app = App("respond")
    errors: list[str] = []

    @app.get("/")
    async def index(request: Request) -> None:
        first = request.respond(content_type="text/plain")
        try:
            request.respond()
        except RuntimeError as exc:
            errors.append(type(exc).__name__)
        async with first as resp:
            await resp.send("the first one")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/"))
        response = await client.read_response()
        assert (response.status, response.body) == (200, b"the first one")
    assert errors == ["RuntimeError"]


async def test_second_respond_before_the_first_send_is_a_500(transport: str) -> None:
    app = echo_app()

    @app.get("/twice")
    async def twice(request: Request) -> None:
        await request.respond(headers={"x-first": "1"})
        await request.respond(headers={"x-second": "2"})

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/twice"))
        response = await client.read_response()
        assert response.status == 500
        assert response.header("x-first") is None
        assert response.header("x-second") is None
        await client.send(get("/"))
        assert (await client.read_response()).body == b"hello"


async def test_second_respond_after_the_first_send_aborts(transport: str) -> None:
    app = App("respond")

    @app.get("/twice")
    async def twice(request: Request) -> None:
        resp = await request.respond()
        await resp.send("partial data")
        await request.respond()

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/twice"))
        raw = await client.read_to_eof()
        assert raw.partition(b"\r\n\r\n")[2] == chunk(b"partial data")
        assert_truncated_chunked(raw)


@pytest.mark.parametrize("sent", [True, False], ids=["after-send", "before-send"])
async def test_response_returned_after_respond_is_ignored_with_a_warning(
    transport: str, sent: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app = echo_app()

    @app.get("/both")
    async def both(request: Request) -> HTTPResponse:
        resp = await request.respond(content_type="text/plain")
        if sent:
            await resp.send("streamed")
        return text("returned", status=418)

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/both"))
        response = await client.read_response()
        assert response.status == 200
        assert response.body == (b"streamed" if sent else b"")
        assert response.header("content-type") == "text/plain"
        await client.send(get("/"))
        assert (await client.read_response()).body == b"hello"
    warnings = [r for r in caplog.records if "after responding" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert "both" in warnings[0].getMessage()
