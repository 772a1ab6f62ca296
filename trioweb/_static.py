"""``app.static()``: a directory tree served read-only, and never a byte outside it.

The path is the one routing saw: dot segments were removed before routing, and one
above ``/`` or behind an encoded slash was a 400 (``_routing.normalize_path``). It is
split on ``/`` *before* it is percent-decoded, and each segment is decoded on its own:
an encoded slash (``%2f``) cannot make a new segment, and a segment that is still
``..`` or ``.`` in any spelling is refused (a second line of defence), as are
backslashes and NUL. The path is then resolved with symlinks followed and must still
lie under the directory's own resolved path, so a symlink pointing out of the tree is
not followed out. Only regular files are served.
"""

from __future__ import annotations

import enum
import os
import stat
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

import trio

from ._files import inside
from ._routing import normalize_path
from .errors import NotFound
from .response import HTTPResponse, _streamed, redirect

if TYPE_CHECKING:
    from .request import Request

__all__ = ["TAIL", "StaticFiles"]

#: The route parameter that holds the path below the static directory; Sanic's name,
#: so that ``app.url_for("static", filename="css/site.css")`` reads the same.
TAIL = "filename"

_REFUSED = ("/", "\\", "\x00")


class _AddSlash(enum.Enum):
    token = "ADD_SLASH"


_ADD_SLASH: Final = _AddSlash.token


class StaticFiles:
    """The handler serving a directory; routed at ``uri/<TAIL:path>``, ``uri/``, ``uri``."""

    def __init__(self, directory: str | os.PathLike[str], index: str | None) -> None:
        self.root = os.path.realpath(directory)
        if not os.path.isdir(self.root):
            raise ValueError(f"static directory {os.fspath(directory)!r} is not a directory")
        if index is not None and (index in (".", "..") or any(c in index for c in _REFUSED)):
            raise ValueError(f"index {index!r} must be a plain file name")
        self.index = index
        self.__name__ = "static"

    def __repr__(self) -> str:
        return f"<StaticFiles {self.root!r}>"

    async def __call__(self, request: Request, **params: Any) -> HTTPResponse:
        routed = normalize_path(request.raw_path)  # the path as routing saw it
        parts, wants_directory = _parts(request, routed)
        found = await trio.to_thread.run_sync(_find, self.root, parts, wants_directory, self.index)
        if found is None:
            raise NotFound()
        if found is _ADD_SLASH:
            # A directory asked for without its slash: relative links in its index
            # need the slash. (One leading slash: "//host" would leave the site.)
            location = "/" + routed.lstrip("/") + "/"
            if request.query_string:
                location += "?" + request.query_string
            return redirect(location, status=301)
        path, st = found
        return _streamed(path, st, chunked=False)


def _parts(request: Request, path: str) -> tuple[list[str], bool]:
    """The decoded segments of ``path`` below the static root, and whether a directory
    is asked for.

    Raises NotFound for a segment that could step out of its directory.
    """
    route = request.route
    assert route is not None
    segments = path.split("/")[1:]
    if not route.uri.endswith(">"):  # "uri/" or "uri": the root itself
        return [], route.uri.endswith("/")
    tail = segments[route.uri.count("/") - 1 :]
    parts = []
    for raw in tail:
        if not raw:
            continue  # "a//b" is "a/b"
        try:
            part = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise NotFound() from None
        if part in (".", "..") or any(c in part for c in _REFUSED):
            raise NotFound()
        parts.append(part)
    return parts, tail[-1] == ""


def _find(
    root: str, parts: list[str], wants_directory: bool, index: str | None
) -> tuple[str, os.stat_result] | _AddSlash | None:
    """The file to serve, ``_ADD_SLASH`` (a directory without its slash) or None.

    Runs in a worker thread: resolving symlinks and stat calls touch the disk.
    """
    try:
        path = inside(root, os.path.join(root, *parts))
        if path is None:
            return None
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            if index is None:
                return None
            path = inside(root, os.path.join(path, index))
            if path is None:
                return None
            st = os.stat(path)
            if not wants_directory and stat.S_ISREG(st.st_mode):
                return _ADD_SLASH
        elif wants_directory:
            return None  # "file.txt/"
    except (OSError, ValueError):
        return None  # missing, not a directory, no permission, a symlink loop
    return (path, st) if stat.S_ISREG(st.st_mode) else None
