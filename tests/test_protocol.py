"""Raw HTTP/1.1 behaviour, end to end, over the in-memory transport and a loopback socket.

Every test writes raw request bytes and parses the response bytes with an h11 client
(see ``_helpers.py``), so framing, keep-alive and connection closing are checked as a
client on the network would see them.
"""

from __future__ import annotations

import h11
import pytest
import trio
import trio.testing
from _helpers import DEADLINE, serving

from trioweb import App, Request
from trioweb.response import empty, raw, text

GET = b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n"


def get(path: str) -> bytes:
    return GET % path.encode()


def post(path: str, body: bytes) -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n"
    return head % (path.encode(), len(body)) + body


def hello_app() -> App:
    app = App("protocol")

    @app.get("/")
    async def index(request: Request) -> object:
        return text("hello")

    @app.get("/path/<name>")
    async def path(request: Request, name: str) -> object:
        return text(name)

    @app.post("/echo")
    async def echo(request: Request) -> object:
        return text(request.body.decode())

    @app.get("/stream")
    async def stream(request: Request) -> None:
        async with request.respond(content_type="text/plain") as resp:
            await resp.send(b"hello ")
            await resp.send(b"world")

    return app


# -- keep-alive and pipelining ------------------------------------------------------


async def test_keep_alive_serves_two_requests_in_sequence(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(get("/path/one"))
        first = await client.read_response()
        assert first.status == 200
        assert first.body == b"one"
        assert first.header("connection") != "close"
        await client.send(get("/path/two"))
        second = await client.read_response()
        assert second.status == 200
        assert second.body == b"two"
        assert second.header("connection") != "close"


async def test_connection_close_request_header_closes_after_response(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        # The pipelined second request must not be answered: the client asked to close.
        close = b"GET /path/only HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        await client.send(close + get("/path/ignored"))
        response = await client.read_response()
        assert response.body == b"only"
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


async def test_pipelined_head_between_gets_keeps_framing(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        head = b"HEAD /stream HTTP/1.1\r\nHost: test\r\n\r\n"
        await client.send(get("/path/a") + head + get("/path/b"))
        assert (await client.read_response()).body == b"a"
        assert (await client.read_response("HEAD")).raw_body == b""
        last = await client.read_response()
        assert last.raw.startswith(b"HTTP/1.1 200 ")
        assert last.body == b"b"


@pytest.mark.parametrize("count", [2, 3])
async def test_pipelined_requests_in_one_write_are_answered_in_order(
    transport: str, count: int
) -> None:
    app = hello_app()

    @app.get("/first")
    async def first(request: Request) -> object:
        # Let the reader task get as far as it can with the pipelined bytes first.
        await trio.testing.wait_all_tasks_blocked()
        return text("first")

    requests = [get("/first"), post("/echo", b"second"), get("/path/third")][:count]
    expected = [b"first", b"second", b"third"][:count]
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(b"".join(requests))
        bodies = [(await client.read_response()).body for _ in range(count)]
        assert bodies == expected
        # Nothing else was sent, and the connection is still open for more.
        await client.send(get("/path/after"))
        assert (await client.read_response()).body == b"after"


# -- HTTP/1.0 and response framing ----------------------------------------------------


async def test_http10_request_gets_connection_close(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        response = await client.read_response()
        assert response.status == 200
        assert response.body == b"hello"
        assert response.header("connection") == "close"
        assert response.header("content-length") == "5"
        assert await client.read_to_eof() == b""


async def test_http10_streaming_response_is_close_delimited(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(b"GET /stream HTTP/1.0\r\n\r\n")
        response = await client.read_response()
        assert response.status == 200
        assert response.header("transfer-encoding") is None
        assert response.header("content-length") is None
        assert response.header("connection") == "close"
        assert response.raw_body == b"hello world"  # no chunk framing
        assert await client.read_to_eof() == b""


async def test_http11_streaming_response_is_chunked(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(get("/stream"))
        response = await client.read_response()
        assert response.status == 200
        assert response.header("transfer-encoding") == "chunked"
        assert response.header("content-length") is None
        assert response.body == b"hello world"
        assert response.raw_body == b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
        await client.send(get("/"))
        assert (await client.read_response()).body == b"hello"


async def test_handler_content_length_is_honoured(transport: str) -> None:
    app = hello_app()

    @app.get("/sized")
    async def sized(request: Request) -> None:
        async with request.respond(headers={"content-length": "11"}) as resp:
            await resp.send(b"hello ")
            await resp.send(b"world")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/sized"))
        response = await client.read_response()
        assert response.header("content-length") == "11"
        assert response.header("transfer-encoding") is None
        assert response.raw_body == b"hello world"
        await client.send(get("/"))
        assert (await client.read_response()).body == b"hello"


@pytest.mark.parametrize("sent", [b"short", b"much too long"], ids=["fewer", "more"])
async def test_content_length_mismatch_aborts_the_connection(transport: str, sent: bytes) -> None:
    app = hello_app()

    @app.get("/sized")
    async def sized(request: Request) -> None:
        async with request.respond(headers={"content-length": "8"}) as resp:
            await resp.send(sent)

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/sized"))
        raw = await client.read_to_eof()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"content-length: 8\r\n" in head.lower() + b"\r\n"
        # The client sees fewer bytes than announced (a truncated response), never more.
        assert len(body) < 8
        assert sent.startswith(body)


# -- routing errors and HEAD ----------------------------------------------------------


async def test_unknown_path_gets_404_and_connection_stays_usable(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(get("/nowhere"))
        response = await client.read_response()
        assert response.status == 404
        await client.send(get("/"))
        assert (await client.read_response()).status == 200


async def test_wrong_method_gets_405_with_allow(transport: str) -> None:
    app = App("protocol")

    @app.get("/thing")
    async def read(request: Request) -> object:
        return text("read")

    @app.post("/thing")
    async def write(request: Request) -> object:
        return text("written")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(b"DELETE /thing HTTP/1.1\r\nHost: test\r\n\r\n")
        response = await client.read_response()
        assert response.status == 405
        allow = response.header("allow")
        assert allow is not None
        methods = {m.strip() for m in allow.split(",")}
        assert {"GET", "POST"} <= methods
        assert "DELETE" not in methods
        await client.send(get("/thing"))
        assert (await client.read_response()).body == b"read"


async def test_head_on_get_route_sends_headers_only(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
        head = await client.read_response("HEAD")
        assert head.status == 200
        assert head.header("content-length") == "5"
        assert head.raw_body == b""
        # No body bytes followed the head: the next bytes are the next response's.
        await client.send(get("/"))
        following = await client.read_response()
        assert following.raw.startswith(b"HTTP/1.1 200 ")
        assert following.body == b"hello"


async def test_head_on_streaming_get_route_sends_no_body(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(b"HEAD /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        head = await client.read_response("HEAD")
        assert head.status == 200
        assert head.raw_body == b""
        await client.send(get("/"))
        following = await client.read_response()
        assert following.raw.startswith(b"HTTP/1.1 200 ")
        assert following.body == b"hello"


# -- malformed and oversized requests -------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT A REQUEST LINE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nno colon in this header\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
    ],
    ids=["garbage-line", "no-target", "bad-header", "no-host", "two-lengths"],
)
async def test_malformed_request_gets_400_and_close(transport: str, request_bytes: bytes) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(request_bytes)
        response = await client.read_response()
        assert response.status == 400
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


async def test_content_length_with_transfer_encoding_closes_after_response(
    transport: str,
) -> None:
    # RFC 9112 section 6.1: a server may reject such a request or read it by its
    # Transfer-Encoding, but either way MUST close the connection after responding,
    # so that a request smuggled behind it is never answered.
    smuggle = (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(smuggle + get("/path/smuggled"))
        response = await client.read_response("POST")
        assert response.status in (200, 400)
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


async def test_request_head_over_max_header_size_gets_431(transport: str) -> None:
    app = hello_app()
    app.config.REQUEST_MAX_HEADER_SIZE = 8 * 1024
    # A complete head, 10 KiB, in one write: it arrives whole, over the limit.
    big = b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n"
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(big)
        response = await client.read_response()
        assert response.status == 431
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


async def test_incomplete_request_head_over_max_header_size_gets_431(transport: str) -> None:
    app = hello_app()
    app.config.REQUEST_MAX_HEADER_SIZE = 8 * 1024
    # 9000 bytes of head and still no blank line: the server must not wait for more.
    partial = b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 9000
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(partial)
        response = await client.read_response()
        assert response.status == 431
        assert await client.read_to_eof() == b""


# -- handler errors and request bodies ------------------------------------------------


async def test_crashing_handler_gets_500_and_connection_serves_next(transport: str) -> None:
    app = hello_app()

    @app.get("/crash")
    async def crash(request: Request) -> object:
        raise RuntimeError("handler bug")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/crash"))
        response = await client.read_response()
        assert response.status == 500
        assert b"handler bug" not in response.body  # no internals leak to the client
        assert response.header("connection") != "close"
        await client.send(get("/"))
        following = await client.read_response()
        assert following.status == 200
        assert following.body == b"hello"


async def test_crash_in_pipelined_request_does_not_affect_the_next(transport: str) -> None:
    app = hello_app()

    @app.get("/crash")
    async def crash(request: Request) -> object:
        raise RuntimeError("handler bug")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/crash") + get("/path/after"))
        assert (await client.read_response()).status == 500
        following = await client.read_response()
        assert following.status == 200
        assert following.body == b"after"


async def test_request_head_sent_byte_by_byte(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        for byte in get("/path/slowly"):
            await client.send(bytes([byte]))
        response = await client.read_response()
        assert response.status == 200
        assert response.body == b"slowly"


async def test_unread_buffered_body_does_not_break_keep_alive(transport: str) -> None:
    app = hello_app()

    @app.post("/ignore")
    async def ignore(request: Request) -> object:
        return text("ignored")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(post("/ignore", b"x" * 50_000) + get("/path/next"))
        assert (await client.read_response()).body == b"ignored"
        assert (await client.read_response()).body == b"next"


async def test_unread_streamed_body_is_drained_for_keep_alive(transport: str) -> None:
    app = hello_app()

    @app.post("/ignore", stream=True)
    async def ignore(request: Request) -> object:
        return text("ignored")

    body = bytes(range(256)) * 1200  # 300 KiB: more than the body channel holds
    half = len(body) // 2
    async with serving(app, transport) as served, served.connect() as client:
        head = post("/ignore", body)[: -len(body)]
        await client.send(head + body[:half])
        response = await client.read_response()
        assert response.status == 200
        assert response.body == b"ignored"
        assert response.header("connection") != "close"
        # The rest of the body arrives only after the response: it must be skipped.
        await client.send(body[half:] + get("/path/next"))
        following = await client.read_response()
        assert following.status == 200
        assert following.body == b"next"


async def test_unread_streamed_body_and_pipelined_request_in_one_write(transport: str) -> None:
    app = hello_app()

    @app.post("/ignore", stream=True)
    async def ignore(request: Request) -> object:
        return text("ignored")

    body = b"y" * 200_000
    async with serving(app, transport) as served, served.connect() as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send, post("/ignore", body) + get("/path/next"))
            first = await client.read_response()
            second = await client.read_response()
        assert first.body == b"ignored"
        assert second.body == b"next"


async def test_malformed_chunked_body_gets_400_and_close(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nnot a chunk\r\n"
        )
        response = await client.read_response("POST")
        assert response.status == 400
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


async def test_declared_body_over_max_size_gets_413_before_the_body(transport: str) -> None:
    app = hello_app()
    app.config.REQUEST_MAX_SIZE = 1000
    async with serving(app, transport) as served, served.connect() as client:
        # Only the head is sent: the answer must not wait for the 100 000 bytes.
        await client.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n")
        response = await client.read_response()
        assert response.status == 413
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


async def test_chunked_body_over_max_size_on_buffered_route_gets_413(transport: str) -> None:
    app = hello_app()
    app.config.REQUEST_MAX_SIZE = 1000
    chunk = b"x" * 600
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2
        )
        response = await client.read_response("POST")
        assert response.status == 413
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


async def test_content_length_over_route_limit_on_streaming_route_gets_413(
    transport: str,
) -> None:
    app = App("protocol")

    @app.post("/upload", stream=True, request_max_size=1000)
    async def upload(request: Request) -> object:
        return text(str(len(await request.receive_body())))

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n\r\n")
        response = await client.read_response("POST")
        assert response.status == 413
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


async def test_expect_100_continue_on_buffered_route(transport: str) -> None:
    async with serving(hello_app(), transport) as served, served.connect() as client:
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = await client.read_until(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 ")
        await client.send(b"hello")
        response = await client.read_response("POST")
        assert response.status == 200
        assert response.body == b"hello"
        await client.send(get("/"))
        assert (await client.read_response()).body == b"hello"


async def test_expect_100_continue_rejected_with_413_never_gets_100(transport: str) -> None:
    app = hello_app()
    app.config.REQUEST_MAX_SIZE = 1000
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        response = await client.read_response("POST")
        assert response.informational == []
        assert not response.raw.startswith(b"HTTP/1.1 100")
        assert response.status == 413
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


async def test_expect_100_continue_on_streaming_route_waits_for_first_read(
    transport: str,
) -> None:
    app = App("protocol")
    handler_started = trio.Event()
    may_read = trio.Event()

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> object:
        handler_started.set()
        await may_read.wait()
        return text((await request.receive_body()).decode())

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(
            b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        with trio.fail_after(DEADLINE):
            await handler_started.wait()
        # The handler runs but has not read: no 100 Continue may have been sent yet.
        assert await client.received_while_blocked() == b""
        may_read.set()
        interim = await client.read_until(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 ")
        await client.send(b"hello")
        response = await client.read_response("POST")
        assert response.status == 200
        assert response.body == b"hello"


async def test_expect_100_continue_streaming_route_rejecting_first_never_gets_100(
    transport: str,
) -> None:
    app = App("protocol")

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> object:
        return text("no thanks", status=403)

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(
            b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        response = await client.read_response("POST")
        assert response.informational == []
        assert response.status == 403
        assert response.body == b"no thanks"


async def test_streaming_route_reads_chunked_body_chunk_by_chunk(transport: str) -> None:
    app = App("protocol")
    received: list[bytes] = []

    @app.post("/upload", stream=True)
    async def upload(request: Request) -> None:
        async with request.respond(content_type="text/plain") as resp:
            async for chunk in request.stream:
                received.append(chunk)
                await resp.send(b"[" + chunk + b"]")

    head = b"POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with serving(app, transport) as served, served.connect() as client:
        parser = client.parser("POST")
        await client.send(head + b"5\r\nalpha\r\n")
        event = await parser.next_event()
        assert type(event) is h11.Response
        assert event.status_code == 200
        # Each chunk is echoed before the next one is even sent: the handler gets
        # the body piece by piece, as it arrives.
        assert await parser.read_body(len(b"[alpha]")) == b"[alpha]"
        await client.send(b"4\r\nbeta\r\n")
        assert await parser.read_body(len(b"[beta]")) == b"[beta]"
        await client.send(b"5\r\ngamma\r\n0\r\n\r\n")
        assert await parser.read_body(len(b"[gamma]")) == b"[gamma]"
        assert type(await parser.next_event()) is h11.EndOfMessage
        assert received == [b"alpha", b"beta", b"gamma"]
        await client.send(get("/missing"))
        assert (await client.read_response()).status == 404


async def test_streaming_route_reads_large_chunked_body(transport: str) -> None:
    app = App("protocol")

    @app.post("/count", stream=True)
    async def count(request: Request) -> object:
        total = 0
        sizes = []
        async for chunk in request.stream:
            assert chunk
            sizes.append(len(chunk))
            total += len(chunk)
        return text(f"{total} {max(sizes)}")

    pieces = [bytes([i]) * 30_000 for i in range(20)]  # 600 KB in 20 chunks
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    head = b"POST /count HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with serving(app, transport) as served, served.connect() as client:
        async with trio.open_nursery() as nursery:
            # The upload is larger than any buffer, so it is sent while reading.
            nursery.start_soon(client.send, head + body)
            response = await client.read_response("POST")
        assert response.status == 200
        total, largest = response.body.split()
        assert int(total) == 600_000
        assert int(largest) <= app.config.REQUEST_BUFFER_SIZE


async def test_whole_response_larger_than_socket_buffers_arrives_intact(transport: str) -> None:
    # Over TCP the first direct write takes only part of it; the rest goes through
    # send_all. Then a second request on the same connection.
    payload = bytes(range(256)) * 32_768  # 8 MiB, every byte value, position-dependent
    app = App("protocol")

    @app.get("/big")
    async def big(request: Request) -> object:
        return raw(payload)

    async with serving(app, transport) as served, served.connect() as client:
        for _ in range(2):
            await client.send(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
            response = await client.read_response()
            assert response.status == 200
            assert response.header("content-length") == str(len(payload))
            assert response.body == payload


async def test_response_timeout_before_head_gets_503(
    transport: str, autojump_clock: trio.testing.MockClock
) -> None:
    app = hello_app()
    app.config.RESPONSE_TIMEOUT = 1

    @app.get("/late")
    async def late(request: Request) -> object:
        await trio.sleep(3)
        return text("too late")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/late"))
        response = await client.read_response()
        assert response.status == 503
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


async def test_streaming_response_may_outlive_response_timeout_once_head_is_sent(
    transport: str, autojump_clock: trio.testing.MockClock
) -> None:
    # RESPONSE_TIMEOUT runs from the handler's start until the response head is sent;
    # a streamed body may then take as long as it needs.
    app = hello_app()
    app.config.RESPONSE_TIMEOUT = 1

    @app.get("/slow-body")
    async def slow_body(request: Request) -> None:
        async with request.respond(content_type="text/plain") as resp:
            await resp.send(b"head sent,")
            await trio.sleep(3)
            await resp.send(b" body done")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/slow-body"))
        response = await client.read_response()
        assert response.status == 200
        assert response.body == b"head sent, body done"
        await client.send(get("/"))
        assert (await client.read_response()).body == b"hello"


async def test_read_idle_timeout_on_streaming_route_gets_408(
    transport: str, autojump_clock: trio.testing.MockClock
) -> None:
    # READ_IDLE_TIMEOUT: the longest gap between body bytes on a streaming route.
    app = App("protocol")
    app.config.READ_IDLE_TIMEOUT = 1

    @app.post("/upload", stream=True, response_timeout=None)
    async def upload(request: Request) -> object:
        return text(str(len(await request.receive_body())))

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(
            b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nfirst"
        )
        # The other five bytes never come.
        response = await client.read_response("POST")
        assert response.status == 408
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""


# -- cancellation and aborts -----------------------------------------------------------


async def test_client_disconnect_cancels_handler_and_its_children(transport: str) -> None:
    app = App("protocol")
    child_started = trio.Event()
    child_cancelled = trio.Event()
    handler_started = trio.Event()
    handler_cancelled = trio.Event()
    handler_finished = trio.Event()

    async def child() -> None:
        try:
            child_started.set()
            await trio.sleep_forever()
        except trio.Cancelled:
            child_cancelled.set()
            raise

    @app.get("/sleep")
    async def sleep(request: Request) -> object:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child)
                await child_started.wait()
                handler_started.set()
                try:
                    await trio.sleep_forever()
                except trio.Cancelled:
                    handler_cancelled.set()
                    raise
        finally:
            handler_finished.set()
        return text("unreachable")  # pragma: no cover

    async with serving(app, transport) as served:
        async with served.connect() as client:
            await client.send(get("/sleep"))
            with trio.fail_after(DEADLINE):
                await handler_started.wait()
        # The client is gone (its stream closed): the handler must be cancelled.
        with trio.fail_after(DEADLINE):
            await handler_finished.wait()
        assert handler_cancelled.is_set()
        assert child_cancelled.is_set()


async def test_client_disconnect_mid_stream_cancels_streaming_handler(transport: str) -> None:
    app = App("protocol")
    cancelled = trio.Event()
    finished = trio.Event()

    @app.get("/forever")
    async def forever(request: Request) -> None:
        try:
            async with request.respond(content_type="application/octet-stream") as resp:
                while True:
                    await resp.send(b"z" * 4096)
        except trio.Cancelled:
            cancelled.set()
            raise
        finally:
            finished.set()

    async with serving(app, transport) as served:
        async with served.connect() as client:
            await client.send(get("/forever"))
            parser = client.parser()
            assert type(await parser.next_event()) is h11.Response
            await parser.read_body(10_000)
        with trio.fail_after(DEADLINE):
            await finished.wait()
        assert cancelled.is_set()


async def test_exception_before_first_send_becomes_500(transport: str) -> None:
    app = hello_app()

    @app.get("/early")
    async def early(request: Request) -> None:
        async with request.respond(content_type="text/plain") as resp:
            resp.headers["x-never"] = "sent"
            raise RuntimeError("before anything was sent")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/early"))
        response = await client.read_response()
        assert response.status == 500
        assert response.header("x-never") is None
        await client.send(get("/"))
        assert (await client.read_response()).body == b"hello"


async def test_exception_after_send_truncates_chunked_response(transport: str) -> None:
    app = hello_app()

    @app.get("/boom")
    async def boom(request: Request) -> None:
        async with request.respond(content_type="text/plain") as resp:
            await resp.send(b"partial data")
            raise RuntimeError("mid-stream failure")

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/boom"))
        raw = await client.read_to_eof()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"transfer-encoding: chunked" in head.lower()
        assert body.startswith(b"c\r\npartial data\r\n")
        assert not body.endswith(b"0\r\n\r\n")
        # A client sees the truncation as a protocol error, not as a complete body.
        parser = h11.Connection(h11.CLIENT)
        parser.send(h11.Request(method="GET", target="/boom", headers=[("Host", "test")]))
        parser.send(h11.EndOfMessage())
        parser.receive_data(raw)
        parser.receive_data(b"")
        with pytest.raises(h11.RemoteProtocolError):
            while type(parser.next_event()) is not h11.EndOfMessage:
                pass


# -- shutdown and concurrency ---------------------------------------------------------


async def test_shutdown_lets_in_flight_request_finish(transport: str) -> None:
    app = hello_app()
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 30
    started = trio.Event()
    release = trio.Event()

    @app.get("/slow")
    async def slow(request: Request) -> object:
        started.set()
        await release.wait()
        return text("finished")

    async with serving(app, transport) as served:
        async with served.connect() as client:
            await client.send(get("/slow"))
            with trio.fail_after(DEADLINE):
                await started.wait()
            served.server.shutdown()
            # Let the shutdown get as far as it can while the request is in flight.
            await trio.testing.wait_all_tasks_blocked()
            assert not served.stopped.is_set()
            release.set()
            response = await client.read_response()
            assert response.status == 200
            assert response.body == b"finished"
            assert response.header("connection") == "close"
            assert await client.read_to_eof() == b""
        with trio.fail_after(DEADLINE):
            await served.stopped.wait()


async def test_shutdown_lets_in_flight_streaming_response_finish(transport: str) -> None:
    app = hello_app()
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 30
    release = trio.Event()

    @app.get("/slow-stream")
    async def slow_stream(request: Request) -> None:
        async with request.respond(content_type="text/plain") as resp:
            await resp.send(b"first,")
            await release.wait()
            await resp.send(b"second")

    async with serving(app, transport) as served:
        async with served.connect() as client:
            await client.send(get("/slow-stream"))
            parser = client.parser()
            assert type(await parser.next_event()) is h11.Response
            assert await parser.read_body(6) == b"first,"
            served.server.shutdown()
            await trio.testing.wait_all_tasks_blocked()
            assert not served.stopped.is_set()
            release.set()
            assert await parser.read_body(6) == b"second"
            assert type(await parser.next_event()) is h11.EndOfMessage
            assert parser.raw.endswith(b"6\r\nsecond\r\n0\r\n\r\n")
            assert await client.read_to_eof() == b""
        with trio.fail_after(DEADLINE):
            await served.stopped.wait()


async def test_shutdown_cancels_handlers_after_graceful_timeout(transport: str) -> None:
    app = hello_app()
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 0
    started = trio.Event()
    cancelled = trio.Event()

    @app.get("/stuck")
    async def stuck(request: Request) -> object:
        started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.set()
            raise
        return text("unreachable")  # pragma: no cover

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/stuck"))
        with trio.fail_after(DEADLINE):
            await started.wait()
        served.server.shutdown()
        with trio.fail_after(DEADLINE):
            await served.stopped.wait()
        assert cancelled.is_set()
        assert await client.read_to_eof() == b""


async def test_shutdown_closes_idle_keep_alive_connections_at_once(transport: str) -> None:
    app = hello_app()
    app.config.KEEP_ALIVE_TIMEOUT = 600  # so only the shutdown can close it in time
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(get("/"))
        response = await client.read_response()
        assert response.status == 200
        assert response.header("connection") != "close"
        served.server.shutdown()
        assert await client.read_to_eof(timeout=DEADLINE) == b""
        with trio.fail_after(DEADLINE):
            await served.stopped.wait()


async def test_many_concurrent_connections_are_all_served(transport: str) -> None:
    app = App("protocol")
    count = 50
    arrived = 0
    all_arrived = trio.Event()

    @app.get("/n/<i:int>")
    async def numbered(request: Request, i: int) -> object:
        nonlocal arrived
        arrived += 1
        if arrived == count:
            all_arrived.set()
        # Every handler waits for all the others: they must run at the same time.
        await all_arrived.wait()
        return text(str(i))

    results: dict[int, bytes] = {}

    async with serving(app, transport) as served:

        async def one(i: int) -> None:
            async with served.connect() as client:
                await client.send(get(f"/n/{i}"))
                response = await client.read_response(timeout=20)
                assert response.status == 200
                results[i] = response.body

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(one, i)
    assert results == {i: str(i).encode() for i in range(count)}


async def test_abort_of_close_delimited_body_is_a_reset_over_tcp() -> None:
    # HTTP/1.0 reads the body to EOF, so a FIN would pass a truncated body as complete;
    # an aborted response ends with a reset instead.
    app = App("protocol")

    @app.get("/cut")
    async def cut(request: Request) -> None:
        async with request.respond(content_type="text/plain") as resp:
            await resp.send("the beginning")
            raise RuntimeError("lost the rest")

    async with serving(app, "tcp") as served, served.connect() as client:
        await client.send(b"GET /cut HTTP/1.0\r\n\r\n")
        received = b""
        with trio.fail_after(DEADLINE), pytest.raises(trio.BrokenResourceError):
            while chunk := await client.stream.receive_some(65536):
                received += chunk
        assert b"the beginning" in received


async def test_handler_error_during_its_timeout_still_gets_503(
    transport: str, autojump_clock: trio.testing.MockClock
) -> None:
    # The handler's nursery raises while the RESPONSE_TIMEOUT cancellation unwinds it,
    # so a Cancelled and a ValueError leave together: the 503 must still be sent.
    app = hello_app()
    app.config.RESPONSE_TIMEOUT = 1

    @app.get("/messy")
    async def messy(request: Request) -> object:
        async def cleanup_fails() -> None:
            try:
                await trio.sleep_forever()
            finally:
                raise ValueError("cleanup failed")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cleanup_fails)
            await trio.sleep_forever()
        return text("never")

    async with serving(app, transport) as served:
        async with served.connect() as client:
            await client.send(get("/messy"))
            response = await client.read_response()
            assert response.status == 503
        async with served.connect() as client:  # and the server still serves
            await client.send(get("/"))
            assert (await client.read_response()).status == 200


async def test_head_keeps_the_handlers_content_length(transport: str) -> None:
    app = App("protocol")

    @app.route("/size", methods=["HEAD"])
    async def size(request: Request) -> object:
        return empty(200, headers={"content-length": "12345"})

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(b"HEAD /size HTTP/1.1\r\nHost: test\r\n\r\n")
        response = await client.read_response("HEAD")
        assert response.status == 200
        assert response.header("content-length") == "12345"
        assert response.body == b""
