"""Serving: listeners, the connection nursery, listeners' hooks, signals, shutdown."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import ssl as _ssl
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from functools import partial
from typing import Any, Protocol

import trio

from ._connection import Application, Connection
from ._engine import Engine
from ._forwarded import trusted_peers
from ._headers import date_now
from ._transport import linger

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


class _Life(Protocol):
    nursery: trio.Nursery | None


class ServedApp(Application, Protocol):
    """What a server needs of the application it serves (an :class:`~trioweb.App`)."""

    async def run_listeners(self, event: str) -> None: ...
    def server_life(self) -> AbstractContextManager[_Life]: ...


__all__ = ["Server", "engine_class", "open_listeners", "run", "serve", "serve_listeners"]

log = logging.getLogger("trioweb")


class Server:
    """A running server, as given by ``await nursery.start(app.serve, host, 0)``."""

    def __init__(self, addresses: list[tuple[str, int]], engine: type[Engine]) -> None:
        #: Every bound (host, port).
        self.addresses = addresses
        #: The HTTP engine class each connection gets an instance of.
        self.engine = engine
        self.closing = False
        self._shutdown = trio.Event()
        self._connections: set[Connection] = set()
        self._all_closed = trio.Event()
        # Holds the startup listeners while they run: a shutdown cancels them.
        self._startup: trio.CancelScope | None = None
        # Holds the wait for in-flight requests at shutdown; cancelled to stop at once.
        self._grace = trio.CancelScope()

    @property
    def port(self) -> int:
        """The bound port (the first listener's)."""
        return self.addresses[0][1]

    def shutdown(self) -> None:
        """Begin a graceful shutdown and return at once; ``serve`` returns when done.

        During startup it cancels the ``before_server_start`` / ``after_server_start``
        listener that is running (one waiting for a database that is down, say).
        """
        self._shutdown.set()
        if self._startup is not None:
            self._startup.cancel()

    async def _starting(self, app: ServedApp, event: str) -> bool:
        """Run startup listeners; False when a shutdown cut them short."""
        with trio.CancelScope() as scope:
            self._startup = scope
            if not self._shutdown.is_set():
                await app.run_listeners(event)
        self._startup = None
        return not scope.cancelled_caught and not self._shutdown.is_set()

    def __repr__(self) -> str:
        return f"<Server {self.addresses}>"


async def open_listeners(
    host: str | None, port: int, *, ssl: Any = None, backlog: int | None = None
) -> list[trio.abc.Listener[Any]]:
    """TCP listeners on ``host:port`` (wrapped for TLS when ``ssl`` is an SSLContext)."""
    _check_ssl(ssl)  # before binding: a bad argument must not leave a port taken
    return _listeners(_bind(host, port, backlog), ssl)


def _listeners(sockets: list[socket.socket], ssl: Any) -> list[trio.abc.Listener[Any]]:
    """Trio listeners on bound sockets (wrapped for TLS when ``ssl`` is given)."""
    listeners: list[trio.abc.Listener[Any]] = [
        trio.SocketListener(trio.socket.from_stdlib_socket(sock)) for sock in sockets
    ]
    return _wrap_ssl(listeners, ssl)


def engine_class(name: str) -> type[Engine]:
    """The engine ``HTTP_ENGINE`` names: "auto", "h11" or "httptools"."""
    if name not in ("auto", "h11", "httptools"):
        raise ValueError(f"HTTP_ENGINE must be 'auto', 'h11' or 'httptools', not {name!r}")
    if name != "h11":
        try:
            from ._httptools_engine import HttptoolsEngine
        except ImportError:
            if name == "httptools":
                raise RuntimeError(
                    "HTTP_ENGINE is 'httptools' but httptools is not installed: "
                    "pip install 'trioweb[speed]'"
                ) from None
        else:
            return HttptoolsEngine
    from ._h11_engine import H11Engine

    return H11Engine


def _check_ssl(ssl: Any) -> None:
    if ssl is not None and not isinstance(ssl, _ssl.SSLContext):
        raise TypeError("ssl= takes an ssl.SSLContext")


def _wrap_ssl(listeners: list[trio.abc.Listener[Any]], ssl: Any) -> list[trio.abc.Listener[Any]]:
    if ssl is None:
        return listeners
    _check_ssl(ssl)
    return [trio.SSLListener(listener, ssl, https_compatible=True) for listener in listeners]


def _socket_of(wrapper: Any) -> Any:
    """The socket under a stream or listener (through TLS layers); None in memory."""
    while not hasattr(wrapper, "socket"):
        wrapper = getattr(wrapper, "transport_stream", None) or getattr(
            wrapper, "transport_listener", None
        )
        if wrapper is None:
            return None
    return wrapper.socket


def _address(sockaddr: Any) -> tuple[str, int]:
    if isinstance(sockaddr, tuple):
        return str(sockaddr[0]), int(sockaddr[1])
    return str(sockaddr), 0


async def serve(
    app: ServedApp,
    host: str | None,
    port: int,
    *,
    ssl: Any = None,
    backlog: int | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bind ``host:port``, then :func:`serve_listeners` (``app.serve`` calls this)."""
    configure_logging()
    engine_class(app.config.HTTP_ENGINE)  # a missing engine: refused before binding
    listeners = await open_listeners(host, port, ssl=ssl, backlog=backlog)
    await serve_listeners(app, listeners, handle_signals=handle_signals, task_status=task_status)


async def serve_listeners(
    app: ServedApp,
    listeners: list[trio.abc.Listener[Any]],
    *,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``listeners`` the caller made, until shut down.

    ``app.serve`` binds its listeners and then calls this; call it yourself for
    listeners of your own (``trio.open_tcp_listeners``, a Unix socket, TLS), as with
    ``trio.serve_listeners``. It takes charge of the listeners and closes them.
    ``await nursery.start(serve_listeners, app, listeners)`` returns the
    :class:`Server` once it accepts connections. ``handle_signals``: in the main
    thread, SIGINT and SIGTERM shut this server down, together with every other
    server of the program that handles them.

    Order: app nursery opens, ``before_server_start``, accept, ``after_server_start``,
    ``task_status.started(server)``; then on shutdown: ``before_server_stop``, stop
    accepting, close idle connections, let in-flight requests finish for up to
    ``GRACEFUL_SHUTDOWN_TIMEOUT``, cancel the rest and the app nursery,
    ``after_server_stop``.
    """
    if not listeners:
        raise ValueError("serve_listeners needs at least one listener")
    engine = engine_class(app.config.HTTP_ENGINE)  # (fails before the app starts)
    trusted_peers(app.config.FORWARDED_ALLOW_IPS)  # a typo fails here, not in a request
    addresses = []
    for listener in listeners:
        sock = _socket_of(listener)
        addresses.append(_address(sock.getsockname()) if sock is not None else ("memory", 0))
    server = Server(addresses, engine)
    scheme = "https" if isinstance(listeners[0], trio.SSLListener) else "http"
    try:
        async with _signals_shut_down(server, handle_signals):
            with app.server_life() as life:
                async with trio.open_nursery() as app_nursery:
                    life.nursery = app_nursery
                    try:
                        if await server._starting(app, "before_server_start"):
                            await _serve_connections(app, server, listeners, scheme, task_status)
                    finally:
                        life.nursery = None
                        app_nursery.cancel_scope.cancel()
                await app.run_listeners("after_server_stop")
    finally:
        # The accept loops close their listeners; these were never accepted on if
        # startup failed or was cut short, and must not keep their ports.
        for listener in listeners:
            await trio.aclose_forcefully(listener)
    log.info("Server stopped")


async def _serve_connections(
    app: ServedApp,
    server: Server,
    listeners: list[trio.abc.Listener[Any]],
    scheme: str,
    task_status: trio.TaskStatus[Any],
) -> None:
    async with trio.open_nursery() as connections:
        async with trio.open_nursery() as acceptors:
            # Trio's own accept loops: they close each listener when cancelled, and
            # ride out EMFILE and friends (a full fd table) by pausing, not crashing.
            handler = partial(_serve_connection, app, server, scheme=scheme)
            await acceptors.start(
                partial(trio.serve_listeners, handler, listeners, handler_nursery=connections)
            )
            for host, port in server.addresses:
                shown = f"[{host}]" if ":" in host else host
                log.info(
                    "Serving on %s://%s:%d (HTTP engine: %s)",
                    scheme,
                    shown,
                    port,
                    server.engine.name,
                )
            if await server._starting(app, "after_server_start"):
                task_status.started(server)
            await server._shutdown.wait()
            log.info("Shutting down")
            # From now on every response carries Connection: close, including those
            # that finish while the stop listeners run.
            server.closing = True
            await app.run_listeners("before_server_stop")
            acceptors.cancel_scope.cancel()
        for connection in list(server._connections):
            connection.close_if_idle()
        if server._connections:
            server._grace.deadline = trio.current_time() + app.config.GRACEFUL_SHUTDOWN_TIMEOUT
            with server._grace:
                await server._all_closed.wait()
            if server._connections:
                log.info("cancelling %d unfinished connections", len(server._connections))
        connections.cancel_scope.cancel()


async def _serve_connection(
    app: ServedApp, server: Server, stream: trio.abc.Stream, *, scheme: str
) -> None:
    sock = _socket_of(stream)
    try:
        client = _address(sock.getpeername()) if sock is not None else ("127.0.0.1", 0)
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # the client reset the connection before we got to it
        await trio.aclose_forcefully(stream)
        return
    if len(server._connections) >= app.config.MAX_CONNECTIONS:
        await _refuse(app, stream, client)
        return
    engine = server.engine(app.config.REQUEST_MAX_HEADER_SIZE)
    connection = Connection(app, server, stream, client, scheme, engine)
    server._connections.add(connection)
    if server.closing:  # accepted just before the listeners closed
        connection.close_if_idle()
    try:
        async with stream:
            await connection.serve()
    except Exception:
        # Handlers' errors are answered inside the connection; this is the last guard,
        # so that one broken connection never takes the server down.
        log.exception("connection from %s:%s failed", *client)
    finally:
        server._connections.discard(connection)
        if server.closing and not server._connections:
            server._all_closed.set()


_BUSY_BODY = b"503 Service Unavailable: too many connections, try again"
_BUSY_HEAD = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
) % len(_BUSY_BODY)


async def _refuse(app: ServedApp, stream: trio.abc.Stream, client: tuple[str, int]) -> None:
    """Answer a connection over MAX_CONNECTIONS with a 503 and close it.

    The 503 goes out without reading the request (its head may not even have arrived),
    so the connection then lingers, like any that closes while its client may still be
    sending: closing with the request unread would reset it, and the reset could destroy
    the 503 before the client read it.
    """
    log.debug("refusing %s:%s: MAX_CONNECTIONS reached", *client)
    date = b"date: " + date_now() + b"\r\n\r\n"
    with (
        trio.move_on_after(app.config.WRITE_TIMEOUT),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await stream.send_all(_BUSY_HEAD + date + _BUSY_BODY)
    await linger(stream, app.config)
    await trio.aclose_forcefully(stream)


class _SignalWatcher:
    """The one SIGINT and SIGTERM receiver of a Trio run, for every server that asked.

    A Trio signal receiver replaces the process's handler, and closing it puts back the
    handler it replaced. With one receiver per server, a signal reached only the last
    server started, and a server that stopped before the others left them Python's
    default (KeyboardInterrupt). So one task receives for all of them. It is a system
    task, because it must outlive whichever server started it; it ends, putting the
    handlers back, when the last server that handles signals stops.
    """

    def __init__(self, previous: _SignalWatcher | None) -> None:
        self.servers: set[Server] = set()
        self.closing = False
        self.ready = trio.Event()
        self.stopped = trio.Event()
        self._previous = previous
        self._scope = trio.CancelScope()

    async def run(self) -> None:
        try:
            with self._scope:
                if self._previous is not None:
                    # Its receiver must close first, or it would put back the process's
                    # default over this one's.
                    await self._previous.stopped.wait()
                    self._previous = None
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    self.ready.set()
                    async for signum in signals:
                        self._tell(signum)
        finally:
            self.stopped.set()

    def _tell(self, signum: int) -> None:
        """A first signal starts each server's graceful shutdown, a second cuts it short."""
        stopping = [server for server in self.servers if server._shutdown.is_set()]
        if len(stopping) < len(self.servers):
            log.info("%s received", signal.Signals(signum).name)
        if stopping:
            log.warning("second signal: cancelling requests still in progress")
        for server in self.servers:
            if server in stopping:
                server._grace.cancel()
            else:
                server.shutdown()

    def close(self) -> None:
        self.closing = True
        self._scope.cancel()


_WATCHER: trio.lowlevel.RunVar[_SignalWatcher | None] = trio.lowlevel.RunVar(
    "trioweb_signal_watcher", default=None
)


@asynccontextmanager
async def _signals_shut_down(server: Server, wanted: bool) -> AsyncIterator[None]:
    """While the block runs, SIGINT and SIGTERM shut ``server`` down (if ``wanted``).

    Signals can only be received in the main thread; elsewhere they are left alone.
    """
    if not wanted or threading.current_thread() is not threading.main_thread():
        yield
        return
    watcher = _WATCHER.get()
    if watcher is None or watcher.closing:
        watcher = _SignalWatcher(previous=watcher)
        _WATCHER.set(watcher)
        trio.lowlevel.spawn_system_task(watcher.run, name="trioweb signal watcher")
    watcher.servers.add(server)
    try:
        await watcher.ready.wait()  # a signal from now on reaches this server
        yield
    finally:
        watcher.servers.discard(server)
        if not watcher.servers:
            watcher.close()
            # Once serve returns, the process handles signals as before it started.
            with trio.CancelScope(shield=True):
                await watcher.stopped.wait()


def configure_logging() -> None:
    """Show trioweb's INFO lines on stderr unless the application set up logging."""
    logger = logging.getLogger("trioweb")
    if logging.getLogger().handlers or logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def run(app: ServedApp, host: str, port: int, *, workers: int = 1, ssl: Any = None) -> None:
    """Block serving ``app``; with ``workers > 1``, in that many forked processes."""
    configure_logging()
    engine_class(app.config.HTTP_ENGINE)  # a missing engine: refused before any fork
    try:
        if workers <= 1:
            trio.run(partial(serve, app, host, port, ssl=ssl))
        else:
            _run_workers(app, host, port, workers, ssl)
    except BaseException as exc:
        if not _only_interrupts(exc):
            raise
        # Ctrl+C before the signal handlers were installed: nothing to clean up.


def _only_interrupts(exc: BaseException) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt, or a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_interrupts(inner) for inner in exc.exceptions)
    return isinstance(exc, KeyboardInterrupt)


def _run_workers(app: ServedApp, host: str, port: int, workers: int, ssl: Any) -> None:
    """Bind once, fork ``workers`` children that all accept on the same sockets.

    The parent only supervises. Children run in their own process group, so a
    terminal's Ctrl+C reaches the parent alone, which passes SIGTERM on to each child
    once (each shuts down gracefully); the parent exits 0 once they all have. Each child
    also holds the read end of a pipe whose write end only the parent has: if the parent
    dies without a word, the pipe reads EOF and the child shuts down too.
    """
    _check_ssl(ssl)
    sockets = _bind(host, port)
    parent_alive, parent_holds = os.pipe()
    children: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    # Installed before forking, so no signal can find the parent unprepared; blocked
    # while forking, so none runs the parent's handler inside a child.
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            # Until Trio takes over the signals, one stops the worker as Ctrl+C would.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
            os.setpgrp()
            os.close(parent_holds)
            code = 0
            try:
                trio.run(_serve_sockets, app, sockets, ssl, parent_alive)
            except BaseException as exc:
                if not _only_interrupts(exc):
                    log.exception("worker crashed")
                    code = 1
            os._exit(code)
        children.append(pid)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    os.close(parent_alive)
    for sock in sockets:
        sock.close()
    failed = False
    for child in children:
        _, status = os.waitpid(child, 0)
        failed = failed or os.waitstatus_to_exitcode(status) != 0
    os.close(parent_holds)
    if failed:
        sys.exit(1)


def _bind(host: str | None, port: int, backlog: int | None = None) -> list[socket.socket]:
    """Listening sockets on every address of ``host`` (one worker or many bind here).

    ``host=None`` means every interface. With port 0, every address gets the port the
    first one got.
    """
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            if sockets:
                addr = (addr[0], sockets[0].getsockname()[1], *addr[2:])
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(socket.SOMAXCONN if backlog is None else backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def _serve_sockets(
    app: ServedApp, sockets: list[socket.socket], ssl: Any, parent_alive: int
) -> None:
    """A worker: serve on the inherited sockets until signalled or orphaned."""
    listeners = _listeners(sockets, ssl)
    async with trio.open_nursery() as nursery:

        async def serve(task_status: trio.TaskStatus[Server]) -> None:
            await serve_listeners(app, listeners, handle_signals=True, task_status=task_status)
            nursery.cancel_scope.cancel()

        server: Server = await nursery.start(serve)
        await trio.lowlevel.wait_readable(parent_alive)  # EOF: the parent is gone
        log.warning("supervisor process is gone; shutting down")
        server.shutdown()
