"""A bare ASGI app in the peer benchmark: ``python bench/peers_asgi.py PORT SERVER``.

SERVER is ``uvicorn-h11``, ``uvicorn-httptools`` (both on uvloop, no access log) or
``hypercorn-trio`` (Hypercorn's trio worker, its defaults: no access log). No framework:
the four routes of ``peers.py`` are matched by hand, so what is measured is the server.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from peers import HELLO, SMALL_JSON

Scope = dict[str, Any]
Receive = Any
Send = Any

NOT_FOUND = (404, b"text/plain", b"Not Found")


async def lifespan(receive: Receive, send: Send) -> None:
    while (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    method, path = scope["method"], scope["path"]
    status, content_type, body = NOT_FOUND
    if method == "GET":
        if path == "/":
            status, content_type, body = 200, b"text/plain", HELLO.encode()
        elif path == "/json":
            status, content_type, body = 200, b"application/json", json.dumps(SMALL_JSON).encode()
        elif path.startswith("/user/") and path[6:].isdigit():
            status, content_type, body = 200, b"text/plain", b"user %d" % int(path[6:])
    elif method == "POST" and path == "/echo":
        status, content_type, body = 200, b"application/octet-stream", await read_body(receive)
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    port, server = int(sys.argv[1]), sys.argv[2]
    if server in ("uvicorn-h11", "uvicorn-httptools"):
        import uvicorn

        http = server.removeprefix("uvicorn-")
        uvicorn.run(
            app,
            host="127.0.0.1",
            port=port,
            http=http,
            loop="uvloop",
            access_log=False,
            log_level="warning",
        )
    elif server == "hypercorn-trio":
        import trio
        from hypercorn.config import Config
        from hypercorn.trio import serve

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        trio.run(serve, app, config)
    else:
        sys.exit(f"unknown server {server!r}")


if __name__ == "__main__":
    main()
