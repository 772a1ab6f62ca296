"""trioweb's side of the streaming benchmark: ``python bench/stream_trioweb.py PORT``.

Three routes, the same in ``stream_sanic.py``; bench/stream.py loads them:

* ``POST /sink``: reads the streamed body, discards it, answers its size as text;
* ``POST /echo``: sends each chunk back through ``request.respond()`` as it arrives;
* ``GET /download?size=N``: streams N bytes through ``request.respond()``, in 64 KiB
  pieces of one preallocated buffer.

Default configuration: trioweb has no access log to switch off.
"""

from __future__ import annotations

import sys

from trioweb import App, Request
from trioweb.response import HTTPResponse, text

PIECE = bytes(64 * 1024)

app = App("stream_bench")


@app.post("/sink", stream=True)
async def sink(request: Request) -> HTTPResponse:
    received = 0
    async for chunk in request.stream:
        received += len(chunk)
    return text(str(received))


@app.post("/echo", stream=True)
async def echo(request: Request) -> None:
    async with request.respond(content_type=request.content_type) as resp:
        async for chunk in request.stream:
            await resp.send(chunk)


@app.get("/download")
async def download(request: Request) -> None:
    left = int(request.args.get("size", "0"))
    async with request.respond(content_type="application/octet-stream") as resp:
        while left >= len(PIECE):
            await resp.send(PIECE)
            left -= len(PIECE)
        if left:
            await resp.send(PIECE[:left])


if __name__ == "__main__":
    app.run("127.0.0.1", int(sys.argv[1]))
