"""A write cut short by a cancel scope (issue 10, defect 1).

A write that a cancel scope cuts after its piece started leaves the client's byte
stream broken: the connection is reset (closed, in memory), it never answers another
request, and the response's later sends raise ``trio.BrokenResourceError``. A send
cancelled before any byte of its piece was written leaves the response usable.

Each write path is driven against a client that does not read: over loopback TCP with a
small receive buffer, and in memory, whose pipe holds an exact number of bytes. A second
request is pipelined behind the one that is cut, and must never be answered.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme
from _helpers import DEADLINE, RawClient, Served, connections_closed, serving

from trioweb import App, Request, Server
from trioweb._server import serve_listeners  # public once issue 10's defect 6 lands
from trioweb.response import HTTPResponse, ResponseStream, file_stream, raw, text
from trioweb.response import stream as stream_response
from trioweb.testing import TestClient

MiB = 1024 * 1024
# More than the kernel buffers between the server and a client with a small receive
# buffer (a send buffer grows to 4 MiB at most, by Linux's default tcp_wmem).
BIG = b"x" * (16 * MiB)
AFTER = b"after the cut"
CUT_LOG = "cancelled part-way"
# The in-memory pipe's size, each way, where a test needs it small and exact.
PIPE = 4096


def get(path: str, version: bytes = b"1.1") -> bytes:
    return b"GET %s HTTP/%s\r\nHost: test\r\n\r\n" % (path.encode(), version)


@asynccontextmanager
async def slow_tcp_client(port: int) -> AsyncIterator[RawClient]:
    """A loopback client with a small receive buffer: a large send waits on it at once."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with trio.fail_after(DEADLINE):
        await sock.connect(("127.0.0.1", port))
    async with trio.SocketStream(sock) as stream:
        yield RawClient(stream)


def slow_client(served: Served, transport: str) -> AbstractAsyncContextManager[RawClient]:
    """A client that reads nothing until the test reads."""
    return slow_tcp_client(served.server.port) if transport == "tcp" else served.connect()


@asynccontextmanager
async def small_pipe(app: App) -> AsyncIterator[RawClient]:
    """An in-memory connection whose pipe holds PIPE bytes each way."""
    async with TestClient(app, buffer_size=PIPE) as client, client.raw() as stream:
        yield RawClient(stream)


async def read_to_end(client: RawClient) -> tuple[bytes, str]:
    """Every byte the server sends until the connection ends, and how: closed or reset."""
    received = bytearray()
    with trio.move_on_after(DEADLINE):
        try:
            while data := await client.stream.receive_some(65536):
                received += data
        except trio.BrokenResourceError:
            return bytes(received), "reset"
        return bytes(received), "closed"
    raise AssertionError(f"the connection stayed open after {bytes(received[-300:])!r}")


def ended(transport: str) -> str:
    """How a connection that must not be reused ends: a reset, where there is one."""
    return "reset" if transport == "tcp" else "closed"


def assert_cut(received: bytes, framing: bytes, size: int, piece: bytes = b"x") -> None:
    """``received`` is one response cut inside its body: the head, ``framing``, fewer
    than ``size`` bytes of the piece that was cut, and nothing after them (no later
    piece, no final chunk, no response to the pipelined request)."""
    head, sep, body = received.partition(b"\r\n\r\n")
    assert sep, received[:200]
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert body.startswith(framing), body[:40]
    data = body[len(framing) :]
    assert len(data) < size
    assert data.count(piece) == len(data), "bytes of something else came after the cut"


# -- streamed responses: the handler's own cancel scope --------------------------------


@dataclass
class Cut:
    """The handler's side of a cut: its cancel scope, and what its next send did."""

    sending: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope | None = None
    cut: trio.Event = field(default_factory=trio.Event)
    after: list[str] = field(default_factory=list)

    async def when_blocked(self) -> None:
        """Cancel the handler's send once it waits for the client (a deadline passing)."""
        with trio.fail_after(DEADLINE):
            await self.sending.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert self.scope is not None
        self.scope.cancel()
        with trio.fail_after(DEADLINE):
            await self.cut.wait()


def cut_app(cut: Cut) -> App:
    """Each route sends BIG under a cancel scope the test cancels, then AFTER."""
    app = App("cut")

    async def send_cut_short(resp: ResponseStream) -> None:
        with trio.CancelScope() as scope:  # what trio.move_on_after(...) makes
            cut.scope = scope
            cut.sending.set()
            await resp.send(BIG)
        cut.cut.set()
        try:
            await resp.send(AFTER)
        except trio.BrokenResourceError:
            cut.after.append("refused")
            raise
        cut.after.append("sent")

    @app.get("/chunked")
    async def chunked(request: Request) -> None:
        async with request.respond() as resp:
            await send_cut_short(resp)

    @app.get("/sized")
    async def sized(request: Request) -> None:
        headers = {"content-length": str(len(BIG) + len(AFTER))}
        async with request.respond(headers=headers) as resp:
            await send_cut_short(resp)

    @app.get("/callback")
    async def callback(request: Request) -> HTTPResponse:
        return stream_response(send_cut_short)

    @app.get("/child")
    async def child(request: Request) -> None:
        async with request.respond() as resp, trio.open_nursery() as nursery:
            nursery.start_soon(send_cut_short, resp)

    @app.get("/eof")
    async def eof(request: Request) -> None:
        with trio.CancelScope() as scope:
            async with request.respond() as resp:
                await resp.send(b"all of it")
                scope.cancel()  # the deadline passes as the block ends: eof() is cancelled
        cut.cut.set()

    @app.get("/next")
    async def next_(request: Request) -> HTTPResponse:
        return text("next")

    return app


CHUNK_OF_BIG = b"%x\r\n" % len(BIG)


@pytest.mark.parametrize(
    ("path", "version", "framing"),
    [
        pytest.param("/chunked", b"1.1", CHUNK_OF_BIG, id="chunked"),
        pytest.param("/sized", b"1.1", b"", id="content-length"),
        pytest.param("/chunked", b"1.0", b"", id="close-delimited"),
        pytest.param("/callback", b"1.1", CHUNK_OF_BIG, id="callback"),
        pytest.param("/child", b"1.1", CHUNK_OF_BIG, id="child-task"),
    ],
)
async def test_a_send_cut_short_resets_and_the_next_request_is_not_answered(
    transport: str, path: str, version: bytes, framing: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioweb")
    cut = Cut()
    async with (
        serving(cut_app(cut), transport) as served,
        slow_client(served, transport) as client,
    ):
        await client.send(get(path, version) + get("/next"))
        await cut.when_blocked()
        received, how = await read_to_end(client)
    assert_cut(received, framing, len(BIG))
    assert how == ended(transport)
    assert cut.after == ["refused"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum(CUT_LOG in m for m in messages) == 1, messages
    # What the handler did is the documented way to bound a send: no error traceback.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_cancelled_eof_leaves_the_response_unended_and_the_connection_closes(
    transport: str,
) -> None:
    cut = Cut()
    async with serving(cut_app(cut), transport) as served, served.connect() as client:
        await client.send(get("/eof") + get("/next"))
        with trio.fail_after(DEADLINE):
            await cut.cut.wait()
        received, how = await read_to_end(client)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"9\r\nall of it\r\n"  # no final chunk, no second response
    assert how == ended(transport)


async def test_a_send_cut_short_over_tls_ends_the_connection() -> None:
    """TLS: trio's SSLStream does not say how much of a cancelled send went out."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    cut = Cut()
    app = cut_app(cut)
    with trio.fail_after(DEADLINE * 4):
        async with trio.open_nursery() as nursery:
            serve = partial(app.serve, "127.0.0.1", 0, ssl=server_context)
            server = await nursery.start(serve)
            async with slow_tcp_client(server.port) as plain:
                tls = trio.SSLStream(plain.stream, client_context, server_hostname="127.0.0.1")
                client = RawClient(tls)
                await client.send(get("/chunked") + get("/next"))
                await cut.when_blocked()
                received, _ = await read_to_end(client)  # without close_notify: "reset"
            server.shutdown()
    assert_cut(received, CHUNK_OF_BIG, len(BIG))
    assert cut.after == ["refused"]


async def test_move_on_after_around_a_send_as_the_docs_suggest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The report's handler: a deadline around a send to a client that does not read."""
    app = App("bounded")
    after: list[str] = []

    @app.get("/report")
    async def report(request: Request) -> None:
        async with request.respond() as resp:
            with trio.move_on_after(1):
                await resp.send(BIG)
            try:
                await resp.send(AFTER)
            except trio.BrokenResourceError:
                after.append("refused")
                raise

    @app.get("/next")
    async def next_(request: Request) -> HTTPResponse:
        return text("next")

    async with serving(app, "memory") as served, served.connect() as client:
        await client.send(get("/report") + get("/next"))
        await trio.sleep(2)  # reads nothing while the handler's deadline passes
        received, how = await read_to_end(client)
    assert_cut(received, CHUNK_OF_BIG, len(BIG))
    assert how == "closed"
    assert after == ["refused"]


# -- a send cancelled before its first byte: the response goes on ----------------------


async def test_a_send_cancelled_before_it_started_leaves_the_response_usable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App("usable")
    app.config.WRITE_TIMEOUT = 1

    @app.get("/late")
    async def late(request: Request) -> None:
        async with request.respond() as resp:
            await resp.send(b"one ")
            with trio.CancelScope() as scope:
                scope.cancel()  # a deadline that passed before the send
                await resp.send(b"two ")
            # Longer than WRITE_TIMEOUT: the cancelled send left no deadline behind.
            await trio.sleep(3)
            await resp.send(b"three")

    @app.get("/next")
    async def next_(request: Request) -> HTTPResponse:
        return text("next")

    async with serving(app, "memory") as served, served.connect() as client:
        await client.send(get("/late") + get("/next"))
        first = await client.read_response()
        second = await client.read_response()
    assert (first.status, first.body) == (200, b"one three")
    assert (second.status, second.body) == (200, b"next")


@asynccontextmanager
async def serving_small_send_buffer(app: App) -> AsyncIterator[Server]:
    """Serve ``app`` on loopback; accepted sockets get a send buffer of a few KiB."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # accepted ones inherit it
    await sock.bind(("127.0.0.1", 0))
    sock.listen()
    with trio.fail_after(DEADLINE * 4):
        async with trio.open_nursery() as nursery:
            serve = partial(
                serve_listeners, app, [trio.SocketListener(sock)], handle_signals=False
            )
            server = await nursery.start(serve)
            try:
                yield server
            finally:
                server.shutdown()


async def test_a_tcp_send_cancelled_before_its_first_byte_is_not_a_cut() -> None:
    """On plain TCP a send knows what the kernel took: none of a piece, nothing is cut."""
    total = MiB
    app = App("drip")
    cut = Cut()
    dripped = [0]

    @app.get("/drip")
    async def drip(request: Request) -> None:
        async with request.respond(headers={"content-length": str(total)}) as resp:
            # One byte at a time (a byte is written whole or not at all) until a send
            # waits for the client; the test cancels that send.
            while dripped[0] < total:
                with trio.CancelScope() as scope:
                    cut.scope = scope
                    cut.sending.set()
                    await resp.send(b"x")
                if scope.cancelled_caught:
                    break
                dripped[0] += 1
            cut.cut.set()
            await resp.send(b"y" * (total - dripped[0]))

    @app.get("/next")
    async def next_(request: Request) -> HTTPResponse:
        return text("next")

    async with serving_small_send_buffer(app) as server, slow_tcp_client(server.port) as client:
        await client.send(get("/drip") + get("/next"))
        await cut.when_blocked()
        first = await client.read_response()
        second = await client.read_response()
    assert 0 < dripped[0] < total
    assert (first.status, first.body) == (200, b"x" * dripped[0] + b"y" * (total - dripped[0]))
    assert (second.status, second.body) == (200, b"next")


# -- 100 Continue, error pages, whole responses, files: the connection's own writes ----


async def fill_pipe(client: TestClient, room: int) -> bytes:
    """A ``GET /fill`` request whose response leaves ``room`` bytes free in the pipe."""
    async with client.raw() as stream:  # measure the head once
        probe = RawClient(stream)
        await probe.send(get("/fill?n=1000"))
        head = len((await probe.read_response()).head)
    return get(f"/fill?n={PIPE - room - head}")


def connection_app() -> App:
    app = App("writes")

    @app.get("/fill")
    async def fill(request: Request) -> HTTPResponse:
        return raw(b"f" * int(request.args.get("n", "0")))

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> HTTPResponse:
        with trio.move_on_after(1):  # bounds the read, and so the 100 Continue
            await request.stream.read()
        return text("uploaded")

    @app.get("/whole")
    async def whole(request: Request) -> HTTPResponse:
        return raw(b"x" * int(request.args["n"]))

    @app.get("/next")
    async def next_(request: Request) -> HTTPResponse:
        return text("next")

    return app


def split_fill(received: bytes) -> bytes:
    """What came after the complete ``/fill`` response at the start of ``received``."""
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    length = int(head.lower().partition(b"content-length: ")[2].partition(b"\r\n")[0])
    assert rest[:length] == b"f" * length
    return rest[length:]


async def test_a_100_continue_cut_short_is_not_followed_by_the_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = connection_app()
    continue_ = b"HTTP/1.1 100 Continue\r\n\r\n"
    # The client holds its body back until 100 Continue (so nothing can follow it).
    upload = b"POST /upload HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
    upload += b"Content-Length: 5\r\n\r\n"
    async with TestClient(app, buffer_size=PIPE) as client:
        fill = await fill_pipe(client, room=10)
        async with client.raw() as stream:
            conn = RawClient(stream)
            await conn.send(fill + upload)
            await trio.sleep(2)  # reads nothing while the handler's deadline passes
            received, how = await read_to_end(conn)
    rest = split_fill(received)
    assert rest == continue_[:10], rest  # the part the pipe took, then nothing
    assert how == "closed"


async def test_an_error_page_cut_by_write_timeout_ends_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = connection_app()
    app.config.WRITE_TIMEOUT = 2
    async with TestClient(app, buffer_size=PIPE) as client:
        fill = await fill_pipe(client, room=10)
        async with client.raw() as stream:
            conn = RawClient(stream)
            await conn.send(fill + b"NOT HTTP\r\n\r\n" + get("/next"))
            await trio.sleep(3)
            received, how = await read_to_end(conn)
    rest = split_fill(received)
    assert rest == b"HTTP/1.1 4", rest
    assert how == "closed"


@pytest.mark.parametrize("size", [32 * 1024, MiB], ids=["joined", "after-the-head"])
async def test_a_whole_response_cut_by_write_timeout_ends_the_connection(
    autojump_clock: trio.testing.MockClock, size: int
) -> None:
    app = connection_app()
    app.config.WRITE_TIMEOUT = 2
    async with small_pipe(app) as client:
        await client.send(get(f"/whole?n={size}") + get("/next"))
        await trio.sleep(3)
        received, how = await read_to_end(client)
    assert_cut(received, b"", size)
    assert how == "closed"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cut") / "big.bin"
    path.write_bytes(b"z" * len(BIG))
    return path


def file_app(path: Path) -> App:
    app = App("file")

    @app.get("/chunked")
    async def chunked(request: Request) -> HTTPResponse:
        return await file_stream(path)

    @app.get("/sized")
    async def sized(request: Request) -> HTTPResponse:
        return await file_stream(path, chunked=False)

    @app.get("/next")
    async def next_(request: Request) -> HTTPResponse:
        return text("next")

    return app


@pytest.mark.parametrize(
    ("path", "framing"),
    [("/chunked", b"%x\r\n" % 65536), ("/sized", b"")],
    ids=["chunked", "content-length"],
)
async def test_a_file_cut_by_write_timeout_ends_the_connection(
    transport: str, big_file: Path, path: str, framing: bytes
) -> None:
    """Read and sent piece by piece, or with sendfile (TCP, Content-Length)."""
    app = file_app(big_file)
    app.config.WRITE_TIMEOUT = 0.25  # a real clock: the file is opened in a thread
    requested = trio.Event()

    @app.on_request
    async def arrived(request: Request) -> None:
        requested.set()

    async with serving(app, transport) as served, slow_client(served, transport) as client:
        await client.send(get(path) + get("/next"))
        with trio.fail_after(DEADLINE):
            await requested.wait()
        await connections_closed(served)
        received, how = await read_to_end(client)
    assert_cut(received, framing, len(BIG), b"z")
    assert how == ended(transport)


# -- a response cut by the server's shutdown ------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/mid-send", id="mid-send"),
        pytest.param("/between-sends", id="between-sends"),
        pytest.param("/chunked", id="sendfile"),  # chunked=True: close-delimited to 1.0
    ],
)
async def test_a_close_delimited_response_cut_by_shutdown_is_reset(
    big_file: Path, path: str
) -> None:
    """HTTP/1.0 without Content-Length: only a reset tells the client the body is cut."""
    app = file_app(big_file)
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 0

    @app.get("/mid-send")
    async def mid_send(request: Request) -> None:
        async with request.respond() as resp:
            await resp.send(BIG)

    @app.get("/between-sends")
    async def between_sends(request: Request) -> None:
        async with request.respond() as resp:
            await resp.send(b"x")
            await trio.sleep_forever()

    async with serving(app, "tcp") as served, slow_tcp_client(served.server.port) as client:
        await client.send(get(path, b"1.0"))
        await client.read_until(b"\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()  # the handler sends, or sleeps
        served.server.shutdown()
        _, how = await read_to_end(client)
    assert how == "reset"
