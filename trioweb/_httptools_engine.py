"""The engine on httptools: llhttp, the C parser of Node.js, splits each request head.

httptools (https://github.com/MagicStack/httptools) is what uvicorn's fast path uses.
It parses with callbacks and cannot stop in the middle of a buffer, so it is given one
complete head at a time, already checked by the shared engine (:class:`~._engine.Engine`)
against the grammar and the rules; bodies are framed by the shared code too.
"""

from __future__ import annotations

import httptools

from ._engine import Engine
from ._events import ProtocolError, RequestHead

__all__ = ["HttptoolsEngine"]


class _Collector:
    """The parser's callbacks: collect the target and the header fields."""

    __slots__ = ("headers", "target")

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp keeps the whitespace after a value, which is not part of it (RFC 9112
        # 5.1). (Cheaper here than looking for it in the head first.)
        self.headers.append((name.lower(), value.rstrip(b" \t")))


class HttptoolsEngine(Engine):
    """Request heads parsed by httptools; framing, rules and responses are the shared ones."""

    name = "httptools"
    __slots__ = ()

    def _parse_head(self, raw: bytes) -> RequestHead:
        collector = _Collector()
        # A fresh parser per head (it costs about a microsecond): it never sees a body,
        # so its state never has to follow one.
        parser = httptools.HttpRequestParser(collector)
        try:
            parser.feed_data(raw)
        except httptools.HttpParserUpgrade:
            pass  # an Upgrade request: the head is complete all the same
        except httptools.HttpParserError as exc:
            # llhttp knows a fixed list of methods and reads some its own way (RTSP's,
            # PRI), but any token is a method (RFC 9110 9.1) and the shared checks have
            # read the request line: the rest is parsed under GET, the head keeps the
            # real method. (Only on this error path: a request llhttp knows costs nothing.)
            method, _, rest = raw.partition(b" ")
            if method == b"GET":
                raise ProtocolError("the request head could not be parsed") from exc
            head = self._parse_head(b"GET " + rest)
            head.method = method
            return head
        return RequestHead(
            parser.get_method(),
            collector.target,
            parser.get_http_version().encode("ascii"),
            collector.headers,
        )
