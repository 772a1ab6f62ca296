"""The HTTP/1.1 engine: bytes in, request events out; responses in, bytes out. No I/O.

An engine is a sans-I/O state machine in the style of h11: the connection feeds it what
it reads (:meth:`Engine.receive_data`) and asks for events (:meth:`Engine.next_event`);
to answer, it asks the engine for the bytes of a ``100 Continue``, a response head, the
framing of each body piece and the end of the body, and writes them itself.

Everything that decides what a request *means* is here, once, and shared by every
engine: where a head ends and how large it may be (414/431), the grammar a head must
follow, the strict rules of :mod:`._strict`, the body's framing (``Content-Length``
counted, ``chunked`` decoded by :class:`~._chunked.ChunkDecoder`), keep-alive, and the
response head's serialisation with its header checks. A concrete engine only splits a
head that has passed those checks into its parts (:meth:`Engine._parse_head`): h11 in
:mod:`._h11_engine`, httptools (llhttp) in :mod:`._httptools_engine`. So the two engines
cannot disagree about framing, limits or refusals, and a fix lands once.

Body bytes are not copied on the way through: a read that holds only body data is
handed on as it is, and a chunked body's data is sliced out between its chunk lines.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import ClassVar

from ._chunked import ChunkDecoder
from ._events import (
    END_OF_BODY,
    NEED_DATA,
    PAUSED,
    PEER_CLOSED,
    SWITCHED,
    Data,
    Event,
    Framing,
    ProtocolError,
    RequestHead,
    Signal,
)
from ._strict import asks_to_close, check_head, origin_form, request_start

__all__ = ["Engine"]


# Receiving states. _SWITCHED: after a 101, the bytes are another protocol's.
_HEAD, _BODY, _DONE, _CLOSED, _SWITCHED = range(5)

# The end of a head: an empty line (a bare LF is accepted as a line end, RFC 9112 2.2).
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# RFC 9112 3 and 5, RFC 9110 5.5: what each line of a head may be, in CRLF form.
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_REQUEST_LINE = re.compile(_TCHAR + rb"+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]\r\n")
_FIELD_LINES = re.compile(
    rb"(?:"
    + _TCHAR
    + rb"+:[ \t]*(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
    + rb"[ \t]*\r\n)*\r\n"
)
_BARE_LF = re.compile(rb"(?<!\r)\n")
# The Transfer-Encoding line of a head (the rules allow one), and its canonical spelling:
# exactly "chunked", which h11 and llhttp both read as it is (h11 lowercases the value,
# llhttp does not; llhttp refuses a tab after it).
_TE_LINE = re.compile(rb"(?<=\n)transfer-encoding:[^\r]*\r\n", re.I)
_TE_CHUNKED = re.compile(rb"\n(?i:transfer-encoding):[ \t]*chunked\r\n")

# Response heads: the status line, and the header checks h11 makes on what it sends.
_STATUS_LINES = {
    status.value: b"HTTP/1.1 %d %b\r\n" % (status.value, status.phrase.encode())
    for status in HTTPStatus
}
_FIELD_NAME = re.compile(_TCHAR + rb"+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid status code {status}")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


class Engine:
    """The HTTP/1.1 protocol of one server-side connection (see the module docstring).

    Receiving: ``receive_data(bytes)`` (``b""`` at EOF), then ``next_event()`` until it
    returns :data:`NEED_DATA` or :data:`PAUSED`. A request's events are a
    :class:`RequestHead`, :class:`Data` pieces, :data:`END_OF_BODY`. Sending, per
    request: :meth:`informational_continue` (optional), :meth:`response_head`,
    :meth:`chunk` for each piece of a chunked body, :meth:`end_of_body`. Then
    :meth:`start_next_cycle` says whether the connection may serve another request.
    """

    #: The name users pick it by (``HTTP_ENGINE``).
    name: ClassVar[str]

    __slots__ = (
        "_body_left",
        "_body_seen",
        "_buffer",
        "_chunks",
        "_closing",
        "_continued",
        "_eof",
        "_head",
        "_max_head",
        "_method",
        "_pos",
        "_refused",
        "_responded",
        "_state",
        "_their_done",
        "framing",
    )

    def __init__(self, max_head_size: int) -> None:
        self._max_head = max_head_size
        self._buffer = b""
        self._pos = 0  # the first byte of _buffer not yet consumed
        self._eof = False
        self._refused = False
        self._state = _HEAD
        self._head: RequestHead | None = None
        # The method of the request being answered, even of one refused after its
        # request line was read (a refused HEAD gets no body).
        self._method = b""
        self._body_left = 0
        self._chunks: ChunkDecoder | None = None
        self._their_done = False
        self._responded = False
        self._continued = False
        self._body_seen = False
        self._closing = False
        #: The framing of the response being sent (decided by :meth:`response_head`).
        self.framing = Framing.NONE

    # -- receiving ----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the client; ``b""`` means it closed its side."""
        if not data:
            self._eof = True
        elif self._pos == len(self._buffer):
            self._buffer, self._pos = data, 0  # the usual case: nothing left over
        else:
            self._buffer, self._pos = self._buffer[self._pos :] + data, 0

    @property
    def buffered(self) -> bool:
        """Whether unconsumed bytes are waiting (a pipelined request, say)."""
        return self._pos < len(self._buffer)

    @property
    def head_started(self) -> bool:
        """Whether bytes of a request head have arrived (an empty line before it aside)."""
        buffer, pos = self._buffer, self._pos
        if self._state != _HEAD or pos == len(buffer):
            return False
        if buffer[pos] not in b"\r\n":
            return True  # the usual case
        try:
            skip = request_start(buffer[pos : pos + 3])
        except ProtocolError:
            return True  # bytes to refuse
        return skip >= 0 and pos + skip < len(buffer)

    @property
    def declared(self) -> int:
        """The body size announced so far: Content-Length, or the chunk sizes seen."""
        if self._chunks is not None:
            return self._chunks.declared
        head = self._head
        return (head.content_length or 0) if head is not None else 0

    @property
    def waiting_for_continue(self) -> bool:
        """Whether the client holds its body back until it gets ``100 Continue``."""
        head = self._head
        return (
            head is not None
            and head.expect_continue
            and not (self._continued or self._responded or self._body_seen or self._their_done)
        )

    @property
    def input_pending(self) -> bool:
        """Whether the client may still be sending: a body not read to its end, a
        refused request, or bytes after the last request."""
        return self._state == _BODY or self._refused or self._pos < len(self._buffer)

    def next_event(self) -> Event:
        """The next event; raises :class:`ProtocolError` for a request to refuse."""
        try:
            return self._next_event()
        except ProtocolError:
            # Whatever refused it, nothing after a refused request is read.
            self._refused = True
            self._state = _CLOSED
            raise

    def _next_event(self) -> Event:
        state = self._state
        if state == _BODY:
            return self._next_body_event()
        if state == _HEAD:
            return self._next_head()
        if state == _DONE:
            if self._pos < len(self._buffer):
                return PAUSED
            return PEER_CLOSED if self._eof else NEED_DATA
        return SWITCHED if state == _SWITCHED else PEER_CLOSED

    def _next_head(self) -> Event:
        buffer, pos = self._buffer, self._pos
        if pos < len(buffer) and buffer[pos] in b"\r\n":
            # RFC 9112 2.2: one empty line before the request line is ignored. (Looked
            # at afresh until the head is whole, so it is skipped once.)
            skip = request_start(buffer[pos : pos + 3])
            if skip < 0:
                return PEER_CLOSED if self._eof else NEED_DATA  # a CR: its LF may follow
            pos += skip
        match = _HEAD_END.search(buffer, pos)
        if match is None:
            waiting = len(buffer) - pos
            if waiting > self._max_head:
                raise self._too_large(buffer, pos)
            if self._eof:
                self._state = _CLOSED
                if waiting:
                    raise ProtocolError("the connection closed in the middle of a request head")
                return PEER_CLOSED
            return NEED_DATA
        end = match.end()
        self._pos = end
        head = self._accept_head(buffer[pos:end])
        self._head = head
        self._responded = self._continued = self._body_seen = False
        self.framing = Framing.NONE
        if head.chunked:
            self._chunks = ChunkDecoder(self._max_head)
            self._state = _BODY
        elif head.content_length:
            self._body_left = head.content_length
            self._state = _BODY
        else:
            self._their_done = True
            self._state = _DONE
        return head

    def _accept_head(self, raw: bytes) -> RequestHead:
        """Check a whole head against the limits, the grammar and the rules; parse it."""
        if len(raw) > self._max_head:
            raise self._too_large(raw, 0)
        if b"\r" not in raw:
            raw = raw.replace(b"\n", b"\r\n")
        elif _BARE_LF.search(raw) is not None:
            raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        line_end = raw.find(b"\r\n")
        if _REQUEST_LINE.fullmatch(raw, 0, line_end + 2) is None:
            raise ProtocolError("malformed request line")
        method, target, version = raw[:line_end].split(b" ")
        self._method = method
        if _FIELD_LINES.fullmatch(raw, line_end + 2) is None:
            raise _field_error(raw, line_end + 2)
        facts = check_head(method, target, version[5:], raw)
        if facts.chunked and _TE_CHUNKED.search(raw) is None:
            # An accepted Transfer-Encoding spelled another way (another case, empty list
            # elements, whitespace after it): every engine, and the application, sees the
            # one canonical line.
            raw = _TE_LINE.sub(b"transfer-encoding: chunked\r\n", raw)
        head = self._parse_head(raw)
        head.content_length = facts.content_length
        head.chunked = facts.chunked
        head.expect_continue = facts.expect_continue
        head.keep_alive = facts.keep_alive
        if target[:1] != b"/" and target != b"*":
            # RFC 9112 3.2.2: with an absolute-form target, its authority is the host.
            head.target, head.headers = origin_form(head.target, head.headers)
        return head

    def _too_large(self, buffer: bytes, pos: int) -> ProtocolError:
        """The refusal of a head from ``pos`` on, over the limit, whole or not yet."""
        newline = buffer.find(b"\n", pos)
        if newline == -1 or newline - pos > self._max_head:
            # RFC 9110 15.5.15: a request line alone over the limit is a 414.
            return ProtocolError("request target too long", 414)
        return ProtocolError("request head too large", 431)

    def _next_body_event(self) -> Event:
        buffer, pos = self._buffer, self._pos
        self._body_seen = self._body_seen or pos < len(buffer)
        chunks = self._chunks
        if chunks is None:  # Content-Length
            available = len(buffer) - pos
            if not self._body_left:
                return self._body_done()
            if available:
                take = min(available, self._body_left)
                self._body_left -= take
                self._pos = pos + take
                if take == len(buffer):  # a read of body only: handed on as it is
                    return Data(buffer)
                return Data(buffer[pos : pos + take])
        else:
            start, end = chunks.next_span(buffer, pos)
            self._pos = end
            if start != end:
                if end - start == len(buffer):
                    return Data(buffer)
                return Data(buffer[start:end])
            if chunks.done:
                return self._body_done()
        if self._eof:
            raise ProtocolError("the connection closed before the request body ended")
        return NEED_DATA

    def _body_done(self) -> Signal:
        # (the decoder stays until the next cycle: declared keeps the body's total)
        self._their_done = True
        self._state = _DONE
        return END_OF_BODY

    def _parse_head(self, raw: bytes) -> RequestHead:
        """Split a head that follows the grammar (CRLF line ends) into its parts.

        The shared checks then run on the result; an engine raises
        :class:`ProtocolError` only for what its parser refuses beyond the grammar.
        """
        raise NotImplementedError

    # -- sending ------------------------------------------------------------------------

    def informational_continue(self) -> bytes:
        """The bytes of ``100 Continue`` (call only while :attr:`waiting_for_continue`)."""
        self._continued = True
        return b"HTTP/1.1 100 Continue\r\n\r\n"

    def response_head(
        self, status: int, headers: list[tuple[bytes, bytes]], *, close: bool = False
    ) -> bytes:
        """The bytes of a response head; sets :attr:`framing` for its body.

        ``headers`` are sent as given (names lowercase), after checks: a name or value
        that could break the framing raises ``ValueError``. ``transfer-encoding:
        chunked`` or ``connection: close`` are added as the framing needs; a
        ``content-length`` given is honoured (``Framing.LENGTH``). ``close``: the
        connection closes after this response.
        """
        head = self._head  # None: answering a head that was refused
        line = _status_line(status)
        if status < 200:
            raise ValueError("informational responses are sent with informational_continue()")
        has_length = has_te = has_close = False
        parts = [line]
        for name, value in headers:
            if _FIELD_NAME.fullmatch(name) is None:
                raise ValueError(f"invalid header name {name!r}")
            if _FIELD_VALUE.fullmatch(value) is None:
                raise ValueError(f"invalid value for header {name.decode('latin-1')!r}")
            if name == b"content-length":
                if not value.isdigit():
                    raise ValueError("content-length is not a number")
                has_length = True
            elif name == b"transfer-encoding":
                has_te = True
                continue  # the engine decides the transfer coding
            elif name == b"connection":
                has_close = has_close or asks_to_close(value)
            parts += (name, b": ", value, b"\r\n")
        if has_te and has_length:
            raise ValueError("both content-length and transfer-encoding in a response")
        # A response to HEAD gets the framing headers a GET would have got, and no body.
        if status == 204 or status == 304:
            framing = Framing.NONE
        elif has_length:
            framing = Framing.LENGTH
        elif head is not None and head.version == b"1.1":
            framing = Framing.CHUNKED
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            framing = Framing.CLOSE
        if close or has_close or head is None or not head.keep_alive or framing is Framing.CLOSE:
            self._closing = True
            if not has_close:
                parts.append(b"connection: close\r\n")
        if self._method == b"HEAD":
            framing = Framing.NONE
        parts.append(b"\r\n")
        self.framing = framing
        self._responded = True
        return b"".join(parts)

    def switching_protocols(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The bytes of a ``101 Switching Protocols`` head, after which HTTP ends here.

        ``headers`` are checked as in :meth:`response_head` (names lowercase). From now
        on :meth:`next_event` returns :data:`SWITCHED`, and the bytes already received
        after the request head belong to the new protocol: :meth:`take_buffered`.
        Call it only for a request whose body has been read (a handshake has none).
        """
        parts = [_status_line(101)]
        for name, value in headers:
            if _FIELD_NAME.fullmatch(name) is None:
                raise ValueError(f"invalid header name {name!r}")
            if _FIELD_VALUE.fullmatch(value) is None:
                raise ValueError(f"invalid value for header {name.decode('latin-1')!r}")
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        self._state = _SWITCHED
        self._closing = self._responded = True
        self.framing = Framing.NONE
        return b"".join(parts)

    def take_buffered(self) -> bytes:
        """The bytes received but not consumed (after a 101: the new protocol's first)."""
        data = self._buffer[self._pos :]
        self._buffer, self._pos = b"", 0
        return data

    @staticmethod
    def chunk(data: bytes) -> bytes:
        """One piece of a chunked body, framed (``data`` must not be empty)."""
        return b"%x\r\n%b\r\n" % (len(data), data)

    def end_of_body(self) -> bytes:
        """What ends the response body on the wire (the last chunk, or nothing)."""
        return b"0\r\n\r\n" if self.framing is Framing.CHUNKED else b""

    def start_next_cycle(self) -> bool:
        """After a response: True if the next request may be read on this connection.

        False when either side asked to close, or the request body was not read to its
        end (then nobody knows where the next request starts).
        """
        if self._closing or not self._their_done or self._state != _DONE:
            return False
        self._state = _HEAD
        self._head = None
        self._chunks = None
        self._method = b""
        self._their_done = False
        self._responded = False
        return True


def _field_error(raw: bytes, start: int) -> ProtocolError:
    """Say in words what is wrong with the field lines of ``raw`` (the grammar failed)."""
    for line in raw[start:].split(b"\r\n"):
        if not line:
            continue
        name, colon, _ = line.partition(b":")
        if not colon:
            return ProtocolError("a header line without a colon")
        if not name or _FIELD_NAME.fullmatch(name) is None:
            if name[-1:] in b" \t":
                return ProtocolError("whitespace between a header name and its colon")
            return ProtocolError("invalid header name")
    return ProtocolError("invalid header value")
