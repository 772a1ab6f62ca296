"""Starlette in the WebSocket benchmark: ``python bench/ws_starlette.py PORT SERVER``.

SERVER is ``uvicorn`` (its defaults: uvloop, httptools, the ``websockets`` protocol; no
access log) or ``hypercorn-trio`` (Hypercorn's trio worker, whose WebSockets are
wsproto's). The two routes of ``ws.py`` in Starlette's own style.
"""

from __future__ import annotations

import sys

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from ws import STREAM_MESSAGE

PAYLOAD = b"\x5a" * STREAM_MESSAGE


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


async def stream(websocket: WebSocket) -> None:
    await websocket.accept()
    for _ in range(websocket.path_params["count"]):
        await websocket.send_bytes(PAYLOAD)
    await websocket.close()


app = Starlette(
    routes=[WebSocketRoute("/echo", echo), WebSocketRoute("/stream/{count:int}", stream)]
)

if __name__ == "__main__":
    port, server = int(sys.argv[1]), sys.argv[2]
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")
    elif server == "hypercorn-trio":
        import trio
        from hypercorn.config import Config
        from hypercorn.trio import serve

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        trio.run(serve, app, config)
    else:
        sys.exit(f"unknown server {server!r}")
