"""The RFC 9112 rules trioweb enforces on a request head, whichever parser read it.

A parser turns the head into a method, a target, a version and a header list, and
checks its shape (the request line, header names, whitespace before a colon). What a
parser may fold, hide or let through is checked here, on the parsed values and, for what
parsing hides, on the raw head bytes, so that every parser is held to the same rules:

* folded header lines (obs-fold), which a parser may join into one value;
* control characters in header values and the target;
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

__all__ = ["ProtocolError", "check_head", "head_end", "origin_form", "request_start"]


class ProtocolError(Exception):
    """A request trioweb refuses: what was wrong, in words, and the status to answer."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


# The end of a head: an empty line (a bare LF is accepted as a line end, RFC 9112 2.2).
_HEAD_END = re.compile(rb"\n\r?\n")
# Control characters other than HTAB, CR and LF (RFC 9110 5.5; CR and LF alone are
# refused by the parser already).
_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:([^\r\n]*)", re.IGNORECASE)
_TRANSFER_ENCODING = re.compile(rb"\ntransfer-encoding[ \t]*:([^\r\n]*)", re.IGNORECASE)

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


def head_end(raw: bytes | bytearray, start: int = 0) -> int:
    """Where the head in ``raw`` from ``start`` ends (after its empty line); -1 if not yet."""
    match = _HEAD_END.search(raw, start)
    return -1 if match is None else match.end()


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
def _valid_host(value: bytes) -> bool:
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
    if not _valid_host(authority):
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


def _check_transfer_encoding(head: bytes | bytearray) -> ProtocolError | None:
    values = _TRANSFER_ENCODING.findall(head)
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


def check_head(
    method: bytes,
    target: bytes,
    version: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    head: bytes | bytearray,
) -> ProtocolError | None:
    """The error to answer a request head with, or ``None`` if it may be served.

    ``headers`` are the parsed ``(name, value)`` pairs, names in lower case; ``head`` is
    the raw head, from its request line to its empty line.
    """
    if version != b"1.1" and version != b"1.0":
        # RFC 9110 15.6.6: the major version is not supported.
        return ProtocolError("only HTTP/1.0 and HTTP/1.1 are supported", 505)
    if method == b"CONNECT":
        # RFC 9110 9.3.6: tunnelling is for proxies; an origin server has no use for it.
        return ProtocolError("CONNECT is not supported")
    if target[:1] != b"/":
        if target == b"*":
            if method != b"OPTIONS":
                # RFC 9112 3.2.4: asterisk-form is only for a server-wide OPTIONS.
                return ProtocolError("the asterisk-form target is only for OPTIONS")
        else:
            error = _check_absolute_form(target)
            if error is not None:
                return error
    if b"\n " in head or b"\n\t" in head:
        # RFC 9112 5.2: a server MUST reject obs-fold outside message/http.
        return ProtocolError("folded header lines (obs-fold) are not allowed")
    if _CTL.search(head) is not None:
        # RFC 9110 5.5 (field values) and RFC 9112 3.2 (the target): no control
        # characters but HTAB; a recipient may reject them, and trioweb does.
        return ProtocolError("control characters in the request head")
    content_length = transfer_encoding = False
    hosts = 0
    host = expect = b""
    for name, value in headers:
        if name == b"host":
            hosts += 1
            host = value
        elif name == b"content-length":
            content_length = True
        elif name == b"transfer-encoding":
            transfer_encoding = True
        elif name == b"expect":
            expect = expect + b"," + value if expect else value
    if hosts != 1 and (hosts or version == b"1.1"):
        # RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host,
        # and to any request with more than one.
        return ProtocolError("no Host header" if not hosts else "more than one Host header")
    if host and not _valid_host(host):
        # RFC 9112 3.2: ... or with an invalid Host value. An empty one is allowed.
        return ProtocolError("the Host header is not a valid host and port")
    if transfer_encoding:
        if content_length:
            # RFC 9112 6.1 and 6.3: both framings at once may be a smuggling attempt;
            # "ought to be handled as an error", and the connection must close.
            return ProtocolError("both Content-Length and Transfer-Encoding")
        if version == b"1.0":
            # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
            return ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
        error = _check_transfer_encoding(head)
        if error is not None:
            return error
    elif content_length:
        values = _CONTENT_LENGTH.findall(head)
        if len(values) != 1 or b"," in values[0]:
            # RFC 9110 8.6: one decimal length. A list, even of equal values, or a
            # repeated field is refused rather than folded.
            return ProtocolError("Content-Length repeated or given as a list")
    if expect and any(element != b"100-continue" for element in _list_elements(expect)):
        # RFC 9110 10.1.1: 100-continue is the only expectation there is.
        return ProtocolError("an expectation other than 100-continue", 417)
    return None
