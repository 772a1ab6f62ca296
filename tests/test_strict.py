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
from dataclasses import dataclass
from http import HTTPStatus

import pytest
import trio
import trio.testing
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


@dataclass(frozen=True)
class Case:
    id: str
    request: bytes
    status: int
    rule: str


def head(*lines: bytes, body: bytes = b"") -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


REJECTED = [
    # -- framing: Content-Length and Transfer-Encoding ------------------------------------
    Case(
        "cl-and-te",
        head(
            b"POST / HTTP/1.1",
            b"Host: test",
            b"Content-Length: 5",
            b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        400,
        "RFC 9112 6.1/6.3: both framings may be smuggling; reject, and close",
    ),
    Case(
        "te-and-cl",
        head(
            b"POST / HTTP/1.1",
            b"Host: test",
            b"Transfer-Encoding: chunked",
            b"Content-Length: 0",
            body=b"0\r\n\r\n",
        ),
        400,
        "RFC 9112 6.1/6.3: the same, in the other order",
    ),
    Case(
        "te-on-http-1.0",
        head(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
        400,
        "RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing",
    ),
    Case(
        "te-unknown",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: gzip"),
        400,
        "RFC 9112 6.3: chunked is not the final coding: the length is unknown; 400, close",
    ),
    Case(
        "te-gzip-chunked",
        head(
            b"POST / HTTP/1.1",
            b"Host: test",
            b"Transfer-Encoding: gzip, chunked",
            body=b"0\r\n\r\n",
        ),
        501,
        "RFC 9112 6.1: a transfer coding the server does not understand (gzip): 501",
    ),
    Case(
        "te-chunked-gzip",
        head(
            b"POST / HTTP/1.1",
            b"Host: test",
            b"Transfer-Encoding: chunked, gzip",
            body=b"0\r\n\r\n",
        ),
        400,
        "RFC 9112 6.3: chunked present but not the final coding: 400, then close",
    ),
    Case(
        "te-two-lines",
        head(
            b"POST / HTTP/1.1",
            b"Host: test",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip",
            body=b"0\r\n\r\n",
        ),
        400,
        "RFC 9112 6.3: the lines combine to 'chunked, gzip'; trioweb refuses a repeated"
        " framing field as it does Content-Length",
    ),
    Case(
        "te-two-lines-chunked",
        head(
            b"POST / HTTP/1.1",
            b"Host: test",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        400,
        "RFC 9112 7.1: chunked is applied at most once; a repeated framing field is refused",
    ),
    Case(
        "te-chunked-twice",
        head(
            b"POST / HTTP/1.1",
            b"Host: test",
            b"Transfer-Encoding: chunked, chunked",
            body=b"0\r\n\r\n",
        ),
        400,
        "RFC 9112 7.1: a sender MUST NOT apply chunked more than once",
    ),
    Case(
        "te-empty",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: ,", body=b"0\r\n\r\n"),
        400,
        "RFC 9112 6.3: present, and chunked is not the final coding (there is none)",
    ),
    Case(
        "cl-duplicate-equal",
        head(b"POST / HTTP/1.1", b"Host: test", b"Content-Length: 3", b"Content-Length: 3")
        + b"abc",
        400,
        "RFC 9110 8.6: one Content-Length; a repeated field is refused, not folded",
    ),
    Case(
        "cl-duplicate-different",
        head(b"POST / HTTP/1.1", b"Host: test", b"Content-Length: 3", b"Content-Length: 4")
        + b"abcd",
        400,
        "RFC 9112 6.3: differing lengths are unrecoverable",
    ),
    Case(
        "cl-list",
        head(b"POST / HTTP/1.1", b"Host: test", b"Content-Length: 3, 3") + b"abc",
        400,
        "RFC 9110 8.6: Content-Length = 1*DIGIT, not a list",
    ),
    Case(
        "cl-hex",
        head(b"POST / HTTP/1.1", b"Host: test", b"Content-Length: 0x3") + b"abc",
        400,
        "RFC 9110 8.6: Content-Length is decimal digits",
    ),
    Case(
        "cl-signed",
        head(b"POST / HTTP/1.1", b"Host: test", b"Content-Length: +3") + b"abc",
        400,
        "RFC 9110 8.6: no sign",
    ),
    Case(
        "cl-negative",
        head(b"POST / HTTP/1.1", b"Host: test", b"Content-Length: -1"),
        400,
        "RFC 9110 8.6: no sign",
    ),
    # -- header fields ----------------------------------------------------------------
    Case(
        "obs-fold-space",
        head(b"GET / HTTP/1.1", b"Host: test", b"X-A: one", b" two"),
        400,
        "RFC 9112 5.2: a server MUST reject obs-fold",
    ),
    Case(
        "obs-fold-tab",
        head(b"GET / HTTP/1.1", b"Host: test", b"X-A: one", b"\ttwo"),
        400,
        "RFC 9112 5.2: a server MUST reject obs-fold",
    ),
    Case(
        "ctl-in-value",
        head(b"GET / HTTP/1.1", b"Host: test", b"X-A: a\x01b"),
        400,
        "RFC 9110 5.5: field values hold no control characters but HTAB",
    ),
    Case(
        "del-in-value",
        head(b"GET / HTTP/1.1", b"Host: test", b"X-A: a\x7fb"),
        400,
        "RFC 9110 5.5: DEL is a control character",
    ),
    Case(
        "esc-in-value",
        head(b"GET / HTTP/1.1", b"Host: test", b"X-A: \x1b[31m"),
        400,
        "RFC 9110 5.5: no control characters (here, a terminal escape)",
    ),
    Case(
        "nul-in-value",
        head(b"GET / HTTP/1.1", b"Host: test", b"X-A: a\x00b"),
        400,
        "RFC 9110 5.5: NUL is never allowed",
    ),
    Case(
        "cr-in-value",
        head(b"GET / HTTP/1.1", b"Host: test", b"X-A: a\rb"),
        400,
        "RFC 9112 2.2: a bare CR must be rejected or replaced",
    ),
    Case(
        "space-before-colon",
        head(b"GET / HTTP/1.1", b"Host: test", b"X-A : b"),
        400,
        "RFC 9112 5.1: no whitespace between field name and colon; MUST reject",
    ),
    Case(
        "tab-before-colon",
        head(b"GET / HTTP/1.1", b"Host: test", b"X-A\t: b"),
        400,
        "RFC 9112 5.1: no whitespace between field name and colon; MUST reject",
    ),
    Case(
        "no-colon",
        head(b"GET / HTTP/1.1", b"Host: test", b"no colon here"),
        400,
        "RFC 9112 5: field-line = field-name ':' OWS field-value OWS",
    ),
    Case(
        "empty-name",
        head(b"GET / HTTP/1.1", b"Host: test", b": value"),
        400,
        "RFC 9110 5.1: a field name is a token, at least one character",
    ),
    # -- Host -------------------------------------------------------------------------
    Case(
        "host-missing",
        head(b"GET / HTTP/1.1", b"X-A: b"),
        400,
        "RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host",
    ),
    Case(
        "host-duplicate",
        head(b"GET / HTTP/1.1", b"Host: test", b"Host: other"),
        400,
        "RFC 9112 3.2: ... or with more than one Host field line",
    ),
    Case(
        "host-userinfo",
        head(b"GET / HTTP/1.1", b"Host: user@test"),
        400,
        "RFC 9112 3.2: 400 for an invalid Host; Host = uri-host [':' port] (RFC 9110 7.2)",
    ),
    Case(
        "host-path",
        head(b"GET / HTTP/1.1", b"Host: test/path"),
        400,
        "RFC 9112 3.2: 400 for an invalid Host; a path is not part of a host",
    ),
    Case(
        "host-list",
        head(b"GET / HTTP/1.1", b"Host: a, b"),
        400,
        "RFC 9112 3.2: 400 for an invalid Host; one host, not a list",
    ),
    Case(
        "host-list-http-1.0",
        head(b"GET / HTTP/1.0", b"Host: a, b"),
        400,
        "RFC 9112 3.2: an invalid Host is a 400 in HTTP/1.0 too",
    ),
    Case(
        "host-space",
        head(b"GET / HTTP/1.1", b"Host: te st"),
        400,
        "RFC 9112 3.2: 400 for an invalid Host; no space in a reg-name",
    ),
    Case(
        "host-bad-port",
        head(b"GET / HTTP/1.1", b"Host: test:8o"),
        400,
        "RFC 9112 3.2: 400 for an invalid Host; port = *DIGIT",
    ),
    Case(
        "host-two-ports",
        head(b"GET / HTTP/1.1", b"Host: test:80:81"),
        400,
        "RFC 9112 3.2: 400 for an invalid Host; one port",
    ),
    Case(
        "host-no-name-with-port",
        head(b"GET / HTTP/1.1", b"Host: :80"),
        400,
        "RFC 9112 3.2, RFC 9110 4.2.1: an http URI with an empty host is invalid",
    ),
    Case(
        "host-bad-percent",
        head(b"GET / HTTP/1.1", b"Host: te%zzst"),
        400,
        "RFC 9112 3.2, RFC 3986 2.1: pct-encoded = '%' HEXDIG HEXDIG",
    ),
    Case(
        "host-obs-text",
        head(b"GET / HTTP/1.1", b"Host: t\xe9st"),
        400,
        "RFC 9112 3.2, RFC 3986 3.2.2: a reg-name is ASCII (an IDN is sent as punycode)",
    ),
    Case(
        "host-ipv6-unbracketed",
        head(b"GET / HTTP/1.1", b"Host: ::1"),
        400,
        "RFC 9112 3.2, RFC 3986 3.2.2: an IPv6 address goes in brackets",
    ),
    Case(
        "host-ipv6-invalid",
        head(b"GET / HTTP/1.1", b"Host: [::g]"),
        400,
        "RFC 9112 3.2, RFC 3986 3.2.2: an IP-literal holds an IPv6address",
    ),
    Case(
        "host-ipv6-zone",
        head(b"GET / HTTP/1.1", b"Host: [fe80::1%eth0]"),
        400,
        "RFC 9112 3.2, RFC 3986 3.2.2: no zone identifier in an IP-literal",
    ),
    Case(
        "host-bracket-in-name",
        head(b"GET / HTTP/1.1", b"Host: te[st]"),
        400,
        "RFC 9112 3.2, RFC 3986 3.2.2: brackets only around an IP-literal",
    ),
    # -- the request line ---------------------------------------------------------------
    Case(
        "asterisk-get",
        head(b"GET * HTTP/1.1", b"Host: test"),
        400,
        "RFC 9112 3.2.4: asterisk-form only for OPTIONS",
    ),
    Case(
        "connect",
        head(b"CONNECT test:443 HTTP/1.1", b"Host: test:443"),
        400,
        "RFC 9110 9.3.6: CONNECT is for proxies; not served",
    ),
    Case(
        "authority-form-get",
        head(b"GET test:80 HTTP/1.1", b"Host: test"),
        400,
        "RFC 9112 3.2.3: authority-form only for CONNECT",
    ),
    Case(
        "absolute-form-userinfo",
        head(b"GET http://user@test/ HTTP/1.1", b"Host: test"),
        400,
        "RFC 9110 4.2.4: userinfo in an http URI is to be treated as an error",
    ),
    Case(
        "absolute-form-empty-host",
        head(b"GET http:///path HTTP/1.1", b"Host: test"),
        400,
        "RFC 9110 4.2.1: an http URI with an empty host MUST be rejected",
    ),
    Case(
        "absolute-form-port-only",
        head(b"GET http://:80/ HTTP/1.1", b"Host: test"),
        400,
        "RFC 9110 4.2.1: an http URI with an empty host MUST be rejected",
    ),
    Case(
        "absolute-form-invalid-host",
        head(b"GET http://te%zzst/ HTTP/1.1", b"Host: test"),
        400,
        "RFC 9112 3.2.2 / RFC 3986 3.2.2: the target's authority is a host [: port]",
    ),
    Case(
        "absolute-form-other-scheme",
        head(b"GET ftp://test/ HTTP/1.1", b"Host: test"),
        400,
        "RFC 9110 4.2: an origin server serves http and https URIs only",
    ),
    Case(
        "absolute-form-invalid-host-header",
        head(b"GET http://test/ HTTP/1.1", b"Host: a, b"),
        400,
        "RFC 9112 3.2: the Host field is ignored, but an invalid one is still a 400",
    ),
    Case(
        "two-empty-lines-before-request-line",
        b"\r\n" + head(b"\r\nGET / HTTP/1.1", b"Host: test"),
        400,
        "RFC 9112 2.2: one empty line before a request line is ignored; trioweb takes no more",
    ),
    Case(
        "two-bare-lf-before-request-line",
        b"\n\n" + head(b"GET / HTTP/1.1", b"Host: test"),
        400,
        "RFC 9112 2.2: one empty line before a request line is ignored; trioweb takes no more",
    ),
    Case(
        "cr-before-request-line",
        b"\r" + head(b"GET / HTTP/1.1", b"Host: test"),
        400,
        "RFC 9112 2.2: a bare CR is not an empty line; the request line is malformed",
    ),
    Case(
        "ctl-in-target",
        head(b"GET /a\x01b HTTP/1.1", b"Host: test"),
        400,
        "RFC 9112 3.2 / RFC 3986: no control characters in the target",
    ),
    Case(
        "space-in-target",
        head(b"GET /a b HTTP/1.1", b"Host: test"),
        400,
        "RFC 9112 3: request-line = method SP request-target SP HTTP-version",
    ),
    Case(
        "http-2.0",
        head(b"GET / HTTP/2.0", b"Host: test"),
        505,
        "RFC 9110 15.6.6: major version not supported",
    ),
    Case(
        "http-1.2",
        head(b"GET / HTTP/1.2", b"Host: test"),
        505,
        "RFC 9110 15.6.6: only 1.0 and 1.1 are served (RFC 9112 2.5)",
    ),
    Case(
        "http-3.0",
        head(b"GET / HTTP/3.0", b"Host: test"),
        505,
        "RFC 9110 15.6.6",
    ),
    Case(
        "http-lowercase",
        head(b"GET / http/1.1", b"Host: test"),
        400,
        "RFC 9112 2.3: HTTP-name is case-sensitive",
    ),
    Case(
        "http-0.9",
        b"GET /\r\n\r\n",
        400,
        "RFC 9112 2.3: no HTTP/0.9 simple requests",
    ),
    # -- chunked bodies (RFC 9112 7.1: chunk-size = 1*HEXDIG, then optional extensions)
    Case(
        "chunk-size-space",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b"3 \r\nabc\r\n0\r\n\r\n",
        400,
        "RFC 9112 7.1: no whitespace after chunk-size (only before ';' as BWS)",
    ),
    Case(
        "chunk-size-leading-space",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b" 3\r\nabc\r\n0\r\n\r\n",
        400,
        "RFC 9112 7.1: chunk-size starts with a hex digit",
    ),
    Case(
        "chunk-size-sign",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b"+3\r\nabc\r\n0\r\n\r\n",
        400,
        "RFC 9112 7.1: chunk-size = 1*HEXDIG, no sign",
    ),
    Case(
        "chunk-size-0x",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b"0x3\r\nabc\r\n0\r\n\r\n",
        400,
        "RFC 9112 7.1: chunk-size = 1*HEXDIG, no 0x prefix",
    ),
    Case(
        "chunk-size-overlong",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b"1"
        + b"0" * 16
        + b"\r\nabc\r\n",
        400,
        "RFC 9112 7.1: a recipient must guard against integer overflow",
    ),
    Case(
        "chunk-bare-lf",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b"3\nabc\r\n0\r\n\r\n",
        400,
        "RFC 9112 7.1: chunk lines end in CRLF",
    ),
    Case(
        "chunk-data-overrun",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b"3\r\nabcd\r\n0\r\n\r\n",
        400,
        "RFC 9112 7.1: chunk-data is followed by CRLF",
    ),
]


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


ACCEPTED = [
    Case("plain", head(b"GET / HTTP/1.1", b"Host: test"), 200, "RFC 9112 3.2.1"),
    Case(
        "options-asterisk",
        head(b"OPTIONS * HTTP/1.1", b"Host: test"),
        404,  # routed like any path: no route for "*"
        "RFC 9112 3.2.4: asterisk-form is fine for OPTIONS",
    ),
    Case(
        "absolute-form",
        head(b"GET http://test/ HTTP/1.1", b"Host: test"),
        200,
        "RFC 9112 3.2.2: a server MUST accept absolute-form",
    ),
    Case("http-1.0-no-host", head(b"GET / HTTP/1.0"), 200, "RFC 9112 3.2: Host is 1.1's"),
    Case(
        "empty-host",
        head(b"GET / HTTP/1.1", b"Host:"),
        200,
        "RFC 9112 3.2: an empty Host is allowed when there is no authority",
    ),
    Case(
        "tab-and-obs-text-in-value",
        head(b"GET / HTTP/1.1", b"Host: test", b"X-A: a\tb \xe9"),
        200,
        "RFC 9110 5.5: HTAB, SP and obs-text are allowed inside a value",
    ),
    Case(
        "cl-with-whitespace",
        head(b"POST / HTTP/1.1", b"Host: test", b"Content-Length:   3  ") + b"abc",
        200,
        "RFC 9112 5.1: OWS around the value is not part of it",
    ),
    Case(
        "chunk-extension",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b'3;name="value"\r\nabc\r\n0\r\n\r\n',
        200,
        "RFC 9112 7.1.1: chunk extensions are ignored",
    ),
    Case(
        "te-empty-list-elements",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: ,chunked")
        + b"3\r\nabc\r\n0\r\n\r\n",
        200,
        "RFC 9110 5.6.1: a recipient MUST ignore empty list elements",
    ),
    Case(
        "te-empty-list-elements-around",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: , ,chunked , ")
        + b"3\r\nabc\r\n0\r\n\r\n",
        200,
        "RFC 9110 5.6.1: empty elements and OWS around them are ignored",
    ),
    Case(
        "expect-empty-list-elements",
        head(
            b"POST / HTTP/1.1",
            b"Host: test",
            b"Content-Length: 3",
            b"Expect: ,100-continue,",
        )
        + b"abc",
        200,
        "RFC 9110 5.6.1 and 10.1.1: the one expectation, among empty elements",
    ),
    Case(
        "empty-line-before-request-line",
        b"\r\n" + head(b"GET / HTTP/1.1", b"Host: test"),
        200,
        "RFC 9112 2.2: a server SHOULD ignore at least one empty line before a request",
    ),
    Case(
        "bare-lf-before-request-line",
        b"\n" + head(b"GET / HTTP/1.1", b"Host: test"),
        200,
        "RFC 9112 2.2: one empty line is ignored; a bare LF may end a line",
    ),
    Case(
        "crlf-after-body",
        head(b"POST / HTTP/1.1", b"Host: test", b"Content-Length: 3") + b"abc\r\n",
        200,
        "RFC 9112 2.2: the CRLF some clients add after a body is ignored before the next",
    ),
    Case(
        "host-with-port",
        head(b"GET / HTTP/1.1", b"Host: test:8080"),
        200,
        "RFC 9110 7.2: Host = uri-host [ ':' port ]",
    ),
    Case(
        "host-ipv4",
        head(b"GET / HTTP/1.1", b"Host: 127.0.0.1:80"),
        200,
        "RFC 3986 3.2.2: IPv4address",
    ),
    Case(
        "host-ipv6",
        head(b"GET / HTTP/1.1", b"Host: [::1]:8080"),
        200,
        "RFC 3986 3.2.2: IP-literal",
    ),
    Case(
        "host-reg-name-characters",
        head(b"GET / HTTP/1.1", b"Host: A-b_c~d.e%41!$&'()*+,;=:"),
        200,
        "RFC 3986 3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ); port = *DIGIT",
    ),
    Case(
        "absolute-form-with-port-and-query",
        head(b"GET HTTP://Test:8080?a=1 HTTP/1.1", b"Host: other"),
        200,
        "RFC 9112 3.2.2: an empty path is '/'; the scheme is case-insensitive (RFC 3986 3.1)",
    ),
    Case(
        "te-chunked-mixed-case",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: Chunked")
        + b"3\r\nabc\r\n0\r\n\r\n",
        200,
        "RFC 9112 7: transfer coding names are case-insensitive",
    ),
]


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
