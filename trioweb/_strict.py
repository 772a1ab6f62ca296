"""The RFC 9112 rules trioweb enforces on a request head, whichever engine reads it.

The engine (:mod:`._engine`) first checks the head against the grammar of RFC 9112: the
request line, and every field line as ``token ":" OWS value OWS``, which refuses folded
lines (obs-fold), control characters and whitespace before a colon. The rules that need
the meaning of the fields are here, applied before any parser sees the head, so that
both engines refuse the same requests with the same status and the same words:

* the ``Host`` field: exactly one in HTTP/1.1, at most one in HTTP/1.0, and a valid
  RFC 3986 host with an optional port; an absolute-form target's authority the same;
* the body's framing: ``Content-Length`` once, as one decimal number; a
  ``Transfer-Encoding`` line once, ending in ``chunked``, never with ``Content-Length``
  or in HTTP/1.0;
* HTTP versions other than 1.0 and 1.1, ``CONNECT``, and request-target forms that do
  not fit the method;
* expectations other than ``100-continue``.

Refusals are :class:`ProtocolError`, worded for the client: they say what was wrong
and never echo the offending bytes. Each check costs a scan of the head at most; most
are a byte search or a comparison in the one loop over the headers.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence

from ._events import ProtocolError

__all__ = ["HeadFacts", "asks_to_close", "check_head", "origin_form", "request_start"]

# The fields whose meaning the rules need, found in a head that follows the grammar
# (CRLF line ends, no obs-fold), so that each is one whole line.
_RULED_FIELDS = re.compile(
    rb"\n(content-length|transfer-encoding|host|expect|connection):[ \t]*(.*?)[ \t]*\r",
    re.IGNORECASE,
)
_DIGITS = re.compile(rb"[0-9]{1,19}")

# RFC 9110 7.2: Host = uri-host [ ":" port ], with RFC 3986 3.2.2's host:
#   host       = IP-literal / IPv4address / reg-name
#   IP-literal = "[" ( IPv6address / IPvFuture ) "]"
#   reg-name   = *( unreserved / pct-encoded / sub-delims )
# An IPv4address is also a reg-name. Checked as "nothing left once its bytes are
# deleted", then the escapes: one pass, even over a long invalid value (a regular
# expression of the grammar backtracks through all of it).
_REG_NAME_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=%"
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_IPV_FUTURE = re.compile(rb"[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")
# RFC 3986 3: scheme "://" authority path-abempty [ "?" query ]; the authority ends at
# the first "/", "?" or "#".
_ABSOLUTE_FORM = re.compile(rb"([A-Za-z][A-Za-z0-9+\-.]*)://([^/?#]*)(.*)", re.DOTALL)


def request_start(data: bytes | bytearray) -> int:
    """Where the request line starts in ``data``, the first bytes received for a request.

    RFC 9112 2.2: a server SHOULD ignore at least one empty line before a request line
    (old clients send a CRLF after a POST body). trioweb ignores one, CRLF or a bare LF,
    and refuses a second, like a bare CR: more is no client's habit, and may be the
    leftover of a body longer than its framing said. ``-1`` while ``data`` is only a CR
    (its LF may be on the way).
    """
    first = data[:1]
    if first == b"\n":
        start = 1
    elif first == b"\r":
        if len(data) == 1:
            return -1
        if data[1:2] != b"\n":
            raise ProtocolError("a bare CR before the request line")
        start = 2
    else:
        return 0
    if data[start : start + 1] in (b"\r", b"\n"):
        raise ProtocolError("more than one empty line before the request line")
    return start


# Most requests to a server name one of a few hosts: a cache lookup costs a third of
# the check.
@functools.lru_cache(maxsize=32)
def valid_host(value: bytes) -> bool:
    """Whether ``value`` is ``host [":" port]`` with a non-empty RFC 3986 host."""
    if value[:1] == b"[":
        close = value.find(b"]")
        literal, port = value[1:close], value[close + 1 :]
        if close == -1 or (port and port[:1] != b":"):
            return False
        if literal[:1] in (b"v", b"V"):
            if _IPV_FUTURE.fullmatch(literal) is None:
                return False
        else:
            if b"%" in literal:  # a zone: Python takes one, RFC 3986 does not
                return False
            try:
                ipaddress.IPv6Address(literal.decode("ascii"))
            except ValueError:
                return False
        port = port[1:]
    else:
        name, _, port = value.partition(b":")
        # An empty host: an http URI with one is invalid (RFC 9110 4.2.1).
        if not name or name.translate(None, _REG_NAME_BYTES):
            return False
        if b"%" in name and _BAD_ESCAPE.search(name) is not None:
            return False
    return not port or port.isdigit()


def _check_absolute_form(target: bytes) -> ProtocolError | None:
    match = _ABSOLUTE_FORM.fullmatch(target)
    if match is None:
        # RFC 9112 3.2: authority-form is only for CONNECT; nothing else remains.
        return ProtocolError("the request target is in no form allowed for this method")
    scheme, authority = match.group(1, 2)
    if scheme.lower() not in (b"http", b"https"):
        # RFC 9110 4.2: an origin server serves http and https URIs; others want a proxy.
        return ProtocolError("the request target is not an http or https URI")
    if b"@" in authority:
        # RFC 9110 4.2.4: userinfo in an http URI is to be treated as an error (it is
        # a known way to disguise the host).
        return ProtocolError("the request target has userinfo before its host")
    if not valid_host(authority):
        # RFC 9110 4.2.1: an empty host MUST be rejected; RFC 3986 3.2.2 for the rest.
        return ProtocolError("the request target's authority is not a valid host and port")
    return None


def origin_form(
    target: bytes, headers: Sequence[tuple[bytes, bytes]]
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """An absolute-form request as origin form: its path and query, and ``Host``.

    RFC 9112 3.2.2: the server MUST ignore the received ``Host`` and use the target's
    authority instead. It replaces the ``Host`` value (or becomes one, for an HTTP/1.0
    request without), so that the whole application sees one host. ``target`` must have
    passed :func:`check_head`.
    """
    match = _ABSOLUTE_FORM.fullmatch(target)
    assert match is not None
    authority, rest = match.group(2, 3)
    if rest[:1] != b"/":
        rest = b"/" + rest  # an empty path is "/" (RFC 9112 3.2.1)
    replaced = [(name, value) for name, value in headers if name != b"host"]
    replaced.append((b"host", authority))
    return rest, replaced


def _list_elements(value: bytes) -> list[bytes]:
    """The elements of a list field value, lower-cased; empty ones ignored (RFC 9110 5.6.1)."""
    return [element for part in value.split(b",") if (element := part.strip(b" \t").lower())]


def _check_transfer_encoding(values: list[bytes]) -> ProtocolError | None:
    if len(values) != 1:
        # The lines would combine into one list (RFC 9110 5.3), but a repeated framing
        # field is refused, as Content-Length is, rather than combined.
        return ProtocolError("Transfer-Encoding repeated")
    codings = _list_elements(values[0])
    if not codings or codings[-1] != b"chunked":
        # RFC 9112 6.3: the body's length cannot be determined; 400, then close.
        return ProtocolError("chunked is not the final transfer coding")
    if len(codings) > 1:
        if b"chunked" in codings[:-1]:
            # RFC 9112 7.1: a sender MUST NOT apply chunked more than once.
            return ProtocolError("chunked applied more than once")
        # RFC 9112 6.1: a transfer coding the server does not understand: 501.
        return ProtocolError("transfer codings other than chunked are not supported", 501)
    return None


class HeadFacts:
    """What the rules found out about a head: its framing, and whether it may be kept."""

    __slots__ = ("chunked", "content_length", "expect_continue", "keep_alive")

    def __init__(self) -> None:
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.keep_alive = True


def check_head(method: bytes, target: bytes, version: bytes, head: bytes) -> HeadFacts:
    """What ``head`` means for its framing; raises :class:`ProtocolError` to refuse it.

    ``head`` is the raw head in CRLF form, from its request line to its empty line, and
    follows the grammar; ``method``, ``target`` and ``version`` (``b"1.1"``) are from
    its request line.
    """
    if version != b"1.1" and version != b"1.0":
        # RFC 9110 15.6.6: the major version is not supported.
        raise ProtocolError("only HTTP/1.0 and HTTP/1.1 are supported", 505)
    if method == b"CONNECT":
        # RFC 9110 9.3.6: tunnelling is for proxies; an origin server has no use for it.
        raise ProtocolError("CONNECT is not supported")
    if target[:1] != b"/":
        if target == b"*":
            if method != b"OPTIONS":
                # RFC 9112 3.2.4: asterisk-form is only for a server-wide OPTIONS.
                raise ProtocolError("the asterisk-form target is only for OPTIONS")
        else:
            error = _check_absolute_form(target)
            if error is not None:
                raise error
    facts = HeadFacts()
    lengths: list[bytes] = []
    codings: list[bytes] = []
    hosts = 0
    host = expect = b""
    for name, value in _RULED_FIELDS.findall(head):
        name = name.lower()
        if name == b"host":
            hosts += 1
            host = value
        elif name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings.append(value)
        elif name == b"expect":
            expect = expect + b"," + value if expect else value
        elif asks_to_close(value):
            facts.keep_alive = False
    if hosts != 1 and (hosts or version == b"1.1"):
        # RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host,
        # and to any request with more than one.
        raise ProtocolError("no Host header" if not hosts else "more than one Host header")
    if host and not valid_host(host):
        # RFC 9112 3.2: ... or with an invalid Host value. An empty one is allowed.
        raise ProtocolError("the Host header is not a valid host and port")
    if codings:
        if lengths:
            # RFC 9112 6.1 and 6.3: both framings at once may be a smuggling attempt;
            # "ought to be handled as an error", and the connection must close.
            raise ProtocolError("both Content-Length and Transfer-Encoding")
        if version == b"1.0":
            # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
            raise ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
        error = _check_transfer_encoding(codings)
        if error is not None:
            raise error
        facts.chunked = True
    elif lengths:
        if len(lengths) != 1 or _DIGITS.fullmatch(lengths[0]) is None:
            # RFC 9110 8.6: one decimal length. A list, even of equal values, or a
            # repeated field is refused rather than folded.
            raise ProtocolError("Content-Length repeated, given as a list, or not a number")
        facts.content_length = int(lengths[0])
    if expect:
        expectations = _list_elements(expect)
        if any(element != b"100-continue" for element in expectations):
            # RFC 9110 10.1.1: 100-continue is the only expectation there is.
            raise ProtocolError("an expectation other than 100-continue", 417)
        facts.expect_continue = bool(expectations) and version == b"1.1"
    if version == b"1.0":
        facts.keep_alive = False  # (as h11: no keep-alive for HTTP/1.0 clients)
    return facts


def asks_to_close(connection: bytes) -> bool:
    """Whether a ``Connection`` value holds the ``close`` option (RFC 9112 9.6)."""
    return b"close" in connection.lower() and b"close" in _list_elements(connection)
