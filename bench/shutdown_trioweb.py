"""The server bench/shutdown.py stops under load: ``python bench/shutdown_trioweb.py PORT LOG``.

``GET /work/ID`` takes 10 to 100 ms (by ID: the connections fall out of step, so that
the signal finds some in a handler, some between requests) and answers ``ID``. The
server appends what happens to the file ``LOG``, one line each, in the order it happens
(one process, one thread, unbuffered appends): ``start ID`` when a handler begins,
``end ID`` when it returns, ``stopping`` from ``before_server_stop`` and ``stopped``
from ``after_server_stop``.

``GRACEFUL_SHUTDOWN_TIMEOUT`` is 5 s, far more than a 100 ms request needs: no request is
cancelled for lack of time, so any request lost is lost by the shutdown itself.
"""

from __future__ import annotations

import os
import sys

import trio

from trioweb import App, Request
from trioweb.response import HTTPResponse, text

app = App("shutdown_bench")
app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 5.0
log = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def note(line: str) -> None:
    os.write(log, line.encode() + b"\n")


@app.get("/work/<request_id:int>")
async def work(request: Request, request_id: int) -> HTTPResponse:
    note(f"start {request_id}")
    await trio.sleep((request_id % 10 + 1) / 100)
    note(f"end {request_id}")
    return text(str(request_id))


@app.before_server_stop
async def stopping(app: App) -> None:
    note("stopping")


@app.after_server_stop
async def stopped(app: App) -> None:
    note("stopped")


if __name__ == "__main__":
    app.run("127.0.0.1", int(sys.argv[1]))
