"""The server under attack in bench/slow.py: ``python bench/slow_trioweb.py PORT``.

Three routes, one per kind of slow client:

* ``GET /``: ``Hello, world!``, what wrk measures (and what slowloris trickles heads to);
* ``POST /``: reads the whole (buffered) body and answers its size, for slow bodies;
* ``GET /big``: 1 MiB, more than the loopback socket buffers hold while the client
  reads a few bytes at a time, so that a slow reader makes the server wait to write.

The timeouts are shortened to values a production deployment would pick (see
bench/README.md); every other setting, ``MAX_CONNECTIONS`` (1000) included, is the default.
"""

from __future__ import annotations

import sys

import trio

from trioweb import App, Request
from trioweb.response import HTTPResponse, raw, text

BIG = bytes(1 << 20)

app = App("slow_bench")
# A request head must arrive whole within 10 s of its first byte, and so must a
# buffered body once its head is in: slowloris and slow bodies get a 408 then.
app.config.REQUEST_TIMEOUT = 10.0
# A connection with no request under way is closed after 5 s (the default, said again).
app.config.KEEP_ALIVE_TIMEOUT = 5.0
# A write that waits more than 10 s on the client (here, a whole response) aborts the
# connection: a slow reader is cut off.
app.config.WRITE_TIMEOUT = 10.0


@app.get("/")
async def hello(request: Request) -> HTTPResponse:
    return text("Hello, world!")


@app.post("/")
async def upload(request: Request) -> HTTPResponse:
    return text(str(len(request.body)))


@app.get("/big")
async def big(request: Request) -> HTTPResponse:
    return raw(BIG)


if __name__ == "__main__":
    trio.run(app.serve, "127.0.0.1", int(sys.argv[1]))
