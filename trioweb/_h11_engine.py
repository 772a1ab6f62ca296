"""The engine on h11: its parser splits each request head.

h11 (https://h11.readthedocs.io/) is pure Python and strict; it is the engine used when
httptools is not installed, and the reference the other engine is checked against. The
shared engine (:class:`~._engine.Engine`) has already checked the head against the
grammar and the rules, so h11 refusing it here would mean the two disagree: that is
reported as a 400 like any refusal, and the differential tests look for it.
"""

from __future__ import annotations

import h11

from ._engine import Engine
from ._events import ProtocolError, RequestHead

__all__ = ["H11Engine"]


class H11Engine(Engine):
    """Request heads parsed by h11; framing, rules and responses are the shared ones."""

    name = "h11"
    __slots__ = ()

    def _parse_head(self, raw: bytes) -> RequestHead:
        # A fresh h11 connection per head: trioweb frames bodies itself, so h11 only
        # ever sees heads, and its state never has to follow a body it did not read.
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=len(raw) + 1)
        parser.receive_data(raw)
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError("the request head could not be parsed") from exc
        assert type(event) is h11.Request, event
        return RequestHead(
            event.method,
            event.target,
            event.http_version,
            [(name, value) for name, value in event.headers],
        )
