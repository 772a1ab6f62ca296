"""WebSockets against aiohttp's client over loopback.

aiohttp's client is another implementation of the client side (its own handshake,
framing, masking and permessage-deflate), and asyncio-based: it runs in a process of
its own (``_aiohttp_client.py``), plays one scenario against ``app.serve`` on a loopback
port, and prints what it saw; the test asserts on that. aiohttp is in the ``test``
extra: without it these tests fail, they do not skip.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import trio
from _helpers import serving

from trioweb import App, Config
from trioweb.websocket import WebSocket

CLIENT = Path(__file__).with_name("_aiohttp_client.py")
#: Seconds the client process may take, its start (importing aiohttp) included; the
#: client bounds its own scenario to less, so a hang shows as its traceback.
CLIENT_DEADLINE = 40.0


def make_app() -> App:
    app = App("aiohttp_interop")

    @app.websocket("/echo", subprotocols=["chat.v2", "chat.v1"])
    async def echo(request: Any, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    @app.websocket("/close")
    async def close(request: Any, ws: WebSocket) -> None:
        await ws.recv()
        await ws.close(4001, "done here ✓")

    @app.websocket("/ping")
    async def ping(request: Any, ws: WebSocket) -> None:
        await ws.ping(b"from trioweb")  # returns once aiohttp's pong came
        await ws.send("pong received")
        async for _ in ws:  # until the client closes; its pings are answered meanwhile
            pass

    return app


async def aiohttp_client(scenario: str, *args: str) -> dict[str, Any]:
    """Serve the app, run one scenario of the aiohttp client against it: what it saw."""
    assert importlib.util.find_spec("aiohttp") is not None, (
        "aiohttp is a test dependency: pip install -e '.[test]'"
    )
    async with serving(make_app(), "tcp") as served:
        url = f"ws://127.0.0.1:{served.server.port}"
        command = [sys.executable, str(CLIENT), url, scenario, *args]
        with trio.fail_after(CLIENT_DEADLINE):
            done = await trio.run_process(
                command, capture_stdout=True, capture_stderr=True, check=False
            )
    assert done.returncode == 0, done.stderr.decode()
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


async def test_text_and_binary_echo_with_a_subprotocol() -> None:
    seen = await aiohttp_client("echoes")
    assert seen["protocol"] == "chat.v2"  # the route's preference, of the two offered
    # Text (multi-byte UTF-8 too) and binary, empty ones included, come back as sent.
    assert seen["echoed"] == [["TEXT", True]] * 3 + [["BINARY", True]] * 2
    assert seen["closed"] is True
    assert seen["code"] == 1000  # the server echoed the client's close


async def test_a_message_of_max_size_echoes_and_one_byte_more_closes_1009() -> None:
    seen = await aiohttp_client("limit", str(Config.WEBSOCKET_MAX_SIZE))
    assert seen["echoed"] == [["BINARY", True], ["TEXT", True]]
    # The close frame comes as soon as the frame's header announces too much; the
    # client's answer to it may find the connection closed already (the server does not
    # read the rest), so its close_code is not checked: the frame it received is.
    kind, code, _ = seen["over"]
    assert (kind, code) == ("CLOSE", 1009)


async def test_a_close_by_the_server_gives_the_client_its_code_and_reason() -> None:
    seen = await aiohttp_client("server_close")
    assert seen["close"] == ["CLOSE", 4001, "done here ✓"]
    assert seen["after"] == "CLOSED"
    assert seen["code"] == 4001


async def test_pings_both_ways() -> None:
    seen = await aiohttp_client("pings")
    # The server's ping reached the client, whose pong let ws.ping() return.
    assert seen["ping"] == ["PING", "from trioweb"]
    assert seen["after_pong"] == ["TEXT", "pong received"]
    # The client's ping got its pong, with its payload.
    assert seen["pong"] == ["PONG", "from aiohttp"]


async def test_permessage_deflate() -> None:
    seen = await aiohttp_client("deflate")
    # Agreed: the server answers with client_max_window_bits=12 (websockets' default,
    # for memory), and aiohttp compresses with that window.
    assert seen["compress"] == 12
    assert seen["echoed"] == [["TEXT", True], ["BINARY", True], ["BINARY", True], ["TEXT", True]]
    assert seen["code"] == 1000
