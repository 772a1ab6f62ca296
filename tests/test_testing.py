"""The testing helpers: the pytest plugin's ``client`` fixture, autojump_clock, raw()."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import h11
import httpx
import pytest
import trio
import trio.testing

from trioweb import App
from trioweb.response import text
from trioweb.testing import TestClient, _MemoryListener, memory_pipe_pair

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup


@pytest.fixture
def app():
    app = App("fixture-app")
    app.config.RESPONSE_TIMEOUT = 10

    @app.after_server_start
    async def started(app_):
        app_.config.STARTED_BY_FIXTURE = True

    @app.get("/")
    async def index(request):
        return text("hello from the fixture")

    @app.get("/slow")
    async def slow(request):
        await trio.sleep(60)
        return text("too late")

    @app.get("/sleep/<seconds:float>", response_timeout=None)
    async def sleep(request, seconds):
        await trio.sleep(seconds)
        return text(f"slept {seconds}")

    return app


async def test_client_fixture_is_built_from_the_app_fixture(client, app):
    assert isinstance(client, TestClient)
    assert client.app is app
    # The fixture runs the server's life: start listeners have run.
    assert app.config.STARTED_BY_FIXTURE is True
    response = await client.get("/")
    assert response.status_code == 200
    assert response.text == "hello from the fixture"


async def test_response_timeout_is_503_in_no_real_time(autojump_clock, client):
    real_start = time.monotonic()
    virtual_start = trio.current_time()
    response = await client.get("/slow")
    virtual_elapsed = trio.current_time() - virtual_start
    assert response.status_code == 503
    assert response.text == "503 Service Unavailable\n"
    # RESPONSE_TIMEOUT (10 s) fired, before the handler's 60 s sleep ended.
    assert 10 <= virtual_elapsed < 60
    assert time.monotonic() - real_start < 5


async def test_long_sleep_without_timeout_takes_no_real_time(autojump_clock, client):
    real_start = time.monotonic()
    virtual_start = trio.current_time()
    response = await client.get("/sleep/3600")
    assert response.status_code == 200
    assert response.text == "slept 3600.0"
    assert trio.current_time() - virtual_start >= 3600
    assert time.monotonic() - real_start < 5


async def test_request_timeout_on_a_stalled_head_gives_408(autojump_clock, client):
    real_start = time.monotonic()
    async with client.raw() as stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        data = b""
        with trio.fail_after(600):
            while chunk := await stream.receive_some():
                data += chunk
    assert data.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - real_start < 5


async def test_idle_keep_alive_connection_closes_silently(autojump_clock, client):
    async with client.raw() as stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        start = trio.current_time()
        with trio.fail_after(600):
            while chunk := await stream.receive_some():
                data += chunk
        idle = trio.current_time() - start
    # One answer, then the idle connection is closed without another byte.
    assert data.count(b"HTTP/1.1 ") == 1
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"hello from the fixture")
    assert idle >= 5  # KEEP_ALIVE_TIMEOUT


async def test_raw_gives_raw_bytes(client):
    async with client.raw() as stream:
        assert isinstance(stream, trio.abc.Stream)
        await stream.send_all(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                data += chunk
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ")
    assert b"\r\ncontent-length: 22\r\n" in first.lower() + b"\r\n"
    assert rest.startswith(b"hello from the fixture")
    second = rest[len(b"hello from the fixture") :]
    assert second.startswith(b"HTTP/1.1 404 ")
    assert second.endswith(b"\r\n\r\n404 Not Found\n")


async def test_raw_http_10_request(client):
    async with client.raw() as stream:
        await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"\r\n\r\nhello from the fixture")


async def test_testclient_works_without_the_fixture():
    app = App("inline")

    @app.get("/")
    async def index(request):
        return text("inline")

    async with TestClient(app) as client:
        assert (await client.get("/")).text == "inline"
        assert str(client.base_url) == "http://testserver"


def test_testclient_is_not_collected():
    assert TestClient.__test__ is False


async def test_memory_pipe_follows_trios_stream_contract() -> None:
    # Trio's own conformance checks for half-closeable streams: busy, closed and broken
    # errors, cancellation, send_eof, wait_send_all_might_not_block on a full pipe.
    async def pipe() -> tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]:
        return memory_pipe_pair()

    async def clogged() -> tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]:
        return memory_pipe_pair(buffer_size=0)

    with trio.fail_after(30):
        await trio.testing.check_half_closeable_stream(pipe, clogged)


async def test_connections_never_accepted_are_closed_with_the_listener() -> None:
    listener = _MemoryListener(buffer_size=1024)
    streams = [listener.connect() for _ in range(3)]
    await listener.aclose()
    # Nobody accepted them: their clients see EOF, not a hang.
    with trio.fail_after(5):
        for stream in streams:
            assert await stream.receive_some() == b""


# The plugin is loaded by every pytest run in an environment that has trioweb, with or
# without the test extra. These runs make httpx unimportable (a None in sys.modules,
# set by a sitecustomize on PYTHONPATH) to play an install without the extra.
def run_pytest_without_httpx(tmp_path: Path, test_file: str, *args: str) -> str:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['httpx'] = None\n")
    (tmp_path / "test_it.py").write_text(textwrap.dedent(test_file))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": str(shim), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args]
    done = subprocess.run(
        [*command, "test_it.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


def test_plugin_costs_nothing_without_the_test_extra(tmp_path: Path) -> None:
    # No pytest-trio either: the whole extra is missing, only pytest is there.
    output = run_pytest_without_httpx(
        tmp_path,
        """
        import sys

        import pytest

        def test_trivial(request):
            assert request.config.pluginmanager.has_plugin("trioweb")  # it was loaded
            with pytest.raises(ModuleNotFoundError):
                import httpx
            assert "trioweb.testing" not in sys.modules
        """,
        "-p",
        "no:trio",
    )
    assert output.startswith("exit 0\n"), output
    assert "1 passed" in output, output


def test_client_fixture_without_the_test_extra_names_it(tmp_path: Path) -> None:
    output = run_pytest_without_httpx(
        tmp_path,
        """
        import pytest
        from trioweb import App

        @pytest.fixture
        def app():
            return App("no-extra")

        def test_without_client():
            pass

        async def test_with_client(client):
            pass
        """,
        "-o",
        "trio_mode=true",
    )
    assert output.startswith("exit 1\n"), output
    # pytest-trio sets fixtures up inside the test run: a failure, not an error.
    assert "1 failed, 1 passed" in output, output
    assert "pip install 'trioweb[test]'" in output, output
    assert "trioweb.testing needs httpx" in output, output


def upload_app() -> App:
    """``POST /count`` reads the whole upload and says how long it was and in how many
    pieces it came; ``POST /echo`` streams the upload back as it arrives."""
    app = App("uploads")

    @app.post("/count", stream=True)
    async def count(request):
        pieces = [piece async for piece in request.stream]
        return text(f"{sum(map(len, pieces))} bytes in {len(pieces)} pieces")

    @app.post("/echo", stream=True)
    async def echo(request):
        async with request.respond() as resp:
            async for piece in request.stream:
                await resp.send(piece)

    return app


async def test_an_error_inside_the_block_comes_out_as_itself() -> None:
    with pytest.raises(ValueError, match="from the test"):
        async with TestClient(upload_app()) as client:
            assert (await client.post("/count", content=b"abc")).status_code == 200
            raise ValueError("from the test")


async def test_an_error_inside_the_block_stays_grouped_when_the_server_failed_too() -> None:
    app = upload_app()

    @app.after_server_stop
    async def fail(app_):
        raise RuntimeError("the server failed too")

    # Two errors: unwrapping would drop one of them.
    with pytest.raises(ExceptionGroup) as info:
        async with TestClient(app):
            raise ValueError("from the test")
    assert info.group_contains(ValueError, match="from the test")
    assert info.group_contains(RuntimeError, match="the server failed too")


async def test_an_upload_error_is_raised_by_its_own_call_only() -> None:
    failed = trio.Event()
    answers = []

    async def failing():
        yield b"x" * 1000
        raise ValueError("the upload broke")

    async def fine():
        yield b"y" * 1000
        await failed.wait()  # still uploading while the other upload fails
        yield b"y" * 1000

    async def failing_call(client: TestClient) -> None:
        with pytest.raises(ValueError, match="the upload broke"):
            await client.post("/count", content=failing())
        failed.set()

    async def fine_call(client: TestClient) -> None:
        answers.append((await client.post("/count", content=fine())).text)

    with trio.fail_after(10):
        async with TestClient(upload_app()) as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fine_call, client)
                nursery.start_soon(failing_call, client)
            assert answers[0].startswith("2000 bytes in ")
            # The client and its server are still fine.
            assert (await client.post("/count", content=b"abc")).text == "3 bytes in 1 pieces"


def refusing_app() -> App:
    """``upload_app()`` and ``POST /refuse``, answered 401 without reading the body."""
    app = upload_app()

    @app.post("/refuse", stream=True)
    async def refuse(request):
        return text("log in first", status=401)

    return app


async def test_an_early_answer_is_read_once_the_body_is_sent(autojump_clock) -> None:
    # httpx sends the whole body before reading the response, here as over the network.
    # The 401 waits in the pipe; the server takes (or drops) the rest of the body.
    async def body():
        for _ in range(16):
            yield b"x" * 65536

    with trio.fail_after(60):
        async with TestClient(refusing_app()) as client:
            response = await client.post("/refuse", content=body())
            assert (response.status_code, response.text) == (401, "log in first")
            assert (await client.post("/count", content=b"abc")).text == "3 bytes in 1 pieces"


async def test_an_upload_error_after_an_early_answer_is_still_raised() -> None:
    async def failing():
        yield b"x" * 1000
        await trio.testing.wait_all_tasks_blocked()  # the 401 is in the pipe by now
        raise ValueError("the upload broke")

    with trio.fail_after(10):
        async with TestClient(refusing_app()) as client:
            with pytest.raises(ValueError, match="the upload broke"):
                await client.post("/refuse", content=failing())
            assert (await client.post("/count", content=b"abc")).text == "3 bytes in 1 pieces"


async def test_an_echo_larger_than_the_pipe_waits_for_the_write_timeout(autojump_clock) -> None:
    # What docs/testing.md says of echoes: httpx sends all of the body before reading,
    # so once the echo fills the pipe both sides wait, until WRITE_TIMEOUT.
    async def body(pieces: int):
        for _ in range(pieces):
            yield b"x" * 65536

    app = upload_app()
    app.config.WRITE_TIMEOUT = 30
    with trio.fail_after(600):
        async with TestClient(app) as client:
            assert len((await client.post("/echo", content=body(2))).content) == 2 * 65536
            start = trio.current_time()
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                await client.post("/echo", content=body(16))
            assert 30 <= trio.current_time() - start < 60


async def test_hand_over_pipe_passes_each_send_whole() -> None:
    # buffer_size=0 buffers nothing, yet a send is not handed over byte by byte.
    one, two = memory_pipe_pair(buffer_size=0)
    chunks = []

    async def receive() -> None:
        while sum(map(len, chunks)) < 65536:
            chunks.append(await two.receive_some(65536))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            await one.send_all(b"x" * 65536)
    assert [len(chunk) for chunk in chunks] == [65536]


async def test_hand_over_send_returns_once_the_reader_took_all_of_it() -> None:
    one, two = memory_pipe_pair(buffer_size=0)
    record: list[int | str] = []

    async def send() -> None:
        await one.send_all(b"x" * 3000)
        record.append("sent")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            for _ in range(3):
                await trio.testing.wait_all_tasks_blocked()
                record.append(len(await two.receive_some(1000)))
    assert record == [1000, 1000, 1000, "sent"]


async def test_testclient_without_buffers_moves_an_upload_in_few_pieces() -> None:
    with trio.fail_after(30):
        async with TestClient(upload_app(), buffer_size=0) as client:
            response = await client.post("/count", content=b"x" * 65536)
            echoed = [0]
            async with client.stream("POST", "/echo", content=b"x" * 65536) as r:
                async for chunk in r.aiter_raw():
                    echoed.append(len(chunk))
    total, pieces = response.text.removesuffix(" pieces").split(" bytes in ")
    assert total == "65536"
    assert int(pieces) <= 4
    assert sum(echoed) == 65536
    assert len(echoed) <= 8


@pytest.mark.parametrize(("size", "message"), [(5, "Too little data"), (20, "Too much data")])
async def test_a_body_that_breaks_its_content_length_raises_as_over_a_socket(
    autojump_clock: trio.abc.Clock, size: int, message: str
) -> None:
    async def body():
        yield b"x" * size

    with trio.fail_after(600):
        async with TestClient(upload_app()) as client:
            # The error httpx raises over a real connection (httpcore lets h11's through).
            with pytest.raises((h11.LocalProtocolError, httpx.LocalProtocolError), match=message):
                await client.post("/count", content=body(), headers={"Content-Length": "10"})
            assert (await client.post("/count", content=b"abc")).text == "3 bytes in 1 pieces"


async def test_requests_one_after_another_share_a_keep_alive_connection(client):
    first, second = await client.get("/"), await client.get("/")
    assert first.extensions["network_stream"] is second.extensions["network_stream"]


async def test_requests_at_the_same_time_have_a_connection_each(client):
    streams = []

    async def get() -> None:
        async with client.stream("GET", "/sleep/1") as response:
            streams.append(response.extensions["network_stream"])
            await response.aread()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(get)
        nursery.start_soon(get)
    assert len(streams) == 2
    assert streams[0] is not streams[1]


async def test_a_connection_the_server_closed_is_not_reused(autojump_clock, client):
    first = await client.get("/")
    await trio.sleep(10)  # past KEEP_ALIVE_TIMEOUT: the server closed it
    second = await client.get("/")
    assert second.text == "hello from the fixture"
    assert second.extensions["network_stream"] is not first.extensions["network_stream"]


async def test_requests_start_no_thread(client):
    # httpcore picks its locks and events for the running library: Trio's, not threads.
    before = threading.active_count()
    async with trio.open_nursery() as nursery:
        for _ in range(3):  # at once: the pool opens connections and waits on them
            nursery.start_soon(client.get, "/sleep/1")
    assert (await client.get("/")).status_code == 200
    assert threading.active_count() == before


async def test_an_https_url_is_refused_with_a_clear_error(client):
    # The in-memory server speaks plain HTTP; pretending otherwise would lie to the app.
    with pytest.raises(httpx.ConnectError, match="plain HTTP"):
        await client.get("https://testserver/")
