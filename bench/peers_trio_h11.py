"""The bare Trio + h11 loop in the peer benchmark: ``python bench/peers_trio_h11.py PORT``.

The keep-alive loop of ``../shared/bench/trio_h11_baseline.py`` (the floor ``run.py``
compares trioweb with), with a plain ``if`` on the method and target so that it answers
the four routes of ``peers.py`` instead of one: no framework, no routing table, no
request object, only h11 and Trio.
"""

from __future__ import annotations

import json
import sys
from functools import partial

import h11
import trio
from peers import HELLO, SMALL_JSON


async def next_event(conn: h11.Connection, stream: trio.SocketStream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(65536))


def answer(method: bytes, target: bytes, body: bytes) -> tuple[int, bytes, bytes]:
    """Status, content type and body for one request."""
    if method == b"GET":
        if target == b"/":
            return 200, b"text/plain", HELLO.encode()
        if target == b"/json":
            return 200, b"application/json", json.dumps(SMALL_JSON).encode()
        if target.startswith(b"/user/") and target[6:].isdigit():
            return 200, b"text/plain", b"user %d" % int(target[6:])
    elif method == b"POST" and target == b"/echo":
        return 200, b"application/octet-stream", body
    return 404, b"text/plain", b"Not Found"


async def handle(stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = await next_event(conn, stream)
            if not isinstance(event, h11.Request):
                return
            body = b""
            while not isinstance(data := await next_event(conn, stream), h11.EndOfMessage):
                if isinstance(data, h11.Data):
                    body += data.data
            status, content_type, content = answer(event.method, event.target, body)
            headers = [("content-type", content_type), ("content-length", str(len(content)))]
            out = conn.send(h11.Response(status_code=status, headers=headers))
            out += conn.send(h11.Data(data=content))
            out += conn.send(h11.EndOfMessage())
            await stream.send_all(out)
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, h11.RemoteProtocolError):
        pass


if __name__ == "__main__":
    trio.run(partial(trio.serve_tcp, handle, int(sys.argv[1]), host="127.0.0.1"))
