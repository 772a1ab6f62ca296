"""trioweb's side of the upload benchmark: ``python bench/upload_trioweb.py PORT DIR``.

``POST /upload``, a ``stream=True`` route: each part of the multipart body as it arrives,
the fields read whole (``part.read()``), the file saved to ``DIR/upload.bin`` chunk by
chunk (``part.save()``); it answers ``FIELD=VALUE`` lines and ``file=SIZE``. Default
configuration otherwise (no RESPONSE_TIMEOUT: a 1 GiB upload may take longer than 60 s on
a busy machine; the body has no size limit on a streaming route).
"""

from __future__ import annotations

import sys
from pathlib import Path

from trioweb import App, Request
from trioweb.response import HTTPResponse, text

app = App("upload_bench")
DIRECTORY = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")


@app.post("/upload", stream=True, response_timeout=None)
async def upload(request: Request) -> HTTPResponse:
    lines = []
    async for part in request.multipart():
        if part.filename is None:
            lines.append(f"{part.name}={(await part.read()).decode()}")
        else:
            lines.append(f"{part.name}={await part.save(DIRECTORY / 'upload.bin')}")
    return text("\n".join(lines))


if __name__ == "__main__":
    app.run("127.0.0.1", int(sys.argv[1]))
