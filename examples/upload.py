"""File uploads from a browser: a form page, the parts streamed to disk, limits, cleanup.

Run ``python examples/upload.py`` and open http://127.0.0.1:8000/ in a browser, or::

    curl -F note=hello -F files=@README.md -F files=@pyproject.toml localhost:8000/upload
    curl -d 'name=Ada&comment=Hi' localhost:8000/comment       # a buffered, urlencoded form

``/upload`` streams each file to ``UPLOADS`` as it arrives (the body is never held in
memory), under a name the server chooses; the name the browser sent is only shown. If the
upload fails half-way (the client goes away, a limit is passed, the body is malformed),
what this request saved is removed.
"""

from __future__ import annotations

import html as markup
import tempfile
import uuid
from pathlib import Path

import trio

from trioweb import App, Request
from trioweb.response import HTTPResponse, html

UPLOADS = Path(tempfile.gettempdir()) / "trioweb-uploads"
MiB = 1 << 20

app = App("upload")
app.config.FORM_MAX_FILE_SIZE = 50 * MiB  # each file
app.config.FORM_MAX_PARTS = 20

PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>trioweb upload</title>
<h1>Upload files</h1>
<form method="post" action="/upload" enctype="multipart/form-data">
  <input type="hidden" name="_charset_">
  <p><label>Note <input name="note"></label>
  <p><input type="file" name="files" multiple>
  <p><button>Upload</button>
</form>
<h1>Leave a comment</h1>
<form method="post" action="/comment">
  <p><label>Name <input name="name"></label>
  <p><label>Comment <textarea name="comment"></textarea></label>
  <p><button>Send</button>
</form>
"""


@app.get("/")
async def index(request: Request) -> HTTPResponse:
    return html(PAGE)


@app.post("/upload", stream=True, request_max_size=200 * MiB, response_timeout=None)
async def upload(request: Request) -> HTTPResponse:
    """Each file part saved as it arrives; fields read whole (they are small)."""
    await trio.Path(UPLOADS).mkdir(exist_ok=True)
    note = ""
    saved: list[Path] = []
    rows: list[str] = []
    done = False
    try:
        async for part in request.multipart():
            if part.filename is None:
                if part.name == "note":
                    note = (await part.read()).decode("utf-8", "replace")
            elif part.filename:  # (an empty file input sends a part with no filename)
                path = UPLOADS / uuid.uuid4().hex
                saved.append(path)
                size = await part.save(path)
                name = markup.escape(part.filename)
                rows.append(f"<li>{name}: {size} bytes, saved as {path.name}")
        done = True
    finally:
        if not done:
            # Shielded, so that the cancellation of a client gone cannot stop it, and
            # bounded, so that nothing waits long on a failing disk.
            with trio.move_on_after(10, shield=True):
                for path in saved:
                    await trio.Path(path).unlink(missing_ok=True)
    rows_html = "".join(rows)
    return html(f"<p>Note: {markup.escape(note)}</p><ul>{rows_html}</ul><a href='/'>back</a>")


@app.post("/comment")
async def comment(request: Request) -> HTTPResponse:
    """A small urlencoded form: the body is buffered, ``request.form`` parses it."""
    name = markup.escape(request.form.get("name", "someone"))
    text = markup.escape(request.form.get("comment", ""))
    return html(f"<p>{name} says: {text}</p><a href='/'>back</a>")


if __name__ == "__main__":
    trio.run(app.serve, "127.0.0.1", 8000)
