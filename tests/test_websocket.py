"""WebSockets: routes, the handshake, messages, closes, structured concurrency, limits.

Each test builds the tiny app it needs and talks to it with the TestClient's
``websocket_connect`` (in memory); timeouts run on pytest-trio's ``autojump_clock``.
Bad input and the ported Autobahn cases are in ``test_websocket_protocol.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing
from _helpers import DEADLINE, RawClient, request_head
from _ws import HANDSHAKE, frame, read_frame

from trioweb import App, Blueprint, Config
from trioweb.response import text
from trioweb.testing import TestClient, WebSocketRejected
from trioweb.websocket import ConnectionClosed, WebSocket


def echo_app(**config: Any) -> App:
    app = App("ws", config=Config(**config))

    @app.websocket("/echo")
    async def echo(request: Any, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    return app


# -- routes and the handshake -----------------------------------------------------------


async def test_echo_text_and_binary_with_path_parameters() -> None:
    app = App("ws")

    @app.websocket("/room/<name>/<n:int>")
    async def room(request: Any, ws: WebSocket, name: str, n: int) -> None:
        assert request.path == f"/room/{name}/{n}"
        await ws.send(f"{name}:{n}")
        async for message in ws:
            await ws.send(message)

    async with TestClient(app) as client, client.websocket_connect("/room/a/7") as ws:
        with trio.fail_after(DEADLINE):
            assert await ws.recv() == "a:7"
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"


async def test_blueprint_and_add_websocket_route() -> None:
    async def hello(request: Any, ws: WebSocket) -> None:
        await ws.send("hello")

    bp = Blueprint("live", url_prefix="/live")
    bp.websocket("/feed")(hello)
    app = App("ws")
    app.blueprint(bp)
    app.add_websocket_route(hello, "/hello", name="plain")
    names = {route.uri: route.name for route in app.router.routes}
    assert names == {"/live/feed": "live.hello", "/hello": "plain"}
    async with TestClient(app) as client:
        for path in ("/live/feed", "/hello"):
            async with client.websocket_connect(path) as ws:
                with trio.fail_after(DEADLINE):
                    assert await ws.recv() == "hello"


def test_a_plain_def_handler_is_refused_at_registration() -> None:
    app = App("ws")

    def handler(request: Any, ws: WebSocket) -> None:  # pragma: no cover - never runs
        pass

    with pytest.raises(TypeError, match="WebSocket handler handler is not async"):
        app.websocket("/ws")(handler)


async def test_a_get_without_upgrade_is_a_426_naming_websocket() -> None:
    async with TestClient(echo_app()) as client:
        r = await client.get("/echo")
        assert r.status_code == 426
        assert r.headers["upgrade"] == "websocket"
        assert "upgrade" in r.headers["connection"].lower()
        # Other methods on the path: 405, as for any GET route.
        r = await client.post("/echo")
        assert r.status_code == 405


async def test_request_middleware_runs_first_and_can_refuse() -> None:
    app = echo_app()
    seen: list[str] = []

    @app.on_request
    async def auth(request: Any) -> Any:
        seen.append(request.path)
        if request.args.get("token") != "ok":
            return text("no", status=403)
        return None

    async with TestClient(app) as client:
        with pytest.raises(WebSocketRejected) as refused:
            async with client.websocket_connect("/echo"):
                pass  # pragma: no cover
        assert refused.value.response.status_code == 403
        assert refused.value.response.text == "no"
        async with client.websocket_connect("/echo?token=ok") as ws:
            await ws.send("in")
            with trio.fail_after(DEADLINE):
                assert await ws.recv() == "in"
    assert seen == ["/echo", "/echo"]


async def test_subprotocols_are_negotiated() -> None:
    app = App("ws")

    @app.websocket("/chat", subprotocols=["chat.v2", "chat.v1"])
    async def chat(request: Any, ws: WebSocket) -> None:
        await ws.send(ws.subprotocol or "none")

    async with TestClient(app) as client:
        async with client.websocket_connect("/chat", subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"  # the server's preference
            with trio.fail_after(DEADLINE):
                assert await ws.recv() == "chat.v2"
        with pytest.raises(WebSocketRejected) as refused:
            async with client.websocket_connect("/chat", subprotocols=["other"]):
                pass  # pragma: no cover
        assert refused.value.response.status_code == 400


async def test_origin_checking_as_an_option() -> None:
    async with TestClient(echo_app(WEBSOCKET_ORIGINS=["https://a.example"])) as client:
        async with client.websocket_connect("/echo", headers={"Origin": "https://a.example"}):
            pass
        with pytest.raises(WebSocketRejected) as refused:
            async with client.websocket_connect("/echo", headers={"Origin": "https://evil"}):
                pass  # pragma: no cover
        assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    ("headers", "status", "extra"),
    [
        # RFC 6455 4.2.1: a key that is not 16 bytes of base64, or none: 400.
        (["Sec-WebSocket-Key: short", "Sec-WebSocket-Version: 13"], 400, None),
        (["Sec-WebSocket-Version: 13"], 400, None),
        # RFC 6455 4.4: an unknown version: 426 with the versions the server speaks.
        (["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 8"], 426, "13"),
        (["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="], 400, "13"),
    ],
    ids=["bad-key", "no-key", "version-8", "no-version"],
)
async def test_a_bad_handshake_gets_the_status_the_rfc_requires(
    headers: list[str], status: int, extra: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trioweb")
    async with TestClient(echo_app()) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(
            request_head("GET", "/echo", ["Upgrade: websocket", "Connection: Upgrade", *headers])
        )
        response = await raw.read_response()
    assert response.status == status
    assert response.header("sec-websocket-version") == extra
    assert b"short" not in response.body  # the refusal never echoes the client's bytes
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1


async def test_the_101_and_the_first_frames_in_one_write_are_both_read() -> None:
    # A client may send its first frame right behind the handshake: the HTTP reader
    # read it with the head, and the WebSocket gets it first.
    async with TestClient(echo_app()) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(request_head("GET", "/echo", HANDSHAKE) + frame(0x1, b"early"))
        head = await raw.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
        assert await read_frame(raw) == (0x1, b"early")


# -- messages, closes and codes -----------------------------------------------------------


async def test_async_for_ends_on_a_normal_close_and_the_handler_goes_on() -> None:
    app = App("ws")
    after = trio.Event()

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        got = [message async for message in ws]
        assert got == ["a", "b"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert (closed.value.code, closed.value.reason) == (1000, "bye")
        with pytest.raises(ConnectionClosed):
            await ws.send("too late")
        after.set()

    async with TestClient(app) as client:
        async with client.websocket_connect("/ws") as ws:
            await ws.send("a")
            await ws.send("b")
            await ws.close(1000, "bye")
        with trio.fail_after(DEADLINE):
            await after.wait()


async def test_async_for_raises_on_an_abnormal_close() -> None:
    app = App("ws")
    codes: list[int] = []

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        try:
            async for _ in ws:
                pass
        except ConnectionClosed as exc:
            codes.append(exc.code)
            raise

    async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        await ws.close(4000, "app says")
    assert codes == [4000]


@pytest.mark.parametrize(("outcome", "code"), [("return", 1000), ("raise", 1011)])
async def test_the_handler_returning_closes_1000_an_exception_1011_logged_once(
    outcome: str, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("ws")

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        await ws.send("hi")
        if outcome == "raise":
            raise RuntimeError("boom")

    async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        with trio.fail_after(DEADLINE):
            assert await ws.recv() == "hi"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    assert closed.value.code == code
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    if outcome == "raise":
        assert len(failures) == 1
        assert failures[0].exc_info is not None and "boom" in str(failures[0].exc_info[1])
    else:
        assert failures == []


async def test_ws_close_with_a_code_and_reason() -> None:
    app = App("ws")

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        await ws.close(4001, "policy")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.send("x")
        assert closed.value.code == 4001
        with pytest.raises(ValueError, match="close code"):
            await ws.close(1006)

    async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        with trio.fail_after(DEADLINE), pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert (closed.value.code, closed.value.reason) == (4001, "policy")


async def test_ping_waits_for_the_pong() -> None:
    app = App("ws")
    ponged = trio.Event()

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        await ws.ping(b"p1")
        ponged.set()
        await ws.send("done")

    async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        with trio.fail_after(DEADLINE):
            assert await ws.recv() == "done"  # the client answered the ping meanwhile
    assert ponged.is_set()


async def test_send_refuses_other_types() -> None:
    app = App("ws")

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        with pytest.raises(TypeError, match="str or bytes"):
            await ws.send(42)  # type: ignore[arg-type]
        await ws.send("ok")

    async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        with trio.fail_after(DEADLINE):
            assert await ws.recv() == "ok"


# -- structured concurrency -----------------------------------------------------------


async def test_sends_from_child_tasks_take_turns_whole_messages() -> None:
    app = App("ws")
    big = {name: name * 200_000 for name in "abc"}

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        async with trio.open_nursery() as nursery:
            for message in big.values():
                nursery.start_soon(ws.send, message)

    async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        with trio.fail_after(DEADLINE):
            got = {await ws.recv() for _ in big}
    assert got == set(big.values())


async def test_the_client_going_away_cancels_the_handler_and_its_children() -> None:
    app = App("ws")
    cancelled: list[str] = []
    started = trio.Event()

    async def child(name: str) -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(name)
            raise

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child, "a")
                nursery.start_soon(child, "b")
                started.set()
        finally:
            cancelled.append("handler")

    async with TestClient(app) as client:
        async with client.raw() as stream:
            raw = RawClient(stream)
            await raw.send(request_head("GET", "/ws", HANDSHAKE))
            await raw.read_until(b"\r\n\r\n")
            with trio.fail_after(DEADLINE):
                await started.wait()
        # The stream is closed: no close frame, the TCP connection just ended.
        with trio.fail_after(DEADLINE):
            while len(cancelled) < 3:  # noqa: ASYNC110 (nothing to wait on but the list)
                await trio.sleep(0.01)
    assert sorted(cancelled) == ["a", "b", "handler"]


async def test_a_client_leaving_a_handler_with_children_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The children see ConnectionClosed as they are cancelled: that is no failure.
    app = App("ws")
    running = trio.Event()

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        async def sender() -> None:
            while True:
                await ws.send("tick")
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            running.set()
            async for _ in ws:
                pass

    async with TestClient(app) as client:
        async with client.raw() as stream:
            raw = RawClient(stream)
            await raw.send(request_head("GET", "/ws", HANDSHAKE))
            await raw.read_until(b"\r\n\r\n")
            with trio.fail_after(DEADLINE):
                await running.wait()
        assert client.server is not None
        with trio.fail_after(DEADLINE):
            while client.server._connections:  # noqa: ASYNC110
                await trio.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_one_child_receives_while_others_send() -> None:
    app = App("ws")

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        async def ticker() -> None:
            for n in range(3):
                await ws.send(f"tick {n}")
                await trio.sleep(1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            async for message in ws:
                await ws.send(f"echo {message}")
            nursery.cancel_scope.cancel()

    async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        with trio.fail_after(DEADLINE):
            await ws.send("x")
            got = {await ws.recv() for _ in range(4)}
    assert got == {"tick 0", "tick 1", "tick 2", "echo x"}


# -- shutdown -------------------------------------------------------------------------


async def test_shutdown_closes_every_websocket_with_1001(autojump_clock: Any) -> None:
    app = echo_app(GRACEFUL_SHUTDOWN_TIMEOUT=15)
    async with (
        TestClient(app) as client,
        client.websocket_connect("/echo") as one,
        client.websocket_connect("/echo") as two,
    ):
        await one.send("x")
        assert await one.recv() == "x"
        start = trio.current_time()
        assert client.server is not None
        client.server.shutdown()
        for ws in (one, two):
            with trio.fail_after(1), pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.code == 1001
        assert trio.current_time() - start < 1


async def test_shutdown_cancels_a_handler_that_ignores_the_close_after_the_grace(
    autojump_clock: Any,
) -> None:
    app = App("ws", config=Config(GRACEFUL_SHUTDOWN_TIMEOUT=15))
    cancelled = trio.Event()

    @app.websocket("/ws")
    async def stubborn(request: Any, ws: WebSocket) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    stopped_at = 0.0
    async with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        start = trio.current_time()
        assert client.server is not None
        client.server.shutdown()
        with trio.fail_after(1), pytest.raises(ConnectionClosed) as closed:
            await ws.recv()  # the 1001 comes at once
        assert closed.value.code == 1001
        with trio.fail_after(30):
            await cancelled.wait()
        stopped_at = trio.current_time() - start
    assert 15 <= stopped_at < 16


# -- backpressure and limits ----------------------------------------------------------


async def test_a_full_queue_stops_reading_the_socket(autojump_clock: Any) -> None:
    app = App("ws", config=Config(WEBSOCKET_QUEUE_SIZE=2, WEBSOCKET_PING_INTERVAL=None))
    release, done = trio.Event(), trio.Event()
    got: list[Any] = []

    @app.websocket("/ws")
    async def slow(request: Any, ws: WebSocket) -> None:
        await release.wait()
        async for message in ws:
            got.append(message)
        done.set()

    sent = 0

    async def sender(ws: Any) -> None:
        nonlocal sent
        for _ in range(100):
            await ws.send(b"x" * 1024)
            sent += 1

    # A small pipe: the client's sends stop once the server stops reading.
    async with TestClient(app, buffer_size=4096) as client:
        async with client.websocket_connect("/ws") as ws, trio.open_nursery() as nursery:
            nursery.start_soon(sender, ws)
            await trio.testing.wait_all_tasks_blocked()
            # The queue (2), the read in hand (one read of at most 4 KiB: 4 messages)
            # and the pipe's 4 KiB: a bound, far from all 100.
            assert 2 < sent <= 2 + 4 + 4 + 1
            release.set()
        with trio.fail_after(DEADLINE):
            await done.wait()
    assert len(got) == 100


async def test_send_waits_while_the_client_is_slow(autojump_clock: Any) -> None:
    app = App("ws", config=Config(WEBSOCKET_PING_INTERVAL=None, WRITE_TIMEOUT=None))
    progress: list[int] = []

    @app.websocket("/ws")
    async def fast(request: Any, ws: WebSocket) -> None:
        for n in range(100):
            await ws.send(b"z" * 4096)
            progress.append(n)

    async with TestClient(app, buffer_size=16384) as client, client.websocket_connect("/ws") as ws:
        await trio.sleep(5)
        assert len(progress) < 10  # blocked on the client, not buffered
        for _ in range(100):
            assert await ws.recv() == b"z" * 4096
    assert len(progress) == 100


async def test_a_message_over_the_limit_closes_1009_before_it_is_read_whole() -> None:
    app = echo_app(WEBSOCKET_MAX_SIZE=1000)
    async with TestClient(app) as client, client.websocket_connect("/echo") as ws:
        await ws.send("a" * 1000)
        with trio.fail_after(DEADLINE):
            assert await ws.recv() == "a" * 1000
            await ws.send("b" * 1001)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    assert closed.value.code == 1009


async def test_a_fragmented_message_over_the_limit_closes_1009() -> None:
    app = echo_app(WEBSOCKET_MAX_SIZE=1000)
    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(request_head("GET", "/echo", HANDSHAKE))
        await raw.read_until(b"\r\n\r\n")
        await raw.send(frame(0x1, b"a" * 600, fin=False))
        await raw.send(frame(0x0, b"a" * 600))
        opcode, payload = await read_frame(raw)
        assert (opcode, payload[:2]) == (0x8, (1009).to_bytes(2, "big"))


async def test_a_dead_peer_is_closed_after_the_ping_timeout(autojump_clock: Any) -> None:
    app = App("ws", config=Config(WEBSOCKET_PING_INTERVAL=20, WEBSOCKET_PING_TIMEOUT=20))
    cancelled = trio.Event()

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(request_head("GET", "/ws", HANDSHAKE))
        await raw.read_until(b"\r\n\r\n")
        start = trio.current_time()
        # The client never answers the ping that comes after 20 s.
        with trio.fail_after(60):
            await cancelled.wait()
        assert 40 <= trio.current_time() - start < 41
        rest = await raw.read_to_eof()
        assert rest[:1] == b"\x89"  # the ping
        assert b"\x88" in rest and (1011).to_bytes(2, "big") in rest


async def test_a_live_peer_answers_pings_and_stays(autojump_clock: Any) -> None:
    app = echo_app()
    async with TestClient(app) as client, client.websocket_connect("/echo") as ws:
        for n in range(3):
            await trio.sleep(30)  # pings come; recv() below answers them
            await ws.send(str(n))
            assert await ws.recv() == str(n)


async def test_the_handshake_timeout_bounds_middleware(autojump_clock: Any) -> None:
    app = echo_app(WEBSOCKET_HANDSHAKE_TIMEOUT=3)

    @app.on_request
    async def slow(request: Any) -> None:
        await trio.sleep(10)

    async with TestClient(app) as client:
        start = trio.current_time()
        with pytest.raises(WebSocketRejected) as refused:
            async with client.websocket_connect("/echo"):
                pass  # pragma: no cover
        assert refused.value.response.status_code == 503
        assert trio.current_time() - start == pytest.approx(3)


async def test_nothing_leaks_after_many_connections() -> None:
    app = echo_app()
    async with TestClient(app) as client:
        for n in range(20):
            async with client.websocket_connect("/echo") as ws:
                await ws.send(str(n))
                with trio.fail_after(DEADLINE):
                    assert await ws.recv() == str(n)
        assert client.server is not None
        with trio.fail_after(DEADLINE):
            while client.server._connections:  # noqa: ASYNC110
                await trio.sleep(0.01)


async def test_a_ping_flood_while_the_client_does_not_read_is_held_back() -> None:
    # The server is stuck writing to a client that does not read; the client sends
    # pings. Their pongs cannot be written, so the server must stop reading, not queue
    # pongs without end: the client's own sends soon block.
    app = App("ws", config=Config(WEBSOCKET_PING_INTERVAL=None, WRITE_TIMEOUT=None))

    @app.websocket("/ws")
    async def flood(request: Any, ws: WebSocket) -> None:
        while True:
            await ws.send(b"x" * 65536)

    sent = 0
    async with TestClient(app, buffer_size=16384) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(request_head("GET", "/ws", HANDSHAKE))
        await raw.read_until(b"\r\n\r\n")
        ping = frame(0x9, b"p" * 125)

        async def pinger() -> None:
            nonlocal sent
            while sent < 20 << 20:
                await stream.send_all(ping)
                sent += len(ping)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pinger)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert sent < 1 << 20  # held back within a few buffers, not 20 MiB of pongs queued


async def test_a_message_in_many_tiny_fragments_is_assembled() -> None:
    app = echo_app()
    pieces = [bytes([n % 256, (n * 7) % 256]) for n in range(5000)]
    text = "é€" * 3000  # multi-byte characters, split anywhere
    data = text.encode()
    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(request_head("GET", "/echo", HANDSHAKE))
        await raw.read_until(b"\r\n\r\n")
        fragments = b"".join(
            frame(0x2 if n == 0 else 0x0, piece, fin=n == len(pieces) - 1)
            for n, piece in enumerate(pieces)
        )
        await raw.send(fragments)
        assert await read_frame(raw) == (0x2, b"".join(pieces))
        fragments = b"".join(
            frame(0x1 if n == 0 else 0x0, data[n : n + 3], fin=n + 3 >= len(data))
            for n in range(0, len(data), 3)
        )
        await raw.send(fragments)
        assert await read_frame(raw) == (0x1, data)
