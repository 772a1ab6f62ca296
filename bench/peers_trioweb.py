"""trioweb in the peer benchmark: ``python bench/peers_trioweb.py PORT --engine h11``.

The four routes every peer serves (see ``peers.py``), written the way a trioweb user
would, served by ``app.serve`` with the HTTP engine named by ``--engine`` (the
``HTTP_ENGINE`` config key) and otherwise trioweb's defaults, but for the access log
(``ACCESS_LOG``, where this trioweb has one): off, as Sanic's and uvicorn's are here.
"""

from __future__ import annotations

import argparse

import trio
from peers import HELLO, SMALL_JSON

from trioweb import App, Config, Request
from trioweb.response import HTTPResponse, json, raw, text

app = App("peers")


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--engine", choices=["auto", "h11", "httptools"], required=True)
    args = parser.parse_args()
    # A trioweb without the key would serve both "engines" with h11 and label it wrong.
    if not hasattr(Config, "HTTP_ENGINE"):
        parser.exit(2, "this trioweb has no HTTP_ENGINE setting: it cannot choose an engine\n")
    app.config.HTTP_ENGINE = args.engine
    app.config.ACCESS_LOG = False
    trio.run(app.serve, "127.0.0.1", args.port)


if __name__ == "__main__":
    main()
