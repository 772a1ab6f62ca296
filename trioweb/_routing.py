"""Routes and the router: a dict for static paths, a segment trie for the rest."""

from __future__ import annotations

import enum
import functools
import inspect
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Union
from urllib.parse import quote, unquote, urlencode

from .errors import BadRequest, MethodNotAllowed, NotFound, URLBuildError

if TYPE_CHECKING:
    from .response import HTTPResponse

__all__ = [
    "DEFAULT",
    "HANDSHAKE",
    "Handler",
    "Route",
    "Router",
    "normalize_path",
    "require_async",
]

Handler = Callable[..., Awaitable[Union["HTTPResponse", None]]]


def require_async(func: Callable[..., Any], what: str) -> None:
    """Raise ``TypeError`` unless calling ``func`` gives something to await.

    A plain ``def`` is refused where it is registered, with a message that says what
    to write, rather than with a confusing TypeError on every request.

    Accepted: ``async def`` functions and methods, ``functools.partial`` of one, a
    function whose ``__wrapped__`` is one (a decorator's plain wrapper), and an object
    whose ``__call__`` is ``async def``.
    """
    target = inspect.unwrap(func)
    while isinstance(target, functools.partial):
        target = inspect.unwrap(target.func)
    if inspect.iscoroutinefunction(target):
        return
    # An instance of a class with ``async def __call__``.
    if callable(target) and inspect.iscoroutinefunction(type(target).__call__):
        return
    name = getattr(func, "__name__", None)
    if isinstance(name, str) and name.isidentifier():
        fix = f"`async def {name}(...)`"
    else:
        fix, name = "an `async def` function", repr(func)
    raise TypeError(f"{what} {name} is not async: trioweb awaits it, so write it as {fix}")


class _Default(enum.Enum):
    token = "DEFAULT"
    handshake = "HANDSHAKE"

    def __repr__(self) -> str:
        return self.value


#: Left out, a per-route limit takes the config value; ``None`` means no limit.
DEFAULT: Final = _Default.token
#: The ``response_timeout`` of a WebSocket route: WEBSOCKET_HANDSHAKE_TIMEOUT bounds
#: the time from its request head to the 101 (request middleware included).
HANDSHAKE: Final = _Default.handshake
Limit = float | None | _Default


@dataclass(frozen=True)
class Route:
    """One handler bound to one path and one method, with its own limits."""

    uri: str
    method: str
    handler: Handler
    stream: bool = False
    request_max_size: Limit = DEFAULT
    request_timeout: Limit = DEFAULT
    response_timeout: Limit = DEFAULT
    name: str | None = None


_CONVERTERS: dict[str, tuple[re.Pattern[str], Callable[[str], Any]]] = {
    "int": (re.compile(r"-?\d+"), int),
    "float": (re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)"), float),
    "uuid": (
        re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"),
        uuid.UUID,
    ),
    "str": (re.compile(r"[^/]+"), str),
}
# When a segment fits several typed parameters, the most specific one wins.
_PRIORITY = {"int": 0, "float": 1, "uuid": 2, "str": 3}
_PARAM = re.compile(r"<([^<>:]*)(?::([^<>]*))?>")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class _Node:
    static: dict[str, _Node] = field(default_factory=dict)
    params: list[tuple[str, str, _Node]] = field(default_factory=list)
    routes: dict[str, Route] = field(default_factory=dict)
    # A trailing <name:path> parameter takes every remaining segment.
    tail: tuple[str, dict[str, Route]] | None = None


def _segments(path: str) -> list[str]:
    return path.split("/")[1:]


_DOTS = frozenset((".", ".."))
_ENCODED_DOT_OR_SLASH = re.compile("%2[eEfF]")


def normalize_path(raw_path: str) -> str:
    """``raw_path`` without its dot segments (RFC 3986 5.2.4), still percent-encoded.

    A segment is a dot segment when it decodes to ``.`` or ``..`` (``%2e%2e`` too, as
    RFC 3986 6.2.2.2 says); the other segments are kept exactly as sent, so an encoded
    slash stays inside its segment. Raises BadRequest for a ``..`` above ``/``, and for
    a ``.`` or ``..`` hidden behind an encoded slash (``..%2f``): routing keeps that
    slash inside the segment, so it is not resolved here, yet whoever joins the
    parameter into a file path would resolve it.
    """
    # A dot segment starts right after a "/" with "." or "%2e", and one hides behind
    # "%2f": most paths have none of these, and cost a scan or two.
    if "/." not in raw_path and (
        "%2" not in raw_path or _ENCODED_DOT_OR_SLASH.search(raw_path) is None
    ):
        return raw_path
    segments = _segments(raw_path)
    kept: list[str] = []
    for index, segment in enumerate(segments, 1):
        decoded = unquote(segment) if "%" in segment else segment
        if decoded in _DOTS:
            if decoded == "..":
                if not kept:
                    raise BadRequest("the path climbs above /")
                kept.pop()
            if index == len(segments):
                kept.append("")  # "/a/b/.." is "/a/": a last dot segment leaves its "/"
        elif "/" in decoded and not _DOTS.isdisjoint(decoded.split("/")):
            raise BadRequest("the path hides a dot segment behind an encoded slash")
        else:
            kept.append(segment)
    return "/" + "/".join(kept)


class Router:
    """Finds the route for a method and a raw (still percent-encoded) path.

    Static paths are one dict lookup; paths with parameters walk a trie of segments,
    trying a literal segment before typed parameters, so lookup cost grows with the
    depth of the path, not with the number of routes.
    """

    def __init__(self) -> None:
        self._static: dict[str, dict[str, Route]] = {}
        self._root = _Node()
        self.routes: list[Route] = []
        # For url_for: each name's paths, in the order declared; built on first use.
        self._named: dict[str, list[_Template]] | None = None

    def add(self, route: Route) -> None:
        """Register ``route``; a second handler for the same path and method is an error."""
        if not route.uri.startswith("/"):
            raise ValueError(f"route {route.uri!r} must start with '/'")
        if "<" not in route.uri and ">" not in route.uri:
            table = self._static.setdefault(route.uri, {})
        else:
            table = self._insert(route.uri)
        if route.method in table:
            raise ValueError(f"{route.method} {route.uri} is already routed")
        table[route.method] = route
        self.routes.append(route)
        self._named = None

    def _insert(self, uri: str) -> dict[str, Route]:
        node = self._root
        segments = _segments(uri)
        for index, segment in enumerate(segments):
            match = _PARAM.fullmatch(segment)
            if match is None:
                if "<" in segment or ">" in segment:
                    raise ValueError(f"bad parameter in route {uri!r}: {segment!r}")
                node = node.static.setdefault(segment, _Node())
                continue
            name, kind = match.group(1), match.group(2)
            kind = "str" if kind is None else kind
            if _NAME.fullmatch(name) is None:
                raise ValueError(f"bad parameter name {name!r} in route {uri!r}")
            if kind == "path":
                if index != len(segments) - 1:
                    raise ValueError(f"<{name}:path> must be the last segment of {uri!r}")
                if node.tail is None:
                    node.tail = (name, {})
                elif node.tail[0] != name:
                    raise ValueError(f"conflicting path parameter in {uri!r}")
                return node.tail[1]
            if kind not in _CONVERTERS:
                raise ValueError(f"unknown parameter type {kind!r} in {uri!r}")
            for pname, pkind, child in node.params:
                if pkind == kind:
                    if pname != name:
                        raise ValueError(f"conflicting parameter names in {uri!r}")
                    node = child
                    break
            else:
                child = _Node()
                node.params.append((name, kind, child))
                node.params.sort(key=lambda edge: _PRIORITY[edge[1]])
                node = child
        return node.routes

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, Any]]:
        """The route and converted parameters; raises NotFound or MethodNotAllowed."""
        allowed: set[str] = set()
        if "%" not in raw_path:
            table = self._static.get(raw_path)
            if table is not None and (route := _pick(table, method, allowed)) is not None:
                return route, {}
            segments = _segments(raw_path)
        else:
            try:
                segments = [unquote(s, errors="strict") for s in _segments(raw_path)]
            except UnicodeDecodeError:
                raise BadRequest("the path is not valid percent-encoded UTF-8") from None
            # An encoded slash must not turn one segment into a different static path.
            table = (
                None
                if any("/" in s for s in segments)
                else self._static.get("/" + "/".join(segments))
            )
        if table is not None:
            route = _pick(table, method, allowed)
            if route is not None:
                return route, {}
        params: dict[str, Any] = {}
        route = self._walk(self._root, segments, 0, params, method, allowed)
        if route is not None:
            return route, params
        if allowed:
            raise MethodNotAllowed(allowed=allowed | ({"HEAD"} if "GET" in allowed else set()))
        raise NotFound()

    def _walk(
        self,
        node: _Node,
        segments: list[str],
        index: int,
        params: dict[str, Any],
        method: str,
        allowed: set[str],
    ) -> Route | None:
        if index == len(segments):
            return _pick(node.routes, method, allowed) if node.routes else None
        segment = segments[index]
        child = node.static.get(segment)
        if child is not None:
            route = self._walk(child, segments, index + 1, params, method, allowed)
            if route is not None:
                return route
        for name, kind, child in node.params:
            pattern, convert = _CONVERTERS[kind]
            if pattern.fullmatch(segment) is None:
                continue
            params[name] = convert(segment)
            route = self._walk(child, segments, index + 1, params, method, allowed)
            if route is not None:
                return route
            del params[name]
        if node.tail is not None and segment:
            name, routes = node.tail
            route = _pick(routes, method, allowed)
            if route is not None:
                params[name] = "/".join(segments[index:])
                return route
        return None

    def url_for(self, name: str, params: Mapping[str, Any]) -> str:
        """The path of the route named ``name``, its parameters from ``params``, and the
        other ``params`` as the query string (see ``App.url_for``).

        Raises URLBuildError.
        """
        if self._named is None:
            self._named = {}
            for route in self.routes:
                known = self._named.setdefault(route.name or "", [])
                if all(each.uri != route.uri for each in known):
                    known.append(_Template(route.uri))
        templates = self._named.get(name)
        if templates is None:
            raise URLBuildError(
                f"no route is named {name!r} (a route's name is its handler's name, or "
                "'blueprint.handler' in a blueprint, unless given with name=)"
            )
        built: tuple[_Template, str] | None = None
        reasons: list[str] = []
        for template in templates:
            try:
                path = template.build(params)
            except URLBuildError as exc:
                reasons.append(str(exc))
                continue
            # A name routed at several paths: the one that takes the most parameters
            # (the first declared among equals), as Werkzeug chooses.
            if built is None or len(template.params) > len(built[0].params):
                built = (template, path)
        if built is None:
            raise URLBuildError(f"cannot build a path for route {name!r}: " + "; ".join(reasons))
        template, path = built
        query = urlencode(
            [(k, v) for k, v in params.items() if k not in template.params and v is not None],
            doseq=True,
        )
        return f"{path}?{query}" if query else path


# What a path segment may hold unescaped (RFC 3986 pchar); the rest is percent-encoded.
_PCHAR_SAFE = "!$&'()*+,;=:@"


class _Template:
    """A route's path as url_for fills it in: literal segments and typed parameters."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        #: Each segment: a literal, already quoted, or a parameter's (name, kind).
        self.segments: list[str | tuple[str, str]] = []
        for segment in _segments(uri):
            match = _PARAM.fullmatch(segment)
            if match is None:
                self.segments.append(quote(segment, safe=_PCHAR_SAFE))
            else:
                self.segments.append((match.group(1), match.group(2) or "str"))
        self.params = {each[0] for each in self.segments if isinstance(each, tuple)}

    def build(self, params: Mapping[str, Any]) -> str:
        """The path with ``params`` filled in; raises URLBuildError naming the problem."""
        missing = sorted(self.params.difference(params))
        if missing:
            raise URLBuildError(f"{self.uri} needs {', '.join(map(repr, missing))}")
        parts = []
        for segment in self.segments:
            if isinstance(segment, str):
                parts.append(segment)
                continue
            name, kind = segment
            value = params[name]
            text = _segment_text(kind, value)
            if text is None:
                raise URLBuildError(f"{self.uri}: {name!r}={value!r} does not fit <{name}:{kind}>")
            try:
                parts.append(quote(text, safe=_PCHAR_SAFE + ("/" if kind == "path" else "")))
            except UnicodeEncodeError:
                raise URLBuildError(f"{self.uri}: {name!r} is not valid Unicode") from None
        return "/" + "/".join(parts)


def _segment_text(kind: str, value: Any) -> str | None:
    """``value`` as the text of a ``kind`` parameter, or ``None`` if it does not fit.

    A value of the converter's type, or a ``str`` the converter would accept; the
    text must route back to the same value, so a ``str`` holds no ``/``, and no
    segment is a dot segment (routing would remove it).
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        return None
    elif kind == "int" and isinstance(value, int):
        text = str(value)
    elif kind == "float" and isinstance(value, (int, float)):
        # Positional notation: the float pattern has no exponent. The shortest repr
        # keeps the value exact.
        text = format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)
    elif kind == "uuid" and isinstance(value, uuid.UUID):
        text = str(value)
    else:
        return None
    if kind == "path":
        pieces = text.split("/")
        if not pieces[0] or not _DOTS.isdisjoint(pieces):
            return None
    elif _CONVERTERS[kind][0].fullmatch(text) is None or text in _DOTS:
        return None
    return text


def _pick(table: dict[str, Route], method: str, allowed: set[str]) -> Route | None:
    route = table.get(method)
    if route is None and method == "HEAD":
        route = table.get("GET")
    if route is None:
        allowed.update(table)
    return route
