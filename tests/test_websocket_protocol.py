"""The WebSocket wire protocol: Autobahn TestSuite's server cases, bad input, a fuzz.

The cases are ported from the Autobahn TestSuite (``autobahntestsuite``'s fuzzingclient
against an echo server); each test id starts with the case number it ports. The test
sends raw frames (masked, as a client must) over an in-memory connection and reads
every frame the server sends until it closes the connection. A case passes when the
server echoes what the suite expects echoed, answers pings, and closes with the code
the suite expects (1002 for a protocol error, 1007 for invalid UTF-8, 1009 too big).

Not ported: the performance series (9.x beyond sizes under the limit, 10.x), and the
compression series (12.x, 13.x) whose point is throughput; permessage-deflate is tested
against the ``websockets`` client in ``test_websocket_interop.py``.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from _helpers import DEADLINE, RawClient, request_head
from _ws import BINARY, CLOSE, CONT, HANDSHAKE, PING, PONG, TEXT, close_payload, frame, open_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioweb import App, Config
from trioweb.testing import TestClient
from trioweb.websocket import WebSocket

NORMAL_CLOSE = frame(CLOSE, close_payload(1000))


def echo_app(**config: Any) -> App:
    app = App("ws", config=Config(**config))

    @app.websocket("/echo")
    async def echo(request: Any, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    return app


async def read_all_frames(raw: RawClient) -> list[tuple[int, bytes]]:
    """Every frame until the server closes the connection (its close frame included)."""
    frames: list[tuple[int, bytes]] = []
    data = b""
    with trio.fail_after(DEADLINE):
        while chunk := await raw._receive():
            data += chunk
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert not second & 0x80, "a server's frames are not masked"
        size, pos = second & 0x7F, pos + 2
        if size == 126:
            size, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif size == 127:
            size, pos = int.from_bytes(data[pos : pos + 8], "big"), pos + 8
        frames.append((first & 0x0F, data[pos : pos + size]))
        pos += size
    return frames


def chops(data: bytes) -> list[bytes]:
    """``data`` (frames built by ``_ws.frame``) cut into its frames."""
    pieces = []
    while data:
        size = data[1] & 0x7F
        start = 2 + {126: 2, 127: 8}.get(size, 0)
        if size >= 126:
            size = int.from_bytes(data[2:start], "big")
        end = start + (4 if data[1] & 0x80 else 0) + size
        pieces.append(data[:end])
        data = data[end:]
    return pieces


async def exchange(
    data: bytes, *, chop: bool = True, eof: bool = False, **config: Any
) -> list[tuple[int, bytes]]:
    """Send ``data`` after the handshake to an echo server; what it sent back, in order.

    ``chop``: send frame by frame, letting the server handle each before the next comes
    (the suite's "frame-wise chops" with a wait), so an echo comes before a later
    frame's error. ``eof``: then end the client's side.
    """
    async with TestClient(echo_app(**config)) as client:
        async with client.raw() as stream:
            raw = RawClient(stream)
            await open_raw(raw, "/echo")
            for piece in chops(data) if chop else [data]:
                try:
                    await raw.send(piece)
                except trio.BrokenResourceError:
                    break  # the server closed the connection: what follows is not read
                await trio.testing.wait_all_tasks_blocked()
            if eof:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_eof()  # type: ignore[attr-defined]
            frames = await read_all_frames(raw)
        assert client.server is not None
        with trio.fail_after(DEADLINE):
            while client.server._connections:  # noqa: ASYNC110 (nothing leaks)
                await trio.sleep(0.01)
    return frames


def closed_with(frames: list[tuple[int, bytes]]) -> int:
    """The code of the server's close frame, the last frame it sent (1005: none given)."""
    opcode, payload = frames[-1]
    assert opcode == CLOSE, frames
    return int.from_bytes(payload[:2], "big") if payload else 1005


def split(data: bytes, opcode: int, size: int) -> bytes:
    """``data`` as a fragmented message of ``size``-byte frames."""
    pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    return b"".join(
        frame(opcode if n == 0 else CONT, piece, fin=n == len(pieces) - 1)
        for n, piece in enumerate(pieces)
    )


# (case, what the client sends, the frames expected back before the close, close code)
CASES: list[tuple[str, bytes, list[tuple[int, bytes]], int]] = []


def case(name: str, sent: bytes, echoed: list[tuple[int, bytes]], code: int) -> None:
    CASES.append((name, sent, echoed, code))


# 1.x framing: text and binary payloads of every length class, echoed.
for number, size in enumerate([0, 125, 126, 127, 128, 65535, 65536], 1):
    case(f"1.1.{number}", frame(TEXT, b"*" * size) + NORMAL_CLOSE, [(TEXT, b"*" * size)], 1000)
    case(
        f"1.2.{number}",
        frame(BINARY, b"\xfe" * size) + NORMAL_CLOSE,
        [(BINARY, b"\xfe" * size)],
        1000,
    )

# 2.x pings and pongs.
case("2.1", frame(PING) + NORMAL_CLOSE, [(PONG, b"")], 1000)
case("2.2", frame(PING, b"Hello, world!") + NORMAL_CLOSE, [(PONG, b"Hello, world!")], 1000)
case(
    "2.3",
    frame(PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff") + NORMAL_CLOSE,
    [(PONG, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")],
    1000,
)
case("2.4", frame(PING, b"*" * 125) + NORMAL_CLOSE, [(PONG, b"*" * 125)], 1000)
case("2.5", frame(PING, b"*" * 126) + NORMAL_CLOSE, [], 1002)  # control frame > 125
case("2.7", frame(PONG) + NORMAL_CLOSE, [], 1000)  # unsolicited pong: ignored
case("2.8", frame(PONG, b"unsolicited") + NORMAL_CLOSE, [], 1000)
case("2.9", frame(PONG, b"u") + frame(PING, b"p") + NORMAL_CLOSE, [(PONG, b"p")], 1000)
case(
    "2.10",
    b"".join(frame(PING, b"%d" % n) for n in range(10)) + NORMAL_CLOSE,
    [(PONG, b"%d" % n) for n in range(10)],
    1000,
)

# 3.x reserved bits (no extension was negotiated): a protocol error, after what came before.
case("3.1", frame(TEXT, b"Hello", rsv=1), [], 1002)
case(
    "3.2",
    frame(TEXT, b"small") + frame(TEXT, b"bad", rsv=2) + frame(PING),
    [(TEXT, b"small")],
    1002,
)
case(
    "3.3",
    frame(TEXT, b"small") + frame(TEXT, b"bad", rsv=3) + frame(PING),
    [(TEXT, b"small")],
    1002,
)
case(
    "3.4",
    frame(TEXT, b"small") + frame(TEXT, b"bad", rsv=4) + frame(PING),
    [(TEXT, b"small")],
    1002,
)
case("3.5", frame(BINARY, b"\x00\xff", rsv=5), [], 1002)
case("3.6", frame(PING, b"ping", rsv=6), [], 1002)
case("3.7", frame(CLOSE, close_payload(1000), rsv=7), [], 1002)

# 4.x opcodes: reserved data (3-7) and control (11-15) opcodes.
for number, opcode in enumerate([3, 4, 5, 6, 7], 1):
    case(
        f"4.1.{number}",
        frame(TEXT, b"ok") + frame(opcode, b"x") + frame(PING),
        [(TEXT, b"ok")],
        1002,
    )
for number, opcode in enumerate([11, 12, 13, 14, 15], 1):
    case(
        f"4.2.{number}",
        frame(TEXT, b"ok") + frame(opcode, b"x") + frame(PING),
        [(TEXT, b"ok")],
        1002,
    )

# 5.x fragmentation, and control frames between fragments.
case("5.1", frame(PING, b"frag", fin=False) + frame(CONT, b"ment"), [], 1002)
case("5.2", frame(PONG, b"frag", fin=False) + frame(CONT, b"ment"), [], 1002)
case(
    "5.3",
    frame(TEXT, b"frag", fin=False) + frame(CONT, b"ment") + NORMAL_CLOSE,
    [(TEXT, b"fragment")],
    1000,
)
case(
    "5.6",
    frame(TEXT, b"frag", fin=False) + frame(PING, b"p") + frame(CONT, b"ment") + NORMAL_CLOSE,
    [(PONG, b"p"), (TEXT, b"fragment")],
    1000,
)
case("5.9", frame(CONT, b"fragment") + frame(TEXT, b"x"), [], 1002)
case("5.10", frame(CONT, b"frag", fin=False) + frame(CONT, b"ment"), [], 1002)
case(
    "5.15",
    frame(TEXT, b"f1", fin=False)
    + frame(CONT, b"f2")
    + frame(CONT, b"f3", fin=False)
    + frame(TEXT, b"f4"),
    [(TEXT, b"f1f2")],
    1002,
)
case("5.18", frame(TEXT, b"f1", fin=False) + frame(TEXT, b"f2"), [], 1002)
case(
    "5.19",
    frame(TEXT, b"f1", fin=False)
    + frame(CONT, b"f2", fin=False)
    + frame(PING, b"a")
    + frame(CONT, b"f3", fin=False)
    + frame(PING, b"b")
    + frame(CONT, b"f4")
    + NORMAL_CLOSE,
    [(PONG, b"a"), (PONG, b"b"), (TEXT, b"f1f2f3f4")],
    1000,
)

# 6.x UTF-8: valid text in one frame and split at every byte; invalid text fails (1007).
VALID = "Hello-µ@ßöäüàá-UTF-8!!".encode()
KOSME = "κόσμε".encode()
case("6.1.1", frame(TEXT) + NORMAL_CLOSE, [(TEXT, b"")], 1000)
case("6.2.1", frame(TEXT, VALID) + NORMAL_CLOSE, [(TEXT, VALID)], 1000)
case("6.2.3", split(VALID, TEXT, 1) + NORMAL_CLOSE, [(TEXT, VALID)], 1000)  # split code points
case("6.5.1", frame(TEXT, KOSME) + NORMAL_CLOSE, [(TEXT, KOSME)], 1000)
case("6.6.11", split(KOSME, TEXT, 1) + NORMAL_CLOSE, [(TEXT, KOSME)], 1000)
case("6.23.1", frame(TEXT, "\ufffd".encode()) + NORMAL_CLOSE, [(TEXT, "\ufffd".encode())], 1000)
INVALID = {
    "6.3.1": KOSME + b"\xed\xa0\x80edited",  # a surrogate
    "6.8.1": b"\xf8\x88\x80\x80\x80",  # a 5-byte sequence
    "6.9.1": b"\xc0\xaf",  # an overlong "/"
    "6.12.1": b"\x80",  # a lone continuation byte
    "6.14.1": b"\xc0 ",  # a start byte followed by a space
    "6.18.1": b"\xed\xa0\x80\xed\xb0\x80",  # a surrogate pair
    "6.20.1": b"\xef\xbf",  # a sequence cut short at the end
    "6.21.1": b"\xf4\x90\x80\x80",  # above U+10FFFF
}
for name, data in INVALID.items():
    case(name, frame(TEXT, data) + NORMAL_CLOSE, [], 1007)
# 6.3.2 and 6.4.x: fragmented, invalid text fails at the fragment that holds it, before
# the message ends (fail fast): the rest never comes, and the close is there already.
case("6.3.2", split(KOSME + b"\xed\xa0\x80edited", TEXT, 1), [], 1007)
case(
    "6.4.1", frame(TEXT, KOSME, fin=False) + frame(CONT, b"\xf4\x90\x80\x80", fin=False), [], 1007
)
case("6.4.2", frame(TEXT, KOSME + b"\xf4", fin=False) + frame(CONT, b"\x90", fin=False), [], 1007)

# 7.x the close handshake and close codes.
case("7.1.1", frame(TEXT, b"Hello") + NORMAL_CLOSE, [(TEXT, b"Hello")], 1000)
case("7.1.2", NORMAL_CLOSE + NORMAL_CLOSE, [], 1000)  # one close back, no more
case("7.1.3", NORMAL_CLOSE + frame(PING, b"late"), [], 1000)  # nothing after a close
case("7.1.4", NORMAL_CLOSE + frame(TEXT, b"late"), [], 1000)
case("7.1.5", frame(TEXT, b"frag", fin=False) + NORMAL_CLOSE + frame(CONT, b"ment"), [], 1002)
case("7.3.1", frame(CLOSE), [], 1005)  # an empty close is answered with an empty close
case("7.3.2", frame(CLOSE, b"\x03"), [], 1002)  # a one-byte payload
case("7.3.3", frame(CLOSE, close_payload(1000)), [], 1000)
case("7.3.4", frame(CLOSE, close_payload(1000, b"reason")), [], 1000)
case("7.3.5", frame(CLOSE, close_payload(1000, b"*" * 123)), [], 1000)
case("7.3.6", frame(CLOSE, close_payload(1000, b"*" * 124)), [], 1002)  # 126 bytes
case(
    "7.5.1",
    frame(CLOSE, close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")),
    [],
    1007,
)
for number, code in enumerate(
    [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999], 1
):
    case(f"7.7.{number}", frame(CLOSE, close_payload(code)), [], code)
for number, code in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999], 1):
    case(f"7.9.{number}", frame(CLOSE, close_payload(code)), [], 1002)

# 9.x limits: sizes under WEBSOCKET_MAX_SIZE are echoed; 10.1.1: many small fragments.
case("9.1.1", frame(TEXT, b"*" * 65536) + NORMAL_CLOSE, [(TEXT, b"*" * 65536)], 1000)
case("9.2.2", frame(BINARY, b"\xfe" * 262144) + NORMAL_CLOSE, [(BINARY, b"\xfe" * 262144)], 1000)
case("10.1.1", split(b"*" * 65536, TEXT, 1300) + NORMAL_CLOSE, [(TEXT, b"*" * 65536)], 1000)


@pytest.mark.parametrize(("name", "sent", "echoed", "code"), CASES, ids=[c[0] for c in CASES])
async def test_autobahn_case(
    name: str,
    sent: bytes,
    echoed: list[tuple[int, bytes]],
    code: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trioweb")
    frames = await exchange(sent)
    assert frames[:-1] == echoed
    assert closed_with(frames) == code
    # Bad input is one quiet line (an echoed close code is no failure: 7.7.x).
    assert not [r for r in caplog.records if r.levelno > logging.INFO]
    failures = [r for r in caplog.records if "failed (closing with" in r.getMessage()]
    failed = code in (1002, 1007, 1009) and not name.startswith("7.7.")
    assert len(failures) == (1 if failed else 0)


async def test_3_2_non_strict_a_message_in_the_same_read_as_a_bad_frame_is_not_echoed() -> None:
    # The suite accepts this as NON-STRICT: the whole read is parsed before the handler
    # runs, so the connection has failed by the time it would echo.
    sent = frame(TEXT, b"small") + frame(TEXT, b"bad", rsv=2) + frame(PING)
    frames = await exchange(sent, chop=False)
    assert frames[:-1] in ([], [(TEXT, b"small")])
    assert closed_with(frames) == 1002


async def test_9_1_6_a_message_over_the_limit_is_refused_before_it_is_read() -> None:
    # The frame's header announces 2 MiB: the server closes with 1009 at once, without
    # waiting for (or buffering) the payload, none of which is sent here.
    bad = frame(TEXT, b"", length=2 << 20)
    frames = await exchange(bad, chop=False, WEBSOCKET_MAX_SIZE=1 << 20)
    assert closed_with(frames) == 1009


async def test_an_unmasked_client_frame_is_a_protocol_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trioweb")
    frames = await exchange(frame(TEXT, b"plain", mask=False))
    assert closed_with(frames) == 1002
    lines = [r for r in caplog.records if r.name == "trioweb" and r.levelno >= logging.INFO]
    assert len([r for r in lines if "failed" in r.getMessage()]) == 1
    assert not [r for r in caplog.records if r.levelno > logging.INFO]


@pytest.mark.parametrize("code", [1002, 1007, 1009])
async def test_the_handler_sees_the_failure_code(code: int) -> None:
    app = App("ws", config=Config(WEBSOCKET_MAX_SIZE=10))
    seen: list[int] = []

    @app.websocket("/ws")
    async def handler(request: Any, ws: WebSocket) -> None:
        try:
            await ws.recv()
        except Exception as exc:
            seen.append(exc.code)  # type: ignore[attr-defined]

    bad = {1002: frame(7), 1007: frame(TEXT, b"\xff"), 1009: frame(BINARY, b"x" * 11)}[code]
    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await open_raw(raw, "/ws")
        await raw.send(bad)
        frames = await read_all_frames(raw)
    assert closed_with(frames) == code
    assert seen == [code]


# -- a fuzz of the frame stream -----------------------------------------------------------


# What a server may send in a close frame (echoing a client's valid code included).
SENDABLE = {1000, 1001, 1002, 1003, 1005, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
SENDABLE |= set(range(3000, 5000))


def _frames() -> st.SearchStrategy[bytes]:
    opcodes = st.sampled_from([TEXT, BINARY, CONT, CLOSE, PING, PONG, 3, 11])
    payloads = st.one_of(
        st.binary(max_size=300),
        st.text(max_size=60).map(str.encode),
        st.integers(0, 5000).map(lambda code: code.to_bytes(2, "big")),
    )
    one = st.builds(
        lambda opcode, payload, fin, rsv, mask: frame(
            opcode, payload, fin=fin, rsv=rsv, mask=mask
        ),
        opcodes,
        payloads,
        st.booleans(),
        st.sampled_from([0, 0, 0, 1, 4]),
        st.sampled_from([True, True, True, False]),
    )
    return st.lists(one, max_size=8).map(b"".join)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples in CI and here
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=_frames(), cut=st.integers(0, 2000), garbage=st.binary(max_size=40))
def test_fuzz_the_frame_stream(data: bytes, cut: int, garbage: bytes) -> None:
    """Any byte stream after the handshake: the server echoes, answers or closes with a
    code a server may send, never crashes or logs above INFO, and leaks nothing."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("trioweb")
    logger.addHandler(handler)
    try:
        frames = trio.run(
            partial(exchange, data[:cut] + garbage + NORMAL_CLOSE, chop=False, eof=True)
        )
    finally:
        logger.removeHandler(handler)
    # A stream cut inside a frame ends without a close frame (1006: nothing to send).
    if frames and frames[-1][0] == CLOSE:
        assert closed_with(frames) in SENDABLE
    assert not [r for r in records if r.levelno > logging.INFO]


async def test_a_handshake_with_a_body_is_refused() -> None:
    async with TestClient(echo_app()) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(request_head("GET", "/echo", [*HANDSHAKE, "Content-Length: 2"]) + b"hi")
        response = await raw.read_response()
    assert response.status == 400
