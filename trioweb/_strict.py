"""What h11 lets through and trioweb refuses: the RFC 9112 MUSTs h11 leaves to its user.

h11 parses a request head into an ``h11.Request`` and checks much of it (the request
line's shape, header names, whitespace before a colon, conflicting ``Content-Length``
values, a missing or repeated ``Host``). :func:`check_head` adds the rest, using the
parsed event and, for what parsing hides, the raw head bytes:

* folded header lines (obs-fold), which h11 joins into one value;
* control characters, which h11 keeps in header values and the target;
* a ``Content-Length`` repeated or given as a list, which h11 folds into one value;
* ``Content-Length`` together with ``Transfer-Encoding``, and ``Transfer-Encoding`` in
  an HTTP/1.0 request, both request-smuggling vectors;
* HTTP versions other than 1.0 and 1.1, ``CONNECT``, and request-target forms that do
  not fit the method.

Each check costs a scan of the head at most; most are a byte search.
"""

from __future__ import annotations

import re

import h11

__all__ = ["check_head", "head_end"]

# The end of a head: an empty line (a bare LF is accepted as a line end, as by h11).
_HEAD_END = re.compile(rb"\n\r?\n")
# Control characters other than HTAB, CR and LF (RFC 9110 5.5; CR and LF alone are
# refused by h11 already).
_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:([^\r\n]*)", re.IGNORECASE)


def head_end(raw: bytes | bytearray) -> int:
    """Where the head in ``raw`` ends (the index after its empty line); -1 if not yet."""
    match = _HEAD_END.search(raw)
    return -1 if match is None else match.end()


def _error(message: str, status: int = 400) -> h11.RemoteProtocolError:
    return h11.RemoteProtocolError(message, error_status_hint=status)


def check_head(event: h11.Request, head: bytes | bytearray) -> h11.RemoteProtocolError | None:
    """The error to answer ``event`` with, or ``None`` if it may be served.

    ``head`` is the request's raw head, from its request line to its empty line.
    """
    version = event.http_version
    if version != b"1.1" and version != b"1.0":
        # RFC 9110 15.6.6: the major version is not supported.
        return _error(f"HTTP/{version.decode('ascii')} is not supported", 505)
    method, target = event.method, event.target
    if method == b"CONNECT":
        # RFC 9110 9.3.6: tunnelling is for proxies; an origin server has no use for it.
        return _error("CONNECT is not supported")
    if target[:1] != b"/":
        if target == b"*":
            if method != b"OPTIONS":
                # RFC 9112 3.2.4: asterisk-form is only for a server-wide OPTIONS.
                return _error("the asterisk-form target is only for OPTIONS")
        elif b"://" not in target:
            # RFC 9112 3.2: authority-form is only for CONNECT; nothing else remains.
            return _error("the request target is in no form allowed for this method")
    if b"\n " in head or b"\n\t" in head:
        # RFC 9112 5.2: a server MUST reject obs-fold outside message/http.
        return _error("folded header lines (obs-fold) are not allowed")
    if _CTL.search(head) is not None:
        # RFC 9110 5.5 (field values) and RFC 9112 3.2 (the target): no control
        # characters but HTAB; a recipient may reject them, and trioweb does.
        return _error("control characters in the request head")
    content_length = transfer_encoding = False
    for name, _ in event.headers:
        if name == b"content-length":
            content_length = True
        elif name == b"transfer-encoding":
            transfer_encoding = True
    if transfer_encoding:
        if content_length:
            # RFC 9112 6.1 and 6.3: both framings at once may be a smuggling attempt;
            # "ought to be handled as an error", and the connection must close.
            return _error("both Content-Length and Transfer-Encoding")
        if version == b"1.0":
            # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
            return _error("Transfer-Encoding in an HTTP/1.0 request")
    if content_length:
        values = _CONTENT_LENGTH.findall(head)
        if len(values) != 1 or b"," in values[0]:
            # RFC 9110 8.6: one decimal length. A list, even of equal values, or a
            # repeated field is refused rather than folded as h11 would.
            return _error("Content-Length repeated or given as a list")
    return None
