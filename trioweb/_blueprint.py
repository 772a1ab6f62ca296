"""Blueprints: groups of routes declared apart from the app, mounted under a prefix."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ._registrar import RouteRegistrar
from ._routing import Route
from ._static import StaticFiles

if TYPE_CHECKING:
    from ._app import App

__all__ = ["Blueprint"]


class Blueprint(RouteRegistrar):
    """Routes declared like on an :class:`App`, mounted with ``app.blueprint(bp)``.

    Every route's path is prefixed with ``url_prefix`` and its name with the
    blueprint's name (``"bp.handler"``).
    """

    def __init__(self, name: str, url_prefix: str | None = None) -> None:
        self.name = name
        self.url_prefix = (url_prefix or "").rstrip("/")
        self._routes: list[Route] = []

    def __repr__(self) -> str:
        return f"<Blueprint {self.name!r} url_prefix={self.url_prefix!r}>"

    def _add(self, route: Route) -> None:
        self._routes.append(route)

    def register(self, app: App) -> None:
        """Add this blueprint's routes to ``app`` (what ``app.blueprint(bp)`` calls)."""
        for route in self._routes:
            # "/" under prefix "/api" is "/api", as in Sanic.
            uri = (self.url_prefix + ("" if route.uri == "/" else route.uri)) or "/"
            app._add(replace(route, uri=uri, name=f"{self.name}.{route.name}"))
            if route.uri == "/" and uri != "/" and isinstance(route.handler, StaticFiles):
                # A static directory at the blueprint's root: "/api" redirects to
                # "/api/", where the index is served.
                app._add(replace(route, uri=uri + "/", name=f"{self.name}.{route.name}"))
