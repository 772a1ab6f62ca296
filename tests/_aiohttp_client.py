"""aiohttp's WebSocket client, run as a process by tests/test_websocket_aiohttp.py.

``python _aiohttp_client.py URL SCENARIO [ARG]`` plays one scenario against a trioweb
server and prints what it saw as JSON; the test asserts on that. aiohttp runs on
asyncio, so it lives in its own process: no asyncio loop in the test's (Trio) process.
Every wait is bounded by TIMEOUT; a scenario that fails or times out exits non-zero
with its traceback on stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

TIMEOUT = 20.0
#: What the echo routes are offered: the route prefers chat.v2.
PROTOCOLS = ("chat.v1", "chat.v2")


async def echo(ws: aiohttp.ClientWebSocketResponse, message: str | bytes) -> list[Any]:
    """Send ``message``, receive the echo: [its type, whether it is the same message]."""
    if isinstance(message, str):
        await ws.send_str(message)
    else:
        await ws.send_bytes(message)
    answer = await ws.receive()
    return [answer.type.name, answer.data == message]


def seen(message: aiohttp.WSMessage) -> list[Any]:
    """A received message as JSON: [type, data], and a close's reason (bytes as latin-1)."""
    data = message.data.decode("latin-1") if isinstance(message.data, bytes) else message.data
    if message.type is aiohttp.WSMsgType.CLOSE:
        return [message.type.name, data, message.extra]
    return [message.type.name, data]


async def echoes(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.ws_connect(url + "/echo", protocols=PROTOCOLS) as ws:
        messages: list[str | bytes] = ["hello", "é✓🙂", "", b"\x00\x01\xff" * 1000, b""]
        echoed = [await echo(ws, message) for message in messages]
        closed = await ws.close()
        return {"protocol": ws.protocol, "echoed": echoed, "closed": closed, "code": ws.close_code}


async def limit(session: aiohttp.ClientSession, url: str, max_size: str) -> dict[str, Any]:
    size = int(max_size)
    async with session.ws_connect(url + "/echo", protocols=PROTOCOLS) as ws:
        echoed = [await echo(ws, b"\xaa" * size), await echo(ws, "é" * (size // 2))]
        await ws.send_bytes(b"\xbb" * (size + 1))
        over = await ws.receive()
        return {"echoed": echoed, "over": seen(over)}


async def server_close(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.ws_connect(url + "/close") as ws:
        await ws.send_str("close, please")
        close = await ws.receive()
        after = await ws.receive()
        return {"close": seen(close), "after": after.type.name, "code": ws.close_code}


async def pings(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    # autoping off: pings and pongs come to receive(), and this client answers itself.
    async with session.ws_connect(url + "/ping", autoping=False) as ws:
        ping = await ws.receive()
        await ws.pong(ping.data)
        after_pong = await ws.receive()
        await ws.ping(b"from aiohttp")
        pong = await ws.receive()
        await ws.close()
        return {"ping": seen(ping), "after_pong": seen(after_pong), "pong": seen(pong)}


async def deflate(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.ws_connect(url + "/echo", protocols=PROTOCOLS, compress=15) as ws:
        # Repeats 20 KB apart: a compressor using a larger window than agreed would make
        # back-references the other end cannot follow. Sent twice: context takeover.
        far = os.urandom(20_000) * 5
        messages: list[str | bytes] = ["a" * 100_000, far, far, "é" * 10_000]
        echoed = [await echo(ws, message) for message in messages]
        await ws.close()
        return {"compress": ws.compress, "echoed": echoed, "code": ws.close_code}


SCENARIOS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "echoes": echoes,
    "limit": limit,
    "server_close": server_close,
    "pings": pings,
    "deflate": deflate,
}


async def main(url: str, scenario: str, *args: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        return await asyncio.wait_for(SCENARIOS[scenario](session, url, *args), TIMEOUT)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:]))))
