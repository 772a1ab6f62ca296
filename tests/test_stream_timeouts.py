"""Timeouts around a long, steady upload (docs/streaming.md, "Timeouts while streaming").

Virtual time (autojump_clock): the upload takes seconds of it and no real time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
from _helpers import RawClient, request_head

from trioweb import App, Request
from trioweb._routing import DEFAULT
from trioweb.response import HTTPResponse, text
from trioweb.testing import TestClient


def upload_app(response_timeout: float | object | None) -> App:
    app = App("timeouts")
    app.config.RESPONSE_TIMEOUT = 2
    app.config.READ_IDLE_TIMEOUT = 1

    async def upload(request: Request) -> HTTPResponse:
        return text(str(len(await request.receive_body())))

    # Left out, the config's RESPONSE_TIMEOUT applies; given (even None), the route's.
    limits = {} if response_timeout is DEFAULT else {"response_timeout": response_timeout}
    app.add_route(upload, "/upload", methods=["PUT"], stream=True, **limits)
    return app


async def steady_body() -> AsyncIterator[bytes]:
    """Ten pieces, half a second apart: five seconds, never idle for a whole second."""
    for _ in range(10):
        yield b"x" * 1000
        await trio.sleep(0.5)


async def test_steady_upload_outlives_read_idle_timeout_with_no_response_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with TestClient(upload_app(None)) as client:
        start = trio.current_time()
        r = await client.put("/upload", content=steady_body())
        assert (r.status_code, r.text) == (200, "10000")
        assert trio.current_time() - start >= 4.5  # it really took longer than both


async def test_upload_longer_than_response_timeout_gets_503_by_default(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with TestClient(upload_app(DEFAULT)) as client:
        r = await client.put("/upload", content=steady_body())
        assert r.status_code == 503


async def test_stalled_upload_gets_408_after_read_idle_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Raw bytes, to see when the 408 comes: httpx reads a response only once it has
    # sent the whole body, and this body never ends.
    async with TestClient(upload_app(None)) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(request_head("PUT", "/upload", ["Content-Length: 1005"]) + b"x" * 1000)
        start = trio.current_time()
        response = await raw.read_response("PUT")
        assert response.status == 408
        assert 1 <= trio.current_time() - start < 5
