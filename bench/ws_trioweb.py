"""trioweb in the WebSocket benchmark: ``python bench/ws_trioweb.py PORT``.

The two routes of ``ws.py``: ``/echo`` sends every message back, ``/stream/<n>`` sends
``n`` binary messages of ``STREAM_MESSAGE`` bytes, then closes. Defaults otherwise
(permessage-deflate offered, but the benchmark's client does not ask for it);
``MAX_CONNECTIONS`` raised for the idle-connections workload.
"""

from __future__ import annotations

import sys

import trio
from ws import MAX_CONNECTIONS, STREAM_MESSAGE

from trioweb import App, Config

app = App("ws", config=Config(MAX_CONNECTIONS=MAX_CONNECTIONS))
PAYLOAD = b"\x5a" * STREAM_MESSAGE


@app.websocket("/echo")
async def echo(request, ws):
    async for message in ws:
        await ws.send(message)


@app.websocket("/stream/<count:int>")
async def stream(request, ws, count):
    for _ in range(count):
        await ws.send(PAYLOAD)


if __name__ == "__main__":
    trio.run(app.serve, "127.0.0.1", int(sys.argv[1]))
