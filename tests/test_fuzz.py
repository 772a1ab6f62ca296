"""Fuzzing the connection: arbitrary and mutated request bytes, whole and in pieces.

Whatever a client sends, the server's output is zero or more complete HTTP/1.1
responses, then a close: at once, or when a timeout ends a request the client never
finished. Nothing is logged as an unhandled error, no task outlives the connection, and
nothing hangs. This is h11's own fuzzing rule ("parses or raises a protocol error,
nothing else"), taken up a level to the connection with its tasks and timeouts.

Each example is a whole server life in :class:`~trioweb.testing.TestClient`, in a
``trio.run`` of its own on a ``MockClock`` that jumps ahead whenever every task waits:
timeouts fire in virtual time, instantly, and an example runs the same way every time.

The default run is short. ``HYPOTHESIS_PROFILE=fuzz`` (``nox -s fuzz``) runs many more
examples; a failure prints its input, shrunk, which replays exactly.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from itertools import pairwise

import h11
import pytest
import trio
import trio.testing
from _corpus import SEEDS, arbitrary, mutated
from _helpers import all_tasks, trioweb_log
from hypothesis import given
from hypothesis import strategies as st

from trioweb import App, Config, Request, ResponseStream
from trioweb.response import HTTPResponse, raw, stream, text
from trioweb.testing import TestClient

#: Small limits, so that inputs reach them, and timeouts to end every stalled exchange.
LIMITS = {
    "REQUEST_MAX_HEADER_SIZE": 1024,
    "REQUEST_MAX_SIZE": 4096,
    "REQUEST_BUFFER_SIZE": 1024,
    "REQUEST_QUEUE_SIZE": 2,
    "REQUEST_TIMEOUT": 10.0,
    "READ_IDLE_TIMEOUT": 10.0,
    "RESPONSE_TIMEOUT": 10.0,
    "WRITE_TIMEOUT": 10.0,
    "KEEP_ALIVE_TIMEOUT": 5.0,
    "GRACEFUL_SHUTDOWN_TIMEOUT": 1.0,
}
#: The first timeout that can end a connection the client keeps open.
FIRST_TIMEOUT = LIMITS["KEEP_ALIVE_TIMEOUT"]
#: Virtual seconds an example may take: every timeout many times over.
VIRTUAL_LIMIT = 1000.0
#: Real seconds an example may take. Virtual time only moves when every task waits, so
#: a livelock (tasks that keep running without end) never reaches VIRTUAL_LIMIT.
REAL_LIMIT = 10.0
#: Longer inputs are split at random points rather than fed byte by byte.
BYTEWISE_MAX = 512


def fuzz_app() -> App:
    """Every way a request can be answered: whole, buffered, streamed in, streamed out."""
    app = App("fuzz", config=Config(**LIMITS))

    @app.route("/", methods=["GET", "OPTIONS"])
    async def index(request: Request) -> HTTPResponse:
        return text("hello")

    @app.post("/echo")
    async def echo(request: Request) -> HTTPResponse:
        return raw(request.body)  # buffered: read (up to REQUEST_MAX_SIZE) before this runs

    @app.post("/upload", stream=True, request_max_size=2048)
    async def upload(request: Request) -> HTTPResponse:
        size = 0
        async for chunk in request.stream:
            size += len(chunk)
        return text(str(size))

    @app.post("/ignore", stream=True)
    async def ignore(request: Request) -> HTTPResponse:
        return text("body left unread")  # the connection drains it

    @app.get("/stream")
    async def streamed(request: Request) -> HTTPResponse:
        async def write(response: ResponseStream) -> None:
            for piece in ("one ", "two ", "three"):
                await response.write(piece)

        return stream(write)

    return app


# -- inputs (the requests and their mutations are in _corpus.py) ----------------------


@dataclass
class Delivery:
    """How a client sends ``data``: in these pieces, with these pauses, then what."""

    pieces: list[bytes]
    #: Virtual seconds to wait before sending piece ``i`` (``len(pieces)``: after all).
    pauses: dict[int, float] = field(default_factory=dict)
    #: Whether the client half-closes after its last piece, or keeps waiting.
    half_close: bool = False

    @property
    def data(self) -> bytes:
        return b"".join(self.pieces)


@st.composite
def deliveries(draw: st.DrawFn, inputs: st.SearchStrategy[bytes]) -> Delivery:
    """``inputs`` sent whole, byte by byte or in random pieces, maybe with pauses."""
    data = draw(inputs)
    how = draw(st.sampled_from(["whole", "bytewise", "split"]))
    if how == "bytewise" and len(data) <= BYTEWISE_MAX:
        cuts = list(range(1, len(data)))
    elif how != "whole" and len(data) > 1:
        cuts = sorted(set(draw(st.lists(st.integers(1, len(data) - 1), max_size=8))))
    else:
        cuts = []
    pieces = [data[a:b] for a, b in pairwise([0, *cuts, len(data)])] if data else []
    pauses = draw(
        st.dictionaries(st.integers(0, len(pieces)), st.sampled_from([1.0, 7.0, 30.0]), max_size=2)
    )
    return Delivery(pieces, pauses, draw(st.booleans()))


# -- the exchange -------------------------------------------------------------------


@dataclass
class Outcome:
    """What the client saw."""

    output: bytes
    #: Virtual seconds from the first byte sent until the server closed.
    closed_after: float


async def exchange(delivery: Delivery) -> Outcome:
    """Send ``delivery`` to a fresh server, read to EOF; check the server let go of it."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    async with TestClient(fuzz_app()) as client:
        server = client.server
        assert server is not None
        await trio.testing.wait_all_tasks_blocked()
        before = set(all_tasks(root))
        output = bytearray()
        start = trio.current_time()
        async with client.raw() as conn:
            assert isinstance(conn, trio.abc.HalfCloseableStream)

            async def send() -> None:
                try:
                    for i, piece in enumerate(delivery.pieces):
                        await trio.sleep(delivery.pauses.get(i, 0))
                        await conn.send_all(piece)
                        # Let the server take this piece before the next one comes.
                        await trio.testing.wait_all_tasks_blocked()
                    await trio.sleep(delivery.pauses.get(len(delivery.pieces), 0))
                    if delivery.half_close:
                        await conn.send_eof()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the server has closed: the rest is never sent

            with trio.fail_after(VIRTUAL_LIMIT):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send)
                    while True:
                        try:
                            data = await conn.receive_some()
                        except trio.BrokenResourceError:
                            data = b""
                        if not data:
                            break
                        output += data
            closed_after = trio.current_time() - start
        # EOF came once the server closed its end, after its connection task ended.
        await trio.testing.wait_all_tasks_blocked()
        assert not server._connections, "a connection is still open after EOF"
        left = set(all_tasks(root)) - before
        assert not left, f"tasks left behind: {sorted(task.name for task in left)}"
    return Outcome(bytes(output), closed_after)


def run_exchange(delivery: Delivery) -> Outcome:
    """One server life, on a clock of its own, with the real-time guard."""

    async def guarded() -> Outcome:
        with trio.CancelScope() as scope:
            token = trio.lowlevel.current_trio_token()
            watchdog = threading.Timer(REAL_LIMIT, token.run_sync_soon, (scope.cancel,))
            watchdog.start()
            try:
                return await exchange(delivery)
            finally:
                watchdog.cancel()
        raise AssertionError(f"still running after {REAL_LIMIT} s of real time: a livelock")

    return trio.run(guarded, clock=trio.testing.MockClock(autojump_threshold=0))


# -- what the client saw ------------------------------------------------------------


# What trioweb reads and h11 refuses: one empty line before a request line (RFC 9112
# 2.2), and empty list elements around a lone "chunked" (RFC 9110 5.6.1).
_EMPTY_LINE = re.compile(rb"\r?\n(?![\r\n])")
_HEAD_END = re.compile(rb"\n\r?\n")
_CHUNKED_AMONG_EMPTY = re.compile(
    rb"^(transfer-encoding[ \t]*:)[ \t,]*chunked[ \t,]*(?=\r?\n)", re.IGNORECASE | re.MULTILINE
)
# A refused request whose request line was whole is answered as its method says: a
# refused HEAD gets the error's head only.
_HEAD_LINE = re.compile(rb"HEAD [\x21-\x7e]+ HTTP/[0-9]\.[0-9]\r?\n")


def request_methods(data: bytes) -> tuple[list[bytes], bool]:
    """The methods of the requests in ``data`` (as trioweb reads them), and whether it is
    complete: it ends where a request does, or where the connection must close."""
    methods: list[bytes] = []
    rest = data
    while True:
        if empty_line := _EMPTY_LINE.match(rest):
            rest = rest[empty_line.end() :]
        if head_end := _HEAD_END.search(rest):
            head = _CHUNKED_AMONG_EMPTY.sub(rb"\1 chunked", rest[: head_end.end()])
            rest = head + rest[head_end.end() :]
        conn = h11.Connection(h11.SERVER)
        if rest:  # (b"" would mean EOF)
            conn.receive_data(rest)
        started = False
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                if not started and _HEAD_LINE.match(rest):
                    methods.append(b"HEAD")
                return methods, False
            if type(event) is h11.Request:
                started = True
                methods.append(event.method)
            elif type(event) is h11.EndOfMessage:
                # Not a 2xx: that would switch protocols after a CONNECT.
                conn.send(h11.Response(status_code=404, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.MUST_CLOSE:
                    return methods, True
                rest = conn.trailing_data[0]
                break
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return methods, conn.their_state is h11.IDLE and not conn.trailing_data[0]


def parse_responses(output: bytes, methods: list[bytes]) -> list[int]:
    """The status codes of the complete responses that ``output`` must consist of.

    Each response is parsed by an h11 client that sent the request it answers (its
    method decides whether a body follows: none after HEAD).
    """
    statuses: list[int] = []
    rest = output
    while rest:
        method = methods[len(statuses)] if len(statuses) < len(methods) else b"GET"
        status, close, after = parse_response(rest, method, len(statuses) + 1)
        if close and after and method == b"HEAD":
            # An error for a head that had not all arrived (a 408, say): the server
            # could not know it was a HEAD, and closes after it anyway.
            status, close, after = parse_response(rest, b"GET", len(statuses) + 1)
        statuses.append(status)
        assert not (close and after), "bytes after a Connection: close response"
        rest = after
    return statuses


def parse_response(output: bytes, method: bytes, number: int) -> tuple[int, bool, bytes]:
    """The status of the response ``output`` starts with, whether it closes, what follows."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(output)
    conn.receive_data(b"")  # EOF
    status, close = 0, False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise AssertionError(f"response {number} is malformed: {exc}") from None
        assert event is not h11.NEED_DATA and type(event) is not h11.ConnectionClosed, (
            f"response {number} is incomplete"
        )
        if type(event) is h11.InformationalResponse:
            assert event.status_code == 100, event
        elif type(event) is h11.Response:
            assert 200 <= event.status_code <= 599, event
            status, close = event.status_code, (b"connection", b"close") in event.headers
        elif type(event) is h11.EndOfMessage:
            return status, close, conn.trailing_data[0]


def check(delivery: Delivery) -> None:
    with trioweb_log() as records:
        outcome = run_exchange(delivery)
    messages = [logging.Formatter("%(levelname)s %(message)s").format(r) for r in records]
    problems = [
        message
        for record, message in zip(records, messages, strict=True)
        if record.levelno >= logging.ERROR or record.exc_info
    ]
    assert not problems, "unhandled errors:\n" + "\n".join(problems)
    methods, complete = request_methods(delivery.data)
    try:
        statuses = parse_responses(outcome.output, methods)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the output: {outcome.output!r}") from None
    if not delivery.pauses:
        if delivery.half_close:
            # The client left: nothing waits for a timeout.
            assert outcome.closed_after < FIRST_TIMEOUT, outcome
        if delivery.half_close or complete:
            assert 408 not in statuses, outcome


@given(deliveries(arbitrary))
def test_arbitrary_bytes(delivery: Delivery) -> None:
    check(delivery)


@given(deliveries(mutated()))
def test_mutated_requests(delivery: Delivery) -> None:
    check(delivery)


@pytest.mark.parametrize("half_close", [False, True], ids=["wait", "half-close"])
@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("seed", list(SEEDS.values()), ids=list(SEEDS))
def test_seed(seed: bytes, bytewise: bool, half_close: bool) -> None:
    # Every seed as it is, every run: the Hypothesis tests only sample them.
    pieces = [seed[i : i + 1] for i in range(len(seed))] if bytewise else [seed]
    check(Delivery(pieces, half_close=half_close))
