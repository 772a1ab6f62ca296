"""Sanic in the upload benchmark: ``python bench/upload_sanic.py PORT DIR``.

``POST /upload`` as in ``upload_trioweb.py``, in Sanic's own way: ``request.form`` and
``request.files``, parsed from the whole body in memory (``REQUEST_MAX_SIZE`` raised
past the largest upload, ``REQUEST_TIMEOUT`` to 10 minutes), the file's body written to
``DIR/upload.bin`` at once. One process, no access log, as in the other benchmarks.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sanic import Request, Sanic
from sanic.response import HTTPResponse, text

DIRECTORY = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")

app = Sanic("upload_bench")
app.config.REQUEST_MAX_SIZE = 1 << 40
app.config.REQUEST_TIMEOUT = 600


@app.post("/upload")
async def upload(request: Request) -> HTTPResponse:
    lines = [f"{name}={value}" for name, values in request.form.items() for value in values]
    for name, files in request.files.items():
        for uploaded in files:
            (DIRECTORY / "upload.bin").write_bytes(uploaded.body)
            lines.append(f"{name}={len(uploaded.body)}")
    return text("\n".join(lines))


if __name__ == "__main__":
    app.run(
        "127.0.0.1",
        int(sys.argv[1]),
        single_process=True,
        access_log=False,
        debug=False,
        motd=False,
    )
