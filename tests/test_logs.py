"""Clean logs: what a client does wrong is one quiet line at most; a crash is one traceback.

Client disconnects, timeouts and rejected requests log at most one record, at DEBUG or
INFO, without a traceback: none of them needs an operator's attention, and a server
under a slow-client attack or a scanner must not flood its log. A handler that crashes
logs its traceback exactly once, at ERROR.

Each scenario runs on a fresh server over both transports (virtual time in memory,
small real timeouts over TCP), checks that it happened as intended (the status, the
close), waits until the server has closed the connection, and then looks at what the
``trioweb`` logger recorded meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from _helpers import RawClient, Served, connections_closed, serving

from trioweb import App, Request
from trioweb.response import HTTPResponse, file_stream, text

# Scenarios that wait on worker threads (files), which an autojump clock would skip past.
THREADED = {"disconnect-mid-file", "416"}


@pytest.fixture
def clock(transport: str, request: pytest.FixtureRequest) -> trio.testing.MockClock | None:
    """Virtual time in memory (pytest-trio runs the test with this clock), real over TCP."""
    if transport == "tcp" or request.node.callspec.params.get("name") in THREADED:
        return None
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def unit(transport: str) -> float:
    """Every timeout of the app, in seconds."""
    return 1.0 if transport == "memory" else 0.2


def get(path: str, *headers: bytes) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: test\r\n%b\r\n" % (
        path.encode(),
        b"".join(h + b"\r\n" for h in headers),
    )


def post_head(path: str, length: int) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % (
        path.encode(),
        length,
    )


def logs_app(unit: float, path: Path) -> App:
    """Every timeout is ``unit``; a route for each scenario."""
    app = App("logs")
    config = app.config
    config.REQUEST_TIMEOUT = unit
    config.READ_IDLE_TIMEOUT = unit
    config.RESPONSE_TIMEOUT = unit
    config.WRITE_TIMEOUT = unit
    config.KEEP_ALIVE_TIMEOUT = unit
    config.REQUEST_MAX_SIZE = 1000

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text("hello")

    @app.post("/echo")
    async def echo(request: Request) -> HTTPResponse:
        return text(request.body.decode())

    @app.get("/sleep")
    async def sleep(request: Request) -> HTTPResponse:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    @app.get("/hang", response_timeout=None)
    async def hang(request: Request) -> HTTPResponse:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    @app.get("/forever")
    async def forever(request: Request) -> None:
        async with request.respond(content_type="application/octet-stream") as resp:
            while True:
                await resp.send(b"z" * 65536)

    @app.post("/upload", stream=True, response_timeout=None)
    async def upload(request: Request) -> HTTPResponse:
        return text(str(len(await request.receive_body())))

    @app.post("/answer-then-read", stream=True, response_timeout=None)
    async def answer_then_read(request: Request) -> None:
        async with request.respond() as resp:
            await resp.send("reading")
            async for chunk in request.stream:
                await resp.send(chunk)

    @app.get("/file")
    async def a_file(request: Request) -> HTTPResponse:
        return await file_stream(path, chunked=False)

    @app.get("/crash")
    async def crash(request: Request) -> HTTPResponse:
        raise RuntimeError("the handler is broken")

    @app.get("/crash-while-responding")
    async def crash_while_responding(request: Request) -> None:
        async with request.respond() as resp:
            await resp.send("partial")
            raise RuntimeError("the handler broke mid-response")

    return app


async def status_then_close(client: RawClient, status: int, method: str = "GET") -> None:
    response = await client.read_response(method)
    assert response.status == status, response.raw
    assert response.header("connection") == "close", response.raw
    assert await client.read_to_eof() == b""


# -- the scenarios -----------------------------------------------------------------

Scenario = Callable[[Served], Awaitable[None]]
#: Each scenario's client side, and the config it needs on top of ``logs_app``'s.
SCENARIOS: dict[str, tuple[Scenario, dict[str, int]]] = {}


def scenario(name: str, **config: int) -> Callable[[Scenario], Scenario]:
    """Register a scenario under ``name``, to run with these config values."""

    def register(run: Scenario) -> Scenario:
        assert name not in SCENARIOS, name
        SCENARIOS[name] = (run, config)
        return run

    return register


# For the scenarios about something else, timeouts that cannot fire on a slow machine.
NO_TIMEOUTS = {
    key: 60
    for key in ("REQUEST_TIMEOUT", "READ_IDLE_TIMEOUT", "RESPONSE_TIMEOUT", "WRITE_TIMEOUT")
}


@scenario("disconnect-before-the-response", **NO_TIMEOUTS)
async def disconnect_before_the_response(served: Served) -> None:
    async with served.connect() as client:
        await client.send(get("/hang"))
        assert await client.received_while_blocked() == b""
    await connections_closed(served)


@scenario("disconnect-mid-response", **NO_TIMEOUTS)
async def disconnect_mid_response(served: Served) -> None:
    async with served.connect() as client:
        await client.send(get("/forever"))
        await client.read_until(b"z" * 1000)


@scenario("disconnect-mid-file", **NO_TIMEOUTS)
async def disconnect_mid_file(served: Served) -> None:
    async with served.connect() as client:
        await client.send(get("/file"))
        await client.read_until(b"\0" * 1000)


@scenario("disconnect-mid-upload-streaming", **NO_TIMEOUTS)
async def disconnect_mid_upload_streaming(served: Served) -> None:
    async with served.connect() as client:
        await client.send(post_head("/upload", 1000) + b"x" * 100)
        assert await client.received_while_blocked() == b""


@scenario("disconnect-mid-upload-buffered", **NO_TIMEOUTS)
async def disconnect_mid_upload_buffered(served: Served) -> None:
    async with served.connect() as client:
        await client.send(post_head("/echo", 1000) + b"x" * 100)
        assert await client.received_while_blocked() == b""


@scenario("request-timeout-head")
async def request_timeout_head(served: Served) -> None:
    async with served.connect() as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: te")
        await status_then_close(client, 408)


@scenario("request-timeout-body")
async def request_timeout_body(served: Served) -> None:
    async with served.connect() as client:
        await client.send(post_head("/echo", 1000) + b"x" * 100)
        await status_then_close(client, 408, "POST")


@scenario("read-idle-timeout")
async def read_idle_timeout(served: Served) -> None:
    async with served.connect() as client:
        await client.send(post_head("/upload", 1000) + b"x" * 100)
        await status_then_close(client, 408, "POST")


@scenario("read-idle-timeout-while-responding")
async def read_idle_timeout_while_responding(served: Served) -> None:
    async with served.connect() as client:
        await client.send(post_head("/answer-then-read", 1000) + b"x" * 100)
        rest = await client.read_to_eof()
        assert rest.startswith(b"HTTP/1.1 200 ")
        assert rest.partition(b"\r\n\r\n")[2].count(b"x") == 100  # (x-request-id)
        assert not rest.endswith(b"0\r\n\r\n")  # cut short, without the last chunk


@scenario("response-timeout")
async def response_timeout(served: Served) -> None:
    async with served.connect() as client:
        await client.send(get("/sleep"))
        await status_then_close(client, 503)


@scenario("write-timeout")
async def write_timeout(served: Served) -> None:
    async with served.connect() as client:
        await client.send(get("/forever"))
        assert (await client.read_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
        await connections_closed(served)  # while this client reads nothing more
        assert not (await client.read_to_eof()).endswith(b"0\r\n\r\n")


@scenario("keep-alive-timeout")
async def keep_alive_timeout(served: Served) -> None:
    async with served.connect() as client:
        await client.send(get("/"))
        assert (await client.read_response()).status == 200
        assert await client.read_to_eof() == b""


@scenario("keep-alive-timeout-never-a-byte")
async def keep_alive_timeout_never_a_byte(served: Served) -> None:
    async with served.connect() as client:
        assert await client.read_to_eof() == b""


@scenario("400-malformed")
async def status_400_malformed(served: Served) -> None:
    async with served.connect() as client:
        await client.send(b"GARBAGE\r\n\r\n")
        await status_then_close(client, 400)


@scenario("400-malformed-chunked-body")
async def status_400_malformed_chunked_body(served: Served) -> None:
    async with served.connect() as client:
        await client.send(
            b"POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        await status_then_close(client, 400, "POST")


@scenario("431")
async def status_431(served: Served) -> None:
    async with served.connect() as client:
        await client.send(get("/", b"X-Big: " + b"b" * 10_000))
        await status_then_close(client, 431)


@scenario("414")
async def status_414(served: Served) -> None:
    async with served.connect() as client:
        await client.send(get("/" + "a" * 10_000))
        await status_then_close(client, 414)


@scenario("505")
async def status_505(served: Served) -> None:
    async with served.connect() as client:
        await client.send(b"GET / HTTP/2.0\r\nHost: test\r\n\r\n")
        await status_then_close(client, 505)


@scenario("417")
async def status_417(served: Served) -> None:
    async with served.connect() as client:
        await client.send(get("/", b"Expect: the-unexpected"))
        await status_then_close(client, 417)


@scenario("413")
async def status_413(served: Served) -> None:
    async with served.connect() as client:
        await client.send(post_head("/echo", 5000))
        await status_then_close(client, 413, "POST")


@scenario("413-chunked")
async def status_413_chunked(served: Served) -> None:
    async with served.connect() as client:
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n"
        )
        await status_then_close(client, 413, "POST")


@scenario("503-max-connections", MAX_CONNECTIONS=1, KEEP_ALIVE_TIMEOUT=60)
async def status_503_max_connections(served: Served) -> None:
    async with served.connect() as held:
        await held.send(get("/"))
        assert (await held.read_response()).status == 200
        async with served.connect() as extra:
            await extra.send(get("/"))
            await status_then_close(extra, 503)


@scenario("416")
async def status_416(served: Served) -> None:
    async with served.connect() as client:
        await client.send(get("/file", b"Range: bytes=99999999-", b"Connection: close"))
        await status_then_close(client, 416)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 MiB of zeros (a sparse file): far more than the socket buffers hold."""
    path = tmp_path_factory.mktemp("logs") / "zeros.bin"
    with path.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    return path


async def records_of(
    run: Scenario,
    config: dict[str, int],
    transport: str,
    unit: float,
    path: Path,
    caplog: pytest.LogCaptureFixture,
) -> list[logging.LogRecord]:
    """What the ``trioweb`` logger recorded from the scenario until its connections closed."""
    app = logs_app(unit, path)
    for key, value in config.items():
        setattr(app.config, key, value)
    caplog.set_level(logging.DEBUG, logger="trioweb")
    async with serving(app, transport) as served:
        caplog.clear()  # the server's start
        await run(served)
        await connections_closed(served)
        await trio.testing.wait_all_tasks_blocked()  # a refused connection's task, too
        # (The access line is every request's, mishap or not: see test_access_log.py.)
        return [
            r
            for r in caplog.records
            if r.name.split(".")[0] == "trioweb" and r.name != "trioweb.access"
        ]


def shown(records: list[logging.LogRecord]) -> list[str]:
    return [f"{r.levelname}: {r.getMessage()} (exc_info: {bool(r.exc_info)})" for r in records]


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_client_mishap_logs_one_quiet_line_at_most(
    name: str,
    transport: str,
    clock: trio.testing.MockClock | None,
    unit: float,
    big_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = await records_of(*SCENARIOS[name], transport, unit, big_file, caplog)
    assert len(records) <= 1, shown(records)
    for record in records:
        assert record.levelno <= logging.INFO, shown(records)
        assert not record.exc_info, shown(records)
        assert "Traceback" not in record.getMessage(), shown(records)


@pytest.mark.parametrize(("path", "status"), [("/crash", 500), ("/crash-while-responding", 200)])
async def test_handler_crash_logs_one_traceback(
    path: str,
    status: int,
    transport: str,
    clock: trio.testing.MockClock | None,
    unit: float,
    big_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def crash(served: Served) -> None:
        async with served.connect() as client:
            await client.send(get(path, b"Connection: close"))
            assert (await client.read_to_eof()).startswith(b"HTTP/1.1 %d " % status)

    records = await records_of(crash, {}, transport, unit, big_file, caplog)
    assert len(records) == 1, shown(records)
    assert records[0].levelno == logging.ERROR, shown(records)
    assert records[0].exc_info is not None, shown(records)
    assert records[0].exc_info[0] is RuntimeError, shown(records)
