"""Forms: urlencoded and multipart bodies, parsed whole or streamed part by part.

The multipart side is the ``multipart`` package's sans-I/O push parser, in strict mode,
behind :class:`FormParser`: bytes in, events out, with trioweb's limits and errors. The
buffered form (``request.form``, ``request.files``) feeds it the whole body at once;
:class:`MultipartReader` (``request.multipart()``) feeds it from ``request.stream``
only when the handler asks for more, so a handler that stops reading stops the socket
being read, as with the stream itself.
"""

from __future__ import annotations

import copy
import enum
import math
import os
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn
from urllib.parse import parse_qsl

import multipart
import trio

from ._headers import Headers, MultiDict
from ._streams import checked_max_bytes
from .errors import BadRequest, HeaderFieldsTooLarge, HTTPError, PayloadTooLarge

__all__ = ["FormLimits", "MultipartReader", "Part", "UploadedFile", "parse_form"]

URLENCODED = "application/x-www-form-urlencoded"
FORM_DATA = "multipart/form-data"
#: RFC 7578 4.4: a part without a Content-Type is text/plain.
DEFAULT_PART_TYPE = "text/plain"
#: Header lines one part may have (RFC 7578 uses three); more is a 431, like a long one.
MAX_PART_HEADER_LINES = 8
#: ``Part.save()`` writes in pieces of about this size: each write is a trip to a worker
#: thread, which would cost more than the write itself for every 64 KiB chunk.
SAVE_PIECE = 1 << 20
#: The name of the field in which browsers say which charset they encoded a form in
#: (HTML's "_charset_" hidden field; RFC 7578 4.6).
CHARSET_FIELD = "_charset_"


class UploadedFile(NamedTuple):
    """A file from a buffered multipart form: ``request.files["avatar"]``.

    ``name`` is the filename the client gave (it may be empty, and is never a safe
    path: choose the path yourself), ``type`` the part's ``Content-Type`` as sent
    (``text/plain`` when it had none, RFC 7578 4.4), ``body`` its bytes.
    """

    name: str
    type: str
    body: bytes


@dataclass(frozen=True)
class FormLimits:
    """The ``FORM_MAX_*`` settings of an app, ``math.inf`` for no limit."""

    max_parts: float
    max_part_header_size: int
    max_field_size: float
    max_file_size: float

    @classmethod
    def from_config(cls, config: Any) -> FormLimits:
        """The limits in ``config`` (an app's :class:`~trioweb.Config`)."""

        def limit(value: float | None) -> float:
            return math.inf if value is None else value

        return cls(
            max_parts=limit(config.FORM_MAX_PARTS),
            max_part_header_size=config.FORM_MAX_PART_HEADER_SIZE,
            max_field_size=limit(config.FORM_MAX_FIELD_SIZE),
            max_file_size=limit(config.FORM_MAX_FILE_SIZE),
        )


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """The lower-case media type of a ``Content-Type`` value, and its parameters."""
    mime, options = multipart.parse_options_header(content_type)
    return str(mime), dict(options)


# -- the multipart parser ---------------------------------------------------------------


class Event(enum.Enum):
    """What :meth:`FormParser.next_event` gives besides a part's head and its bytes."""

    NEED_DATA = enum.auto()
    PART_END = enum.auto()
    BODY_END = enum.auto()


class FormParser:
    """multipart's push parser with trioweb's limits and errors: bytes in, events out.

    Events: a part's head (``multipart.MultipartSegment``), then its body as non-empty
    ``bytes``, then :attr:`Event.PART_END`; :attr:`Event.BODY_END` after the closing
    boundary; :attr:`Event.NEED_DATA` when it needs :meth:`feed`. Every error is an
    :class:`~trioweb.errors.HTTPError` (400, 413 or 431), and sticks: once raised, every
    later call raises it again.
    """

    def __init__(self, content_type: str, limits: FormLimits) -> None:
        self._limits = limits
        boundary = media_type(content_type)[1].get("boundary")
        if not boundary:
            raise BadRequest("the multipart body has no boundary in its Content-Type")
        try:
            # The header is latin-1 text of the bytes that were sent: match those bytes.
            self._parser: Any = multipart.PushMultipartParser(
                boundary.encode("latin-1", "replace"),
                max_header_size=limits.max_part_header_size,
                max_header_count=MAX_PART_HEADER_LINES,
                strict=True,
            )
        except multipart.MultipartError as exc:
            raise self._error_for(exc) from None
        self._events: Any = iter(())
        self._error: HTTPError | None = None
        self._parts = 0
        self._in_part = False
        self._size = 0  # body bytes of the current part
        self._limit = math.inf  # and its limit
        self._kind = "form field"  # or "file": what the limit is for
        self._ended = False  # the closing boundary has been parsed

    def _complete(self) -> bool:
        """Whether the closing boundary has been parsed (only asked between parts).

        The parser says so only by not raising from ``close()``, which also closes it:
        ask a copy. Knowing it, bytes after the end (an epilogue, which RFC 2046 says to
        ignore, and which browsers send as a CRLF) are never fed, where strict mode would
        refuse them when they come in a read of their own.
        """
        probe = copy.copy(self._parser)
        try:
            probe.close(check_complete=True)
        except multipart.MultipartError:
            return False
        return True

    def feed(self, data: bytes | bytearray) -> None:
        """The next bytes of the body, ``b""`` at its end; only after ``NEED_DATA``."""
        if self._error is not None:
            raise self._error
        if data:
            self._events = self._parser.parse(bytes(data))  # (no copy of bytes)
        else:  # (an epilogue is ignored, so the end was checked as NEED_DATA came)
            self._fail(BadRequest("the multipart body ended before its closing boundary"))

    def next_event(self) -> multipart.MultipartSegment | bytes | Event:
        """The next event, or ``NEED_DATA``."""
        if self._error is not None:
            raise self._error
        if self._ended:
            return Event.BODY_END
        try:
            event = next(self._events, Event.NEED_DATA)
        except multipart.MultipartError as exc:
            self._fail(self._error_for(exc))
        if event is None:
            self._in_part = False
            return Event.PART_END
        if isinstance(event, bytes):
            self._size += len(event)
            if self._size > self._limit:
                self._fail(
                    PayloadTooLarge(f"a {self._kind} is larger than {self._limit:.0f} bytes")
                )
            return event
        if event is Event.NEED_DATA:
            if not self._in_part and self._complete():
                self._ended = True
                return Event.BODY_END
            return event
        return self._start_part(event)

    def _start_part(self, segment: Any) -> Any:
        limits = self._limits
        self._parts += 1
        if self._parts > limits.max_parts:
            self._fail(PayloadTooLarge(f"the form has more than {limits.max_parts:.0f} parts"))
        size = sum(len(f"{name}: {value}\r\n".encode()) for name, value in segment.headerlist)
        if size > limits.max_part_header_size:
            self._fail(self._headers_too_large())
        self._in_part = True
        self._size = 0
        if segment.filename is None:
            self._limit, self._kind = limits.max_field_size, "form field"
        else:
            self._limit, self._kind = limits.max_file_size, "file"
        return segment

    def _fail(self, error: HTTPError) -> NoReturn:
        self._error = error
        raise error

    def _headers_too_large(self) -> HeaderFieldsTooLarge:
        return HeaderFieldsTooLarge(
            "the headers of a multipart part are larger than"
            f" {self._limits.max_part_header_size} bytes, or more than"
            f" {MAX_PART_HEADER_LINES} lines"
        )

    def _error_for(self, exc: multipart.MultipartError) -> HTTPError:
        """The HTTP error for one of the parser's: its reason in words, never the input."""
        if isinstance(exc, multipart.ParserLimitReached):
            # Only the header limits are the parser's; trioweb counts parts and sizes.
            return self._headers_too_large()
        reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else "bad framing"
        return BadRequest(f"malformed multipart body: {reason[:1].lower()}{reason[1:]}")


# -- buffered forms -------------------------------------------------------------------


def parse_form(
    content_type: str, body: bytes, limits: FormLimits
) -> tuple[MultiDict, MultiDict[UploadedFile]]:
    """``request.form`` and ``request.files`` from a whole body.

    Urlencoded and multipart bodies are parsed; any other type gives two empty
    MultiDicts, as in Sanic and Starlette.
    """
    mime, options = media_type(content_type)
    if mime == URLENCODED:
        return _parse_urlencoded(body, options.get("charset"), limits), MultiDict()
    if mime == FORM_DATA:
        return _parse_multipart(content_type, body, limits)
    return MultiDict(), MultiDict()


def _decode(data: bytes, charset: str | None) -> str:
    """``data`` as text in the charset the client named (UTF-8 when none), leniently:
    bytes that are not valid in it become U+FFFD, as in browsers."""
    try:
        return data.decode(charset or "utf-8", "replace")
    except (LookupError, ValueError):  # unknown, bytes-to-bytes ("hex"), or unusable
        raise BadRequest("the form's charset is unknown or not a text encoding") from None


def _parse_urlencoded(body: bytes, charset: str | None, limits: FormLimits) -> MultiDict:
    # Percent-decoded to latin-1 first, one character per byte, so that the charset can
    # be chosen once every pair is known (browsers put _charset_ anywhere in the form).
    most = None if limits.max_parts == math.inf else int(limits.max_parts)
    try:
        pairs = parse_qsl(
            body.decode("latin-1"), keep_blank_values=True, encoding="latin-1", max_num_fields=most
        )
    except ValueError:  # more fields than max_num_fields
        raise PayloadTooLarge(f"the form has more than {most} fields") from None
    for _, value in pairs:
        if len(value) > limits.max_field_size:
            raise PayloadTooLarge(f"a form field is larger than {limits.max_field_size:.0f} bytes")
    charset = dict(pairs).get(CHARSET_FIELD) or charset
    return MultiDict(
        (_decode(name.encode("latin-1"), charset), _decode(value.encode("latin-1"), charset))
        for name, value in pairs
    )


def _parse_multipart(
    content_type: str, body: bytes, limits: FormLimits
) -> tuple[MultiDict, MultiDict[UploadedFile]]:
    parser = FormParser(content_type, limits)
    parts: list[tuple[Any, list[bytes]]] = []
    parser.feed(body)
    while (event := parser.next_event()) is not Event.BODY_END:
        if event is Event.NEED_DATA:
            parser.feed(b"")  # (raises: no closing boundary)
        elif isinstance(event, bytes):
            parts[-1][1].append(event)
        elif event is not Event.PART_END:
            parts.append((event, []))
    fields = [(segment, b"".join(chunks)) for segment, chunks in parts]
    named = next((v for s, v in fields if s.name == CHARSET_FIELD and s.filename is None), None)
    default = named.decode("latin-1") if named else None
    form: MultiDict = MultiDict()
    files: MultiDict[UploadedFile] = MultiDict()
    for segment, value in fields:
        if segment.filename is None:
            form.add(segment.name, _decode(value, segment.charset or default))
        else:
            kind = segment.header("Content-Type", DEFAULT_PART_TYPE)
            files.add(segment.name, UploadedFile(segment.filename, kind, value))
    return form, files


# -- streamed parts -------------------------------------------------------------------


class MultipartReader:
    """``request.multipart()``: the parts of a ``multipart/form-data`` body, in order.

    ``async for part in request.multipart()`` gives each :class:`Part` once its headers
    have arrived. The body is read from ``request.stream`` only as the handler reads
    the parts, with its backpressure and its ``max_size``. Asking for the next part
    skips what is left of the current one (reading it from the client, and dropping
    it), and closes it.
    """

    def __init__(
        self, stream: trio.abc.ReceiveStream, buffered: bytes, parser: FormParser
    ) -> None:
        self._stream = stream
        self._buffered = buffered  # a body already read (request.body), parsed first
        self._parser = parser
        self._part: Part | None = None
        self._reading = False  # one task at a time, as with any Trio stream

    def __aiter__(self) -> MultipartReader:
        return self

    async def __anext__(self) -> Part:
        if self._reading:
            raise trio.BusyResourceError("another task is reading this multipart body")
        self._reading = True
        try:
            if self._part is not None:
                self._part._closed = True
                self._part = None
            # Until the next part's head: the rest of a skipped part is dropped.
            while True:
                event = await self._next_event()
                if event is Event.BODY_END:
                    raise StopAsyncIteration
                if not isinstance(event, (bytes, Event)):
                    self._part = Part(self, event)
                    return self._part
        finally:
            self._reading = False

    async def _next_event(self) -> Any:
        # Cancelled before an event is taken, never after: a cancelled read loses nothing.
        await trio.lowlevel.checkpoint_if_cancelled()
        event = self._parser.next_event()
        if event is not Event.NEED_DATA:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return event
        while event is Event.NEED_DATA:
            data: bytes | bytearray
            if self._buffered:
                data, self._buffered = self._buffered, b""
            else:
                data = await self._stream.receive_some()
            self._parser.feed(data)
            event = self._parser.next_event()
        return event

    async def _receive(self, part: Part) -> bytes:
        """The next bytes of ``part``, the current part; ``b""`` at its end."""
        if self._reading:
            raise trio.BusyResourceError("another task is reading this multipart body")
        self._reading = True
        try:
            event = await self._next_event()
        finally:
            self._reading = False
        if isinstance(event, bytes):
            return event
        assert event is Event.PART_END, event  # (a part's end comes before anything else)
        part._ended = True
        return b""


class Part(trio.abc.ReceiveStream):
    """One part of a streamed multipart body, itself a Trio ``ReceiveStream``.

    ``name`` is the form field's name, ``filename`` the file's name as the client gave
    it (``None`` for a plain field; never a safe path), ``content_type`` the part's
    ``Content-Type`` (``text/plain`` when it has none, RFC 7578 4.4), ``headers`` all of
    its headers. Its body is read with ``async for chunk in part`` (non-empty ``bytes``),
    :meth:`receive_some`, :meth:`read` or :meth:`save`, with the backpressure of
    ``request.stream``: while the handler does not read, the client is not read either.

    Reading past a limit raises :class:`~trioweb.errors.PayloadTooLarge` (``FORM_MAX_*``
    or ``request.stream.max_size``), bad framing :class:`~trioweb.errors.BadRequest`,
    a client gone ``trio.BrokenResourceError``. Once the handler asks for the next
    part, this one is closed: reading it raises ``trio.ClosedResourceError``.
    """

    def __init__(self, reader: MultipartReader, segment: Any) -> None:
        self._reader = reader
        self.name: str = segment.name
        self.filename: str | None = segment.filename
        self.headers = Headers._trusted([(k.lower(), v) for k, v in segment.headerlist])
        self.content_type: str = self.headers.get("content-type", DEFAULT_PART_TYPE)
        self._rest = b""  # what receive_some(max_bytes) has not returned yet
        self._ended = False
        self._closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The next bytes of the part, at most ``max_bytes``; ``b""`` at its end."""
        max_bytes = checked_max_bytes(max_bytes)
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this part was closed (the reader moved on)")
        if self._rest:
            await trio.lowlevel.checkpoint()
            data, self._rest = self._rest, b""
        elif self._ended:
            await trio.lowlevel.checkpoint()
            return b""
        else:
            data = await self._reader._receive(self)
        if max_bytes is not None and len(data) > max_bytes:
            data, self._rest = data[:max_bytes], data[max_bytes:]
        return data

    async def read(self) -> bytes:
        """The rest of the part, whole, in memory (for small parts: fields)."""
        chunks = []
        while chunk := await self.receive_some():
            chunks.append(chunk)
        return b"".join(chunks)

    async def save(self, path: str | os.PathLike[str]) -> int:
        """Write the rest of the part to the file ``path`` as it arrives; its size.

        The file is written through ``trio.open_file`` in pieces of up to 1 MiB, never
        held whole. If anything stops it (a limit, bad framing, the client gone, a
        cancellation), the partial file is removed before the error goes on.
        """
        size = 0
        pending = bytearray()
        file = await trio.open_file(path, "wb")
        try:
            async with file:
                async for chunk in self:
                    pending += chunk
                    if len(pending) >= SAVE_PIECE:
                        await file.write(pending)
                        size += len(pending)
                        pending.clear()
                await file.write(pending)
                size += len(pending)
        except BaseException:
            # Shielded: a cancelled save must not leave its file behind. The thread
            # cannot hang (a local unlink), so the shield needs no deadline.
            with trio.CancelScope(shield=True):
                await trio.Path(path).unlink(missing_ok=True)
            raise
        return size

    async def aclose(self) -> None:
        """Stop reading this part: the reader skips the rest when asked for the next."""
        self._closed = True
        self._rest = b""
        await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        return f"<Part {self.name!r} filename={self.filename!r}>"
