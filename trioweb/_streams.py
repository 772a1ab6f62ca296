"""What trioweb's own Trio streams share."""

from __future__ import annotations

import operator

__all__ = ["checked_max_bytes"]


def checked_max_bytes(max_bytes: int | None) -> int | None:
    """``receive_some``'s argument as Trio's streams take it: ``None`` or at least 1."""
    if max_bytes is None:
        return None
    max_bytes = operator.index(max_bytes)
    if max_bytes < 1:
        raise ValueError("max_bytes must be at least 1")
    return max_bytes
