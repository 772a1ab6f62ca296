"""Sanic in the WebSocket benchmark: ``python bench/ws_sanic.py PORT``.

The two routes of ``ws.py`` in Sanic's own style; one process, no access log, Sanic's
defaults otherwise (uvloop; its WebSocket protocol is the ``websockets`` package's too).
"""

from __future__ import annotations

import sys

from sanic import Request, Sanic
from ws import STREAM_MESSAGE

app = Sanic("ws")
PAYLOAD = b"\x5a" * STREAM_MESSAGE


@app.websocket("/echo")
async def echo(request: Request, ws: object) -> None:
    async for message in ws:  # type: ignore[attr-defined]
        await ws.send(message)  # type: ignore[attr-defined]


@app.websocket("/stream/<count:int>")
async def stream(request: Request, ws: object, count: int) -> None:
    for _ in range(count):
        await ws.send(PAYLOAD)  # type: ignore[attr-defined]


if __name__ == "__main__":
    app.run(
        "127.0.0.1",
        int(sys.argv[1]),
        single_process=True,
        access_log=False,
        debug=False,
        motd=False,
    )
