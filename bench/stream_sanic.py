"""Sanic's side of the streaming benchmark: ``python bench/stream_sanic.py PORT``.

The routes of ``stream_trioweb.py``, written with Sanic's own streaming API
(``request.stream``, ``await request.respond()``, ``send``, ``eof``). Sanic runs as one
process (``single_process=True``, no worker manager), without debug mode, access log or
banner, with its defaults otherwise (uvloop when installed, as it is with sanic).
``REQUEST_MAX_SIZE`` is raised so that no body size limit can apply to a large body
(Sanic also lifts the limit for streaming handlers by itself).
"""

from __future__ import annotations

import sys

from sanic import Request, Sanic
from sanic.response import HTTPResponse, text

PIECE = bytes(64 * 1024)
UPLOAD = ["POST", "PUT"]  # PUT: what ``curl -T`` sends

app = Sanic("stream_bench")
app.config.REQUEST_MAX_SIZE = 1 << 40


@app.route("/sink", methods=UPLOAD, stream=True)
async def sink(request: Request) -> HTTPResponse:
    received = 0
    async for chunk in request.stream:  # type: ignore[union-attr]
        received += len(chunk)
    return text(str(received))


@app.route("/echo", methods=UPLOAD, stream=True)
async def echo(request: Request) -> None:
    resp = await request.respond(content_type=request.content_type)
    async for chunk in request.stream:  # type: ignore[union-attr]
        await resp.send(chunk)
    await resp.eof()


@app.get("/download")
async def download(request: Request) -> None:
    left = int(request.args.get("size", "0"))
    resp = await request.respond(content_type="application/octet-stream")
    while left >= len(PIECE):
        await resp.send(PIECE)
        left -= len(PIECE)
    if left:
        await resp.send(PIECE[:left])
    await resp.eof()


if __name__ == "__main__":
    app.run(
        "127.0.0.1",
        int(sys.argv[1]),
        single_process=True,
        access_log=False,
        debug=False,
        motd=False,
    )
