"""The app-level features, end to end over a real loopback socket and over TestClient.

The same httpx calls and assertions run against both transports, so whatever the
in-memory tests prove about hooks and views also holds on TCP.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from trioweb import (
    App,
    Blueprint,
    CompositionView,
    HTTPMethodView,
    HTTPResponse,
    Request,
    Server,
    serve_listeners,
)
from trioweb.errors import NotFound
from trioweb.response import json, text
from trioweb.testing import TestClient

DEADLINE = 20


@pytest.fixture(params=["memory", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def open_client(app: App, transport: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client for ``app``: in memory, or over 127.0.0.1 with app.serve."""
    with trio.fail_after(DEADLINE):
        if transport == "memory":
            async with TestClient(app) as client:
                yield client
            return
        async with trio.open_nursery() as nursery:
            server = await nursery.start(app.serve, "127.0.0.1", 0)
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as c:
                    yield c
            finally:
                server.shutdown()


def full_app(events: list[str]) -> App:
    app = App("e2e")

    @app.before_server_start
    async def before_start(app: App) -> None:
        events.append("before_server_start")

        async def heartbeat() -> None:
            try:
                await trio.sleep_forever()
            finally:
                events.append("background task cancelled")

        app.nursery.start_soon(heartbeat)

    @app.after_server_start
    async def after_start(app: App) -> None:
        events.append("after_server_start")

    @app.before_server_stop
    async def before_stop(app: App) -> None:
        events.append("before_server_stop")

    @app.after_server_stop
    async def after_stop(app: App) -> None:
        events.append("after_server_stop")

    @app.on_request
    async def gate(request):
        if request.headers.get("x-block"):
            return text("blocked", status=403)
        request.ctx.seen = True
        return None

    @app.on_response
    async def stamp(request, response):
        response.headers["x-served-by"] = "trioweb"

    @app.exception(NotFound)
    async def not_found(request, exc):
        return json({"missing": request.path}, status=404)

    @app.get("/crash")
    async def crash(request):
        raise RuntimeError("boom")

    @app.get("/ctx")
    async def ctx(request):
        return text(str(request.ctx.seen))

    bp = Blueprint("api", url_prefix="/api")

    @bp.get("/items/<item_id:int>")
    async def item(request, item_id):
        return json({"id": item_id, "type": type(item_id).__name__})

    app.blueprint(bp)

    class Things(HTTPMethodView):
        async def get(self, request):
            return text("got things")

        async def post(self, request):
            return text(f"posted {request.body.decode()}")

    app.add_route(Things.as_view(), "/things")

    async def put_handler(request):
        return text(f"put {len(request.body)}")

    view = CompositionView()
    view.add(["PUT"], put_handler)
    app.add_route(view, "/composed")
    return app


async def test_hooks_views_and_errors(transport: str) -> None:
    events: list[str] = []
    app = full_app(events)
    async with open_client(app, transport) as client:
        assert events == ["before_server_start", "after_server_start"]
        r = await client.get("/ctx")
        assert (r.status_code, r.text, r.headers["x-served-by"]) == (200, "True", "trioweb")
        r = await client.get("/ctx", headers={"x-block": "1"})
        assert (r.status_code, r.text) == (403, "blocked")
        r = await client.get("/nowhere")
        assert (r.status_code, r.json()) == (404, {"missing": "/nowhere"})
        assert r.headers["x-served-by"] == "trioweb"
        r = await client.get("/crash")
        assert r.status_code == 500
        assert "boom" not in r.text
        r = await client.get("/api/items/7")
        assert r.json() == {"id": 7, "type": "int"}
        r = await client.get("/things")
        assert r.text == "got things"
        r = await client.post("/things", content=b"abc")
        assert r.text == "posted abc"
        r = await client.delete("/things")
        assert r.status_code == 405
        assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
        r = await client.put("/composed", content=b"12345")
        assert r.text == "put 5"
        r = await client.head("/things")
        assert (r.status_code, r.content) == (200, b"")
    assert events == [
        "before_server_start",
        "after_server_start",
        "before_server_stop",
        "background task cancelled",
        "after_server_stop",
    ]


async def test_serve_listeners_serves_listeners_the_caller_made() -> None:
    app = App("own-listeners")

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text(f"{request.scheme} {request.app.nursery is not None}")

    async def serve(listeners: list[Any], task_status: trio.TaskStatus[Server]) -> None:
        await serve_listeners(app, listeners, task_status=task_status)
        stopped.append(listeners)

    stopped: list[list[Any]] = []
    default = signal.getsignal(signal.SIGINT)
    with trio.fail_after(DEADLINE):
        first_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        second_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        async with trio.open_nursery() as nursery:
            first = await nursery.start(serve, first_listeners)
            second = await nursery.start(serve, second_listeners)
            port = first_listeners[0].socket.getsockname()[1]
            assert first.addresses == [("127.0.0.1", port)]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second.port}") as c:
                assert (await c.get("/")).text == "http True"
            # SIGINT now shuts the servers down, and still does while one is left.
            assert signal.getsignal(signal.SIGINT) is not default
            first.shutdown()
            while stopped != [first_listeners]:  # noqa: ASYNC110 (no event to wait on)
                await trio.sleep(0.01)
            assert signal.getsignal(signal.SIGINT) is not default
            second.shutdown()
    # The last one gone, the process handles signals as before the first started.
    assert signal.getsignal(signal.SIGINT) is default
    assert stopped == [first_listeners, second_listeners]
    for listener in first_listeners + second_listeners:
        assert listener.socket.fileno() == -1  # serve_listeners closed them


async def test_serve_listeners_needs_a_listener() -> None:
    with pytest.raises(ValueError, match="at least one listener"):
        await serve_listeners(App("none"), [])


async def test_each_engine_serves_the_suite(http_engine: str) -> None:
    # The conftest's engine really reaches the server (and "auto" picks httptools here).
    app = App("engines")

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text("ok")

    async with trio.open_nursery() as nursery:
        server = await nursery.start(app.serve, "127.0.0.1", 0)
        expected = "httptools" if http_engine == "auto" else http_engine
        assert server.engine.name == expected
        server.shutdown()
