"""Decodes a chunked request body in place: where each chunk's data starts and ends.

Both HTTP engines use this one decoder, so chunked framing has one set of rules. It
reads the chunk lines strictly (RFC 9112 7.1: no whitespace after the size, tokens or
quoted strings in extensions) and skips chunk data by count, so the data itself is never
scanned or copied: :meth:`ChunkDecoder.next_span` gives the engine the bounds of the
next run of data in the buffer it already holds.

It also adds up the chunk sizes announced so far (:attr:`ChunkDecoder.declared`), so the
connection can answer 413 as soon as a chunk *announces* that the body will pass the
limit, before any of that chunk's bytes are read.
"""

from __future__ import annotations

import re

from ._events import ProtocolError

__all__ = ["MAX_CHUNK_LINE", "ChunkDecoder", "ChunkError"]

# RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF, with
#   chunk-size = 1*HEXDIG
#   chunk-ext  = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-val = token / quoted-string
# At most 16 hex digits: a size that needs more than 64 bits is an attack, not a body.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
_EXT = rb"[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?"
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})((?:" + _EXT + rb")*)\r\n")
# A chunk line longer than this (extensions included) is refused.
MAX_CHUNK_LINE = 4096

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkError(ProtocolError):
    """The chunked framing is malformed (400) or its trailer too large (431)."""


class ChunkDecoder:
    """Follows a chunked body through the buffers it arrives in.

    Call :meth:`next_span` with the buffer and the position of the first byte not yet
    looked at; bytes after the end of the body (a pipelined request) are left alone.
    Trailer fields are checked and dropped, never merged into the head.
    """

    __slots__ = ("_line", "_max_trailer", "_remaining", "_state", "_trailer_size", "declared")

    def __init__(self, max_trailer_size: int) -> None:
        #: The sum of the chunk sizes announced so far.
        self.declared = 0
        self._state = _SIZE
        self._line = b""  # an unfinished chunk-size or trailer line
        self._remaining = 0  # data bytes left in the current chunk; CRLF bytes after it
        self._max_trailer = max_trailer_size
        self._trailer_size = 0

    @property
    def done(self) -> bool:
        """Whether the last chunk and the trailer section have been seen."""
        return self._state == _DONE

    def next_span(self, data: bytes, pos: int) -> tuple[int, int]:
        """The bounds ``(start, end)`` of the next chunk data in ``data[pos:]``.

        Framing before the data is consumed on the way. When no data is found,
        ``start == end`` is where decoding stopped: the end of ``data`` (more is needed)
        or, once :attr:`done`, the first byte after the body. Raises
        :class:`ChunkError` on malformed framing.
        """
        end = len(data)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                self._remaining -= take
                if not self._remaining:
                    self._state, self._remaining = _DATA_END, 2
                return pos, pos + take
            if state == _DATA_END:
                expected = b"\r\n"[2 - self._remaining :]
                got = data[pos : pos + self._remaining]
                if not expected.startswith(got):
                    raise ChunkError("chunk data is not followed by CRLF")
                pos += len(got)
                self._remaining -= len(got)
                if not self._remaining:
                    self._state = _SIZE
            elif state == _DONE:
                break
            else:
                newline = data.find(b"\n", pos)
                if newline == -1:
                    self._line += data[pos:]
                    self._check_partial_line()
                    return end, end
                line = self._line + data[pos : newline + 1]
                self._line = b""
                pos = newline + 1
                if state == _SIZE:
                    self._size_line(line)
                else:
                    self._trailer_line(line)
        return pos, pos

    def _check_partial_line(self) -> None:
        if self._state == _SIZE:
            if len(self._line) > MAX_CHUNK_LINE:
                raise ChunkError("chunk-size line too long")
        elif self._trailer_size + len(self._line) > self._max_trailer:
            raise ChunkError("trailer section too large", 431)

    def _size_line(self, line: bytes) -> None:
        if len(line) > MAX_CHUNK_LINE:
            # Checked here too, not only on a partial line: the same line must be
            # refused whether it arrives in one read or in several.
            raise ChunkError("chunk-size line too long")
        match = _CHUNK_LINE.fullmatch(line)
        if match is None:
            raise ChunkError("malformed chunk-size line")
        size = int(match[1], 16)
        if size:
            self.declared += size
            self._state, self._remaining = _DATA, size
        else:
            self._state = _TRAILER

    def _trailer_line(self, line: bytes) -> None:
        self._trailer_size += len(line)
        if self._trailer_size > self._max_trailer:
            raise ChunkError("trailer section too large", 431)
        if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
            raise ChunkError("trailer line not ended by CRLF")
        if line == b"\r\n":
            self._state = _DONE
