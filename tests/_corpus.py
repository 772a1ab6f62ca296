"""Request corpora, and the Hypothesis strategies that mutate them, for every test.

The strict-parsing table (:data:`REJECTED`, :data:`ACCEPTED`: raw requests, the status
each must get, the rule that says so), the valid requests the fuzzers start from, and
the mutations they apply. Shared here because no test module imports another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import strategies as st


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
    # -- Expect ---------------------------------------------------------------------------
    Case(
        "expect-other",
        head(b"GET / HTTP/1.1", b"Host: test", b"Expect: teapot"),
        417,
        "RFC 9110 10.1.1: 100-continue is the only expectation; 417 for any other",
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
        "chunk-extension-bad",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b"3;a b\r\nabc\r\n0\r\n\r\n",
        400,
        "RFC 9112 7.1.1: chunk-ext = *( BWS ';' BWS name [ BWS '=' BWS value ] )",
    ),
    Case(
        "chunk-data-overrun",
        head(b"POST / HTTP/1.1", b"Host: test", b"Transfer-Encoding: chunked")
        + b"3\r\nabcd\r\n0\r\n\r\n",
        400,
        "RFC 9112 7.1: chunk-data is followed by CRLF",
    ),
]

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


# -- the fuzzers' inputs -------------------------------------------------------------

#: Well-formed requests, for the routes of the connection fuzzer's app (tests/test_fuzz.py).
VALID = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /stream HTTP/1.0\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /missing?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nTrailer: v\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4097\r\n\r\n" + b"x" * 4097,
    b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"a\r\n0123456789\r\n0\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"801\r\n" + b"y" * 2049 + b"\r\n0\r\n\r\n",
    b"POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789",
    b"POST /ignore HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"v" * 960 + b"\r\n\r\n",
]
#: Every request above, and the strict-parsing table, by name.
SEEDS = {
    **{f"valid-{i}": request for i, request in enumerate(VALID)},
    **{case.id: case.request for case in REJECTED + ACCEPTED},
    # Refused once its whole head is read, so known to be a HEAD: no body in the error.
    "head-refused": b"HEAD / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n",
}

# Bytes that matter to an HTTP/1.1 parser, for insertions.
SPECIAL = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b":", b",", b";", b"\t", b"\r\n\r\n", b"\x7f"]
# Tokens to build "almost HTTP" from.
TOKENS = [
    *(b"%s " % method for method in (b"GET", b"HEAD", b"POST", b"OPTIONS", b"CONNECT")),
    b"/",
    b"/echo",
    b"/upload",
    b"/stream",
    b"*",
    b" HTTP/1.1",
    b" HTTP/1.0",
    b"\r\n",
    b"\n",
    b"Host: a\r\n",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"0",
    b"5",
    b"ff",
    b"hello",
    *SPECIAL,
]


seeds = st.sampled_from(list(SEEDS.values()))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed, a few valid requests pipelined or two seeds spliced; then a few mutations."""
    base = draw(st.sampled_from(["seed", "pipelined", "spliced"]))
    if base == "seed":
        data = draw(seeds)
    elif base == "pipelined":
        data = b"".join(draw(st.lists(st.sampled_from(VALID), min_size=2, max_size=3)))
    else:
        one, two = draw(seeds), draw(seeds)
        data = one[: draw(st.integers(0, len(one)))] + two[draw(st.integers(0, len(two))) :]
    for _ in range(draw(st.integers(0, 3))):
        data = mutate(draw, data)
    return data


def mutate(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` changed once: a byte inserted, deleted or replaced, a line repeated, a
    number changed (a Content-Length, a chunk size, a version), another method."""
    i = draw(st.integers(0, len(data)))
    lines = data.split(b"\r\n")
    numbers = [m.span() for m in re.finditer(rb"[0-9a-fA-F]+", data)]
    how = draw(st.sampled_from(["insert", "delete", "replace", "repeat", "number", "method"]))
    if how == "method":
        method = draw(
            st.sampled_from(
                [b"GET", b"HEAD", b"POST", b"PUT", b"OPTIONS", b"CONNECT", b"FOO", b"get", b"PRI"]
            )
        )
        return re.sub(rb"^[A-Z]*", method, data, count=1)
    if how == "insert":
        return data[:i] + draw(st.sampled_from(SPECIAL)) + data[i:]
    if how == "delete":
        return data[:i] + data[i + draw(st.integers(1, 8)) :]
    if how == "repeat" and len(lines) > 2:
        n = draw(st.integers(1, len(lines) - 2))
        return b"\r\n".join(lines[: n + 1] + lines[n:])
    if how == "number" and numbers:
        start, end = draw(st.sampled_from(numbers))
        number = draw(
            st.one_of(
                st.integers(0, 20),
                st.integers(0, 5000),
                st.sampled_from([2**31, 2**32, 2**63, 2**64, 10**30]),
            )
        )
        form = draw(st.sampled_from([b"%d", b"%x", b"%X", b"-%d", b"0%d"]))
        return data[:start] + form % number + data[end:]
    return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]


arbitrary = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(TOKENS), max_size=40).map(b"".join),
)
