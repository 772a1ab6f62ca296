"""The command line and the blocking entry points, run as real processes.

Each test writes a tiny app module to ``tmp_path``, starts a server process on port 0
from there, reads the chosen port from the "Serving on" log line, makes requests over
loopback, then signals the process and checks that it exits 0 without a traceback.
Every wait is bounded, and a process still alive when a test ends is killed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

TIMEOUT = 20.0
SERVING = re.compile(r"Serving on http://127\.0\.0\.1:(\d+)")
SIGNALS = pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)

APP_MODULE = """
import trio

from trioweb import App
from trioweb.response import text

app = App("cli")
released = None


@app.get("/")
async def index(request):
    return text("hello from the cli app")


@app.get("/slow")
async def slow(request):
    # Sends a first line, then finishes only once shutdown has begun.
    global released
    released = trio.Event()
    async with request.respond(content_type="text/plain") as resp:
        await resp.send("started\\n")
        await released.wait()
        await resp.send("finished\\n")


@app.before_server_stop
async def release(app):
    if released is not None:
        released.set()
"""


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces: fields start after its closing ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(entry))
    return children


@contextmanager
def serve(args: list[str], cwd: Path, servers: int = 1) -> Iterator[Running]:
    """Start ``args`` in ``cwd`` and wait for ``servers`` "Serving on" lines."""
    (cwd / "cliapp.py").write_text(APP_MODULE)
    log = cwd / "stderr.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    with log.open("wb") as err:
        process = subprocess.Popen(
            args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env
        )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            ports = SERVING.findall(log.read_text(errors="replace"))
            if len(ports) >= servers:
                break
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no 'Serving on' line within {TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.05)  # polling a subprocess's log for its port
        assert len(set(ports)) == 1, ports
        workers.update(_children(process.pid))
        yield Running(process, int(ports[0]), log)
    finally:
        for pid in [process.pid, *workers]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=TIMEOUT)


def stop(running: Running, signum: int) -> None:
    """Signal the server, wait for it to exit, check it exited cleanly."""
    running.process.send_signal(signum)
    try:
        code = running.process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {TIMEOUT} s after {signum!r}:\n{running.stderr()}")
    stderr = running.stderr()
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr


def http() -> httpx.Client:
    # trust_env=False: no proxy from the environment between us and 127.0.0.1.
    return httpx.Client(trust_env=False, timeout=TIMEOUT)


def assert_served(running: Running, times: int = 1) -> None:
    with http() as client:
        for _ in range(times):
            response = client.get(running.url())
            assert response.status_code == 200
            assert response.text == "hello from the cli app"


def assert_refused(port: int) -> None:
    with http() as client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/")


@SIGNALS
def test_python_m_trioweb_serves_and_stops_on_signal(tmp_path: Path, signum: int) -> None:
    args = [sys.executable, "-m", "trioweb", "cliapp:app", "--port", "0"]
    with serve(args, tmp_path) as running:
        assert_served(running, times=3)
        stop(running, signum)
        assert_refused(running.port)


@SIGNALS
def test_trioweb_console_script_serves_and_stops_on_signal(tmp_path: Path, signum: int) -> None:
    script = Path(sys.executable).with_name("trioweb")
    assert script.exists(), f"the trioweb console script is not installed at {script}"
    with serve([str(script), "cliapp:app", "--host", "127.0.0.1", "--port", "0"], tmp_path) as r:
        assert_served(r)
        stop(r, signum)
        assert_refused(r.port)


@SIGNALS
def test_cli_lets_in_flight_request_finish_on_signal(tmp_path: Path, signum: int) -> None:
    args = [sys.executable, "-m", "trioweb", "cliapp:app", "--port", "0"]
    with serve(args, tmp_path) as running, http() as client:
        with client.stream("GET", running.url("/slow")) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            assert next(chunks) == b"started\n"
            # The handler is now waiting; the signal starts the graceful shutdown.
            running.process.send_signal(signum)
            assert b"".join(chunks) == b"finished\n"
        code = running.process.wait(timeout=TIMEOUT)
        assert code == 0, running.stderr()
        assert "Traceback" not in running.stderr()


@SIGNALS
def test_cli_workers_serve_and_parent_signal_stops_them_all(tmp_path: Path, signum: int) -> None:
    args = [sys.executable, "-m", "trioweb", "cliapp:app", "--port", "0", "--workers", "2"]
    with serve(args, tmp_path, servers=2) as running:
        workers = _children(running.process.pid)
        assert len(workers) == 2, workers
        assert_served(running, times=10)
        stop(running, signum)
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the parent"
        assert_refused(running.port)


SCRIPTS = {
    "trio.run": "trio.run(app.serve, '127.0.0.1', 0)",
    "app.run": "app.run(host='127.0.0.1', port=0)",
}


@SIGNALS
@pytest.mark.parametrize("entry", list(SCRIPTS))
def test_script_serves_and_stops_on_signal(tmp_path: Path, signum: int, entry: str) -> None:
    script = tmp_path / "hello.py"
    script.write_text(
        f"from cliapp import app, trio\n\nif __name__ == '__main__':\n    {SCRIPTS[entry]}\n"
    )
    with serve([sys.executable, str(script)], tmp_path) as running:
        assert_served(running, times=2)
        stop(running, signum)
        assert_refused(running.port)


@pytest.mark.parametrize("engine", ["h11", "httptools"])
def test_cli_http_chooses_the_engine_and_the_log_names_it(tmp_path: Path, engine: str) -> None:
    args = [sys.executable, "-m", "trioweb", "cliapp:app", "--port", "0", "--http", engine]
    with serve(args, tmp_path) as running:
        assert_served(running)
        assert f"(HTTP engine: {engine})" in running.stderr()
        stop(running, signal.SIGTERM)


def test_cli_asking_for_httptools_without_it_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "cliapp.py").write_text(APP_MODULE)
    # httptools made unimportable, as in an environment without the speed extra.
    code = (
        "import sys; sys.modules['httptools'] = None; sys.path.insert(0, '.');"
        "from trioweb._cli import main; main(['cliapp:app', '--port', '0', '--http', 'httptools'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, timeout=TIMEOUT
    )
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "pip install 'trioweb[speed]'" in stderr
    assert "Traceback" not in stderr
