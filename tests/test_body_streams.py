"""Bodies as Trio streams (issue 18): ``request.stream`` is a ``trio.abc.ReceiveStream``,
the ``request.respond()`` stream a ``trio.abc.SendStream``; and sending on a finished
response raises ``trio.ClosedResourceError`` (issue 10, defect 7).
"""

from __future__ import annotations

import trio
from _helpers import DEADLINE, RawClient

from trioweb import App, Request
from trioweb.testing import TestClient


def get(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode()


async def test_send_on_a_finished_response_raises_closed_resource_error() -> None:
    # Issue 10, defect 7: API.md documents trio.ClosedResourceError, not RuntimeError.
    app = App("finished")
    errors: list[str] = []

    @app.get("/")
    async def index(request: Request) -> None:
        resp = await request.respond()
        await resp.send(b"whole")
        await resp.eof()
        for late in (lambda: resp.send(b"late"), lambda: resp.write("late"), resp.eof):
            try:
                await late()
            except trio.ClosedResourceError:
                errors.append("closed")

    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(get("/"))
        response = await raw.read_response()
    assert (response.status, response.body) == (200, b"whole")
    assert errors == ["closed", "closed"]
