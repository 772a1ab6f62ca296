"""The connection cap (MAX_CONNECTIONS) and the handler's own deadline."""

from __future__ import annotations

import math
from contextlib import AsyncExitStack

import pytest
import trio
from _helpers import DEADLINE, serving

from trioweb import App, Request
from trioweb.response import text

GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


def capped_app(cap: int) -> App:
    app = App("limits")
    app.config.MAX_CONNECTIONS = cap

    @app.get("/")
    async def index(request: Request) -> object:
        return text("hello")

    return app


async def test_connections_over_the_cap_get_503_with_close_then_room_is_reused(
    transport: str,
) -> None:
    async with serving(capped_app(2), transport) as served, AsyncExitStack() as stack:
        held = [await stack.enter_async_context(served.connect()) for _ in range(2)]
        for client in held:  # both are being served, and stay open (keep-alive)
            await client.send(GET)
            assert (await client.read_response()).status == 200
        async with served.connect() as extra:
            with trio.fail_after(DEADLINE):
                response = await extra.read_response()  # sent before any request
            assert response.status == 503
            assert response.header("connection") == "close"
            assert response.header("retry-after") == "1"
            assert await extra.read_to_eof() == b""
        # The held connections are still served.
        await held[0].send(GET)
        assert (await held[0].read_response()).status == 200
        # Once one of them closes, a new connection is served again.
        await held[1].send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        assert (await held[1].read_response()).status == 200
        assert await held[1].read_to_eof() == b""
        with trio.fail_after(DEADLINE):
            while True:
                async with served.connect() as again:
                    await again.send(GET)
                    if (await again.read_response()).status == 200:
                        break
                await trio.sleep(0.01)  # the closed one may not be gone yet


async def test_refused_client_that_sent_its_request_still_reads_the_503(
    transport: str,
) -> None:
    async with serving(capped_app(1), transport) as served, served.connect() as held:
        await held.send(GET)
        assert (await held.read_response()).status == 200
        async with served.connect() as extra:
            await extra.send(GET + b"x" * 10000)  # unread by the server: no reset
            response = await extra.read_response()
            assert response.status == 503


# -- request.deadline -------------------------------------------------------------


async def test_handler_reads_its_response_deadline_and_extends_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App("deadline")
    app.config.RESPONSE_TIMEOUT = 10
    seen: list[float] = []

    @app.get("/slow")
    async def slow(request: Request) -> object:
        seen.append(request.deadline - trio.current_time())
        request.deadline = trio.current_time() + 100  # this one needs longer
        await trio.sleep(50)
        return text("done")

    @app.get("/unlimited")
    async def unlimited(request: Request) -> object:
        request.deadline = math.inf
        await trio.sleep(1000)
        return text("done")

    @app.get("/sooner")
    async def sooner(request: Request) -> object:
        request.deadline = trio.current_time() + 1
        await trio.sleep(5)
        return text("not reached")

    from trioweb.testing import TestClient

    async with TestClient(app) as client:
        response = await client.get("/slow")
        assert (response.status_code, response.text) == (200, "done")
        assert seen == [pytest.approx(10)]
        assert (await client.get("/unlimited")).status_code == 200
        assert (await client.get("/sooner")).status_code == 503


async def test_deadline_cannot_be_moved_once_the_response_started() -> None:
    app = App("deadline")
    errors: list[str] = []

    @app.get("/")
    async def index(request: Request) -> None:
        async with request.respond() as resp:
            await resp.send(b"head is out")
            assert request.deadline == math.inf
            try:
                request.deadline = trio.current_time() + 1
            except RuntimeError as exc:
                errors.append(str(exc))

    from trioweb.testing import TestClient

    async with TestClient(app) as client:
        response = await client.get("/")
        assert response.text == "head is out"
        assert errors == ["the response has started: RESPONSE_TIMEOUT no longer applies"]


# -- memory under slow readers ----------------------------------------------------


async def test_a_shared_large_body_is_not_copied_per_slow_reader() -> None:
    # 20 clients that never read one shared 1 MiB body: the server holds one body,
    # not a copy per response (head and body are written separately).
    import tracemalloc

    body = bytes(range(256)) * 4096
    app = App("slow readers")

    @app.get("/")
    async def index(request: Request) -> object:
        from trioweb.response import raw

        return raw(body)

    async with serving(app, "memory") as served, AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(served.connect()) for _ in range(20)]
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for client in clients:
                await client.send(GET)
            await trio.sleep(0.05)  # every response is under way, stuck on its reader
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert held < 4 * len(body), f"{held / 2**20:.1f} MiB held for 20 slow readers"
        response = await clients[0].read_response()
        assert response.body == body
