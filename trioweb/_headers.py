"""Multi-valued mappings: query arguments and case-insensitive HTTP headers."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from email.utils import formatdate
from typing import TypeVar, Union, overload

__all__ = ["Headers", "HeadersInit", "MultiDict", "date_now"]

_T = TypeVar("_T")

HeadersInit = Union["Headers", Mapping[str, str], Iterable[tuple[str, str]], None]

# CR and LF would let a value start a new header line (response splitting); NUL is
# refused by every serious parser. Checked once, where a value enters a Headers.
_FORBIDDEN = ("\r", "\n", "\0")


class MultiDict(MutableMapping[str, str]):
    """A mapping where a key may hold several values, in order.

    ``d[key]`` and ``get`` give the first value, ``getlist`` all of them; setting a key
    replaces all its values, ``add`` appends one. ``keys()`` lists each key once;
    ``items()`` lists every pair, repeated keys included.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        for key, value in items:
            self.add(key, value)

    def _key(self, key: str) -> str:
        return key

    def __getitem__(self, key: str) -> str:
        key = self._key(key)
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __setitem__(self, key: str, value: str) -> None:
        value = self._check(key, value)  # before anything is removed
        self.__delitem_quiet(key)
        self._items.append((self._key(key), value))

    def __delitem__(self, key: str) -> None:
        if not self.__delitem_quiet(key):
            raise KeyError(key)

    def __delitem_quiet(self, key: str) -> bool:
        key = self._key(key)
        before = len(self._items)
        self._items = [(k, v) for k, v in self._items if k != key]
        return len(self._items) != before

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        key = self._key(key)
        return any(k == key for k, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for k, _ in self._items:
            seen.setdefault(k)
        return iter(seen)

    def __len__(self) -> int:
        return len({k for k, _ in self._items})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDict):
            return sorted(self._items) == sorted(other._items)
        return super().__eq__(other)

    def _check(self, key: str, value: str) -> str:
        return value

    def add(self, key: str, value: str) -> None:
        """Append a value for ``key``, keeping the ones already there."""
        self._items.append((self._key(key), self._check(key, value)))

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order; an empty list when there is none."""
        key = self._key(key)
        return [v for k, v in self._items if k == key]

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        """Every (key, value) pair, in order, repeated keys included."""
        return list(self._items)


class Headers(MultiDict):
    """Case-insensitive, multi-valued HTTP headers.

    Names are stored lower case. A name or value holding CR, LF or NUL is refused with
    ``ValueError`` when it is set, so it can never be written to the wire.
    """

    __slots__ = ()

    def __init__(self, init: HeadersInit = None) -> None:
        super().__init__()
        if init is None:
            return
        pairs = (
            init.items()
            if isinstance(init, MultiDict)
            else (init.items() if isinstance(init, Mapping) else init)
        )
        for key, value in pairs:
            self.add(key, value)

    @classmethod
    def _trusted(cls, items: list[tuple[str, str]]) -> Headers:
        """Wrap pairs already lower-cased and validated (by the HTTP parser)."""
        headers = cls()
        headers._items = items
        return headers

    def _key(self, key: str) -> str:
        return key.lower()

    def _check(self, key: str, value: str) -> str:
        value = str(value)
        for bad in _FORBIDDEN:
            if bad in key or bad in value:
                raise ValueError(f"header {key!r} holds a forbidden character")
        return value

    @overload
    def getall(self, key: str) -> list[str]: ...
    @overload
    def getall(self, key: str, default: _T) -> list[str] | _T: ...
    def getall(self, key: str, default: object = None) -> object:
        """Every value of the header ``key``; ``default`` (else ``[]``) when absent."""
        values = self.getlist(key)
        if values:
            return values
        return [] if default is None else default

    def copy(self) -> Headers:
        """A shallow copy."""
        return Headers._trusted(list(self._items))


_date_cache: tuple[int, bytes] = (0, b"")


def date_now() -> bytes:
    """The ``Date`` header value, formatted at most once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]
