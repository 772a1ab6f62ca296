"""Routing: typed path parameters, a Blueprint, an HTTPMethodView and a CompositionView.

Run ``python examples/routing.py``, then for example::

    curl localhost:8000/users/42
    curl localhost:8000/files/docs/index.md
    curl -X PUT --data 'buy milk' localhost:8000/api/notes/1
    curl localhost:8000/api/notes/1
    curl --data-binary @examples/routing.py localhost:8000/upload
"""

from __future__ import annotations

import hashlib
import uuid

import trio

from trioweb import App, Blueprint, CompositionView, HTTPMethodView, Request, stream
from trioweb.errors import NotFound
from trioweb.response import HTTPResponse, empty, json, text

app = App("routing")


# -- typed parameters: converted before the handler sees them -------------------------


@app.get("/users/<user_id:int>")
async def user_by_id(request: Request, user_id: int) -> HTTPResponse:
    return json({"id": user_id})


@app.get("/users/<name>")  # str (the default): one segment; tried after int
async def user_by_name(request: Request, name: str) -> HTTPResponse:
    return json({"name": name})


@app.get("/prices/<amount:float>")
async def price(request: Request, amount: float) -> HTTPResponse:
    return json({"amount": amount, "with_tax": round(amount * 1.2, 2)})


@app.get("/orders/<order_id:uuid>")
async def order(request: Request, order_id: uuid.UUID) -> HTTPResponse:
    return json({"order": str(order_id), "version": order_id.version})


@app.get("/files/<filepath:path>")  # path: every remaining segment, slashes included
async def show_path(request: Request, filepath: str) -> HTTPResponse:
    return text(filepath)


# -- a blueprint: routes declared apart, mounted under /api ---------------------------

api = Blueprint("api", url_prefix="/api")
NOTES: dict[int, str] = {}


@api.get("/")  # served at /api (not /api/: trailing slashes are strict)
async def api_index(request: Request) -> HTTPResponse:
    return json({"notes": sorted(NOTES)})


class NoteView(HTTPMethodView):
    """GET, PUT and DELETE /api/notes/<note_id>; other methods get a 405."""

    async def get(self, request: Request, note_id: int) -> HTTPResponse:
        if note_id not in NOTES:
            raise NotFound(f"no note {note_id}")
        return text(NOTES[note_id])

    @stream  # this method reads its body from request.stream
    async def put(self, request: Request, note_id: int) -> HTTPResponse:
        request.stream.max_size = 4096  # streaming routes have no limit unless set
        NOTES[note_id] = (await request.receive_body()).decode()
        return empty()

    async def delete(self, request: Request, note_id: int) -> HTTPResponse:
        NOTES.pop(note_id, None)
        return empty()


api.add_route(NoteView.as_view(), "/notes/<note_id:int>")
app.blueprint(api)


# -- a composition view: one handler per method, each streaming or not ----------------


async def upload_form(request: Request) -> HTTPResponse:
    return text("POST a body here to get its SHA-256.\n")


async def upload(request: Request) -> HTTPResponse:
    digest, size = hashlib.sha256(), 0
    async for chunk in request.stream:  # never holds the whole body
        digest.update(chunk)
        size += len(chunk)
    return json({"bytes": size, "sha256": digest.hexdigest()})


upload_view = CompositionView()
upload_view.add(["GET"], upload_form)
upload_view.add(["POST"], upload, stream=True)
app.add_route(upload_view, "/upload")


if __name__ == "__main__":
    trio.run(app.serve)
