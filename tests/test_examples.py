"""The examples in ``examples/`` work as their docstrings say.

Each example module is imported by path and driven through ``TestClient``; ``hello.py``
is also run as a real process on a free port and stopped with SIGINT.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import h11
import httpx
import pytest
import trio
from _helpers import EXAMPLES, RawClient, free_port, load_example, request_head

from trioweb.testing import TestClient


@pytest.mark.parametrize("name", sorted(path.stem for path in EXAMPLES.glob("*.py")))
def test_every_example_has_a_module_level_app_and_a_main_block(name: str) -> None:
    from trioweb import App

    assert isinstance(load_example(name).app, App)
    assert 'if __name__ == "__main__":' in (EXAMPLES / f"{name}.py").read_text()


# -- hello.py -----------------------------------------------------------------------


async def test_hello() -> None:
    async with TestClient(load_example("hello").app) as client:
        r = await client.get("/")
        assert (r.status_code, r.text) == (200, "Hello, world!")
        assert r.headers["content-type"] == "text/plain; charset=utf-8"


async def test_hello_as_a_process_stops_cleanly_on_sigint() -> None:
    port = free_port()
    command = [sys.executable, str(EXAMPLES / "hello.py"), str(port)]
    process = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            with trio.fail_after(15):
                while True:  # until the server accepts connections
                    try:
                        r = await http.get(f"http://127.0.0.1:{port}/")
                        break
                    except httpx.ConnectError:
                        assert process.poll() is None, "hello.py exited early"
                        await trio.sleep(0.05)
        assert (r.status_code, r.text) == (200, "Hello, world!")
        process.send_signal(signal.SIGINT)
        with trio.fail_after(15):
            code = await process.wait()
        assert code == 0
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(5):
                await process.wait()
        assert process.stderr is not None
        await process.stderr.aclose()


# -- routing.py ---------------------------------------------------------------------


async def test_routing_typed_parameters() -> None:
    routing = load_example("routing")
    order_id = uuid.uuid4()
    async with TestClient(routing.app) as client:
        assert (await client.get("/users/42")).json() == {"id": 42}
        assert (await client.get("/users/-1")).json() == {"id": -1}
        assert (await client.get("/users/ada")).json() == {"name": "ada"}
        assert (await client.get("/prices/10.5")).json() == {"amount": 10.5, "with_tax": 12.6}
        assert (await client.get(f"/orders/{order_id}")).json() == {
            "order": str(order_id),
            "version": 4,
        }
        assert (await client.get("/orders/not-a-uuid")).status_code == 404
        assert (await client.get("/files/docs/index.md")).text == "docs/index.md"
        assert (await client.get("/users/42/")).status_code == 404  # strict slashes
        r = await client.head("/users/42")
        assert (r.status_code, r.content) == (200, b"")
        assert r.headers["content-length"] == str(len(b'{"id":42}'))
        r = await client.post("/users/42")
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, HEAD"


async def test_routing_blueprint_and_method_view() -> None:
    routing = load_example("routing")
    async with TestClient(routing.app) as client:
        assert (await client.get("/api")).json() == {"notes": []}
        assert (await client.get("/api/")).status_code == 404
        assert (await client.get("/api/notes/1")).status_code == 404
        assert (await client.put("/api/notes/1", content=b"buy milk")).status_code == 204
        r = await client.get("/api/notes/1")
        assert (r.status_code, r.text) == (200, "buy milk")
        assert (await client.get("/api")).json() == {"notes": [1]}
        r = await client.post("/api/notes/1")
        assert r.status_code == 405
        assert r.headers["allow"] == "DELETE, GET, HEAD, PUT"
        too_big = await client.put("/api/notes/2", content=b"x" * 5000)
        assert too_big.status_code == 413
        assert (await client.delete("/api/notes/1")).status_code == 204
        assert (await client.get("/api/notes/1")).status_code == 404


async def test_routing_composition_view_streams_the_upload() -> None:
    routing = load_example("routing")

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"a" * 100_000

    async with TestClient(routing.app) as client:
        assert (await client.get("/upload")).text.startswith("POST a body")
        r = await client.post("/upload", content=body())
        assert r.json() == {
            "bytes": 1_000_000,
            "sha256": hashlib.sha256(b"a" * 1_000_000).hexdigest(),
        }
        assert (await client.delete("/upload")).headers["allow"] == "GET, HEAD, POST"


# -- streaming.py -------------------------------------------------------------------


async def test_streaming_echo_returns_the_body_as_it_comes() -> None:
    streaming = load_example("streaming")
    pieces = [bytes([n]) * 50_000 for n in range(20)]

    async with TestClient(streaming.app) as client:
        # Raw bytes, since httpx sends the whole body before it reads the response:
        # each piece comes back before the next one is sent.
        async with client.raw() as stream:
            raw = RawClient(stream)
            await raw.send(
                request_head(
                    "POST",
                    "/echo",
                    ["Content-Type: application/x-test", "Transfer-Encoding: chunked"],
                )
            )
            response = raw.parser("POST")
            for n, piece in enumerate(pieces):
                await raw.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                if n == 0:  # the head goes out with the first piece
                    head = await response.next_event()
                    assert head.status_code == 200
                    assert (b"content-type", b"application/x-test") in head.headers
                    assert (b"transfer-encoding", b"chunked") in head.headers
                assert await response.read_body(len(piece)) == piece
            await raw.send(b"0\r\n\r\n")
            assert type(await response.next_event()) is h11.EndOfMessage
        r = await client.put("/echo", content=b"plain")
        assert r.content == b"plain"
        assert r.headers["content-type"] == "application/octet-stream"  # none was sent


async def test_streaming_await_style() -> None:
    streaming = load_example("streaming")
    async with TestClient(streaming.app) as client:
        r = await client.put("/upper", content=b"shout")
        assert (r.status_code, r.text) == (200, "SHOUT")


async def test_streaming_callback_csv() -> None:
    streaming = load_example("streaming")
    async with TestClient(streaming.app) as client:
        r = await client.get("/report.csv")
        assert (r.status_code, r.text) == (200, "foo,bar")
        assert r.headers["content-type"] == "text/csv"
        assert "content-length" not in r.headers


async def test_streaming_from_child_tasks(autojump_clock: trio.abc.Clock) -> None:
    streaming = load_example("streaming")
    async with TestClient(streaming.app) as client:
        start = trio.current_time()
        r = await client.get("/race")
        assert r.text.splitlines() == [
            "fast finished after 0.1s",
            "medium finished after 0.2s",
            "slow finished after 0.3s",
        ]
        assert trio.current_time() - start == pytest.approx(0.3)


# -- errors_middleware.py -----------------------------------------------------------


async def test_errors_and_exception_handlers(caplog: pytest.LogCaptureFixture) -> None:
    example = load_example("errors_middleware")
    async with TestClient(example.app) as client:
        r = await client.get("/nowhere")
        assert (r.status_code, r.json()) == (404, {"error": "not found", "path": "/nowhere"})
        r = await client.get("/teapot")
        assert (r.status_code, r.text) == (418, "418 I'm a Teapot: short and stout\n")
        r = await client.get("/quota")
        assert (r.status_code, r.headers["retry-after"]) == (429, "60")
        assert r.json() == {"error": "100 requests per minute"}
        r = await client.get("/crash")
        assert (r.status_code, r.text) == (500, "500 Internal Server Error\n")
        assert "a bug" not in r.text
    crash_logs = [rec for rec in caplog.records if rec.exc_info and "crash" in rec.getMessage()]
    assert crash_logs, "the 500 was not logged with its traceback"


async def test_middleware(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("errors_middleware")
    async with TestClient(example.app) as client:
        r = await client.get("/admin/stats")
        assert (r.status_code, r.json()) == (401, {"error": "unauthorized"})
        assert r.headers["server"] == "trioweb-example"
        auth = {"authorization": "Bearer letmein"}
        r = await client.get("/admin/stats", headers=auth)
        assert (r.status_code, r.json()["user"]) == (200, "admin")
        # Response middleware also runs for errors that never reached a handler.
        assert (await client.get("/nowhere")).headers["server"] == "trioweb-example"
        assert (await client.post("/teapot")).headers["server"] == "trioweb-example"
    assert capsys.readouterr().out.splitlines() == [
        "errors_middleware: accepting connections",
        "errors_middleware: shutting down; 0 jobs seen",
        "errors_middleware: stopped",
    ]


async def test_background_jobs(autojump_clock: trio.abc.Clock) -> None:
    example = load_example("errors_middleware")
    async with TestClient(example.app) as client:
        r = await client.post("/jobs")
        assert (r.status_code, r.headers["location"]) == (202, "/jobs/1")
        assert (await client.get("/jobs/1")).json()["status"] in ("queued", "running")
        await trio.sleep(1)  # autojump_clock: no real waiting
        assert (await client.get("/jobs/1")).json() == {"job": 1, "status": "done"}
        assert (await client.get("/jobs/2")).status_code == 404
        # The worker stops with the server: a second server life starts a new one.
    async with TestClient(example.app) as client:
        assert (await client.post("/jobs")).json() == {"job": 2}
        await trio.sleep(1)
        assert (await client.get("/jobs/2")).json()["status"] == "done"


# -- files.py -----------------------------------------------------------------------


async def test_files_static_index_range_and_304() -> None:
    module = load_example("files")
    async with TestClient(module.app) as client:
        index = await client.get("/static/")
        assert index.status_code == 200
        assert index.headers["content-type"] == "text/html"
        assert index.content == (EXAMPLES / "public" / "index.html").read_bytes()
        hello = await client.get("/static/hello.txt")
        assert hello.text == "Hello from a static file.\n"
        again = await client.get(
            "/static/hello.txt", headers={"if-none-match": hello.headers["etag"]}
        )
        assert (again.status_code, again.content) == (304, b"")
        part = await client.get("/download", headers={"range": "bytes=0-99"})
        assert part.status_code == 206
        assert part.content == (EXAMPLES / "files.py").read_bytes()[:100]
        assert part.headers["content-disposition"] == 'attachment; filename="files example.py"'
        escape = await client.get("/static/%2e%2e/files.py")
        assert escape.status_code == 404


# -- upload.py ----------------------------------------------------------------------


async def test_upload_page_is_a_multipart_form() -> None:
    async with TestClient(load_example("upload").app) as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text
    assert 'type="file" name="files" multiple' in page.text
    assert 'name="_charset_"' in page.text


async def test_upload_saves_each_file_under_its_own_name(tmp_path: Path) -> None:
    module = load_example("upload")
    module.UPLOADS = tmp_path
    files = [("files", ("<b>.txt", b"first")), ("files", ("two.bin", bytes(300_000)))]
    async with TestClient(module.app) as client:
        r = await client.post("/upload", data={"note": "été"}, files=files)
    assert r.status_code == 200
    assert "Note: été" in r.text
    assert "&lt;b&gt;.txt: 5 bytes" in r.text and "two.bin: 300000 bytes" in r.text
    contents = sorted((tmp_path / name).read_bytes() for name in os.listdir(tmp_path))
    assert contents == sorted([b"first", bytes(300_000)])


async def test_upload_failing_half_way_leaves_no_file(tmp_path: Path) -> None:
    module = load_example("upload")
    module.UPLOADS = tmp_path
    module.app.config.FORM_MAX_FILE_SIZE = 1000
    files = [("files", ("ok.txt", b"small")), ("files", ("big.bin", bytes(5000)))]
    async with TestClient(module.app) as client:
        r = await client.post("/upload", files=files)
    assert r.status_code == 413
    assert os.listdir(tmp_path) == []  # the first file too: the upload failed


async def test_upload_comment_is_a_buffered_form() -> None:
    async with TestClient(load_example("upload").app) as client:
        r = await client.post("/comment", data={"name": "Ada", "comment": "<hi>"})
    assert r.text.startswith("<p>Ada says: &lt;hi&gt;</p>")


# -- chat.py ------------------------------------------------------------------------


async def test_chat_page_and_a_room_of_two() -> None:
    chat = load_example("chat")
    async with TestClient(chat.app) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert "new WebSocket(" in page.text
        with trio.fail_after(5):
            async with client.websocket_connect("/chat/lobby?name=ann") as ann:
                assert await ann.recv() == "ann joined"
                async with client.websocket_connect("/chat/lobby?name=bob") as bob:
                    assert await bob.recv() == "bob joined"
                    assert await ann.recv() == "bob joined"
                    await bob.send("hi ann")
                    assert await ann.recv() == "bob: hi ann"
                    assert await bob.recv() == "bob: hi ann"
                assert await ann.recv() == "bob left"
            async with client.websocket_connect("/chat/other") as guest:
                assert (await guest.recv()).endswith(" joined")  # another room, a guest
        assert chat.rooms["lobby"].members == {}


async def test_chat_drops_a_member_that_does_not_read() -> None:
    from trioweb.websocket import ConnectionClosed

    chat = load_example("chat")
    async with (
        TestClient(chat.app, buffer_size=1024) as client,
        client.websocket_connect("/chat/r?name=slow") as slow,
        client.websocket_connect("/chat/r?name=talker") as talker,
    ):
        with trio.fail_after(5):
            assert await talker.recv() == "talker joined"
            # slow reads nothing: its pipe fills, then its channel, and it is dropped.
            for n in range(chat.BACKLOG * 4):
                await talker.send(f"{n} " + "x" * 100)
                assert await talker.recv() == f"talker: {n} " + "x" * 100
            assert set(chat.rooms["r"].members) == {"talker"}
            # It gets the backlog it had, then the close.
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await slow.recv()
    assert (closed.value.code, closed.value.reason) == (1008, "too far behind")
