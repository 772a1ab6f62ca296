"""trioweb's side of the streaming benchmark: ``python bench/stream_trioweb.py PORT [--engine E]``.

Three routes, the same in ``stream_sanic.py``; bench/stream.py loads them:

* ``POST`` or ``PUT /sink``: reads the streamed body, discards it, answers its size as text;
* ``POST`` or ``PUT /echo``: sends each chunk back through ``request.respond()`` as it
  arrives;
* ``GET /download?size=N``: streams N bytes through ``request.respond()``, in 64 KiB
  pieces of one preallocated buffer.

``PUT`` because that is what ``curl -T`` sends. ``--engine`` sets ``HTTP_ENGINE`` (``h11``
or ``httptools``); without it, the default. Otherwise the default configuration: trioweb
has no access log to switch off.
"""

from __future__ import annotations

import argparse

from trioweb import App, Config, Request
from trioweb.response import HTTPResponse, text

PIECE = bytes(64 * 1024)
UPLOAD = ["POST", "PUT"]

app = App("stream_bench")


@app.route("/sink", methods=UPLOAD, stream=True)
async def sink(request: Request) -> HTTPResponse:
    received = 0
    async for chunk in request.stream:
        received += len(chunk)
    return text(str(received))


@app.route("/echo", methods=UPLOAD, stream=True)
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


def main() -> None:
    parser = argparse.ArgumentParser(description="trioweb server of the streaming benchmark")
    parser.add_argument("port", type=int)
    parser.add_argument("--engine", help="HTTP_ENGINE: auto, h11 or httptools")
    args = parser.parse_args()
    if args.engine is not None:
        # A trioweb without the setting would store it and ignore it: say so instead.
        if not hasattr(Config, "HTTP_ENGINE"):
            parser.error("this trioweb has no HTTP_ENGINE setting: run it without --engine")
        app.config.HTTP_ENGINE = args.engine
    app.run("127.0.0.1", args.port)


if __name__ == "__main__":
    main()
