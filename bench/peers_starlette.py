"""Starlette on uvicorn in the peer benchmark: ``python bench/peers_starlette.py PORT``.

The four routes of ``peers.py`` in Starlette's own style, served by ``uvicorn.run`` with
httptools and uvloop (what uvicorn picks by itself when they are installed), no access log.
"""

from __future__ import annotations

import sys

import uvicorn
from peers import HELLO, SMALL_JSON
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


async def hello(request: Request) -> Response:
    return PlainTextResponse(HELLO)


async def small_json(request: Request) -> Response:
    return JSONResponse(SMALL_JSON)


async def user(request: Request) -> Response:
    return PlainTextResponse(f"user {request.path_params['id']}")


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/json", small_json),
        Route("/user/{id:int}", user),
        Route("/echo", echo, methods=["POST"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
    )
