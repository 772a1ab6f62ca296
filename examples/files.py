"""Files: downloads with ranges and caching, and a static directory.

Run ``python examples/files.py``, then for example::

    curl -i localhost:8000/static/              # public/index.html
    curl -i localhost:8000/static/hello.txt     # note its ETag
    curl -i -H 'If-None-Match: "<that etag>"' localhost:8000/static/hello.txt   # 304
    curl -i -H 'Range: bytes=0-99' localhost:8000/download                      # 206
    curl -OJ localhost:8000/download            # saved under its Content-Disposition name
    curl -i localhost:8000/static/../files.py   # curl drops the ..; with --path-as-is: 404
"""

from __future__ import annotations

from pathlib import Path

import trio

from trioweb import App, Request
from trioweb.response import HTTPResponse, file_stream

HERE = Path(__file__).resolve().parent

app = App("files")

# Everything under examples/public, with index.html for directories.
app.static("/static", HERE / "public")


@app.get("/download")
async def download(request: Request) -> HTTPResponse:
    """This very file, as an attachment; Content-Length lets it go out with sendfile."""
    return await file_stream(__file__, chunked=False, filename="files example.py")


if __name__ == "__main__":
    trio.run(app.serve, "127.0.0.1", 8000)
