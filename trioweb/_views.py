"""Class-based views: one method per HTTP verb, or a table of handlers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ._routing import Handler, require_async

if TYPE_CHECKING:
    from .request import Request
    from .response import HTTPResponse

__all__ = ["CompositionView", "HTTPMethodView", "stream"]

_VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_F = TypeVar("_F", bound=Handler)


def stream(method: _F) -> _F:
    """Mark an :class:`HTTPMethodView` method as streaming: its body comes as a stream."""
    method.__trioweb_stream__ = True  # type: ignore[attr-defined]
    return method


class HTTPMethodView:
    """Subclass it with ``async def get(self, request)``, ``post``... one per verb.

    ``app.add_route(MyView.as_view(), "/path")`` routes every verb the class defines;
    a fresh instance handles each request.
    """

    @classmethod
    def as_view(cls) -> Handler:
        """The handler to pass to ``add_route``."""
        for verb in _VERBS:
            method = getattr(cls, verb.lower(), None)
            if method is not None:
                require_async(method, f"{cls.__name__} method")

        async def view(request: Request, **params: Any) -> HTTPResponse | None:
            method = (
                "get"
                if request.method == "HEAD" and not hasattr(cls, "head")
                else (request.method.lower())
            )
            result: HTTPResponse | None = await getattr(cls(), method)(request, **params)
            return result

        view.__name__ = cls.__name__
        view.__doc__ = cls.__doc__
        view.view_class = cls  # type: ignore[attr-defined]
        return view


class CompositionView:
    """A table of handlers for one path, one entry per method (``.add``)."""

    def __init__(self) -> None:
        self.handlers: dict[str, tuple[Handler, bool]] = {}

    def add(self, methods: Iterable[str], handler: Handler, stream: bool = False) -> None:
        """Answer ``methods`` with ``handler``; ``stream=True`` streams the body."""
        require_async(handler, "view handler")
        for method in methods:
            method = method.upper()
            if method in self.handlers:
                raise ValueError(f"{method} is already in this view")
            self.handlers[method] = (handler, stream)


def view_methods(handler: object) -> dict[str, tuple[Handler, bool]] | None:
    """Per-method (handler, stream) for a view; ``None`` for a plain function."""
    if isinstance(handler, CompositionView):
        return dict(handler.handlers)
    view_class = getattr(handler, "view_class", None)
    if view_class is None:
        return None
    assert callable(handler)
    methods: dict[str, tuple[Handler, bool]] = {}
    for verb in _VERBS:
        method = getattr(view_class, verb.lower(), None)
        if method is not None:
            methods[verb] = (handler, bool(getattr(method, "__trioweb_stream__", False)))
    return methods
