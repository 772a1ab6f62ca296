"""What file responses need apart from sending: validators, preconditions and ranges.

The rules are RFC 9110's: section 13 (conditional requests, evaluated in the order of
13.2.2) and section 14 (range requests). Everything here is pure and synchronous; the
connection does the sending (see ``Connection._send_file``).
"""

from __future__ import annotations

import errno
import os
import stat
from email.utils import formatdate, mktime_tz, parsedate_tz
from typing import NamedTuple
from urllib.parse import quote

import trio

from ._headers import Headers

__all__ = [
    "FileReader",
    "Selection",
    "content_disposition",
    "etag",
    "inside",
    "is_regular",
    "last_modified",
    "select",
]

# Precondition outcomes, as statuses.
_FULL, _PARTIAL, _NOT_MODIFIED, _FAILED, _UNSATISFIABLE = 200, 206, 304, 412, 416


class Selection(NamedTuple):
    """What to send for a request: a status, and the byte range ``[start, start+length)``."""

    status: int
    start: int = 0
    length: int = 0


def etag(st: os.stat_result) -> str:
    """A strong entity tag from the modification time and size (nginx's recipe).

    Strong, because the bytes are sent exactly as stored: two responses with the same
    tag are byte for byte the same, so ranges of them may be combined (RFC 9110 8.8.1).
    """
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def last_modified(st: os.stat_result) -> str:
    """The ``Last-Modified`` value: the file's modification time as an HTTP date."""
    return formatdate(int(st.st_mtime), usegmt=True)


def content_disposition(filename: str) -> str:
    """``attachment`` with the file name, per RFC 6266.

    Names that are plain printable ASCII go in ``filename="..."``; any other name gets
    an ASCII stand-in there (for old clients) plus ``filename*=UTF-8''...`` (RFC 8187),
    which every current browser prefers.
    """
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename).strip()
    value = f'attachment; filename="{fallback or "download"}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def _http_date(value: str) -> int | None:
    """An HTTP date as a POSIX timestamp; ``None`` when it is not a date."""
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return mktime_tz(parsed)
    except (OverflowError, ValueError):
        return None


def _tags(value: str) -> list[str] | None:
    """The entity tags of an ``If-Match``/``If-None-Match`` value; ``None`` for ``*``."""
    if value.strip() == "*":
        return None
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _weak_match(tags: list[str] | None, current: str) -> bool:
    if tags is None:
        return True
    opaque = current.removeprefix("W/")
    return any(tag.removeprefix("W/") == opaque for tag in tags)


def _strong_match(tags: list[str] | None, current: str) -> bool:
    if tags is None:
        return True
    return not current.startswith("W/") and current in tags


def _byte_range(value: str, size: int) -> Selection | None:
    """The one byte range ``value`` asks for; ``None`` to send the whole file.

    A malformed value, an invalid range (last before first) or several ranges are
    ignored, as RFC 9110 14.2 allows: the client gets all of it with a 200.
    """
    unit, equals, ranges = value.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs = [spec.strip() for spec in ranges.split(",") if spec.strip()]
    if len(specs) != 1:
        return None
    first, dash, last = specs[0].partition("-")
    first, last = first.rstrip(), last.lstrip()
    if not dash or not _digits(first, last):
        return None
    if not first:  # "-n": the last n bytes
        if not last:
            return None
        suffix = int(last)
        if suffix == 0:
            return Selection(_UNSATISFIABLE)
        start = max(0, size - suffix)
        return Selection(_PARTIAL, start, size - start)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid, not unsatisfiable (RFC 9110 14.1.1)
    end = int(last) if last else size - 1
    if start >= size:
        return Selection(_UNSATISFIABLE)
    end = min(end, size - 1)
    return Selection(_PARTIAL, start, end - start + 1)


def _digits(*values: str) -> bool:
    return all(v.isascii() and (v.isdigit() or not v) for v in values)


def select(method: str, request: Headers, response: Headers, size: int) -> Selection:
    """Evaluate a GET or HEAD request's preconditions and ``Range`` against a file.

    ``response`` holds the file's validators (``ETag``, ``Last-Modified``) as they will
    be sent, so validators set by the application are the ones compared. The result is
    a 200 (all of it), 206 (one range), 304, 412 or 416.
    """
    current_tag = response.get("etag")
    modified = response.get("last-modified")
    modified_at = None if modified is None else _http_date(modified)
    # 13.2.2 step 1-2: If-Match, else If-Unmodified-Since.
    if_match = request.get("if-match")
    if if_match is not None:
        if current_tag is None or not _strong_match(_tags(if_match), current_tag):
            return Selection(_FAILED)
    else:
        since = request.get("if-unmodified-since")
        limit = None if since is None else _http_date(since)
        if limit is not None and modified_at is not None and modified_at > limit:
            return Selection(_FAILED)
    # Step 3-4: If-None-Match, else If-Modified-Since.
    if_none_match = ", ".join(request.getall("if-none-match"))
    if if_none_match:
        if current_tag is not None and _weak_match(_tags(if_none_match), current_tag):
            return Selection(_NOT_MODIFIED)
    else:
        since = request.get("if-modified-since")
        limit = None if since is None else _http_date(since)
        if limit is not None and modified_at is not None and modified_at <= limit:
            return Selection(_NOT_MODIFIED)
    # Step 5: Range, unless If-Range says the client's copy is out of date.
    whole = Selection(_FULL, 0, size)
    range_ = request.get("range")
    if range_ is None or size == 0 or method not in ("GET", "HEAD"):
        return whole
    if_range = request.get("if-range")
    if if_range is not None and not _if_range_holds(if_range.strip(), current_tag, modified):
        return whole
    return _byte_range(range_, size) or whole


def _if_range_holds(value: str, current_tag: str | None, modified: str | None) -> bool:
    """RFC 9110 13.1.5: a strong tag match, or exactly the ``Last-Modified`` date."""
    if value.startswith(('"', 'W/"')):
        return current_tag is not None and _strong_match([value], current_tag)
    if modified is None:
        return False
    given = _http_date(value)
    return given is not None and given == _http_date(modified)


# -- reading a file without blocking the event loop ------------------------------------

# Linux's RWF_NOWAIT reads from the page cache only, failing with EAGAIN when the read
# would wait for the disk: then, and only then, a worker thread does the read. A hot
# file is thus read with no thread hand-off per piece, and a cold one never stalls the
# event loop.
_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0) if hasattr(os, "preadv") else 0


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


class FileReader:
    """Reads pieces of an open file at given offsets, off the event loop when needed."""

    __slots__ = ("_fd", "_nowait")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._nowait = _NOWAIT

    async def read_into(self, view: memoryview, offset: int) -> int:
        """Read up to ``len(view)`` bytes at ``offset`` into ``view``; 0 at end of file."""
        if self._nowait:
            try:
                return os.preadv(self._fd, [view], offset, self._nowait)
            except BlockingIOError:
                pass  # not in the page cache: the disk read is left to a thread
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                self._nowait = 0  # this file system cannot do it; threads from now on
        # Not abandoned on cancellation: the fd stays open until the read is over.
        return await trio.to_thread.run_sync(_pread_into, self._fd, view, offset)


def is_regular(st: os.stat_result) -> bool:
    """Whether ``st`` describes a regular file (not a directory, FIFO or device)."""
    return stat.S_ISREG(st.st_mode)


def inside(root: str, path: str) -> str | None:
    """``path`` with symlinks resolved, or ``None`` if that is not ``root`` or under it.

    ``root`` must be resolved already (``os.path.realpath``). The comparison is by whole
    path components: ``/srv/data-old`` is not under ``/srv/data``. Touches the disk (run
    it in a worker thread); raises ``ValueError`` for a path with a NUL byte.
    """
    real = os.path.realpath(path)
    if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
        return real
    return None
