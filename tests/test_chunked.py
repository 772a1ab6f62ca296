"""Chunked request bodies: the chunk scanner, the 413 a chunk size triggers, bad framing.

The early 413 is the point of the scanner: a chunk that *announces* more than the limit
allows is refused before its bytes are read (API.md, "a declared Content-Length (or chunk
size) above the limit is rejected with 413 at once"). The framing rules are RFC 9112
section 7.1.
"""

from __future__ import annotations

import logging

import pytest
import trio
from _helpers import DEADLINE, TRANSPORTS, serving

from trioweb import App, Request
from trioweb._chunked import MAX_CHUNK_LINE, ChunkDecoder, ChunkError
from trioweb.response import HTTPResponse, text

CHUNKED_HEAD = b"POST %s HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def limited_app(*, route_limit: int | None = 1000) -> tuple[App, list[bytes], trio.Event]:
    """A streaming route limited to ``route_limit`` bytes that records what it read."""
    app = App("chunked")
    app.config.REQUEST_MAX_SIZE = 1000
    got: list[bytes] = []
    first_read = trio.Event()

    @app.post("/upload", stream=True, request_max_size=route_limit)
    async def upload(request: Request) -> HTTPResponse:
        async for piece in request.stream:
            got.append(piece)
            first_read.set()
        return text(str(sum(map(len, got))))

    @app.post("/buffered")
    async def buffered(request: Request) -> HTTPResponse:
        return text(str(len(request.body)))

    return app, got, first_read


# -- the decoder alone ------------------------------------------------------------------

BODY = chunk(b"hello") + chunk(b"x" * 300) + b"3;name=value\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"


class ChunkScanner(ChunkDecoder):
    """The decoder fed whole buffers, as the engine feeds it; collects the data."""

    def __init__(self, max_trailer_size: int) -> None:
        super().__init__(max_trailer_size)
        self.data = bytearray()

    def feed(self, buffer: bytes) -> int:
        """Decode all of ``buffer`` that belongs to the body; return where it stopped."""
        pos = 0
        while True:
            start, end = self.next_span(buffer, pos)
            self.data += buffer[start:end]
            if start == end:
                return end
            pos = end


@pytest.mark.parametrize("step", [1, 2, 3, 7, len(BODY)])
def test_scanner_follows_a_body_fed_in_any_pieces(step: int) -> None:
    scanner = ChunkScanner(8192)
    declared = []
    for start in range(0, len(BODY), step):
        assert not scanner.done
        scanner.feed(BODY[start : start + step])
        declared.append(scanner.declared)
    assert scanner.done
    assert scanner.declared == 5 + 300 + 3
    assert scanner.data == b"hello" + b"x" * 300 + b"abc"
    assert declared == sorted(declared)  # only ever grows
    after = b"GET / HTTP/1.1\r\n\r\n garbage after the end is not ours"
    assert scanner.feed(after) == 0  # nothing after the end is consumed
    assert scanner.declared == 308


def test_decoder_stops_at_the_end_of_the_body_in_a_shared_buffer() -> None:
    scanner = ChunkScanner(8192)
    assert scanner.feed(BODY + b"GET /") == len(BODY)
    assert scanner.done


def test_scanner_counts_a_size_before_its_data_arrives() -> None:
    scanner = ChunkScanner(8192)
    scanner.feed(b"5\r\nhello\r\n1000")
    assert scanner.declared == 5  # the size line is not finished yet
    scanner.feed(b"0\r\n")
    assert scanner.declared == 5 + 0x10000


# RFC 9112 7.1: chunk-size = 1*HEXDIG, chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS
# value ] ), lines end in CRLF, chunk-data is followed by CRLF.
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"5 \r\nhello\r\n", id="whitespace-after-size"),
        pytest.param(b" 5\r\nhello\r\n", id="whitespace-before-size"),
        pytest.param(b"+5\r\nhello\r\n", id="sign"),
        pytest.param(b"-5\r\nhello\r\n", id="negative"),
        pytest.param(b"0x5\r\nhello\r\n", id="0x-prefix"),
        pytest.param(b"1" * 17 + b"\r\n", id="overlong-size"),
        pytest.param(b"\r\nhello\r\n", id="empty-size"),
        pytest.param(b"5\nhello\r\n", id="bare-lf"),
        pytest.param(b"5\r\r\nhello\r\n", id="bare-cr"),
        pytest.param(b"5\r\nhelloXY", id="data-not-followed-by-crlf"),
        pytest.param(b"5\r\nhello\n", id="data-followed-by-bare-lf"),
        pytest.param(b"5;\r\nhello\r\n", id="empty-extension"),
        pytest.param(b"5;a\x01b\r\nhello\r\n", id="control-in-extension"),
        pytest.param(b'5;a="x\r\nhello\r\n', id="unclosed-quoted-extension"),
        pytest.param(b"5;" + b"a" * MAX_CHUNK_LINE, id="extension-too-long"),
        pytest.param(b"0\r\nX-T: 1\n\r\n", id="trailer-bare-lf"),
    ],
)
def test_scanner_refuses_malformed_framing(body: bytes) -> None:
    scanner = ChunkScanner(8192)
    with pytest.raises(ChunkError) as info:
        scanner.feed(body)
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    "line",
    [b"5", b"0005", b"A", b"a", b"5;a", b"5;a=b", b'5;a="q \\" s"', b"5 ; a = b", b"5;a;b=c"],
)
def test_scanner_accepts_well_formed_chunk_lines(line: bytes) -> None:
    scanner = ChunkScanner(8192)
    size = int(line.split(b";")[0].strip(), 16)
    scanner.feed(line + b"\r\n" + b"z" * size + b"\r\n0\r\n\r\n")
    assert scanner.done
    assert scanner.declared == size


def test_scanner_limits_the_trailer_section() -> None:
    scanner = ChunkScanner(100)
    scanner.feed(b"0\r\n" + b"X-Long: " + b"v" * 80 + b"\r\n")
    with pytest.raises(ChunkError) as info:
        scanner.feed(b"X-More: " + b"v" * 20)
    assert info.value.status_code == 431


# -- the early 413 ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_chunk_announcing_too_much_gets_413_before_its_data(transport: str) -> None:
    app, got, _ = limited_app()
    async with serving(app, transport) as served, served.connect() as client:
        # Only the size line of a 1 MiB chunk: the answer must not wait for its data.
        await client.send(CHUNKED_HEAD % b"/upload" + b"100000\r\n")
        response = await client.read_response("POST")
        assert response.status == 413
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""
    assert got == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_chunk_sizes_adding_up_past_the_limit_get_413_at_once(transport: str) -> None:
    app, got, first_read = limited_app()
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(CHUNKED_HEAD % b"/upload" + chunk(b"a" * 600))
        with trio.fail_after(DEADLINE):
            await first_read.wait()  # the handler read the first chunk and waits for more
        # 600 + 0x200 = 1112 > 1000: refused when the size line arrives.
        await client.send(b"200\r\n")
        response = await client.read_response("POST")
        assert response.status == 413
        assert await client.read_to_eof() == b""
    assert got == [b"a" * 600]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_buffered_route_refuses_a_big_chunk_before_its_data(transport: str) -> None:
    app, _, _ = limited_app()
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(CHUNKED_HEAD % b"/buffered" + b"FFFFFFFF\r\n")
        response = await client.read_response("POST")
        assert response.status == 413
        assert await client.read_to_eof() == b""


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unlimited_stream_route_takes_a_chunk_over_request_max_size(
    transport: str,
) -> None:
    app, got, _ = limited_app(route_limit=None)
    data = b"u" * 5000  # over REQUEST_MAX_SIZE (1000), in a single chunk
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(CHUNKED_HEAD % b"/upload" + chunk(data) + b"0\r\n\r\n")
        response = await client.read_response("POST")
        assert (response.status, response.body) == (200, b"5000")
    assert b"".join(got) == data


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_handler_raising_max_size_before_reading_accepts_a_big_chunk(
    transport: str,
) -> None:
    app = App("chunked")

    @app.post("/upload", stream=True, request_max_size=10)
    async def upload(request: Request) -> HTTPResponse:
        request.stream.max_size = 100_000
        return text(str(len(await request.receive_body())))

    async with serving(app, transport) as served, served.connect() as client:
        await client.send(CHUNKED_HEAD % b"/upload" + chunk(b"b" * 20_000) + b"0\r\n\r\n")
        response = await client.read_response("POST")
        assert (response.status, response.body) == (200, b"20000")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_malformed_chunk_line_gets_400_and_close(transport: str) -> None:
    app, got, _ = limited_app(route_limit=None)
    async with serving(app, transport) as served, served.connect() as client:
        # h11 alone accepts whitespace after the size; RFC 9112 7.1 does not.
        await client.send(CHUNKED_HEAD % b"/upload" + b"5 \r\nhello\r\n0\r\n\r\n")
        response = await client.read_response("POST")
        assert response.status == 400
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""
    assert got == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_valid_chunked_body_then_pipelined_request_on_one_connection(
    transport: str,
) -> None:
    app, got, _ = limited_app(route_limit=None)
    request = CHUNKED_HEAD % b"/upload" + chunk(b"one") + b"2;x=y\r\nhi\r\n0\r\n\r\n"
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(request + request)  # the scanner must stop where a body ends
        for total in (b"5", b"10"):  # the route counts what it read over both
            response = await client.read_response("POST")
            assert (response.status, response.body) == (200, total)
    assert b"".join(got) == b"onehi" * 2


# -- Expect -----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unknown_expectation_gets_417_and_close(transport: str) -> None:
    app, got, _ = limited_app(route_limit=None)
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(
            b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
            b"Expect: 200-ok\r\n\r\nhello"
        )
        response = await client.read_response("POST")
        assert response.status == 417
        assert response.header("connection") == "close"
        assert await client.read_to_eof() == b""
    assert got == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_expect_100_continue_is_case_insensitive(transport: str) -> None:
    app, _, _ = limited_app(route_limit=None)
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(
            b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
            b"Expect: 100-Continue\r\n\r\n"
        )
        interim = await client.read_until(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 ")
        await client.send(b"hello")
        response = await client.read_response("POST")
        assert (response.status, response.body) == (200, b"5")


# -- a handler's own Content-Length -----------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("sent", [[b"abc"], [b"abcdef", b"ghijkl"]], ids=["fewer", "more"])
async def test_content_length_mismatch_is_logged_once_and_cancels_the_handler(
    transport: str, sent: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    app = App("chunked")
    reached_end = []

    @app.get("/")
    async def index(request: Request) -> None:
        async with request.respond(headers={"content-length": "10"}) as resp:
            for piece in sent:
                await resp.send(piece)
        reached_end.append(True)  # only if the block's exit did not raise or cancel

    caplog.set_level(logging.DEBUG, logger="trioweb")
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        raw = await client.read_to_eof()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(b"abc" if len(sent) == 1 else b"abcdef")  # never more than 10
    assert reached_end == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "Content-Length" in errors[0].getMessage()
    assert errors[0].exc_info is None  # a reason, not a traceback


def test_a_chunk_line_over_the_limit_is_refused_even_in_one_read() -> None:
    scanner = ChunkScanner(8192)
    line = b"5;" + b"a" * MAX_CHUNK_LINE + b"\r\nhello\r\n0\r\n\r\n"
    with pytest.raises(ChunkError, match="too long"):
        scanner.feed(line)
