"""The application: routes, middleware, error handlers, listeners; serving entry points."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from . import _server
from ._config import Config
from ._registrar import RouteRegistrar
from ._routing import Route, Router, require_async
from .errors import HTTPError, MethodNotAllowed
from .request import Request
from .response import HTTPResponse, ResponseStream, text

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from ._blueprint import Blueprint

__all__ = ["App"]

log = logging.getLogger("trioweb")

ErrorHandler = Callable[[Request, Exception], Awaitable[HTTPResponse]]
RequestMiddleware = Callable[[Request], Awaitable[HTTPResponse | None]]
ResponseMiddleware = Callable[[Request, Any], Awaitable[HTTPResponse | None]]
Listener = Callable[["App"], Awaitable[None]]
_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])

_LISTENER_EVENTS = (
    "before_server_start",
    "after_server_start",
    "before_server_stop",
    "after_server_stop",
)


class _ServerLife:
    """One server's life of an app: its app nursery while the nursery is open."""

    def __init__(self) -> None:
        self.nursery: trio.Nursery | None = None


# The server life, per app, of the task that reads it. A server sets it in its own
# task, and Trio copies context variables into every task started from there
# (connections, handlers, listeners, background tasks), so each finds its own server.
_LIVES: ContextVar[Mapping[App, _ServerLife]] = ContextVar(
    "trioweb_server_lives", default=MappingProxyType({})
)


class App(RouteRegistrar):
    """A trioweb application.

    Declare routes with the decorators (``@app.get("/")``), then serve it with
    ``trio.run(app.serve)``, ``app.run()`` or the ``trioweb module:app`` command.
    """

    def __init__(self, name: str, *, config: Config | None = None) -> None:
        self.name = name
        self.config = config if config is not None else Config()
        self.router = Router()
        self._error_handlers: list[tuple[tuple[type[BaseException], ...], ErrorHandler]] = []
        self._request_middleware: list[RequestMiddleware] = []
        self._response_middleware: list[ResponseMiddleware] = []
        self._listeners: dict[str, list[Listener]] = {e: [] for e in _LISTENER_EVENTS}
        # Every server's life of this app that is running, in the order they started.
        self._lives: list[_ServerLife] = []
        # add_task calls made while no server ran: started in each server that starts.
        self._queued_tasks: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...], str]] = []

    def __repr__(self) -> str:
        return f"<App {self.name!r}>"

    def _add(self, route: Route) -> None:
        self.router.add(route)

    def url_for(self, name: str, /, **params: Any) -> str:
        """The path of the route named ``name``: ``app.url_for("user", id=3, page=2)``
        is ``"/user/3?page=2"`` for ``/user/<id:int>``.

        A route's name is its handler's name (``"blueprint.handler"`` in a blueprint)
        unless the route was given ``name=``. Each parameter must fit its type (a value
        of the type, or a ``str`` the route would match) and is percent-encoded; a
        ``path`` parameter keeps its slashes. Other keyword arguments make the query
        string (a list repeats the key; ``None`` is left out). A name routed at several
        paths gives the path that takes the most of the parameters.

        Raises:
          URLBuildError: no route has the name, or a parameter is missing or does not
            fit (a ``ValueError``, from :mod:`trioweb.errors`).
        """
        return self.router.url_for(name, params)

    def blueprint(self, blueprint: Blueprint) -> None:
        """Mount the routes of ``blueprint`` under its ``url_prefix``."""
        blueprint.register(self)

    # -- hooks ------------------------------------------------------------------------

    def exception(self, *exceptions: type[BaseException]) -> Callable[[_F], _F]:
        """Decorator: ``async (request, exc) -> response`` answers these exceptions.

        The handler registered for the closest class in the exception's MRO wins.
        """
        if not exceptions:
            raise TypeError("name at least one exception class")

        def decorator(handler: _F) -> _F:
            require_async(handler, "exception handler")
            self._error_handlers.append((exceptions, handler))
            return handler

        return decorator

    def on_request(self, middleware: _F) -> _F:
        """Decorator: ``async (request)`` runs before each routed handler.

        Returning a response answers the request without calling the handler.
        """
        require_async(middleware, "request middleware")
        self._request_middleware.append(middleware)
        return middleware

    def on_response(self, middleware: _F) -> _F:
        """Decorator: ``async (request, response)`` runs before each response head is sent.

        It may change ``response.headers`` and ``response.status`` in place; for whole
        responses it may also return a replacement.
        """
        require_async(middleware, "response middleware")
        self._response_middleware.append(middleware)
        return middleware

    def _listener(self, event: str, listener: _F) -> _F:
        require_async(listener, f"{event} listener")
        self._listeners[event].append(listener)
        return listener

    def before_server_start(self, listener: _F) -> _F:
        """Decorator: ``async (app)`` runs before the server accepts connections."""
        return self._listener("before_server_start", listener)

    def after_server_start(self, listener: _F) -> _F:
        """Decorator: ``async (app)`` runs once the server accepts connections."""
        return self._listener("after_server_start", listener)

    def before_server_stop(self, listener: _F) -> _F:
        """Decorator: ``async (app)`` runs when shutdown begins, before connections close."""
        return self._listener("before_server_stop", listener)

    def after_server_stop(self, listener: _F) -> _F:
        """Decorator: ``async (app)`` runs after the last connection and background task end."""
        return self._listener("after_server_stop", listener)

    async def run_listeners(self, event: str) -> None:
        """Run the listeners registered for ``event`` (``before_server_start``...)."""
        for listener in self._listeners[event]:
            await listener(self)
        if event == "before_server_start":
            for fn, args, name in self._queued_tasks:
                self.add_task(fn, *args, name=name)

    def add_task(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None
    ) -> None:
        """Run ``await fn(*args)`` in :attr:`nursery`; a crash is logged, not raised.

        Unlike ``app.nursery.start_soon``, an exception from the task is logged at ERROR
        with the task's ``name`` (default: ``fn``'s qualified name) and its traceback,
        and the server keeps serving. Cancellation (the server stopping) ends it as
        usual. Called while no server runs, the task waits and starts in every server
        that then starts the app (each worker process), after its
        ``before_server_start`` listeners.
        """
        task_name = name if name is not None else getattr(fn, "__qualname__", repr(fn))
        if not self._lives:
            self._queued_tasks.append((fn, args, task_name))
            return
        self.nursery.start_soon(_guarded, fn, args, task_name, name=task_name)

    @property
    def nursery(self) -> trio.Nursery:
        """A nursery that lives as long as the server, for background tasks.

        Its tasks are cancelled when the server stops, after the last connection closed
        and before the ``after_server_stop`` listeners run. An app served by several
        servers has one per server: handlers, middleware and listeners (and the tasks
        they start) get their own server's. Elsewhere, such as the task that started
        the server, it is the nursery of the one server running the app.
        """
        life = _LIVES.get().get(self)
        if life is None:  # not in a server's task
            running = [each for each in self._lives if each.nursery is not None]
            if len(running) > 1:
                raise RuntimeError(
                    f"{self!r} is served by {len(running)} servers: use app.nursery from "
                    "a handler, middleware or listener, which knows its server"
                )
            life = running[0] if running else None
        if life is None or life.nursery is None:
            raise RuntimeError("app.nursery exists only while the server runs")
        return life.nursery

    @contextmanager
    def server_life(self) -> Iterator[_ServerLife]:
        """Mark the calling task (and those it starts) as one server's life of the app."""
        life = _ServerLife()
        token = _LIVES.set(MappingProxyType({**_LIVES.get(), self: life}))
        self._lives.append(life)
        try:
            yield life
        finally:
            self._lives.remove(life)
            _LIVES.reset(token)

    # -- serving ----------------------------------------------------------------------

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        ssl: Any = None,
        backlog: int | None = None,
        handle_signals: bool = True,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on ``host:port`` until shut down (``server.shutdown()``, SIGINT, SIGTERM).

        ``await nursery.start(app.serve, "127.0.0.1", 0)`` returns the
        :class:`~trioweb.Server` once it accepts connections; port 0 picks a free port.
        It binds, then runs :func:`~trioweb.serve_listeners`; ``handle_signals=False``
        leaves SIGINT and SIGTERM to the program.
        """
        await _server.serve(
            self,
            host,
            port,
            ssl=ssl,
            backlog=backlog,
            handle_signals=handle_signals,
            task_status=task_status,
        )

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        workers: int = 1,
        ssl: Any = None,
    ) -> None:
        """Serve from a blocking call: ``trio.run(app.serve)``, or ``workers`` processes."""
        _server.run(self, host, port, workers=workers, ssl=ssl)

    # -- what the server calls: the package's interface to the application -----------
    # (Application in _connection.py and ServedApp in _server.py name what each needs.)

    async def dispatch(
        self, request: Request, route: Route, params: dict[str, Any]
    ) -> HTTPResponse | None:
        """Run the request middleware, then the route's handler (called per request)."""
        for middleware in self._request_middleware:
            early = await middleware(request)
            if early is not None:
                return early
        return await route.handler(request, **params)

    async def run_response_middleware(self, request: Request, response: Any) -> Any:
        """The response after the response middleware: changed in place, or replaced.

        Streamed responses (``request.respond()``) can only be changed in place.
        """
        for middleware in self._response_middleware:
            replacement = await middleware(request, response)
            if replacement is not None and not isinstance(response, ResponseStream):
                response = replacement
        return response

    async def error_response(
        self, request: Request, exc: Exception, *, logged: bool = False
    ) -> HTTPResponse:
        """The response for an exception a handler (or middleware, or routing) raised.

        ``logged``: the caller has logged the reason already (a timeout).
        """
        chosen = _representative(exc)
        handler = self._find_error_handler(chosen)
        if handler is not None:
            try:
                response = await handler(request, chosen)
                if not isinstance(response, HTTPResponse):
                    raise TypeError(f"exception handler returned {response!r}, not a response")
            except Exception as handler_exc:
                _log_error(request, chosen, logged)
                log.error("exception handler failed for %s", request, exc_info=handler_exc)
                chosen = handler_exc
            else:
                if response.status < 500:
                    # The application planned for it (a 404 for a missing file).
                    log.debug(
                        "%s: answered %r with %d",
                        request,
                        chosen,
                        response.status,
                        exc_info=chosen,
                    )
                else:
                    # A handler that only formats server errors must not hide them.
                    _log_error(request, chosen, logged)
                return response
        else:
            _log_error(request, chosen, logged)
        return self.default_error_response(chosen)

    def _find_error_handler(self, exc: Exception) -> ErrorHandler | None:
        for cls in type(exc).__mro__:
            for classes, handler in self._error_handlers:
                if cls in classes:
                    return handler
        return None

    @staticmethod
    def default_error_response(exc: Exception) -> HTTPResponse:
        """The plain-text response for ``exc``, with no handler or middleware involved."""
        if not isinstance(exc, HTTPError):
            exc = HTTPError()
        status = exc.status_code
        body = f"{status} {exc.reason}"
        if exc.message and status < 500:
            body += f": {exc.message}"
        headers = dict(exc.headers)
        # The message may quote the request (a path, say): never let a browser sniff it
        # into HTML.
        headers.setdefault("x-content-type-options", "nosniff")
        if isinstance(exc, MethodNotAllowed):
            headers.setdefault("allow", ", ".join(exc.allowed))
        return text(body + "\n", status=status, headers=headers)


async def _guarded(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], name: str) -> None:
    try:
        await fn(*args)
    except Exception as exc:  # (a group holding Cancelled is a BaseException: it goes on)
        log.error("background task %s crashed", name, exc_info=exc)


def _log_error(request: Request, exc: Exception, logged: bool) -> None:
    """Log an error no handler planned for: a crash with its traceback, a 5xx briefly."""
    if not isinstance(exc, HTTPError):
        log.error("error while handling %s", request, exc_info=exc)
    elif exc.status_code >= 500 and not logged:
        log.warning("%s: %s %s", request, exc.status_code, exc)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _representative(exc: Exception) -> Exception:
    """The one exception that decides the response for a (possibly grouped) error.

    A group from a handler's nursery answers with its most severe member: any crash
    (500) beats every HTTPError, and among HTTPErrors the highest status wins.
    """
    leaves = [leaf for leaf in _leaves(exc) if isinstance(leaf, Exception)]
    if not leaves:
        return exc

    def severity(leaf: Exception) -> int:
        return leaf.status_code if isinstance(leaf, HTTPError) else 1000

    return max(leaves, key=severity)
