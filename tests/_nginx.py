"""A real nginx in front of a test's app, as in production.

``async with nginx_proxy(tmp_path, [server.port]) as proxy:`` starts nginx as a child
process, in the foreground, with a generated config and every file it writes under
``tmp_path``, proxying to the given upstream ports on 127.0.0.1; the test then talks to
``proxy.port``. Extra directives go into the ``http``, ``server`` or ``location`` block
(``location="proxy_buffering off;"``), so tests of proxy headers, streamed responses or
upgrades can each shape the proxy they need.

nginx runs as one process (``master_process off``, as in ``bench/files.py``), so stopping
it is stopping one child. Its port is chosen free just before it starts; if another
process takes it first, nginx exits and starts again on another (handing nginx a bound
socket instead, as its binary upgrade does, crashes nginx 1.22 without a master
process).

A test that needs nginx fails, naming the package, when nginx is missing: a skip would
let CI pass without ever running it (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

INSTALL = "apt-get install -y nginx-light (or nginx)"
#: Seconds nginx may take to start serving, and to stop once signalled.
START_DEADLINE = 10.0
STOP_DEADLINE = 5.0
#: Seconds to wait for a log line.
DEADLINE = 5.0

# See Nginx.access_log.
_LOG_FORMAT = '$status [$upstream_status] [$upstream_addr] "$request"'


# Asked until nginx answers, at its start; not in the access log. The token tells nginx
# from another process that took the port first.
_READY_PATH = "/.nginx-ready"
_READY = f"GET {_READY_PATH} HTTP/1.0\r\n\r\n".encode()
_READY_TOKEN = b"trioweb-test-nginx"
# Starts tried, each on a new port, before giving up.
_ATTEMPTS = 3


def find_nginx() -> str:
    """nginx's path (Debian puts it in /usr/sbin, not on every PATH); fails without it."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    if found is None:
        pytest.fail(f"this test needs nginx: {INSTALL} (.ci/run installs it when missing)")
    return found


@dataclass
class Nginx:
    """A running nginx."""

    #: The loopback port nginx listens on.
    port: int
    directory: Path

    def error_log(self) -> str:
        """nginx's error log so far (warnings and errors, upstream failures among them)."""
        return (self.directory / "error.log").read_text()

    async def access_log(self, count: int) -> list[str]:
        """The first ``count`` lines of the access log, one per request, such as
        ``502 [502, 413] [127.0.0.1:P, 127.0.0.1:Q] "POST / HTTP/1.1"``: the status the
        client got, the app's (one per upstream tried) and the upstreams' addresses.

        Waits for them: nginx writes a request's line once it has closed it, which can
        be after the client has read the response.
        """
        path = self.directory / "access.log"
        with trio.fail_after(DEADLINE):
            while len(lines := path.read_text().splitlines()) < count:  # noqa: ASYNC110
                await trio.sleep(0.01)
        return lines[:count]


def nginx_config(
    directory: Path,
    port: int,
    upstreams: Sequence[int],
    *,
    http: str = "",
    server: str = "",
    location: str = "",
) -> str:
    """The config: one process in the foreground, every file it writes in ``directory``.

    ``client_max_body_size 0``: nginx forwards bodies of any size, so that the limits
    under test are the app's. The upstream settings are nginx's defaults (HTTP/1.0 to
    the app, request bodies buffered whole before they are sent, one failure marks an
    upstream down for 10 s).
    """
    servers = "\n".join(f"        server 127.0.0.1:{upstream};" for upstream in upstreams)
    temp = "\n".join(
        f'    {kind}_temp_path "{directory}/{kind}";'
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
# Written by tests/_nginx.py.
daemon off;
master_process off;
pid "{directory}/nginx.pid";
lock_file "{directory}/nginx.lock";
error_log "{directory}/error.log" warn;
events {{
    worker_connections 256;
}}
http {{
    log_format test '{_LOG_FORMAT}';
    access_log "{directory}/access.log" test;
{temp}
    client_max_body_size 0;
    upstream app {{
{servers}
    }}
{http}
    server {{
        listen 127.0.0.1:{port};
        location = {_READY_PATH} {{
            access_log off;
            return 200 "{_READY_TOKEN.decode()}";
        }}
{server}
        location / {{
            proxy_pass http://app;
{location}
        }}
    }}
}}
"""


@asynccontextmanager
async def nginx_proxy(
    directory: Path,
    upstreams: Sequence[int],
    *,
    http: str = "",
    server: str = "",
    location: str = "",
) -> AsyncIterator[Nginx]:
    """nginx proxying to ``upstreams`` (ports on 127.0.0.1) while the block runs.

    ``http``, ``server``, ``location``: directives added to those blocks. The files
    (config, logs, temp files) go to ``directory``. nginx is stopped on the way out,
    killed if it takes longer than ``STOP_DEADLINE``, even when the test is cancelled.
    """
    nginx = find_nginx()
    for _ in range(_ATTEMPTS):
        port = _free_port()
        config = directory / "nginx.conf"
        config.write_text(
            nginx_config(directory, port, upstreams, http=http, server=server, location=location)
        )
        # -e: where nginx logs before it has read its config.
        command = [nginx, "-p", str(directory), "-c", str(config), "-e", "stderr"]
        with (directory / "stderr.log").open("wb") as stderr:
            process = await trio.lowlevel.open_process(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        try:
            if await _started(process, port):
                yield Nginx(port, directory)
                return
        finally:
            with trio.CancelScope(shield=True):
                await _stop(process)
    output = (directory / "stderr.log").read_text()
    raise AssertionError(f"nginx did not start ({_ATTEMPTS} attempts): {output}")


def _free_port() -> int:
    # Free now; another process may take it before nginx binds it: then nginx exits,
    # and the caller tries another.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _started(process: trio.Process, port: int) -> bool:
    """Wait until nginx serves on ``port``; False if it exited (the port was taken)."""
    with trio.fail_after(START_DEADLINE):
        while process.returncode is None:
            try:
                async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                    await stream.send_all(_READY)
                    answer = b""
                    while data := await stream.receive_some():
                        answer += data
                    if _READY_TOKEN in answer:  # nginx, not whoever else has the port
                        return True
            except (OSError, trio.BrokenResourceError):
                pass  # not listening yet
            await trio.sleep(0.01)
    return False


async def _stop(process: trio.Process) -> None:
    """SIGQUIT (without a master process, nginx exits at once); kill if it lingers."""
    if process.returncode is None:
        process.send_signal(signal.SIGQUIT)
    with trio.move_on_after(STOP_DEADLINE):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
