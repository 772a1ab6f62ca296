"""Raw WebSocket frames for the tests that speak the wire protocol themselves.

A client's frames are masked (RFC 6455 5.3) unless a test says otherwise; the
server's come unmasked. Each read has a deadline, as in ``_helpers.py``.
"""

from __future__ import annotations

import os

import trio
from _helpers import DEADLINE, RawClient, request_head

#: A valid handshake's headers (the key and accept are RFC 6455's own example).
HANDSHAKE = [
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
]

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """One frame as a client sends it; ``length`` overrides the announced length."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + size.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


async def read_exact(raw: RawClient, size: int) -> bytes:
    with trio.fail_after(DEADLINE):
        while len(raw._buffer) < size:
            data = await raw._receive()
            if not data:
                raise EOFError(f"closed before {size} bytes: {bytes(raw._buffer)!r}")
            raw._buffer += data
    found = bytes(raw._buffer[:size])
    del raw._buffer[:size]
    return found


async def read_frame(raw: RawClient) -> tuple[int, bytes]:
    """The next frame from the server: (opcode, payload); asserts it is unmasked and final."""
    first, second = await read_exact(raw, 2)
    assert first & 0x80, "the server fragments nothing in these tests"
    assert not second & 0x80, "a server's frames are not masked"
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(await read_exact(raw, 2), "big")
    elif size == 127:
        size = int.from_bytes(await read_exact(raw, 8), "big")
    return first & 0x0F, await read_exact(raw, size)


async def read_close(raw: RawClient) -> int:
    """Read frames until the server's close frame; its code (1005 for none)."""
    while True:
        opcode, payload = await read_frame(raw)
        if opcode == CLOSE:
            return int.from_bytes(payload[:2], "big") if payload else 1005


async def open_raw(raw: RawClient, path: str, headers: list[str] | None = None) -> bytes:
    """Send a handshake and read the 101's head."""
    await raw.send(request_head("GET", path, HANDSHAKE + (headers or [])))
    head = await raw.read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return head
