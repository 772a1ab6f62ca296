"""Starlette on uvicorn in the upload benchmark: ``python bench/upload_starlette.py PORT DIR``.

``POST /upload`` as in ``upload_trioweb.py``, in Starlette's own way: ``await
request.form()`` (python-multipart, which spools each file to a temporary file past
1 MiB), then the file copied to ``DIR/upload.bin`` in a worker thread. uvicorn with
httptools and uvloop, no access log, as in the peer benchmark.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

DIRECTORY = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")
COPY_PIECE = 1 << 20


def copy(source: UploadFile, path: Path) -> int:
    source.file.seek(0)
    with path.open("wb") as target:
        shutil.copyfileobj(source.file, target, COPY_PIECE)
        return target.tell()


async def upload(request: Request) -> Response:
    lines = []
    async with request.form() as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                size = await run_in_threadpool(copy, value, DIRECTORY / "upload.bin")
                lines.append(f"{name}={size}")
            else:
                lines.append(f"{name}={value}")
    return PlainTextResponse("\n".join(lines))


app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
    )
