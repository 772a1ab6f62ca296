"""Quart-Trio in the peer benchmark: ``python bench/peers_quart_trio.py PORT``.

The four routes of ``peers.py`` in Quart's own style, on Hypercorn's trio worker with
the defaults of ``peers_asgi.py``'s ``hypercorn-trio`` (no access log), no debug mode.
"""

from __future__ import annotations

import sys
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from peers import HELLO, SMALL_JSON
from quart import request
from quart_trio import QuartTrio

app = QuartTrio(__name__)


@app.get("/")
async def hello() -> tuple[str, dict[str, str]]:
    return HELLO, {"content-type": "text/plain"}


@app.get("/json")
async def small_json() -> dict[str, Any]:
    return SMALL_JSON


@app.get("/user/<int:id>")
async def user(id: int) -> tuple[str, dict[str, str]]:
    return f"user {id}", {"content-type": "text/plain"}


@app.post("/echo")
async def echo() -> tuple[bytes, dict[str, str]]:
    return await request.get_data(), {"content-type": "application/octet-stream"}


if __name__ == "__main__":
    config = Config()
    config.bind = [f"127.0.0.1:{sys.argv[1]}"]
    trio.run(serve, app, config)
