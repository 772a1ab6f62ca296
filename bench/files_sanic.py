"""Sanic's side of the file benchmark: ``python bench/files_sanic.py PORT DIRECTORY``.

The routes of ``files_trioweb.py``, written with Sanic's ``file_stream``, 64 KiB reads:

* ``GET /chunked/NAME``: ``file_stream(path, chunk_size=65536)``: Sanic sends a stream of
  unknown length with chunked encoding;
* ``GET /length/NAME``: the same with a ``Content-Length`` header, the file's size: Sanic
  then sends the body as it is, with no chunked framing. Its ``file_stream`` has no
  ``chunked`` argument and no sendfile path; the header is how its API says the length.

Sanic runs as in ``stream_sanic.py``: one process (``single_process=True``), no debug
mode, access log or banner, its defaults otherwise (uvloop; aiofiles for the reads).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sanic import Request, Sanic
from sanic.response import ResponseStream, file_stream

CHUNK = 64 * 1024

app = Sanic("files_bench")


@app.get("/chunked/<name>")
async def chunked(request: Request, name: str) -> ResponseStream:
    return await file_stream(DIRECTORY / name, chunk_size=CHUNK)


@app.get("/length/<name>")
async def length(request: Request, name: str) -> ResponseStream:
    path = DIRECTORY / name
    size = os.stat(path).st_size
    return await file_stream(path, chunk_size=CHUNK, headers={"Content-Length": str(size)})


if __name__ == "__main__":
    DIRECTORY = Path(sys.argv[2])
    app.run(
        "127.0.0.1",
        int(sys.argv[1]),
        single_process=True,
        access_log=False,
        debug=False,
        motd=False,
    )
