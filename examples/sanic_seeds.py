"""Every example of Sanic's streaming docs, ported to trioweb by renaming only.

Run ``python examples/sanic_seeds.py`` (or ``python examples/sanic_seeds.py 8080``),
then for example::

    curl -H 'Transfer-Encoding: chunked' --data-binary 'a1b1c' localhost:8000/stream
    curl -T - localhost:8000/bp_stream <<< 'put 1'
    curl -H 'Transfer-Encoding: chunked' --data-binary 'post 1' localhost:8000/bp_stream
    curl --data-binary 'view 1' localhost:8000/method_view
    curl --data-binary 'composition 1' localhost:8000/composition_view
    curl localhost:8000/csv
    curl localhost:8000/db

The port follows the rST version of the docs (``await request.stream.read()``,
``await response.write()``), which is the Markdown one with the coroutines awaited and
the blueprint's POST route added. What changed against the seeds:

* imports: ``sanic.Sanic`` -> ``trioweb.App``; ``sanic.blueprints.Blueprint``,
  ``sanic.views.HTTPMethodView``, ``sanic.views.CompositionView`` -> the same names from
  ``trioweb``; ``sanic.views.stream as stream_decorator`` -> ``trioweb.stream`` (so
  ``@stream_decorator`` -> ``@stream``); ``sanic.response.stream`` ->
  ``trioweb.response.stream as stream_response`` (so ``return stream(...)`` ->
  ``return stream_response(...)``); ``sanic.response.text`` -> ``trioweb.response.text``.
* ``Sanic('request_stream')`` / ``Sanic(__name__)`` -> one ``App("request_stream")``
  for all of them.
* the Markdown version's ``request.stream.get()`` and ``response.write(x)`` ->
  ``await request.stream.read()`` and ``await response.write(x)`` (as in the rST one).
* the two response-streaming examples were both routed at ``/``: here ``/csv`` and
  ``/db``.
* ``asyncpg.connect(...)`` -> ``connect(...)``, a stand-in below whose cursor yields the
  records of ``generate_series(0, 10)`` (asyncpg is an asyncio library).
* ``app.run(host='127.0.0.1', port=8000)`` takes the port from the command line.
"""

import sys
from contextlib import asynccontextmanager

from trioweb import App, Blueprint, CompositionView, HTTPMethodView, stream
from trioweb.response import stream as stream_response
from trioweb.response import text

# -- Request streaming ----------------------------------------------------------------

bp = Blueprint("blueprint_request_stream")
app = App("request_stream")


class SimpleView(HTTPMethodView):
    @stream
    async def post(self, request):
        result = ""
        while True:
            body = await request.stream.read()
            if body is None:
                break
            result += body.decode("utf-8")
        return text(result)


@app.post("/stream", stream=True)
async def handler(request):
    async def streaming(response):
        while True:
            body = await request.stream.read()
            if body is None:
                break
            body = body.decode("utf-8").replace("1", "A")
            await response.write(body)

    return stream_response(streaming)


@bp.put("/bp_stream", stream=True)
async def bp_put_handler(request):
    result = ""
    while True:
        body = await request.stream.read()
        if body is None:
            break
        result += body.decode("utf-8").replace("1", "A")
    return text(result)


# You can also use `bp.add_route()` with stream argument
async def bp_post_handler(request):
    result = ""
    while True:
        body = await request.stream.read()
        if body is None:
            break
        result += body.decode("utf-8").replace("1", "A")
    return text(result)


bp.add_route(bp_post_handler, "/bp_stream", methods=["POST"], stream=True)


async def post_handler(request):
    result = ""
    while True:
        body = await request.stream.read()
        if body is None:
            break
        result += body.decode("utf-8")
    return text(result)


app.blueprint(bp)
app.add_route(SimpleView.as_view(), "/method_view")
view = CompositionView()
view.add(["POST"], post_handler, stream=True)
app.add_route(view, "/composition_view")


# -- Response streaming ---------------------------------------------------------------


@app.route("/csv")
async def test(request):
    async def sample_streaming_fn(response):
        await response.write("foo,")
        await response.write("bar")

    return stream_response(sample_streaming_fn, content_type="text/csv")


class FakeConnection:
    """Stands in for an ``asyncpg`` connection: just what the seed calls."""

    @asynccontextmanager
    async def transaction(self):
        yield

    async def cursor(self, query):
        # The records of "SELECT generate_series(0, 10)": 0 to 10, one column each.
        for number in range(11):
            yield (number,)


async def connect(database):
    return FakeConnection()


@app.route("/db")
async def index(request):
    async def stream_from_db(response):
        conn = await connect(database="test")
        async with conn.transaction():
            async for record in conn.cursor("SELECT generate_series(0, 10)"):
                # record[0] is an int, as in the seed: write() sends its str(), as
                # Sanic's did (send(), the new-style method, takes only bytes or str).
                await response.write(record[0])

    return stream_response(stream_from_db)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
