"""Sanic in the peer benchmark: ``python bench/peers_sanic.py PORT``.

The four routes of ``peers.py`` in Sanic's own style. One process (``single_process``,
no worker manager), no debug mode, access log or banner, Sanic's defaults otherwise
(uvloop, which Sanic depends on), as in the streaming benchmark.
"""

from __future__ import annotations

import sys

from peers import HELLO, SMALL_JSON
from sanic import Request, Sanic
from sanic.response import HTTPResponse, json, raw, text

app = Sanic("peers")


@app.get("/")
async def hello(request: Request) -> HTTPResponse:
    return text(HELLO)


@app.get("/json")
async def small_json(request: Request) -> HTTPResponse:
    return json(SMALL_JSON)


@app.get("/user/<id:int>")
async def user(request: Request, id: int) -> HTTPResponse:
    return text(f"user {id}")


@app.post("/echo")
async def echo(request: Request) -> HTTPResponse:
    return raw(request.body)


if __name__ == "__main__":
    app.run(
        "127.0.0.1",
        int(sys.argv[1]),
        single_process=True,
        access_log=False,
        debug=False,
        motd=False,
    )
