"""The route-declaring methods that :class:`App` and :class:`Blueprint` share."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ._routing import DEFAULT, HANDSHAKE, Handler, Limit, Route, require_async
from ._static import TAIL, StaticFiles
from ._views import view_methods
from .websocket import WebSocketEndpoint

__all__ = ["RouteRegistrar"]

_H = TypeVar("_H", bound=Handler)


class RouteRegistrar:
    """The route-declaring methods shared by :class:`App` and :class:`Blueprint`."""

    def _add(self, route: Route) -> None:
        raise NotImplementedError

    def add_route(
        self,
        handler: Any,
        uri: str,
        methods: Iterable[str] | None = None,
        *,
        stream: bool = False,
        request_max_size: Limit = DEFAULT,
        request_timeout: Limit = DEFAULT,
        response_timeout: Limit = DEFAULT,
        name: str | None = None,
    ) -> None:
        """Route ``handler`` at ``uri``.

        ``handler`` is an ``async def`` function, ``SomeView.as_view()`` or a
        ``CompositionView``; for the last two the methods come from the view, and a
        method marked with ``@stream`` (or added with ``stream=True``) streams.
        """
        per_method = view_methods(handler)
        if per_method is None:
            require_async(handler, "route handler")
            per_method = {m.upper(): (handler, stream) for m in (methods or ["GET"])}
        default_name = getattr(handler, "__name__", type(handler).__name__)
        for method, (func, is_stream) in per_method.items():
            self._add(
                Route(
                    uri=uri,
                    method=method,
                    handler=func,
                    stream=is_stream,
                    request_max_size=request_max_size,
                    request_timeout=request_timeout,
                    response_timeout=response_timeout,
                    name=name or default_name,
                )
            )

    def route(
        self,
        uri: str,
        methods: Iterable[str] = ("GET",),
        *,
        stream: bool = False,
        request_max_size: Limit = DEFAULT,
        request_timeout: Limit = DEFAULT,
        response_timeout: Limit = DEFAULT,
        name: str | None = None,
    ) -> Callable[[_H], _H]:
        """Decorator: route the decorated ``async def`` handler at ``uri``."""

        def decorator(handler: _H) -> _H:
            self.add_route(
                handler,
                uri,
                methods,
                stream=stream,
                request_max_size=request_max_size,
                request_timeout=request_timeout,
                response_timeout=response_timeout,
                name=name,
            )
            return handler

        return decorator

    def add_websocket_route(
        self,
        handler: Any,
        uri: str,
        subprotocols: Sequence[str] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        """Serve WebSockets at ``uri`` with ``async def handler(request, ws, **params)``.

        ``subprotocols``: the ones this endpoint speaks, in order of preference; a
        client must offer one of them. A GET without ``Upgrade: websocket`` gets a 426.
        The time from the request head to the 101, request middleware included, is
        bounded by ``WEBSOCKET_HANDSHAKE_TIMEOUT``.
        """
        endpoint = WebSocketEndpoint(handler, subprotocols)
        self._add(
            Route(
                uri=uri,
                method="GET",
                handler=endpoint,
                response_timeout=HANDSHAKE,
                name=name or getattr(handler, "__name__", type(handler).__name__),
            )
        )

    def websocket(
        self,
        uri: str,
        subprotocols: Sequence[str] | None = None,
        *,
        name: str | None = None,
    ) -> Callable[[_H], _H]:
        """Decorator: serve WebSockets at ``uri`` with the decorated handler
        (see :meth:`add_websocket_route`)."""

        def decorator(handler: _H) -> _H:
            self.add_websocket_route(handler, uri, subprotocols, name=name)
            return handler

        return decorator

    def static(
        self,
        uri: str,
        directory: str | os.PathLike[str],
        *,
        index: str | None = "index.html",
        name: str = "static",
    ) -> None:
        """Serve the files under ``directory`` at ``uri`` (GET and HEAD).

        ``uri/a/b.txt`` is ``directory/a/b.txt``; a directory is served by its
        ``index`` file (``None``: not at all). No request path can reach a file outside
        ``directory``; what is not there, or not a regular file, is a 404. Files are
        sent like :func:`~trioweb.response.file_stream` with ``chunked=False``:
        preconditions and ranges apply, and plain TCP uses ``sendfile``.
        """
        handler = StaticFiles(directory, index)
        base = uri.rstrip("/")
        uris = [f"{base}/<{TAIL}:path>", f"{base}/"] + ([base] if base else [])
        for each in uris:
            self._add(Route(uri=each, method="GET", handler=handler, name=name))

    def get(self, uri: str, **options: Any) -> Callable[[_H], _H]:
        """``route(uri, ["GET"])``; HEAD is answered too."""
        return self.route(uri, ["GET"], **options)

    def head(self, uri: str, **options: Any) -> Callable[[_H], _H]:
        """``route(uri, ["HEAD"])``."""
        return self.route(uri, ["HEAD"], **options)

    def delete(self, uri: str, **options: Any) -> Callable[[_H], _H]:
        """``route(uri, ["DELETE"])``."""
        return self.route(uri, ["DELETE"], **options)

    def options(self, uri: str, **options: Any) -> Callable[[_H], _H]:
        """``route(uri, ["OPTIONS"])``."""
        return self.route(uri, ["OPTIONS"], **options)

    def post(self, uri: str, *, stream: bool = False, **options: Any) -> Callable[[_H], _H]:
        """``route(uri, ["POST"])``; ``stream=True`` hands the body over as a stream."""
        return self.route(uri, ["POST"], stream=stream, **options)

    def put(self, uri: str, *, stream: bool = False, **options: Any) -> Callable[[_H], _H]:
        """``route(uri, ["PUT"])``; ``stream=True`` hands the body over as a stream."""
        return self.route(uri, ["PUT"], stream=stream, **options)

    def patch(self, uri: str, *, stream: bool = False, **options: Any) -> Callable[[_H], _H]:
        """``route(uri, ["PATCH"])``; ``stream=True`` hands the body over as a stream."""
        return self.route(uri, ["PATCH"], stream=stream, **options)
