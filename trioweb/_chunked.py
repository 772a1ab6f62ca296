"""Follows the framing of a chunked request body over the raw bytes, ahead of h11.

h11 decodes chunked bodies but keeps the chunk sizes to itself, and it accepts chunk
lines that RFC 9112 does not (whitespace after the size, any bytes in an extension).
:class:`ChunkScanner` reads the same bytes before h11 does, and only looks at the framing:
it skips chunk data by count, checks each chunk-size line strictly, and adds up the sizes
declared so far. The connection uses that sum to answer 413 as soon as a chunk *announces*
that the body will pass the limit, before any of that chunk's bytes are read.

Being stricter than h11 on the same bytes keeps the two in step: wherever the scanner
accepts a line, h11 reads it the same way, so the scanner never disagrees with h11 about
where the body ends.
"""

from __future__ import annotations

import re

from ._strict import ProtocolError

__all__ = ["ChunkError", "ChunkScanner"]

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


class ChunkScanner:
    """Tracks where a chunked body's chunk lines are, and the sizes they declare.

    Feed it every byte of the body, in order, starting right after the request head;
    bytes after the end of the body (a pipelined request) are ignored.
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

    def feed(self, data: bytes | bytearray) -> None:
        """Scan the next bytes of the body; raises :class:`ChunkError` if malformed."""
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state, self._remaining = _DATA_END, 2
            elif state == _DATA_END:
                expected = b"\r\n"[2 - self._remaining :]
                got = data[pos : pos + self._remaining]
                if not expected.startswith(got):
                    raise ChunkError("chunk data is not followed by CRLF")
                pos += len(got)
                self._remaining -= len(got)
                if not self._remaining:
                    self._state = _SIZE
            elif state == _DONE:
                return
            else:
                newline = data.find(b"\n", pos)
                if newline == -1:
                    self._line += data[pos:]
                    self._check_partial_line()
                    return
                line = self._line + data[pos : newline + 1]
                self._line = b""
                pos = newline + 1
                if state == _SIZE:
                    self._size_line(line)
                else:
                    self._trailer_line(line)

    def _check_partial_line(self) -> None:
        if self._state == _SIZE:
            if len(self._line) > MAX_CHUNK_LINE:
                raise ChunkError("chunk-size line too long")
        elif self._trailer_size + len(self._line) > self._max_trailer:
            raise ChunkError("trailer section too large", 431)

    def _size_line(self, line: bytes) -> None:
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
