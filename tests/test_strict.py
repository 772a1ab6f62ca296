"""Strict HTTP/1.1 parsing: a corpus of raw requests and what each must get.

Every malformed request is followed, on the same connection, by a valid pipelined GET
that would be answered with a 200. A rejected request must get its status with
``Connection: close``, and then the connection must end, so the request behind it (a
smuggled one, if the two sides disagreed about framing) is never answered.

Each case cites the rule that makes it malformed. RFC 9112 is HTTP/1.1's message
syntax; RFC 9110 is HTTP's semantics.
"""

from __future__ import annotations

import json as _json
from http import HTTPStatus

import pytest
import trio
import trio.testing
from _corpus import ACCEPTED, REJECTED, Case, head
from _helpers import DEADLINE, serving

from trioweb import App, Request
from trioweb._events import ProtocolError
from trioweb._strict import request_start
from trioweb.response import json, text

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n"


def corpus_app() -> App:
    app = App("strict")

    @app.route("/", methods=["GET", "POST", "OPTIONS"])
    async def index(request: Request) -> object:
        return text(f"{request.method} {len(await request.receive_body())}")

    @app.get("/smuggled")
    async def smuggled(request: Request) -> object:
        return text("smuggled")

    @app.post("/headers")
    async def headers(request: Request) -> object:
        body = await request.receive_body()
        return json({"body": body.decode(), "headers": sorted(request.headers)})

    return app


@pytest.mark.parametrize("case", REJECTED, ids=[case.id for case in REJECTED])
async def test_malformed_request_is_rejected_and_nothing_behind_it_answered(
    transport: str, case: Case
) -> None:
    async with serving(corpus_app(), transport) as served, served.connect() as client:
        await client.send(case.request + SMUGGLED)
        response = await client.read_response("POST")
        assert response.status == case.status, case.rule
        assert response.header("connection") == "close", case.rule
        # The connection ends: the pipelined request is never answered.
        assert await client.read_to_eof() == b"", case.rule


@pytest.mark.parametrize("case", ACCEPTED, ids=[case.id for case in ACCEPTED])
async def test_well_formed_request_is_served_and_connection_kept(
    transport: str, case: Case
) -> None:
    async with serving(corpus_app(), transport) as served, served.connect() as client:
        await client.send(case.request)
        response = await client.read_response()
        assert response.status == case.status, case.rule
        if b"HTTP/1.0" not in case.request.split(b"\r\n", 1)[0]:
            # Kept open: the next request on it is answered too.
            await client.send(SMUGGLED)
            following = await client.read_response()
            assert (following.status, following.body) == (200, b"smuggled")


@pytest.mark.parametrize("case", REJECTED, ids=[case.id for case in REJECTED])
async def test_refusal_says_what_was_wrong_in_words(case: Case) -> None:
    # The body names the problem; it never echoes the offending bytes (as a Python repr
    # or otherwise), and a browser may not sniff it into something executable.
    async with serving(corpus_app(), "memory") as served, served.connect() as client:
        await client.send(case.request)
        response = await client.read_response("POST")
    assert response.status == case.status
    assert response.header("x-content-type-options") == "nosniff"
    assert response.header("content-type") == "text/plain; charset=utf-8"
    text = response.body.decode("ascii")
    status_line = f"{case.status} {HTTPStatus(case.status).phrase}"
    # (Error pages leave out the message of a 5xx: there the reason phrase says it.)
    assert text.startswith(f"{status_line}: " if case.status < 500 else status_line), text
    assert text.endswith("\n") and text[:-1].isprintable(), text
    for echo in ("b'", 'b"', "bytearray(", "\\x"):
        assert echo not in text, text


@pytest.mark.parametrize(
    ("target", "host", "expected_host", "expected_url"),
    [
        ("/a?b=1", "example.com:8080", "example.com:8080", "http://example.com:8080/a?b=1"),
        ("/", "[::1]", "[::1]", "http://[::1]/"),
        ("http://target.example/a?b=1", "other", "target.example", "http://target.example/a?b=1"),
        (
            "https://target.example:8443",
            "other",
            "target.example:8443",
            "http://target.example:8443/",
        ),
        ("HTTP://Target?b=1", "", "Target", "http://Target/?b=1"),
    ],
    ids=["origin-form", "ipv6", "absolute-form", "absolute-form-empty-path", "absolute-query"],
)
async def test_host_and_url_come_from_the_target_authority_in_absolute_form(
    target: str, host: str, expected_host: str, expected_url: str
) -> None:
    # RFC 9112 3.2.2: for an absolute-form target the server MUST ignore the Host field
    # and use the target's authority; request.headers says the same, so that no part of
    # an application can be shown the other host. The scheme stays the connection's.
    app = App("where")

    @app.get("/<rest:path>")
    @app.get("/")
    async def where(request: Request, rest: str = "") -> object:
        return json(
            {
                "host": request.host,
                "url": request.url,
                "header": request.headers.get("host"),
                "path": request.path,
            }
        )

    request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    async with serving(app, "memory") as served, served.connect() as client:
        await client.send(request)
        response = await client.read_response()
    assert response.status == 200
    path = "/" + expected_url.split("/", 3)[3].partition("?")[0]
    assert _json.loads(response.body) == {
        "host": expected_host,
        "url": expected_url,
        "header": expected_host,
        "path": path,
    }


async def test_absolute_form_gives_http_1_0_a_host() -> None:
    app = App("where")

    @app.get("/")
    async def where(request: Request) -> object:
        return text(f"{request.host} {request.url}")

    async with serving(app, "memory") as served, served.connect() as client:
        await client.send(b"GET http://target.example/ HTTP/1.0\r\n\r\n")
        response = await client.read_response()
    assert response.body == b"target.example http://target.example/"


@pytest.mark.parametrize(
    ("pieces", "status"),
    [
        ([b"\r\n", b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"], 200),
        ([b"\r", b"\nGET / HTTP/1.1\r\nHost: test\r\n\r\n"], 200),
        ([b"\r", b"\n", b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"], 200),
        ([b"\n", b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"], 200),
        ([b"\r\n", b"\r\n", b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"], 400),
        ([b"\r", b"\n\r\nGET / HTTP/1.1\r\nHost: test\r\n\r\n"], 400),
        ([b"\r", b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"], 400),
    ],
    ids=["crlf", "cr-then-lf", "cr-lf-apart", "lf", "two-crlf", "cr-then-two", "bare-cr"],
)
async def test_one_empty_line_before_a_request_line_however_it_arrives(
    pieces: list[bytes], status: int
) -> None:
    # RFC 9112 2.2: at least one empty line SHOULD be ignored; trioweb ignores exactly
    # one, also when its CR and LF come in separate reads (in memory, each piece is read
    # on its own).
    async with serving(corpus_app(), "memory") as served, served.connect() as client:
        for piece in pieces:
            try:
                await client.send(piece)
            except trio.BrokenResourceError:
                break  # refused already, and closed
            await trio.testing.wait_all_tasks_blocked()
        response = await client.read_response()
        assert response.status == status
        if status == 200:
            await client.send(b"\r\n" + SMUGGLED)  # and again before the next request
            following = await client.read_response()
            assert (following.status, following.body) == (200, b"smuggled")
        else:
            assert await client.read_to_eof() == b""


async def test_trailer_fields_are_never_merged_into_headers(transport: str) -> None:
    # RFC 9110 6.5.1: trailers may not be merged into the header section unless the
    # field's definition allows it; trioweb reads and drops them.
    request = (
        head(b"POST /headers HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b"3\r\nabc\r\n0\r\nX-Trailer: yes\r\nContent-Length: 99\r\n\r\n"
    )
    async with serving(corpus_app(), transport) as served, served.connect() as client:
        await client.send(request)
        response = await client.read_response("POST")
        assert response.status == 200
        assert response.body == (b'{"body":"abc","headers":["host","transfer-encoding"]}')


async def test_request_line_over_the_header_limit_gets_414(transport: str) -> None:
    app = corpus_app()
    app.config.REQUEST_MAX_HEADER_SIZE = 1024
    long_target = b"/" + b"a" * 2000
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(b"GET " + long_target + b" HTTP/1.1\r\nHost: test\r\n\r\n")
        response = await client.read_response()
        assert response.status == 414
        assert await client.read_to_eof() == b""


async def test_request_line_over_the_limit_arriving_slowly_gets_414(transport: str) -> None:
    # h11 gives up on the incomplete line; it is still a 414, not a 431.
    app = corpus_app()
    app.config.REQUEST_MAX_HEADER_SIZE = 1024
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(b"GET /" + b"a" * 600)
        await trio.sleep(0.01)
        await client.send(b"a" * 600)
        response = await client.read_response()
        assert response.status == 414


async def test_headers_over_the_limit_with_a_short_line_get_431(transport: str) -> None:
    app = corpus_app()
    app.config.REQUEST_MAX_HEADER_SIZE = 1024
    many = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 40) for i in range(40))
    async with serving(app, transport) as served, served.connect() as client:
        with trio.fail_after(DEADLINE):
            await client.send(b"GET / HTTP/1.1\r\nHost: test\r\n" + many + b"\r\n")
        response = await client.read_response()
        assert response.status == 431


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (head(b"HEAD / HTTP/2.0", b"Host: test"), 505),
        (head(b"HEAD / HTTP/1.1", b"Host: test", b"X-A: a\x01b"), 400),
        (head(b"HEAD / HTTP/1.1", b"Host: test", b"Expect: teapot"), 417),
    ],
    ids=["505", "400", "417"],
)
async def test_refused_head_request_gets_its_status_without_a_body(
    transport: str, request_bytes: bytes, status: int
) -> None:
    # The error's head only, as for any HEAD (RFC 9110 9.3.2); found by the fuzzer.
    async with serving(corpus_app(), transport) as served, served.connect() as client:
        await client.send(request_bytes)
        response = await client.read_response("HEAD")
        assert response.status == status
        assert response.raw_body == b""
        assert await client.read_to_eof() == b""


@pytest.mark.parametrize(
    ("data", "start"),
    [
        (b"GET / HTTP/1.1\r\n", 0),
        (b"\r\nGET / HTTP/1.1\r\n", 2),
        (b"\nGET / HTTP/1.1\r\n", 1),
        (b"\r\n", 2),
        (b"\r", -1),
        (b"\r\n\r\nGET", None),
        (b"\n\nGET", None),
        (b"\r\n\r", None),
        (b"\rGET", None),
    ],
)
def test_request_start_ignores_exactly_one_empty_line(data: bytes, start: int | None) -> None:
    # The rule itself, as every parser's glue uses it (RFC 9112 2.2).
    if start is None:
        with pytest.raises(ProtocolError) as info:
            request_start(data)
        assert info.value.status_code == 400
    else:
        assert request_start(data) == start
