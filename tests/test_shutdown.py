"""Graceful shutdown on a real signal, in a real server process, seen from real sockets.

``test_protocol.py`` drives ``server.shutdown()`` in-process, and ``test_cli.py`` checks
that each entry point stops on a signal and lets one request finish; here many requests
are held in flight across SIGTERM or SIGINT, and everything around them is checked: idle
connections, new connections, the listeners' hooks, the grace deadline, a second signal.

The app below holds ``GET /hold/N`` until the test sends SIGUSR1, and appends what
happens to an events file, one line each (``start N``, ``end N``, ``cancelled N``,
``before_server_stop``, ``after_server_stop``), so that the test knows when requests are
in flight and in which order things happened. Every wait is bounded.

``TWO_SERVERS`` serves the same app twice in one process (``app.serve`` and
``serve_listeners``): one signal must reach both, however they started and stopped.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import h11
import pytest

TIMEOUT = 10.0
IN_FLIGHT = 10
SERVING = re.compile(r"Serving on http://127\.0\.0\.1:(\d+)")
SIGNALS = pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"]
)

APP = """
import os
import signal

import trio

from trioweb import App
from trioweb.response import text

app = App("shutdown")
app.config.GRACEFUL_SHUTDOWN_TIMEOUT = float(os.environ["GRACE"])
app.config.KEEP_ALIVE_TIMEOUT = 60  # only the shutdown can close an idle connection in time
events = open(os.environ["EVENTS"], "a", buffering=1)
released = trio.Event()


@app.get("/")
async def index(request):
    return text("hello")


@app.get("/hold/<n:int>")
async def hold(request, n):
    events.write(f"start {n}\\n")
    try:
        await released.wait()
    except trio.Cancelled:
        events.write(f"cancelled {n}\\n")
        raise
    events.write(f"end {n}\\n")
    return text(f"done {n}")


async def release_on_sigusr1(task_status=trio.TASK_STATUS_IGNORED):
    with trio.open_signal_receiver(signal.SIGUSR1) as signals:
        task_status.started()
        async for _ in signals:
            released.set()


@app.after_server_start
async def watch(app):
    await app.nursery.start(release_on_sigusr1)


@app.before_server_stop
async def before(app):
    events.write("before_server_stop\\n")


@app.after_server_stop
async def after(app):
    events.write("after_server_stop\\n")


if __name__ == "__main__":
    app.run("127.0.0.1", 0)
"""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    #: The port of each server in the process, in the order they started.
    ports: list[int]
    output: Path
    events: Path

    @property
    def port(self) -> int:
        return self.ports[0]

    def lines(self) -> list[str]:
        return self.events.read_text().splitlines()

    def wait_for(self, what: str, count: int) -> None:
        """Until the events file has ``count`` lines starting with ``what``."""
        deadline = time.monotonic() + TIMEOUT
        while sum(line.startswith(what) for line in self.lines()) < count:
            assert self.process.poll() is None, self.output.read_text()
            assert time.monotonic() < deadline, f"no {count} {what!r} lines: {self.lines()}"
            time.sleep(0.01)  # polling another process's file

    def connect(self, port: int | None = None) -> socket.socket:
        port = self.port if port is None else port
        return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)

    def exit_code(self, within: float) -> int:
        """Wait for the process to exit; check it did so cleanly."""
        try:
            code = self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {within} s on:\n{self.output.read_text()}")
        assert "Traceback" not in self.output.read_text(), self.output.read_text()
        return code


@contextmanager
def serving(
    tmp_path: Path, grace: float, app: str = APP, servers: int = 1, **env: str
) -> Iterator[Server]:
    """Run ``app`` (a script) until it logs ``servers`` times that it is serving."""
    script = tmp_path / "app.py"
    script.write_text(app)
    output, events = tmp_path / "output.log", tmp_path / "events.log"
    events.touch()
    env = {
        **os.environ,
        **env,
        "GRACE": str(grace),
        "EVENTS": str(events),
        "PYTHONUNBUFFERED": "1",
    }
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(found := SERVING.findall(output.read_text(errors="replace"))) < servers:
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, f"not serving:\n{output.read_text()}"
            time.sleep(0.05)  # polling another process's output
        yield Server(process, [int(port) for port in found], output, events)
    finally:
        with suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=TIMEOUT)


def send_get(sock: socket.socket, path: str) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())


def read_response(sock: socket.socket) -> tuple[h11.Response, bytes]:
    """One whole response: its head and body. Fails on EOF or a reset before its end."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "127.0.0.1")]))
    conn.send(h11.EndOfMessage())
    head, body = None, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, body
        else:
            pytest.fail(f"the connection closed before a whole response: {event!r}")


def header(response: h11.Response, name: bytes) -> bytes:
    return b", ".join(value for key, value in response.headers if key == name)


def assert_closed(sock: socket.socket) -> None:
    """The server closed the connection (an EOF, or a reset) without sending anything."""
    with suppress(ConnectionResetError):
        assert sock.recv(65536) == b""


def hold(server: Server, count: int) -> list[socket.socket]:
    """``count`` connections, each with a request held in its handler.

    With several servers in the process, the connections go to each in turn.
    """
    socks = [server.connect(server.ports[n % len(server.ports)]) for n in range(count)]
    for n, sock in enumerate(socks):
        send_get(sock, f"/hold/{n}")
    server.wait_for("start", count)
    return socks


@SIGNALS
def test_signal_lets_in_flight_requests_finish_and_closes_the_rest(
    tmp_path: Path, signum: int
) -> None:
    with serving(tmp_path, grace=TIMEOUT) as server:
        idle = server.connect()
        send_get(idle, "/")
        response, body = read_response(idle)
        assert (response.status_code, body) == (200, b"hello")
        assert header(response, b"connection") != b"close"  # kept alive, now idle
        held = hold(server, IN_FLIGHT)

        signalled = time.monotonic()
        server.process.send_signal(signum)
        # The idle connection is closed at once: with the handlers still held, the
        # shutdown cannot have got there by waiting for them.
        assert_closed(idle)
        assert time.monotonic() - signalled < 3
        server.wait_for("before_server_stop", 1)
        # Idle connections are closed after the listeners: none can be opened now.
        with pytest.raises(ConnectionRefusedError):
            server.connect()
        readable, _, _ = select.select(held, [], [], 0)
        assert not readable, "an in-flight request was answered or cut off"
        assert server.process.poll() is None

        os.kill(server.process.pid, signal.SIGUSR1)  # let the handlers finish
        for n, sock in enumerate(held):
            response, body = read_response(sock)
            assert (response.status_code, body) == (200, f"done {n}".encode())
            assert header(response, b"connection") == b"close"
            assert_closed(sock)
            sock.close()
        assert server.exit_code(within=TIMEOUT) == 0
        idle.close()
    lines = server.lines()
    stop = lines.index("before_server_stop")
    assert sorted(lines[:stop]) == sorted(f"start {n}" for n in range(IN_FLIGHT))
    assert sorted(lines[stop + 1 : -1]) == sorted(f"end {n}" for n in range(IN_FLIGHT))
    assert lines[-1] == "after_server_stop"


@SIGNALS
def test_handlers_still_running_after_the_graceful_timeout_are_cancelled(
    tmp_path: Path, signum: int
) -> None:
    grace = 1.0
    with serving(tmp_path, grace=grace) as server:
        held = hold(server, 2)
        signalled = time.monotonic()
        server.process.send_signal(signum)
        for sock in held:
            assert_closed(sock)  # no response at all: the handler never returned
            sock.close()
        assert time.monotonic() - signalled >= grace
        assert server.exit_code(within=grace + 5) == 0
    lines = server.lines()
    assert sorted(lines[-3:-1]) == ["cancelled 0", "cancelled 1"]
    assert lines[-1] == "after_server_stop"


def test_a_second_signal_cancels_requests_in_flight_at_once(tmp_path: Path) -> None:
    with serving(tmp_path, grace=60) as server:
        held = hold(server, 2)
        server.process.send_signal(signal.SIGTERM)
        server.wait_for("before_server_stop", 1)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        for sock in held:
            assert_closed(sock)
            sock.close()
        assert server.exit_code(within=5) == 0
        assert time.monotonic() - signalled < 5  # not the 60 s grace
    lines = server.lines()
    assert sorted(lines[-3:-1]) == ["cancelled 0", "cancelled 1"]
    assert lines[-1] == "after_server_stop"
    assert "second signal" in server.output.read_text()


# -- several servers in one process ----------------------------------------------------------

# One app served twice in one trio.run: by app.serve, then by serve_listeners on
# listeners the script made. SIGNALS says which of the two handle signals ("11": both);
# STOP_FIRST shuts the first down as soon as both serve. GET /stop shuts down both.
# It is APP's routes without APP's listeners, which would start a SIGUSR1 receiver per
# server: here the script runs the one receiver itself.
TWO_SERVERS = (
    APP.split("@app.after_server_start")[0]
    + """
from trioweb import serve_listeners

servers = []


@app.get("/stop")
async def stop(request):
    for server in servers:
        server.shutdown()
    return text("stopping")


@app.before_server_stop
async def before(app):
    events.write("before_server_stop\\n")


@app.after_server_stop
async def after(app):
    events.write("after_server_stop\\n")


async def main():
    signals = os.environ["SIGNALS"]

    async def first(task_status):
        await app.serve("127.0.0.1", 0, handle_signals=signals[0] == "1", task_status=task_status)
        events.write("first returned\\n")

    async def second(task_status):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        await serve_listeners(
            app, listeners, handle_signals=signals[1] == "1", task_status=task_status
        )
        events.write("second returned\\n")

    async with trio.open_nursery() as outer:
        await outer.start(release_on_sigusr1)
        async with trio.open_nursery() as nursery:
            servers.append(await nursery.start(first))
            servers.append(await nursery.start(second))
            if os.environ.get("STOP_FIRST"):
                servers[0].shutdown()
        outer.cancel_scope.cancel()


trio.run(main)
"""
)


def get(server: Server, port: int, path: str) -> tuple[h11.Response, bytes]:
    with server.connect(port) as sock:
        send_get(sock, path)
        return read_response(sock)


@SIGNALS
def test_one_signal_shuts_every_server_in_the_process_down_gracefully(
    tmp_path: Path, signum: int
) -> None:
    with serving(tmp_path, TIMEOUT, TWO_SERVERS, servers=2, SIGNALS="11") as server:
        held = hold(server, 2)  # one on each server
        server.process.send_signal(signum)
        server.wait_for("before_server_stop", 2)
        for port in server.ports:
            with pytest.raises(ConnectionRefusedError):
                server.connect(port)
        os.kill(server.process.pid, signal.SIGUSR1)  # let the handlers finish
        for n, sock in enumerate(held):
            response, body = read_response(sock)
            assert (response.status_code, body) == (200, f"done {n}".encode())
            assert header(response, b"connection") == b"close"
            sock.close()
        assert server.exit_code(within=TIMEOUT) == 0
    lines = server.lines()
    assert lines.count("after_server_stop") == 2
    assert {"first returned", "second returned"} <= set(lines)


@SIGNALS
def test_a_signal_reaches_the_servers_left_after_the_first_stopped(
    tmp_path: Path, signum: int
) -> None:
    with serving(
        tmp_path, TIMEOUT, TWO_SERVERS, servers=2, SIGNALS="11", STOP_FIRST="1"
    ) as server:
        server.wait_for("first returned", 1)
        response, body = get(server, server.ports[1], "/")
        assert (response.status_code, body) == (200, b"hello")
        server.process.send_signal(signum)
        assert server.exit_code(within=TIMEOUT) == 0  # no KeyboardInterrupt traceback
    assert server.lines()[-1] == "second returned"


def test_a_second_signal_cancels_every_server_s_requests_at_once(tmp_path: Path) -> None:
    with serving(tmp_path, 60, TWO_SERVERS, servers=2, SIGNALS="11") as server:
        held = hold(server, 2)  # one on each server
        server.process.send_signal(signal.SIGTERM)
        server.wait_for("before_server_stop", 2)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        for sock in held:
            assert_closed(sock)
            sock.close()
        assert server.exit_code(within=5) == 0
        assert time.monotonic() - signalled < 5  # not the 60 s grace
    lines = server.lines()
    assert {"cancelled 0", "cancelled 1"} <= set(lines)
    assert lines.count("after_server_stop") == 2


def test_a_server_that_opts_out_of_signals_keeps_serving(tmp_path: Path) -> None:
    with serving(tmp_path, TIMEOUT, TWO_SERVERS, servers=2, SIGNALS="10") as server:
        server.process.send_signal(signal.SIGINT)
        server.wait_for("first returned", 1)
        response, body = get(server, server.ports[1], "/")
        assert (response.status_code, body) == (200, b"hello")
        assert header(response, b"connection") != b"close"  # not shutting down
        get(server, server.ports[1], "/stop")
        assert server.exit_code(within=TIMEOUT) == 0
    assert server.lines()[-1] == "second returned"
