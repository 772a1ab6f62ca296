"""Helpers shared by the end-to-end tests: raw HTTP/1.1 over a Trio stream.

Requests are written as raw bytes (so tests can pipeline, send HTTP/1.0 or malformed
heads); responses are parsed back with an h11 client, each within a deadline. The same
test runs over the in-memory transport of :class:`~trioweb.testing.TestClient` and over
a real loopback socket, through :func:`serving`.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import h11
import trio
import trio.testing

from trioweb import App
from trioweb.testing import TestClient

#: Seconds any single read of a response may take before the test fails.
DEADLINE = 5.0
#: Seconds a whole test's server may live (the outer guard against hangs).
SERVER_DEADLINE = 60.0

TRANSPORTS = ["memory", "tcp"]


@dataclass
class Response:
    """One response as it came over the wire."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    #: The exact bytes of this response on the wire, informational responses included.
    raw: bytes
    #: Status codes of the 1xx responses that came before the final one.
    informational: list[int] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The header's values joined with ", ", or None when absent."""
        key = name.lower().encode()
        values = [value.decode("latin-1") for k, value in self.headers if k == key]
        return ", ".join(values) if values else None

    def _head_span(self) -> tuple[int, int]:
        start = 0
        for _ in self.informational:
            start = self.raw.index(b"\r\n\r\n", start) + 4
        return start, self.raw.index(b"\r\n\r\n", start) + 4

    @property
    def head(self) -> bytes:
        """The raw status line and headers of the final response."""
        start, end = self._head_span()
        return self.raw[start:end]

    @property
    def raw_body(self) -> bytes:
        """The raw bytes after the final response's head (with any chunk framing)."""
        return self.raw[self._head_span()[1] :]


def lasting_headers(response: Response) -> list[tuple[bytes, bytes]]:
    """The headers that two answers to the same request share: not Date nor the request ID."""
    return [(name, value) for name, value in response.headers if name not in _PER_RESPONSE]


_PER_RESPONSE = (b"date", b"x-request-id")


class ResponseParser:
    """Parses the next response on a :class:`RawClient`, event by event."""

    def __init__(self, client: RawClient, method: str) -> None:
        self._client = client
        self._conn = h11.Connection(h11.CLIENT)
        # h11 needs to have "sent" the request to know how to frame the response
        # (no body after HEAD); the real request bytes were written by the test.
        self._conn.send(h11.Request(method=method, target="/", headers=[("Host", "test")]))
        self._conn.send(h11.EndOfMessage())
        self._fed = bytearray(client._buffer)
        # Body bytes read_body() took from h11 beyond what it was asked for.
        self._pending = b""
        client._buffer.clear()
        if self._fed:
            self._conn.receive_data(bytes(self._fed))
        if client._eof:
            self._conn.receive_data(b"")  # h11's end-of-stream marker

    async def next_event(self, timeout: float = DEADLINE) -> Any:
        """The next h11 event of the response (reading the stream as needed)."""
        if self._pending:
            data, self._pending = self._pending, b""
            return h11.Data(data=data)
        with trio.fail_after(timeout):
            while True:
                event = self._conn.next_event()
                if event is not h11.NEED_DATA:
                    if type(event) is h11.ConnectionClosed:
                        raise AssertionError(
                            f"connection closed before a complete response: {bytes(self._fed)!r}"
                        )
                    if type(event) is h11.EndOfMessage:
                        self._finish()
                    return event
                data = await self._client._receive()
                self._fed += data
                self._conn.receive_data(data)

    async def read_body(self, size: int, timeout: float = DEADLINE) -> bytes:
        """Exactly the next ``size`` body bytes (h11 Data events, joined and split)."""
        body = self._pending
        with trio.fail_after(timeout):
            while len(body) < size:
                event = await self.next_event()
                assert type(event) is h11.Data, f"expected body data, got {event!r}"
                body += event.data
        self._pending = body[size:]
        return body[:size]

    def _finish(self) -> None:
        # Bytes past the end of this response belong to the next one (pipelining).
        leftover = self._conn.trailing_data[0]
        self._client._buffer += leftover
        self.raw = bytes(self._fed[: len(self._fed) - len(leftover)])

    async def read(self, timeout: float = DEADLINE) -> Response:
        """The rest of the response, until its end."""
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        informational: list[int] = []
        body = b""
        with trio.fail_after(timeout):
            while True:
                event = await self.next_event()
                if type(event) is h11.InformationalResponse:
                    informational.append(event.status_code)
                elif type(event) is h11.Response:
                    status, headers = event.status_code, list(event.headers)
                elif type(event) is h11.Data:
                    body += event.data
                elif type(event) is h11.EndOfMessage:
                    break
        return Response(status, headers, body, self.raw, informational)


class RawClient:
    """Raw bytes out, parsed responses in, on one connection."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = bytearray()
        self._eof = False

    async def send(self, data: bytes) -> None:
        """Write ``data`` as it is, in one ``send_all``."""
        with trio.fail_after(DEADLINE):
            await self.stream.send_all(data)

    async def _receive(self) -> bytes:
        if self._eof:
            return b""
        try:
            data = bytes(await self.stream.receive_some(65536))
        except trio.BrokenResourceError:  # a reset is a close, for these tests
            data = b""
        if not data:
            self._eof = True
        return data

    def parser(self, method: str = "GET") -> ResponseParser:
        """Start parsing the next response, event by event."""
        return ResponseParser(self, method)

    async def read_response(self, method: str = "GET", timeout: float = DEADLINE) -> Response:
        """The next complete response (``method``: that of the request it answers)."""
        return await self.parser(method).read(timeout)

    async def read_until(self, marker: bytes, timeout: float = DEADLINE) -> bytes:
        """Raw bytes up to and including the first ``marker``; the rest stays buffered."""
        with trio.fail_after(timeout):
            while marker not in self._buffer:
                data = await self._receive()
                if not data:
                    raise AssertionError(f"closed before {marker!r}: {bytes(self._buffer)!r}")
                self._buffer += data
        end = self._buffer.index(marker) + len(marker)
        found = bytes(self._buffer[:end])
        del self._buffer[:end]
        return found

    async def received_while_blocked(self) -> bytes:
        """What arrives before every task is blocked: b"" when the server sent nothing.

        The check reads in a task of its own until the program has nothing left to run
        (``wait_all_tasks_blocked``); anything it got is buffered for later reads too.
        """
        got = bytearray()

        async def peek() -> None:
            got.extend(await self._receive())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(peek)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        self._buffer += got
        return bytes(got)

    async def read_to_eof(self, timeout: float = DEADLINE) -> bytes:
        """Every remaining byte until the server closes the connection."""
        with trio.fail_after(timeout):
            while data := await self._receive():
                self._buffer += data
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


@dataclass
class Served:
    """An app being served for one test, over one transport."""

    server: Any
    #: Set once the server's life ended (``app.serve`` returned).
    stopped: trio.Event
    _connect: Any

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[RawClient]:
        """A new connection to the app."""
        async with self._connect() as stream:
            yield RawClient(stream)


def request_head(method: str, target: str, headers: list[str] | None = None) -> bytes:
    """A request head with ``Host: test``, its target written exactly as given."""
    lines = [f"{method} {target} HTTP/1.1", "Host: test", *(headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def fetch(
    served: Served, target: str, headers: list[str] | None = None, method: str = "GET"
) -> Response:
    """One request, its target sent exactly as given, on a new connection."""
    async with served.connect() as client:
        await client.send(request_head(method, target, headers))
        return await client.read_response(method)


async def connections_closed(served: Served) -> None:
    """Wait until the server has closed every connection."""
    with trio.fail_after(DEADLINE):
        while served.server._connections:  # noqa: ASYNC110 (the server has no event for it)
            await trio.sleep(0.01)


@asynccontextmanager
async def _tcp_connect(port: int) -> AsyncIterator[trio.abc.Stream]:
    with trio.fail_after(DEADLINE):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        yield stream


@asynccontextmanager
async def serving(app: App, transport: str) -> AsyncIterator[Served]:
    """Serve ``app`` in memory (``TestClient``) or on a loopback port, then shut down."""
    with trio.fail_after(SERVER_DEADLINE):
        if transport == "memory":
            stopped = trio.Event()

            @app.after_server_stop
            async def _stopped(app: App) -> None:
                stopped.set()

            async with TestClient(app) as client:
                yield Served(client.server, stopped, client.raw)
        else:
            assert transport == "tcp", transport
            stopped = trio.Event()

            async def run(task_status: trio.TaskStatus[Any]) -> None:
                await app.serve("127.0.0.1", 0, task_status=task_status)
                stopped.set()

            async with trio.open_nursery() as nursery:
                server = await nursery.start(run)
                try:
                    yield Served(server, stopped, lambda: _tcp_connect(server.port))
                finally:
                    server.shutdown()
                    with trio.move_on_after(DEADLINE * 2):
                        await stopped.wait()
                    nursery.cancel_scope.cancel()
            assert stopped.is_set(), "app.serve did not return after server.shutdown()"


BENCH = Path(__file__).resolve().parent.parent / "bench"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def load_bench(script: str) -> ModuleType:
    """Import ``bench/SCRIPT.py`` as ``bench_SCRIPT``; its imports of ``_common`` and the
    other private bench modules by their bare names land in ``sys.modules``."""
    sys.path.insert(0, str(BENCH))
    try:
        return _load_module(f"bench_{script}", BENCH / f"{script}.py")
    finally:
        sys.path.remove(str(BENCH))


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a fresh module."""
    return _load_module(f"examples_{name}", EXAMPLES / f"{name}.py")


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def trioweb_log() -> Iterator[list[logging.LogRecord]]:
    """Every record the ``trioweb`` logger makes, DEBUG included, while inside."""
    logger = logging.getLogger("trioweb")
    handler = _Records()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    # Not passed on to pytest's capture: thousands of examples would flood a failure's
    # report; the records that fail an example are in its assertion message.
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.setLevel(level)
        logger.propagate = propagate
        logger.removeHandler(handler)


def all_tasks(task: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    """``task`` and every task below it, through its nurseries."""
    return [task] + [
        found
        for nursery in task.child_nurseries
        for child in nursery.child_tasks
        for found in all_tasks(child)
    ]
