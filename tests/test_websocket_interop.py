"""WebSockets against real clients over loopback: the ``websockets`` client, and nginx.

The ``websockets`` package's Trio client (another implementation of the client side,
with its own handshake, masking and permessage-deflate) talks to ``app.serve`` on a
loopback port, directly and through a real nginx configured as docs/websockets.md says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from _helpers import DEADLINE, serving
from _nginx import nginx_proxy
from websockets.exceptions import ConnectionClosed as ClientClosed
from websockets.exceptions import InvalidStatus

from trioweb import App, Config
from trioweb.websocket import WebSocket

# websockets' Trio client came with websockets 17, which needs Python 3.11; trioweb
# itself works with websockets 15 and later (the other WebSocket tests run on it).
connect = pytest.importorskip("websockets.trio.client", reason="needs websockets>=17").connect

# What docs/websockets.md tells nginx users to write.
NGINX_LOCATION = """
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_read_timeout 1h;
"""


def make_app(**config: Any) -> App:
    app = App("ws", config=Config(**config))

    @app.websocket("/echo/<room>", subprotocols=["chat"])
    async def echo(request: Any, ws: WebSocket, room: str) -> None:
        async for message in ws:
            await ws.send(message)

    return app


async def test_the_websockets_client_over_loopback() -> None:
    async with serving(make_app(), "tcp") as served:
        url = f"ws://127.0.0.1:{served.server.port}/echo/a"
        with trio.fail_after(DEADLINE):
            async with connect(url, subprotocols=["chat"]) as ws:
                assert ws.subprotocol == "chat"
                # permessage-deflate, offered by the client, was agreed.
                assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
                for message in ["hi", "é" * 1000, b"\x00" * 100_000, "x" * (1 << 19)]:
                    await ws.send(message)
                    assert await ws.recv() == message
            assert ws.close_code == 1000


async def test_without_compression_too() -> None:
    async with serving(make_app(WEBSOCKET_COMPRESSION=False), "tcp") as served:
        url = f"ws://127.0.0.1:{served.server.port}/echo/a"
        with trio.fail_after(DEADLINE):
            async with connect(url, subprotocols=["chat"]) as ws:
                assert ws.protocol.extensions == []
                await ws.send(b"raw")
                assert await ws.recv() == b"raw"


async def test_a_compressed_message_is_bounded_by_its_decompressed_size() -> None:
    # 4 MiB of one byte compresses to a few KiB: WEBSOCKET_MAX_SIZE counts what it
    # inflates to, so the server stops inflating at the limit and closes with 1009.
    async with serving(make_app(WEBSOCKET_MAX_SIZE=1 << 20), "tcp") as served:
        url = f"ws://127.0.0.1:{served.server.port}/echo/a"
        with trio.fail_after(DEADLINE):
            async with connect(url, subprotocols=["chat"], max_size=None) as ws:
                await ws.send("a" * (4 << 20))
                with pytest.raises(ClientClosed) as closed:
                    await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_the_client_sees_1001_when_the_server_shuts_down() -> None:
    app = make_app()
    async with serving(app, "tcp") as served:
        url = f"ws://127.0.0.1:{served.server.port}/echo/a"
        with trio.fail_after(DEADLINE):
            async with connect(url, subprotocols=["chat"]) as ws:
                await ws.send("before")
                assert await ws.recv() == "before"
                served.server.shutdown()
                with pytest.raises(ClientClosed) as closed:
                    await ws.recv()
                await served.stopped.wait()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_a_refused_handshake_is_an_http_status_for_the_client() -> None:
    async with serving(make_app(), "tcp") as served:
        url = f"ws://127.0.0.1:{served.server.port}/echo/a"
        with trio.fail_after(DEADLINE), pytest.raises(InvalidStatus) as refused:
            async with connect(url, subprotocols=["other"]):
                pass  # pragma: no cover
    assert refused.value.response.status_code == 400


async def test_through_nginx(tmp_path: Path) -> None:
    async with (
        serving(make_app(), "tcp") as served,
        nginx_proxy(tmp_path, [served.server.port], location=NGINX_LOCATION) as proxy,
    ):
        url = f"ws://127.0.0.1:{proxy.port}/echo/a"
        with trio.fail_after(DEADLINE):
            async with connect(url, subprotocols=["chat"]) as ws:
                assert ws.subprotocol == "chat"
                for message in ["through nginx", b"\x01" * 300_000]:
                    await ws.send(message)
                    assert await ws.recv() == message
            assert ws.close_code == 1000
            # A plain GET through nginx is still told to upgrade.
            async with httpx.AsyncClient() as http:
                r = await http.get(f"http://127.0.0.1:{proxy.port}/echo/a")
        assert r.status_code == 426
        assert r.headers["upgrade"] == "websocket"
        lines = await proxy.access_log(2)
        assert lines[0].startswith("101 [101]")


async def test_over_tls_with_the_websockets_client() -> None:
    import ssl
    from functools import partial

    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(make_app().serve, "127.0.0.1", 0, ssl=server_context))
        with trio.fail_after(DEADLINE):
            url = f"wss://127.0.0.1:{server.port}/echo/a"
            async with connect(url, subprotocols=["chat"], ssl=client_context) as ws:
                for message in ["over TLS", b"\x02" * 200_000]:
                    await ws.send(message)
                    assert await ws.recv() == message
            assert ws.close_code == 1000
        server.shutdown()
