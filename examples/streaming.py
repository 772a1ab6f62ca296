"""Streaming both ways: request bodies in pieces, responses sent as they are made.

Run ``python examples/streaming.py``, then for example::

    curl -T /etc/services -H 'Content-Type: text/plain' localhost:8000/echo
    curl -T /etc/services localhost:8000/upper
    curl localhost:8000/report.csv
    curl -N localhost:8000/race
"""

from __future__ import annotations

import trio

from trioweb import App, Request
from trioweb.response import HTTPResponse, ResponseStream
from trioweb.response import stream as stream_response

app = App("streaming")


@app.post("/echo", stream=True)
@app.put("/echo", stream=True)
async def echo(request: Request) -> None:
    """Send the body back as it arrives; memory use stays at a few chunks."""
    async with request.respond(content_type=request.content_type) as resp:
        async for chunk in request.stream:  # non-empty bytes chunks
            await resp.send(chunk)  # waits while the client is slow to read


@app.put("/upper", stream=True)
async def upper(request: Request) -> None:
    """The same without ``async with``, as in Sanic: ``await`` it, then ``eof()``."""
    resp = await request.respond(content_type="text/plain; charset=utf-8")
    while (chunk := await request.stream.read()) is not None:
        await resp.send(chunk.upper())
    await resp.eof()


@app.get("/report.csv")
async def report(request: Request) -> HTTPResponse:
    """Sanic's callback style: the function writes the body after the handler returned."""

    async def sample_streaming_fn(response: ResponseStream) -> None:
        await response.write("foo,")
        await response.write("bar")

    return stream_response(sample_streaming_fn, content_type="text/csv")


@app.get("/race")
async def race(request: Request) -> None:
    """Feed one response from several child tasks; each line goes out when it is ready.

    The nursery lives inside the handler, so if the client disconnects, the handler and
    all its children are cancelled together.
    """
    async with request.respond(content_type="text/plain; charset=utf-8") as resp:

        async def worker(name: str, seconds: float) -> None:
            await trio.sleep(seconds)  # stands for real work: a query, an API call...
            await resp.send(f"{name} finished after {seconds}s\n")

        async with trio.open_nursery() as nursery:
            for name, seconds in [("slow", 0.3), ("fast", 0.1), ("medium", 0.2)]:
                nursery.start_soon(worker, name, seconds)


if __name__ == "__main__":
    trio.run(app.serve)
