"""Failing tests from a review of the connection lifecycle, the server and the test pipe.

Each test shows one bug: it fails on the code as it is, and should pass once fixed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct

import pytest
import trio
import trio.testing
from _helpers import DEADLINE, serving

from trioweb import App, Request
from trioweb.errors import NotFound
from trioweb.response import ResponseStream, text
from trioweb.testing import memory_pipe_pair


def get(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode()


def _port_is_free(port: int) -> bool:
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
        probe.listen()
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- 1. a client that resets before its connection is served crashes the server ------


async def test_client_reset_before_accept_does_not_crash_the_server() -> None:
    app = App("review")

    @app.get("/")
    async def index(request: Request) -> object:
        return text("still up")

    async with serving(app, "tcp") as served:
        # Connect and reset (SO_LINGER 0) without letting Trio run, so the server
        # accepts sockets whose peer is already gone: getpeername() fails with ENOTCONN.
        for _ in range(3):
            sock = socket.socket()
            sock.connect(("127.0.0.1", served.server.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        await trio.sleep(0.2)
        async with served.connect() as client:
            await client.send(get("/"))
            response = await client.read_response()
            assert response.body == b"still up"


# -- 2. writing to a response whose connection has ended ----------------------------


def _event_stream_app(responses: list[ResponseStream], finished: trio.Event) -> App:
    """A server-sent-events style app that keeps each response for a broadcaster."""
    app = App("review")

    @app.get("/events")
    async def events(request: Request) -> None:
        resp = await request.respond(content_type="text/event-stream")
        responses.append(resp)
        try:
            await resp.send(b"data: hello\n\n")
            await trio.sleep_forever()
        finally:
            finished.set()

    return app


async def _wait_until_closed(server: object, finished: trio.Event) -> None:
    """Until the handler has ended and its connection (and socket) are closed."""
    with trio.fail_after(DEADLINE):
        await finished.wait()
        await trio.testing.wait_all_tasks_blocked()
    assert not server._connections  # type: ignore[attr-defined]


async def test_write_to_ended_connection_never_reaches_another_client() -> None:
    responses: list[ResponseStream] = []
    finished = trio.Event()
    app = _event_stream_app(responses, finished)
    async with serving(app, "tcp") as served:
        async with served.connect() as first:
            await first.send(get("/events"))
            await first.read_until(b"hello\n\n")
        await _wait_until_closed(served.server, finished)
        # The next accepted socket gets the file descriptor the first one had.
        async with served.connect() as second:
            await trio.testing.wait_all_tasks_blocked()
            # A broadcaster (e.g. in app.nursery) writes to the stale response.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await responses[0].send(b"data: for the first client only\n\n")
            assert await second.received_while_blocked() == b""


async def test_write_to_ended_connection_raises_a_resource_error(transport: str) -> None:
    responses: list[ResponseStream] = []
    finished = trio.Event()
    app = _event_stream_app(responses, finished)
    async with serving(app, transport) as served:
        async with served.connect() as client:
            await client.send(get("/events"))
            await client.read_until(b"hello\n\n")
        await _wait_until_closed(served.server, finished)
        # Memory: returns as if sent. TCP: AssertionError("unreachable") from os.write.
        with pytest.raises((trio.BrokenResourceError, trio.ClosedResourceError)):
            await responses[0].send(b"data: anyone there?\n\n")


# -- 3. a routing error's response is produced while the phase is still IDLE ----------


async def test_graceful_shutdown_lets_an_async_404_handler_answer(transport: str) -> None:
    app = App("review")
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 30
    entered = trio.Event()
    release = trio.Event()

    @app.exception(NotFound)
    async def not_found(request: Request, exc: Exception) -> object:
        entered.set()
        await release.wait()  # e.g. rendering a template
        return text("custom 404", status=404)

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/missing"))
        with trio.fail_after(DEADLINE):
            await entered.wait()
        served.server.shutdown()
        await trio.testing.wait_all_tasks_blocked()
        release.set()
        response = await client.read_response()
        assert response.status == 404
        assert response.body == b"custom 404"
        assert response.header("connection") == "close"


async def test_async_404_handler_is_not_cut_by_keep_alive_timeout(
    transport: str, autojump_clock: trio.testing.MockClock
) -> None:
    app = App("review")
    app.config.KEEP_ALIVE_TIMEOUT = 2  # RESPONSE_TIMEOUT stays 60

    @app.exception(NotFound)
    async def not_found(request: Request, exc: Exception) -> object:
        await trio.sleep(3)
        return text("custom 404", status=404)

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/missing"))
        response = await client.read_response()
        assert response.status == 404
        assert response.body == b"custom 404"


# -- 4. READ_IDLE_TIMEOUT runs while the client waits for 100 Continue --------------


async def test_read_idle_timeout_waits_for_100_continue_to_be_sent(
    transport: str, autojump_clock: trio.testing.MockClock
) -> None:
    app = App("review")
    app.config.READ_IDLE_TIMEOUT = 1

    @app.post("/upload", stream=True, response_timeout=None)
    async def upload(request: Request) -> object:
        await trio.sleep(3)  # checks before reading; the client is rightly waiting
        return text((await request.receive_body()).decode())

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(
            b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = await client.read_until(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        await client.send(b"hello")
        response = await client.read_response("POST")
        assert response.status == 200
        assert response.body == b"hello"


# -- 5. signals cannot stop a server whose startup listener is still running --------


async def test_signals_stop_a_server_still_in_before_server_start() -> None:
    app = App("review")
    entered = trio.Event()
    stopped = trio.Event()

    @app.before_server_start
    async def wait_for_database(app: App) -> None:
        entered.set()
        await trio.sleep_forever()  # e.g. a database that is not up yet

    async def run() -> None:
        await app.serve("127.0.0.1", 0)
        stopped.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        with trio.fail_after(DEADLINE):
            await entered.wait()
        # Ctrl+C, and even a second one, must end it.
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            with trio.move_on_after(0.5):
                await stopped.wait()
            if stopped.is_set():
                break  # its signal handler is gone: another SIGINT would hit the test
        nursery.cancel_scope.cancel()
    assert stopped.is_set(), "app.serve ignored SIGINT during before_server_start"


# -- 6. listening sockets are left open when serve fails before accepting -------------


async def test_failed_startup_listener_releases_the_port() -> None:
    app = App("review")

    @app.before_server_start
    async def fail(app: App) -> None:
        raise RuntimeError("database is down")

    port = _free_port()
    failure = None
    try:
        with trio.fail_after(DEADLINE):
            await app.serve("127.0.0.1", port)
    except Exception as exc:  # the listener's error, inside exception groups
        failure = exc  # e.g. kept by an error reporter, or a retry loop
    assert failure is not None
    assert _port_is_free(port), "the failed server still listens: a retry gets EADDRINUSE"


async def test_invalid_ssl_argument_releases_the_port() -> None:
    app = App("review")
    port = _free_port()
    failure = None
    try:
        with trio.fail_after(DEADLINE):
            await app.serve("127.0.0.1", port, ssl="not an SSLContext")
    except TypeError as exc:
        failure = exc  # e.g. kept by an error reporter
    assert failure is not None
    assert _port_is_free(port), "the sockets bound before the ssl check are still open"


# -- 7. the memory pipe lets two writers interleave instead of refusing the second ---


async def test_memory_pipe_concurrent_send_all_raises_busy_resource_error() -> None:
    writer, reader = memory_pipe_pair(buffer_size=4)
    refused: list[bytes] = []

    async def send(data: bytes) -> None:
        try:
            await writer.send_all(data)
        except trio.BusyResourceError:
            refused.append(data)

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, b"A" * 8)
            await trio.testing.wait_all_tasks_blocked()  # parked: the buffer is full
            nursery.start_soon(send, b"B" * 8)
            await trio.testing.wait_all_tasks_blocked()
            # Like a socket stream: a second send_all while one is under way is refused.
            assert refused == [b"B" * 8]
            nursery.cancel_scope.cancel()
    await writer.aclose()
    await reader.aclose()


# -- 8. an invalid header from response middleware recurses until RecursionError ------


async def test_invalid_header_from_response_middleware_gets_a_500(transport: str) -> None:
    app = App("review")

    @app.get("/")
    async def index(request: Request) -> object:
        return text("fine")

    @app.on_response
    async def add_header(request: Request, response: object) -> None:
        response.headers["x bad name"] = "1"  # type: ignore[attr-defined]

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/"))
        response = await client.read_response()
        assert response.status == 500
