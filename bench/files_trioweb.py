"""trioweb's side of the file benchmark: ``python bench/files_trioweb.py PORT DIRECTORY``.

Two routes, the same in ``files_sanic.py``; bench/files.py downloads from them:

* ``GET /chunked/NAME``: the file DIRECTORY/NAME, ``file_stream(chunked=True)``: chunked
  encoding, no Content-Length;
* ``GET /length/NAME``: the same file, ``file_stream(chunked=False)``: Content-Length and
  no chunked framing (the path that may use sendfile).

Both read 64 KiB at a time. Default configuration: trioweb has no access log to switch off.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trioweb import App, Request
from trioweb.response import HTTPResponse, file_stream

CHUNK = 64 * 1024

app = App("files_bench")


@app.get("/chunked/<name>")
async def chunked(request: Request, name: str) -> HTTPResponse:
    return await file_stream(DIRECTORY / name, chunk_size=CHUNK, chunked=True)


@app.get("/length/<name>")
async def length(request: Request, name: str) -> HTTPResponse:
    return await file_stream(DIRECTORY / name, chunk_size=CHUNK, chunked=False)


if __name__ == "__main__":
    DIRECTORY = Path(sys.argv[2])
    app.run("127.0.0.1", int(sys.argv[1]))
