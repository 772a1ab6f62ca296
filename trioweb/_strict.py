"""The rules a request head must follow, shared by every HTTP engine.

The engine (:mod:`._engine`) first checks a head against the grammar of RFC 9112 (the
request line, and every field line as ``token ":" OWS value OWS``, which refuses obs-fold,
control characters and whitespace before a colon). :func:`check_head` then applies the
rules that need the meaning of the fields, on the raw bytes and before any parser sees
them, so that every engine refuses the same requests with the same status and words:

* HTTP versions other than 1.0 and 1.1 (505), ``CONNECT``, and request-target forms that
  do not fit the method;
* ``Host``: exactly one in HTTP/1.1, and a valid ``host[:port]`` (RFC 9112 3.2); with an
  absolute-form target, the target's authority is the host (RFC 9112 3.2.2);
* ``Content-Length``: one decimal value, never repeated or given as a list (RFC 9110 8.6);
* ``Transfer-Encoding``: ``chunked`` must be the final coding, once (RFC 9112 6.3, 400);
  any other coding is not implemented (501); empty list elements are ignored (RFC 9110
  5.6.1); never with ``Content-Length`` nor in HTTP/1.0 (smuggling vectors);
* ``Expect``: ``100-continue`` is the only expectation (RFC 9110 10.1.1, 417).

Each check costs a scan of the head at most; most requests pay one regex search.
"""

from __future__ import annotations

import re

from ._events import ProtocolError

__all__ = ["HeadFacts", "asks_to_close", "check_head"]

# The fields whose meaning the rules need, found in a head already known to follow the
# grammar (CRLF line ends, no obs-fold), so each is one whole line.
_FRAMING_FIELDS = re.compile(
    rb"\n(content-length|transfer-encoding|host|expect|connection)[ \t]*:[ \t]*(.*?)[ \t]*\r",
    re.IGNORECASE,
)
# RFC 3986 3.2.2 and 3.2.3: host = IP-literal / IPv4address / reg-name, then [":" port].
_HOST = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\]"
    rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?"
)
_DIGITS = re.compile(rb"[0-9]{1,19}")


class HeadFacts:
    """What :func:`check_head` learned about a head: its framing and its host."""

    __slots__ = ("chunked", "content_length", "expect_continue", "host", "keep_alive")

    def __init__(self) -> None:
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.keep_alive = True
        #: The host the target names (absolute form), to use instead of ``Host``.
        self.host: bytes | None = None


def check_head(method: bytes, target: bytes, version: bytes, raw: bytes) -> HeadFacts:
    """Apply the rules to a head that follows the grammar; raise :class:`ProtocolError`.

    ``raw`` is the whole head in CRLF form, from its request line to its empty line.
    """
    if version != b"1.1" and version != b"1.0":
        # RFC 9110 15.6.6: the major version is not supported.
        raise ProtocolError(f"HTTP/{version.decode('ascii')} is not supported", 505)
    facts = HeadFacts()
    if method == b"CONNECT":
        # RFC 9110 9.3.6: tunnelling is for proxies; an origin server has no use for it.
        raise ProtocolError("CONNECT is not supported")
    if target[:1] != b"/":
        if target == b"*":
            if method != b"OPTIONS":
                # RFC 9112 3.2.4: asterisk-form is only for a server-wide OPTIONS.
                raise ProtocolError("the asterisk-form target is only for OPTIONS")
        else:
            facts.host = _absolute_authority(target)
    lengths: list[bytes] = []
    codings: list[bytes] | None = None
    hosts = 0
    for name, value in _FRAMING_FIELDS.findall(raw):
        name = name.lower()
        if name == b"host":
            hosts += 1
            if _HOST.fullmatch(value) is None:
                # RFC 9112 3.2: a server MUST respond 400 to an invalid Host.
                raise ProtocolError("invalid Host header")
        elif name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings = codings or []
            codings += (c.strip().lower() for c in value.split(b",") if c.strip())
        elif name == b"connection":
            if asks_to_close(value):
                facts.keep_alive = False
        elif value.lower() == b"100-continue":
            facts.expect_continue = version == b"1.1"
        else:
            # RFC 9110 10.1.1: 100-continue is the only expectation there is.
            raise ProtocolError("unsupported expectation", 417)
    if hosts != 1 and (hosts or version == b"1.1"):
        # RFC 9112 3.2: exactly one Host in HTTP/1.1, and never more than one.
        raise ProtocolError("missing Host header" if not hosts else "more than one Host header")
    if codings is not None:
        if lengths:
            # RFC 9112 6.1 and 6.3: both framings at once may be a smuggling attempt;
            # "ought to be handled as an error", and the connection must close.
            raise ProtocolError("both Content-Length and Transfer-Encoding")
        if version == b"1.0":
            # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
            raise ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
        chunked = codings.count(b"chunked")
        if chunked and (codings[-1] != b"chunked" or chunked > 1):
            # RFC 9112 6.3: chunked not final (or applied twice): the length cannot be
            # determined; 400, then close.
            raise ProtocolError("Transfer-Encoding does not end with chunked, once")
        if codings != [b"chunked"]:
            # RFC 9112 6.1: a transfer coding the server does not understand (or none).
            raise ProtocolError("only the chunked transfer coding is supported", 501)
        facts.chunked = True
    elif lengths:
        if len(lengths) != 1 or _DIGITS.fullmatch(lengths[0]) is None:
            # RFC 9110 8.6: one decimal length. A list, even of equal values, or a
            # repeated field is refused rather than folded.
            raise ProtocolError("Content-Length repeated, given as a list, or not a number")
        facts.content_length = int(lengths[0])
    if version == b"1.0":
        facts.keep_alive = False
    return facts


def _absolute_authority(target: bytes) -> bytes:
    """The authority of an absolute-form target (RFC 9112 3.2.2); 400 if it is not one."""
    scheme, sep, rest = target.partition(b"://")
    if not sep or not scheme.isalpha():
        # RFC 9112 3.2: authority-form is only for CONNECT; nothing else remains.
        raise ProtocolError("the request target is in no form allowed for this method")
    authority = rest.split(b"/", 1)[0].split(b"?", 1)[0]
    if not authority or _HOST.fullmatch(authority) is None:
        raise ProtocolError("invalid authority in the request target")
    return authority


def asks_to_close(connection: bytes) -> bool:
    """Whether a ``Connection`` value holds the ``close`` option (RFC 9112 9.6)."""
    return b"close" in connection.lower() and any(
        option.strip().lower() == b"close" for option in connection.split(b",")
    )
