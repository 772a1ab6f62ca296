"""Sanic's streaming docs, ported in ``examples/sanic_seeds.py``, answer as the seeds say.

Request bodies go out chunked, in several pieces: through ``TestClient`` (an async
generator as ``content=``) and as raw bytes over both transports.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from types import ModuleType

import h11
import httpx
import pytest
import trio
from _helpers import DEADLINE, EXAMPLES, free_port, load_example, serving

from trioweb.testing import TestClient

PIECES = [b"line 1\n", b"2 1 0\n", b"1", b"11", b"end"]
BODY = b"".join(PIECES).decode()
REPLACED = BODY.replace("1", "A")

#: (method, path, expected body) for every request-streaming seed route.
ROUTES = [
    ("POST", "/stream", REPLACED),
    ("PUT", "/bp_stream", REPLACED),
    ("POST", "/bp_stream", REPLACED),
    ("POST", "/method_view", BODY),
    ("POST", "/composition_view", BODY),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]


def seeds() -> ModuleType:
    return load_example("sanic_seeds")


async def pieces() -> AsyncIterator[bytes]:
    for piece in PIECES:
        yield piece


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def chunked_head(method: str, path: str) -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" % (
        method.encode(),
        path.encode(),
    )


@pytest.mark.parametrize(("method", "path", "expected"), ROUTES, ids=ROUTE_IDS)
async def test_seed_route_with_a_chunked_body_in_pieces(
    method: str, path: str, expected: str
) -> None:
    async with TestClient(seeds().app) as client:
        r = await client.request(method, path, content=pieces())
        assert (r.status_code, r.text) == (200, expected)
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        # The same body with a Content-Length (what curl --data-binary sends).
        r = await client.request(method, path, content=BODY.encode())
        assert (r.status_code, r.text) == (200, expected)


@pytest.mark.parametrize(("method", "path", "expected"), ROUTES, ids=ROUTE_IDS)
async def test_seed_route_with_raw_chunks_sent_one_by_one(
    transport: str, method: str, path: str, expected: str
) -> None:
    async with serving(seeds().app, transport) as served, served.connect() as client:
        await client.send(chunked_head(method, path))
        for piece in PIECES:
            await client.send(chunk(piece))
        await client.send(b"0\r\n\r\n")
        response = await client.read_response(method)
        assert (response.status, response.body.decode()) == (200, expected)
        # The connection is still good for the next request.
        await client.send(b"GET /csv HTTP/1.1\r\nHost: test\r\n\r\n")
        assert (await client.read_response()).body == b"foo,bar"


async def test_stream_seed_answers_each_piece_before_the_next_is_sent(transport: str) -> None:
    # The callback-style /stream handler writes as it reads: full duplex.
    async with serving(seeds().app, transport) as served, served.connect() as client:
        parser = client.parser("POST")
        await client.send(chunked_head("POST", "/stream") + chunk(b"a1b"))
        event = await parser.next_event()
        assert type(event) is h11.Response
        assert event.status_code == 200
        assert (b"transfer-encoding", b"chunked") in event.headers
        assert await parser.read_body(3) == b"aAb"
        await client.send(chunk(b"11"))
        assert await parser.read_body(2) == b"AA"
        await client.send(chunk(b"no ones"))
        assert await parser.read_body(7) == b"no ones"
        await client.send(b"0\r\n\r\n")
        assert type(await parser.next_event()) is h11.EndOfMessage


async def test_seed_routes_refuse_other_methods() -> None:
    async with TestClient(seeds().app) as client:
        for path, allow in [
            ("/stream", "POST"),
            ("/bp_stream", "POST, PUT"),
            ("/method_view", "POST"),
            ("/composition_view", "POST"),
        ]:
            r = await client.get(path)
            assert (r.status_code, r.headers["allow"]) == (405, allow), path


async def test_csv_seed() -> None:
    async with TestClient(seeds().app) as client:
        r = await client.get("/csv")
        assert (r.status_code, r.text) == (200, "foo,bar")
        assert r.headers["content-type"] == "text/csv"
        assert r.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in r.headers


async def test_database_seed_streams_every_record() -> None:
    async with TestClient(seeds().app) as client, client.stream("GET", "/db") as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["transfer-encoding"] == "chunked"
        received = [piece async for piece in r.aiter_raw()]
    assert b"".join(received) == b"".join(str(n).encode() for n in range(11))


async def test_seeds_example_runs_as_a_process_and_stops_on_sigint() -> None:
    port = free_port()
    command = [sys.executable, str(EXAMPLES / "sanic_seeds.py"), str(port)]
    process = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            with trio.fail_after(15):
                while True:  # until the server accepts connections
                    try:
                        r = await http.post("/stream", content=pieces())
                        break
                    except httpx.ConnectError:
                        assert process.poll() is None, "sanic_seeds.py exited early"
                        await trio.sleep(0.05)
            assert (r.status_code, r.text) == (200, REPLACED)
            r = await http.put("/bp_stream", content=pieces())
            assert (r.status_code, r.text) == (200, REPLACED)
            assert (await http.get("/db")).text == "012345678910"
        process.send_signal(signal.SIGINT)
        with trio.fail_after(DEADLINE * 3):
            code = await process.wait()
        assert code == 0
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(DEADLINE):
                await process.wait()
        assert process.stderr is not None
        await process.stderr.aclose()
