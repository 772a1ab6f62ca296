"""Every timeout as a cancel scope, and slow clients cut off by them (docs/serving.md).

Each timeout is checked for its exact outcome: the status (408, 503) or a silent close,
``Connection: close``, the connection closed afterwards, the handler cancelled, and when
it fires. Already covered elsewhere, and not repeated here: the 503 of RESPONSE_TIMEOUT
and a streamed response outliving it, and the 408 of a stalled streaming body
(test_protocol.py); a stalled head in memory and an idle connection closed after a
response (test_testing.py); a steady upload and RESPONSE_TIMEOUT on streaming routes
(test_stream_timeouts.py); ``request.deadline`` in memory (test_limits.py); a file
download to a client that never reads (test_files.py).

Tests over both transports count in ``unit`` seconds: virtual seconds in memory (an
autojump clock, so they take no real time), a fifth of a real second over loopback TCP.
The slow-client tests (slowloris, slow POST, slow read) run over TCP in real time: many
slow connections at once, each cut off by its timeout, while a normal client is served.

Two tests play a busy machine with a clock that jumps at the worst moment: a deadline
that passes while the task it would cancel has just been woken must still mean what its
phase meant, not whatever the connection does next.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing
from _helpers import (
    DEADLINE,
    RawClient,
    Response,
    Served,
    connections_closed,
    serving,
)

from trioweb import App, Request
from trioweb.response import HTTPResponse, file_stream, text

BODY = 1000  # the length of the request bodies
MiB = 1024 * 1024


@pytest.fixture
def clock(transport: str) -> trio.testing.MockClock | None:
    """Virtual time in memory (pytest-trio runs the test with this clock), real over TCP."""
    return trio.testing.MockClock(autojump_threshold=0) if transport == "memory" else None


@pytest.fixture
def unit(transport: str) -> float:
    """The time scale of a test: long enough over TCP not to be noise."""
    return 1.0 if transport == "memory" else 0.2


def get(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode()


def post_head(path: str, length: int = BODY) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % (
        path.encode(),
        length,
    )


# A request head that keeps going: sent a byte at a time, it never ends in time.
ENDLESS_HEAD = b"GET / HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"p" * 2000


async def trickle(stream: trio.abc.Stream, data: bytes, gap: float) -> None:
    """Send ``data`` a byte at a time, ``gap`` seconds apart, until the server closes."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        for i in range(len(data)):
            await stream.send_all(data[i : i + 1])
            await trio.sleep(gap)


async def response_while_trickling(
    client: RawClient, data: bytes, gap: float, method: str = "GET"
) -> Response:
    """The response the server sends while ``data`` trickles in."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle, client.stream, data, gap)
        response = await client.read_response(method)
        nursery.cancel_scope.cancel()
    return response


def assert_closing(response: Response, status: int) -> None:
    assert response.status == status, response.raw
    assert response.header("connection") == "close", response.raw


def timeout_app() -> App:
    """``/``; ``/echo`` (a buffered body); ``/sleep/<s>`` (answers after ``s`` seconds)."""
    app = App("timeouts")

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text("hello")

    @app.post("/echo")
    async def echo(request: Request) -> HTTPResponse:
        return text(f"{len(request.body)} bytes")

    @app.route("/sleep/<seconds:float>", methods=["GET", "POST"])
    async def sleep(request: Request, seconds: float) -> HTTPResponse:
        await trio.sleep(seconds)
        return text(f"{len(request.body)} bytes")

    return app


# -- REQUEST_TIMEOUT ------------------------------------------------------------------


async def test_trickled_head_gets_408_at_request_timeout_from_its_first_byte(
    transport: str, clock: trio.testing.MockClock | None, unit: float
) -> None:
    # An absolute deadline: a byte every 0.2 units does not extend it. It starts with the
    # first byte, not with the connection (KEEP_ALIVE_TIMEOUT covers the wait before).
    app = timeout_app()
    app.config.REQUEST_TIMEOUT = 2 * unit
    app.config.KEEP_ALIVE_TIMEOUT = 4 * unit
    async with serving(app, transport) as served, served.connect() as client:
        await trio.sleep(unit)
        first_byte = trio.current_time()
        response = await response_while_trickling(client, ENDLESS_HEAD, 0.2 * unit)
        after = trio.current_time() - first_byte
        assert_closing(response, 408)
        assert await client.read_to_eof() == b""
    assert 2 * unit <= after < 6 * unit


async def test_trickled_buffered_body_gets_408_at_request_timeout(
    transport: str, clock: trio.testing.MockClock | None, unit: float
) -> None:
    app = timeout_app()
    app.config.REQUEST_TIMEOUT = 2 * unit
    handled: list[bytes] = []

    @app.post("/upload")
    async def upload(request: Request) -> HTTPResponse:
        handled.append(request.body)
        return text("never")

    async with serving(app, transport) as served, served.connect() as client:
        head_sent = trio.current_time()  # (before: the server may start its clock at once)
        await client.send(post_head("/upload"))
        # 1000 bytes a byte at a time would take 200 units: long past the deadline.
        response = await response_while_trickling(client, b"x" * BODY, 0.2 * unit, "POST")
        after = trio.current_time() - head_sent
        assert_closing(response, 408)
        assert await client.read_to_eof() == b""
    assert 2 * unit <= after < 6 * unit
    assert handled == []


async def test_head_body_and_handler_each_get_their_own_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # REQUEST_TIMEOUT for the head, again for the buffered body, then RESPONSE_TIMEOUT
    # from the handler's start: 4.4 s in all, each phase under 2 s.
    app = timeout_app()
    app.config.REQUEST_TIMEOUT = 2
    app.config.RESPONSE_TIMEOUT = 2
    head = b"POST /sleep/1.5 HTTP/1.1\r\nHost: test\r\nContent-Length: 15\r\n\r\n"
    async with serving(app, "memory") as served, served.connect() as client:
        start = trio.current_time()
        await trickle(client.stream, head, 1.5 / len(head))
        await trickle(client.stream, b"x" * 15, 0.1)
        response = await client.read_response("POST")
        assert (response.status, response.body) == (200, b"15 bytes")
        assert trio.current_time() - start >= 4.3
        assert response.header("connection") is None
        await client.send(get("/"))  # and the connection is still good
        assert (await client.read_response()).body == b"hello"


@pytest.mark.parametrize(
    ("route", "gap", "status", "cut_at"),
    [
        ({}, 0.4, 408, 2),  # the config's 2 s
        ({"request_timeout": 6}, 0.4, 200, None),  # 4 s of body
        ({"request_timeout": None}, 0.5, 200, None),  # 4.5 s of body
        ({"request_timeout": 0.5}, 0.4, 408, 0.5),  # 0.5 s, shorter than the config
    ],
    ids=["default", "longer", "none", "shorter"],
)
async def test_route_request_timeout_overrides_the_config_for_a_buffered_body(
    autojump_clock: trio.testing.MockClock,
    route: dict[str, float | None],
    gap: float,
    status: int,
    cut_at: float | None,
) -> None:
    app = timeout_app()
    app.config.REQUEST_TIMEOUT = 2
    app.config.RESPONSE_TIMEOUT = 1000

    async def upload(request: Request) -> HTTPResponse:
        return text(request.body.decode())

    app.add_route(upload, "/upload", methods=["POST"], **route)  # type: ignore[arg-type]
    async with serving(app, "memory") as served, served.connect() as client:
        start = trio.current_time()
        await client.send(post_head("/upload", 10))
        response = await response_while_trickling(client, b"0123456789", gap, "POST")
        after = trio.current_time() - start
    assert response.status == status
    if cut_at is None:
        assert response.body == b"0123456789"
        assert after > 8 * gap  # longer than the config's 2 s
    else:
        assert response.header("connection") == "close"
        assert cut_at <= after < cut_at + gap


# -- RESPONSE_TIMEOUT -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "sleep", "status", "cut_at"),
    [
        ({}, 3, 503, 2),  # the config's 2 s
        ({"response_timeout": 5}, 3, 200, None),
        ({"response_timeout": None}, 4, 200, None),
        ({"response_timeout": 0.5}, 1, 503, 0.5),  # shorter than the config
    ],
    ids=["default", "longer", "none", "shorter"],
)
async def test_route_response_timeout_overrides_the_config(
    autojump_clock: trio.testing.MockClock,
    route: dict[str, float | None],
    sleep: float,
    status: int,
    cut_at: float | None,
) -> None:
    app = timeout_app()
    app.config.RESPONSE_TIMEOUT = 2
    cancelled = trio.Event()

    async def slow(request: Request) -> HTTPResponse:
        try:
            await trio.sleep(sleep)
        except trio.Cancelled:
            cancelled.set()
            raise
        return text("done")

    app.add_route(slow, "/slow", **route)  # type: ignore[arg-type]
    async with serving(app, "memory") as served, served.connect() as client:
        start = trio.current_time()
        await client.send(get("/slow"))
        response = await client.read_response()
        after = trio.current_time() - start
        if cut_at is None:
            assert (response.status, response.body) == (200, b"done")
            assert after >= sleep
            assert not cancelled.is_set()
        else:
            assert_closing(response, status)
            assert await client.read_to_eof() == b""
            assert cut_at <= after < sleep
            assert cancelled.is_set()


async def test_handler_moves_its_own_deadline_over_tcp() -> None:
    app = App("deadline")
    app.config.RESPONSE_TIMEOUT = 0.3
    seen: dict[str, float] = {}

    @app.get("/later")
    async def later(request: Request) -> HTTPResponse:
        seen["left"] = request.deadline - trio.current_time()
        request.deadline = trio.current_time() + 5
        await trio.sleep(0.6)  # twice RESPONSE_TIMEOUT
        return text("in time")

    @app.get("/sooner")
    async def sooner(request: Request) -> HTTPResponse:
        request.deadline = trio.current_time() + 0.05
        await trio.sleep(DEADLINE)
        return text("too late")

    @app.get("/none", response_timeout=None)
    async def none(request: Request) -> HTTPResponse:
        seen["none"] = request.deadline
        return text("no deadline")

    async with serving(app, "tcp") as served:
        async with served.connect() as client:
            await client.send(get("/later"))
            response = await client.read_response()
            assert (response.status, response.body) == (200, b"in time")
            assert 0.2 < seen["left"] <= 0.3
            start = trio.current_time()
            await client.send(get("/sooner"))
            assert_closing(await client.read_response(), 503)
            assert trio.current_time() - start < 0.3  # before RESPONSE_TIMEOUT
        async with served.connect() as client:
            await client.send(get("/none"))
            assert (await client.read_response()).status == 200
            assert seen["none"] == math.inf


# -- READ_IDLE_TIMEOUT ----------------------------------------------------------------


@pytest.mark.parametrize("responded", [False, True], ids=["before-response", "responding"])
async def test_stalled_streaming_body_cancels_the_handler(
    transport: str, clock: trio.testing.MockClock | None, unit: float, responded: bool
) -> None:
    # Before the response: 408 and close. After its head: the connection just closes,
    # and the chunked body lacks its last chunk.
    app = App("idle")
    app.config.READ_IDLE_TIMEOUT = 2 * unit
    cancelled = trio.Event()
    received: list[bytes] = []

    @app.post("/upload", stream=True, response_timeout=None)
    async def upload(request: Request) -> HTTPResponse | None:
        try:
            if not responded:
                return text(str(len(await request.receive_body())))
            async with request.respond() as resp:
                await resp.send("started")
                async for chunk in request.stream:
                    received.append(chunk)
            return None
        except trio.Cancelled:
            cancelled.set()
            raise

    async with serving(app, transport) as served, served.connect() as client:
        last_byte = trio.current_time()
        await client.send(post_head("/upload") + b"first")
        if responded:
            head = await client.read_until(b"7\r\nstarted\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            assert await client.read_to_eof() == b""  # no "0\r\n\r\n": cut short
        else:
            assert_closing(await client.read_response("POST"), 408)
            assert await client.read_to_eof() == b""
        after = trio.current_time() - last_byte
        with trio.fail_after(DEADLINE):
            await cancelled.wait()
    assert 2 * unit <= after < 6 * unit
    assert b"".join(received) == (b"first" if responded else b"")


# -- WRITE_TIMEOUT --------------------------------------------------------------------


@dataclass
class Producer:
    """An app whose ``/big`` streams ``total`` bytes, and how each of its handlers ended."""

    app: App
    ended: list[str] = field(default_factory=list)
    first_ended: trio.Event = field(default_factory=trio.Event)


def producer(total: int, piece: int = 65536) -> Producer:
    produced = Producer(App("producer"))
    app = produced.app

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text("hello")

    @app.get("/big")
    async def big(request: Request) -> None:
        try:
            async with request.respond(content_type="application/octet-stream") as resp:
                for _ in range(total // piece):
                    await resp.send(b"z" * piece)
            produced.ended.append("finished")
        except trio.Cancelled:
            produced.ended.append("cancelled")
            raise
        finally:
            produced.first_ended.set()

    return produced


async def test_client_that_stops_reading_is_aborted_and_the_handler_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    produced = producer(16 * MiB)
    produced.app.config.WRITE_TIMEOUT = 2
    async with serving(produced.app, "memory") as served, served.connect() as client:
        await client.send(get("/big"))
        await client.read_until(b"\r\n\r\n")
        stopped = trio.current_time()  # never reads again
        with trio.fail_after(DEADLINE):
            await produced.first_ended.wait()
        assert produced.ended == ["cancelled"]
        assert 2 <= trio.current_time() - stopped < 3
        rest = await client.read_to_eof()
    assert 0 < len(rest) < 16 * MiB
    assert not rest.endswith(b"0\r\n\r\n")


async def test_slow_but_steady_reader_is_not_cut_by_write_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # WRITE_TIMEOUT bounds each send, not the response: 10 s of reads, none over 1 s late.
    produced = producer(16 * 65536)
    produced.app.config.WRITE_TIMEOUT = 1
    async with serving(produced.app, "memory") as served, served.connect() as client:
        start = trio.current_time()
        await client.send(get("/big"))
        parser = client.parser()
        await parser.next_event()  # the head
        for _ in range(16):
            assert await parser.read_body(65536) == b"z" * 65536
            await trio.sleep(0.6)
        await parser.next_event()  # the end of the body
        assert trio.current_time() - start >= 9
    assert produced.ended == ["finished"]


@pytest.fixture
def jumping_clock() -> trio.testing.MockClock:
    """Real time, that a test can also jump forward (every wait stays bounded)."""
    return trio.testing.MockClock(rate=1.0)


async def test_write_timeout_expiring_as_a_blocked_send_wakes_still_resets(
    jumping_clock: trio.testing.MockClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A busy machine, played by a clock jump: the client takes what was sent, which wakes the
    # server's wait for the socket (sendfile), but WRITE_TIMEOUT passes before the
    # server's task runs again. The deadline fired on a write: the connection is reset
    # and the timeout logged, however the race between the wake-up and the deadline goes.
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        f.truncate(64 * MiB)
    app = App("race")
    app.config.WRITE_TIMEOUT = 5

    @app.get("/file")
    async def big(request: Request) -> HTTPResponse:
        return await file_stream(path, chunked=False)

    caplog.set_level(logging.INFO, logger="trioweb")
    async with serving(app, "tcp") as served:
        # A plain socket: reading it does not let the server's task run.
        with socket.create_connection(("127.0.0.1", served.server.port), timeout=DEADLINE) as sock:
            sock.sendall(get("/file"))
            sock.setblocking(False)
            await trio.testing.wait_all_tasks_blocked(0.1)  # the server waits for the socket
            with contextlib.suppress(BlockingIOError):
                while sock.recv(MiB):
                    pass
            jumping_clock.jump(6)
            await trio.testing.wait_all_tasks_blocked(0.1)  # the server's turn
            sock.settimeout(DEADLINE)
            with pytest.raises(ConnectionResetError):
                while sock.recv(MiB):
                    pass
    assert [r.getMessage() for r in caplog.records if "WRITE_TIMEOUT" in r.getMessage()]


# -- KEEP_ALIVE_TIMEOUT ---------------------------------------------------------------


@pytest.mark.parametrize("with_request", [False, True], ids=["never-a-byte", "after-a-request"])
async def test_idle_connection_is_closed_silently_after_keep_alive_timeout(
    transport: str, clock: trio.testing.MockClock | None, unit: float, with_request: bool
) -> None:
    app = timeout_app()
    app.config.KEEP_ALIVE_TIMEOUT = 2 * unit
    async with serving(app, transport) as served:
        # Counted from before the connection: the server's clock starts later (from after
        # the response, the client's reading of it could start the client's clock later).
        start = trio.current_time()
        async with served.connect() as client:
            if with_request:
                await client.send(get("/"))
                response = await client.read_response()
                assert response.status == 200
                assert response.header("connection") is None
            assert await client.read_to_eof() == b""
            after = trio.current_time() - start
    assert 2 * unit <= after < 6 * unit


async def test_keep_alive_timeout_starts_over_after_each_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = timeout_app()
    app.config.KEEP_ALIVE_TIMEOUT = 2
    async with serving(app, "memory") as served, served.connect() as client:
        start = trio.current_time()
        for _ in range(4):
            await trio.sleep(1.5)
            await client.send(get("/"))
            assert (await client.read_response()).status == 200
        assert trio.current_time() - start >= 6


async def test_head_in_progress_is_under_request_timeout_not_keep_alive_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = timeout_app()
    app.config.KEEP_ALIVE_TIMEOUT = 1
    app.config.REQUEST_TIMEOUT = 5
    head = get("/")
    async with serving(app, "memory") as served, served.connect() as client:
        start = trio.current_time()
        response = await response_while_trickling(client, head, 3 / len(head))
        assert (response.status, response.body) == (200, b"hello")
        assert trio.current_time() - start >= 2.9


class StallAfterReaderStep(trio.abc.Instrument):
    """Jumps the clock after the connection reader's next step: a machine that stalls."""

    def __init__(self, clock: trio.testing.MockClock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.armed = False
        self.fired = False

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.armed and task.name.endswith("._read_loop"):
            self.armed = False
            self.fired = True
            self.clock.jump(self.seconds)


async def test_head_arriving_as_keep_alive_timeout_expires_is_served_or_dropped(
    jumping_clock: trio.testing.MockClock,
) -> None:
    # The reader hands a head over, then KEEP_ALIVE_TIMEOUT passes before the connection
    # task runs. Serving the request or closing silently without running the handler
    # are both right; running the handler and then answering 503 ("no response within
    # RESPONSE_TIMEOUT", a second after the head came) is not.
    app = timeout_app()
    app.config.KEEP_ALIVE_TIMEOUT = 1
    ran: list[str] = []

    @app.get("/db")
    async def db(request: Request) -> HTTPResponse:
        ran.append("handler")
        await trio.lowlevel.checkpoint()  # a database call, say
        return text("hello")

    stall = StallAfterReaderStep(jumping_clock, 2)  # (the client's own deadlines are 5 s)
    trio.lowlevel.add_instrument(stall)
    try:
        async with serving(app, "memory") as served, served.connect() as client:
            await trio.testing.wait_all_tasks_blocked()  # the connection is idle
            stall.armed = True
            await client.send(get("/db"))
            received = await client.read_to_eof()
    finally:
        trio.lowlevel.remove_instrument(stall)
    assert stall.fired
    if ran:
        assert received.startswith(b"HTTP/1.1 200 "), received
    else:
        assert received == b""


# -- slow clients, over loopback TCP --------------------------------------------------

SLOW_CLIENTS = 20
GAP = 0.05  # between two bytes of a slow client
NORMAL_REQUESTS = 5


@dataclass
class SlowClient:
    """One slow client: when it sent its first and last bytes, when it was cut off."""

    first_byte: float = math.inf
    last_byte: float = math.inf
    cut: float = math.inf
    received: bytes = b""


@dataclass
class Attack:
    """Slow clients, all on their own connections at once."""

    served: Served
    size: int
    clients: list[SlowClient] = field(default_factory=list)
    #: Set once every slow client has sent bytes and waits for more time.
    under_way: trio.Event = field(default_factory=trio.Event)

    async def client(self, burst: bytes, trickled: bytes, gap: float = GAP) -> None:
        """Send ``burst``, then ``trickled`` a byte every ``gap`` s, and wait to be cut."""
        me = SlowClient()
        self.clients.append(me)
        async with self.served.connect() as client:

            async def send() -> None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    # Times taken before each send: the server's clock starts after.
                    me.first_byte = me.last_byte = trio.current_time()
                    await client.stream.send_all(burst or trickled[:1])
                    if len(self.clients) == self.size and all(
                        c.first_byte < math.inf for c in self.clients
                    ):
                        self.under_way.set()
                    for i in range(0 if burst else 1, len(trickled)):
                        await trio.sleep(gap)
                        me.last_byte = trio.current_time()
                        await client.stream.send_all(trickled[i : i + 1])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                me.received = await client.read_to_eof()
                me.cut = trio.current_time()
                nursery.cancel_scope.cancel()

    def assert_cut_off(self, status: int) -> None:
        """Each client got ``status`` with Connection: close, then the connection closed."""
        assert len(self.clients) == self.size
        for slow in self.clients:
            head, _, body = slow.received.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 %d " % status), slow.received
            assert b"\r\nconnection: close" in head.lower(), slow.received
            assert b"\r\ncontent-length: %d\r\n" % len(body) in head.lower() + b"\r\n", slow


async def normal_requests(
    served: Served, request: bytes, method: str, body: bytes, bound: float
) -> list[float]:
    """When each of a few requests on new connections was answered, every one in time."""
    answered = []
    for _ in range(NORMAL_REQUESTS):
        start = trio.current_time()
        async with served.connect() as client:
            await client.send(request)
            response = await client.read_response(method)
        assert (response.status, response.body) == (200, body)
        answered.append(trio.current_time())
        assert answered[-1] - start < bound, "a normal client waited on the slow ones"
    return answered


async def test_slowloris_clients_get_408_while_a_normal_client_is_served() -> None:
    timeout = 0.5
    app = timeout_app()
    app.config.REQUEST_TIMEOUT = timeout
    async with serving(app, "tcp") as served, trio.open_nursery() as nursery:
        attack = Attack(served, SLOW_CLIENTS)
        for _ in range(SLOW_CLIENTS):
            nursery.start_soon(attack.client, b"", ENDLESS_HEAD)
        with trio.fail_after(DEADLINE):
            await attack.under_way.wait()
        answered = await normal_requests(served, get("/"), "GET", b"hello", timeout)
    # Cut at REQUEST_TIMEOUT after the first byte, however many bytes came after it.
    for slow in attack.clients:
        assert timeout <= slow.cut - slow.first_byte < 3 * timeout, slow
        assert slow.last_byte - slow.first_byte > timeout / 2, slow  # it did trickle
    attack.assert_cut_off(408)
    assert max(answered) < min(slow.cut for slow in attack.clients)


async def test_slow_post_on_a_buffered_route_gets_408_while_a_normal_client_is_served() -> None:
    timeout = 0.5
    app = timeout_app()
    app.config.REQUEST_TIMEOUT = timeout
    async with serving(app, "tcp") as served, trio.open_nursery() as nursery:
        attack = Attack(served, SLOW_CLIENTS)
        for _ in range(SLOW_CLIENTS):
            nursery.start_soon(attack.client, post_head("/sleep/0"), b"x" * BODY)
        with trio.fail_after(DEADLINE):
            await attack.under_way.wait()
        answered = await normal_requests(
            served, post_head("/echo") + b"x" * BODY, "POST", b"1000 bytes", timeout
        )
    # An absolute deadline from the head: the trickled body does not extend it.
    for slow in attack.clients:
        assert timeout <= slow.cut - slow.first_byte < 3 * timeout, slow
    attack.assert_cut_off(408)
    assert max(answered) < min(slow.cut for slow in attack.clients)


async def test_slow_post_on_a_streaming_route_gets_408_once_it_stalls() -> None:
    # Bytes every 50 ms keep READ_IDLE_TIMEOUT (a gap timer) at bay for 0.6 s, twice
    # the timeout; when they stop, the 408 comes and the handler is cancelled.
    idle = 0.3
    app = timeout_app()
    app.config.READ_IDLE_TIMEOUT = idle
    cancelled: list[int] = []

    @app.post("/upload", stream=True, response_timeout=None)
    async def upload(request: Request) -> HTTPResponse:
        received = 0
        try:
            async for chunk in request.stream:
                received += len(chunk)
        except trio.Cancelled:
            cancelled.append(received)
            raise
        return text(f"{received} bytes")

    trickled = b"x" * 13  # 12 gaps of 50 ms
    async with serving(app, "tcp") as served, trio.open_nursery() as nursery:
        attack = Attack(served, SLOW_CLIENTS)
        for _ in range(SLOW_CLIENTS):
            nursery.start_soon(attack.client, post_head("/upload"), trickled)
        with trio.fail_after(DEADLINE):
            await attack.under_way.wait()
        answered = await normal_requests(
            served, post_head("/upload") + b"x" * BODY, "POST", b"1000 bytes", idle
        )
    for slow in attack.clients:
        assert slow.last_byte - slow.first_byte >= 2 * idle, slow
    attack.assert_cut_off(408)
    for slow in attack.clients:
        assert idle <= slow.cut - slow.last_byte < 3 * idle, slow
    assert cancelled == [len(trickled)] * SLOW_CLIENTS
    assert max(answered) < min(slow.cut for slow in attack.clients)


async def read_until_reset(stream: trio.abc.Stream) -> bytes:
    """What arrived on a connection the server aborted, up to the reset that ended it."""
    received = b""
    with trio.fail_after(DEADLINE), pytest.raises(trio.BrokenResourceError):
        while data := await stream.receive_some(MiB):
            received += data
    return received


@pytest.mark.parametrize("source", ["stream", "sendfile"])
async def test_slow_readers_are_aborted_after_write_timeout_while_a_normal_client_is_served(
    tmp_path: Path, source: str
) -> None:
    # 16 MiB to each of five clients that never read: from a streaming handler, or from
    # file_stream(chunked=False), which goes out with sendfile. Each is reset.
    timeout = 0.3
    total = 16 * MiB
    produced = producer(total)
    app = produced.app
    app.config.WRITE_TIMEOUT = timeout
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        f.truncate(total)  # zeros, and no time spent writing them

    @app.get("/file")
    async def big_file(request: Request) -> HTTPResponse:
        return await file_stream(path, chunked=False)

    readers = 5
    target = "/big" if source == "stream" else "/file"
    async with serving(app, "tcp") as served, AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(served.connect()) for _ in range(readers)]
        start = trio.current_time()
        for client in clients:
            await client.send(get(target))
        await normal_requests(served, get("/"), "GET", b"hello", timeout)
        # Served while every slow reader was still connected (and stalling the server).
        assert len(served.server._connections) >= readers
        await connections_closed(served)
        after = trio.current_time() - start
        if source == "stream":
            assert produced.ended == ["cancelled"] * readers
        for client in clients:
            received = await read_until_reset(client.stream)
            assert received.startswith(b"HTTP/1.1 200 ")
            assert len(received) < total  # far short of the whole body
    # (The slack: the buffers fill, and five normal requests are served, before.)
    assert timeout <= after < timeout + 1
