"""Cookies: the ``Cookie`` request header read leniently, ``Set-Cookie`` lines written strictly.

Reading follows what browsers send (RFC 6265 section 5.4, and the looser habits of
real cookie jars); a pair that cannot be read is skipped, never an error. Writing
follows RFC 6265 section 4.1 and the cookie prefixes of RFC 6265bis: anything that
could not be sent safely raises ``ValueError`` where the cookie is set.
"""

from __future__ import annotations

import contextlib
import operator
import re
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from email.utils import formatdate
from typing import Literal
from urllib.parse import quote, unquote

from ._headers import Headers, MultiDict

__all__ = ["CookieSetter", "parse_cookies"]

SameSite = Literal["Lax", "Strict", "None", "lax", "strict", "none"]


def parse_cookies(lines: Iterable[str]) -> MultiDict:
    """The cookies of ``Cookie`` header lines (as decoded by the parser, Latin-1).

    Pairs are separated by ``;``; a pair without ``=`` or without a name is skipped.
    Names and values are stripped of spaces, a value of one pair of double quotes,
    and percent-escapes are decoded (see :func:`_decode`).
    """
    cookies = MultiDict()
    for line in lines:
        for pair in line.split(";"):
            if not pair.isascii():
                # Browsers send what a page stored, as UTF-8 bytes, which the parser
                # read as Latin-1; bytes that are not UTF-8 stay as they were read.
                with contextlib.suppress(UnicodeError):
                    pair = pair.encode("latin-1").decode()
            name, eq, value = pair.partition("=")
            name = name.strip(" \t")
            if not eq or not name:
                continue
            value = value.strip(" \t")
            if len(value) > 1 and value[0] == value[-1] == '"':
                value = value[1:-1]
            cookies.add(name, _decode(value) if "%" in value else value)
    return cookies


def _decode(value: str) -> str:
    """``value`` percent-decoded, or as it is when the escapes do not make UTF-8."""
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        return value


# RFC 9110 5.6.2: a token, the only form a cookie name may take (RFC 6265 4.1.1).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 6265 4.1.1 cookie-octet, except "%", which is the escape character here.
_VALUE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"
# A path attribute: printable ASCII but ";" (RFC 6265 4.1.1 path-value, ASCII only).
_PATH = re.compile(r"/[\x20-\x3a\x3c-\x7e]*")
# A host name or IPv4 address (labels of RFC 1034; an IDN as punycode), with an
# optional leading dot, which browsers ignore.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"\.?{_LABEL}(?:\.{_LABEL})*")
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_PREFIXES = ("__host-", "__secure-")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def set_cookie_line(
    name: str,
    value: str,
    *,
    path: str,
    domain: str | None,
    max_age: int | None,
    expires: datetime | float | None,
    secure: bool,
    httponly: bool,
    samesite: SameSite | None,
    partitioned: bool,
) -> str:
    """The value of a ``Set-Cookie`` header line; raises ``ValueError`` for anything unsafe."""
    if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
        raise ValueError(f"cookie name {name!r} is not a token (RFC 9110 5.6.2)")
    if not isinstance(value, str):
        raise TypeError(f"cookie value must be a str, not {type(value).__name__}")
    if _PATH.fullmatch(path) is None:
        raise ValueError(f"cookie path {path!r} must start with '/' and be ASCII without ';'")
    parts = [f"{name}={quote(value, safe=_VALUE_SAFE)}", f"Path={path}"]
    if domain is not None:
        if _DOMAIN.fullmatch(domain) is None:
            raise ValueError(f"cookie domain {domain!r} is not a host name")
        parts.append(f"Domain={domain}")
    if max_age is not None:
        if isinstance(max_age, bool):
            raise TypeError("max_age must be an int (seconds), not a bool")
        parts.append(f"Max-Age={operator.index(max_age)}")
    if expires is not None:
        parts.append(f"Expires={_expires(expires)}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite is not None:
        same = _SAMESITE.get(samesite.lower()) if isinstance(samesite, str) else None
        if same is None:
            raise ValueError(f"samesite must be 'Lax', 'Strict', 'None' or None, not {samesite!r}")
        if same == "None" and not secure:
            raise ValueError("a cookie with SameSite=None must be Secure (browsers refuse it)")
        parts.append(f"SameSite={same}")
    if partitioned:
        if not secure:
            raise ValueError("a Partitioned cookie must be Secure (browsers refuse it)")
        parts.append("Partitioned")
    _check_prefix(name, path, domain, secure)
    return "; ".join(parts)


def _expires(expires: datetime | float) -> str:
    """``expires`` as an IMF-fixdate (RFC 9110 5.6.7): a datetime, or seconds from now."""
    if isinstance(expires, datetime):
        if expires.utcoffset() is None:
            raise ValueError(
                "expires must be timezone-aware, such as datetime.now(timezone.utc) + ..."
            )
        return formatdate(expires.timestamp(), usegmt=True)
    if isinstance(expires, bool) or not isinstance(expires, (int, float)):
        raise TypeError("expires must be a datetime or a number of seconds from now")
    return formatdate(time.time() + expires, usegmt=True)


def _check_prefix(name: str, path: str, domain: str | None, secure: bool) -> None:
    """The rules of the ``__Secure-`` and ``__Host-`` prefixes (RFC 6265bis 4.1.3).

    Browsers match the prefixes without regard to case, and refuse a cookie that
    breaks their rules; refusing it here says why.
    """
    folded = name.lower()
    if folded.startswith("__host-"):
        if not secure or path != "/" or domain is not None:
            raise ValueError(
                f"cookie {name!r}: a __Host- cookie must be Secure, with Path=/ and no Domain"
            )
    elif folded.startswith("__secure-") and not secure:
        raise ValueError(f"cookie {name!r}: a __Secure- cookie must be Secure")


def _key(line: str) -> tuple[str, str | None, str | None]:
    """The cookie a ``Set-Cookie`` line sets: its name, Path and Domain (the domain in
    lower case, without the leading dot browsers ignore)."""
    first, *attributes = line.split(";")
    path = domain = None
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        key = key.strip().lower()
        if key == "path":
            path = value.strip()
        elif key == "domain":
            domain = value.strip().lower().lstrip(".")
    return first.partition("=")[0].strip(), path, domain


class CookieSetter:
    """``add_cookie`` and ``delete_cookie`` for a response with ``headers``."""

    __slots__ = ()

    headers: Headers

    def _check_cookies_settable(self) -> None:
        """Raise when a cookie can no longer be sent (the head is out)."""

    def _set_cookie(self, line: str) -> None:
        self._check_cookies_settable()
        # One line per cookie (RFC 6265 4.1.1: a server SHOULD NOT send two for one):
        # a cookie set again, or deleted, replaces its earlier line.
        key = _key(line)
        lines = self.headers.getall("set-cookie")
        kept = [each for each in lines if _key(each) != key]
        if len(kept) != len(lines):
            del self.headers["set-cookie"]
            for each in kept:
                self.headers.add("set-cookie", each)
        self.headers.add("set-cookie", line)

    def add_cookie(
        self,
        name: str,
        value: str,
        *,
        path: str = "/",
        domain: str | None = None,
        max_age: int | None = None,
        expires: datetime | float | None = None,
        secure: bool = True,
        httponly: bool = False,
        samesite: SameSite | None = "Lax",
        partitioned: bool = False,
    ) -> None:
        """Set a cookie: a ``Set-Cookie`` line of its own, replacing an earlier one for
        the same name, path and domain.

        ``value`` is any ``str``: characters a cookie value cannot hold (space, ``"``,
        ``,``, ``;``, ``\\``, controls, non-ASCII) and ``%`` are percent-encoded as UTF-8,
        and ``request.cookies`` decodes them. ``max_age`` is in seconds; ``expires`` a
        timezone-aware ``datetime`` or a number of seconds from now. ``samesite`` is
        ``"Lax"``, ``"Strict"``, ``"None"`` (which needs ``secure``) or ``None`` (no
        attribute); ``partitioned`` needs ``secure``.

        Raises:
          ValueError: the name is not a token, ``path`` or ``domain`` could not be
            sent safely, an attribute breaks a rule above, or the ``__Host-`` or
            ``__Secure-`` prefix's rules.
          TypeError: ``value``, ``max_age`` or ``expires`` is of the wrong type.
          RuntimeError: on a streamed response whose head has been sent.
        """
        self._set_cookie(
            set_cookie_line(
                name,
                value,
                path=path,
                domain=domain,
                max_age=max_age,
                expires=expires,
                secure=secure,
                httponly=httponly,
                samesite=samesite,
                partitioned=partitioned,
            )
        )

    def delete_cookie(self, name: str, *, path: str = "/", domain: str | None = None) -> None:
        """Tell the browser to drop a cookie: an empty one, expired, for the same
        ``path`` and ``domain`` as it was set with (else the browser keeps it).

        Secure when the name's prefix demands it, else not, so that it works over
        plain HTTP too. Raises as :meth:`add_cookie`.
        """
        self._set_cookie(
            set_cookie_line(
                name,
                "",
                path=path,
                domain=domain,
                max_age=0,
                expires=_EPOCH,
                secure=isinstance(name, str) and name.lower().startswith(_PREFIXES),
                httponly=False,
                samesite=None,
                partitioned=False,
            )
        )
