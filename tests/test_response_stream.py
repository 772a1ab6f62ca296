"""Several tasks sending on one response stream: whole pieces, in turn, even when cancelled.

ResponseStream serialises its senders without a trio.Lock (see its comments); these tests
pin down what the lock used to guarantee.
"""

from __future__ import annotations

import trio
import trio.testing
from _helpers import DEADLINE, RawClient

from trioweb import App, Request
from trioweb.testing import TestClient

PIECE = 3000  # larger than the pipe, so every send waits for the client


def get(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode()


async def test_pieces_from_several_tasks_never_interleave() -> None:
    app = App("turns")

    @app.get("/")
    async def index(request: Request) -> None:
        async with request.respond() as resp:

            async def sender(letter: bytes) -> None:
                for _ in range(4):
                    await resp.send(letter * PIECE)

            async with trio.open_nursery() as nursery:
                for letter in (b"a", b"b", b"c"):
                    nursery.start_soon(sender, letter)

    async with TestClient(app, buffer_size=256) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(get("/"))
        response = await raw.read_response()
    body = response.body
    assert len(body) == 3 * 4 * PIECE
    pieces = [body[i : i + PIECE] for i in range(0, len(body), PIECE)]
    assert all(piece == piece[:1] * PIECE for piece in pieces)  # each piece is whole
    assert sorted(piece[:1] for piece in pieces) == [b"a"] * 4 + [b"b"] * 4 + [b"c"] * 4


async def test_a_sender_cancelled_while_waiting_does_not_keep_the_turn() -> None:
    app = App("turns")
    waiting = trio.Event()
    outcome: list[str] = []

    @app.get("/")
    async def index(request: Request) -> None:
        async with request.respond() as resp:

            async def first() -> None:
                await resp.send(b"1" * PIECE)  # waits: the client does not read yet

            async def second(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
                with trio.CancelScope() as scope:
                    task_status.started(scope)
                    await resp.send(b"2" * PIECE)  # waits for its turn, then is cancelled
                    outcome.append("second sent")
                outcome.append("second cancelled")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(first)
                await trio.testing.wait_all_tasks_blocked()
                scope = await nursery.start(second)
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()
                waiting.set()
            await resp.send(b"3" * PIECE)  # would wait forever if the turn had leaked

    async with TestClient(app, buffer_size=256) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(get("/"))
        with trio.fail_after(DEADLINE):
            await waiting.wait()
        response = await raw.read_response()
    assert outcome == ["second cancelled"]
    assert response.body == b"1" * PIECE + b"3" * PIECE
