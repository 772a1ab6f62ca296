"""After many clients, good and bad, the server holds no task, socket or file of theirs."""

import os

import trio
import trio.testing

from trioweb import App
from trioweb.response import text


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _count_tasks(task: trio.lowlevel.Task) -> int:
    return 1 + sum(
        _count_tasks(child) for nursery in task.child_nurseries for child in nursery.child_tasks
    )


def leaky_app() -> App:
    app = App("leaks")

    @app.get("/")
    async def root(request):
        return text("ok")

    @app.get("/crash")
    async def crash(request):
        raise RuntimeError("boom")

    @app.get("/slow")
    async def slow(request):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.sleep_forever()

    @app.post("/stream", stream=True)
    async def stream(request):
        async with request.respond() as resp:
            async for chunk in request.stream:
                await resp.send(chunk)

    return app


async def _client(port: int, payload: bytes, *, read: bool) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(payload)
        if read:
            with trio.move_on_after(2):
                while await stream.receive_some():
                    pass


async def test_no_task_socket_or_fd_is_left_after_clients_leave() -> None:
    app = leaky_app()
    app.config.KEEP_ALIVE_TIMEOUT = 0.5
    payloads = [
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", True),
        (b"GET /crash HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", True),
        (b"GARBAGE\r\n\r\n", True),
        (b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", False),  # leaves mid-handler
        (b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf", False),
        (b"POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),  # keep-alive: closed by the server
        (b"GET / HTTP/1.1\r\nHost: x\r\n", False),  # half a head, then gone
    ]
    root = trio.lowlevel.current_root_task()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(app.serve, "127.0.0.1", 0)
            await trio.testing.wait_all_tasks_blocked()
            fds_before, tasks_before = _open_fds(), _count_tasks(root)
            for _ in range(5):
                async with trio.open_nursery() as clients:
                    for payload, read in payloads:
                        clients.start_soon(
                            lambda p=payload, r=read: _client(server.port, p, read=r)
                        )
            # Every connection ends by itself: keep-alive timeout, close or disconnect.
            for _ in range(200):
                if not server._connections:
                    break
                await trio.sleep(0.05)
            await trio.testing.wait_all_tasks_blocked()
            assert _count_tasks(root) == tasks_before
            assert _open_fds() == fds_before
            server.shutdown()
