"""The clients of the streaming benchmark: its own raw client, curl, httpx and aiohttp.

Each runs the scenarios it can (``SCENARIOS``, or fewer) against the routes of
``stream_trioweb.py`` and ``stream_sanic.py``, checks the answer (the status, the number of
body bytes, the sink's count) and returns the wall-clock seconds of the transfer; a wrong
answer raises :class:`BenchError`. The raw client sends preformatted chunks of a size of
our choosing; the others upload a file the way they do by default, so their pieces are
their own. ``stream.py --show-chunks`` runs every upload against :class:`Recorder`, which
records how each request came over the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from _common import (
    HEAD_LIMIT,
    IO_TIMEOUT,
    RECEIVE_BUFFER,
    BenchError,
    ChunkedBody,
    KiB,
    LengthBody,
    MiB,
    connect,
    expect,
    read_response,
    show_size,
)

#: Chunked upload to the sink, upload with Content-Length to the sink, chunked upload
#: echoed back as it arrives (full duplex), download.
SCENARIOS = ("upload-chunked", "upload-length", "echo", "download")
LABELS = {
    "upload-chunked": "upload, chunked",
    "upload-length": "upload, Content-Length",
    "echo": "echo, chunked",
    "download": "download",
}
#: How each real client cuts an upload, as ``--show-chunks`` found (bench/README.md).
PIECES = {
    "curl": "64 KiB upload buffer: 65,524-byte chunks",
    "httpx": "64 KiB file reads, a chunk each",
    "aiohttp": "256 KiB file reads, a chunk each",
}
#: httpx reads a file in 64 KiB pieces (its ``CHUNK_SIZE``), aiohttp in 256 KiB ones
#: (``DEFAULT_CHUNK_SIZE``); the generators of their chunked uploads read the same.
HTTPX_PIECE = 64 * KiB
AIOHTTP_PIECE = 256 * KiB


class StreamClient(Protocol):
    """One client, bound to one server's port."""

    #: Its name on the command line and in the tables.
    name: str
    #: The scenarios it can run, in the order of ``SCENARIOS``.
    scenarios: tuple[str, ...]

    def run(self, scenario: str, size: int) -> float:
        """Move ``size`` body bytes, check the answer, return the wall-clock seconds."""
        ...


def check_sink(what: str, status: int, body: bytes, size: int) -> None:
    """The sink must answer 200 with the exact byte count it read."""
    if status != 200:
        raise BenchError(f"{what}: status {status} {body[:80]!r}")
    if body != str(size).encode():
        raise BenchError(f"{what}: the sink counted {body[:80]!r}, not {size}")


def check_count(what: str, status: int, received: int, size: int) -> None:
    if status != 200:
        raise BenchError(f"{what}: status {status}")
    if received != size:
        raise BenchError(f"{what}: {received} body bytes, expected {size}")


class UploadFiles:
    """Files of zero bytes, one per size, made on first use: what the real clients upload."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def path(self, size: int) -> Path:
        path = self._directory / f"upload-{size}"
        if not path.exists():
            piece = bytes(MiB)
            with path.open("wb") as file:
                for _ in range(size // MiB):
                    file.write(piece)
                file.write(piece[: size % MiB])
        return path


# -- the raw client ---------------------------------------------------------------------


class Upload:
    """A request body of zero bytes over ``sendall``, in pieces of ``chunk`` bytes.

    Chunked, one preformatted frame (size line, payload, CRLF) is sent again and again;
    with Content-Length, one preallocated payload.
    """

    def __init__(self, size: int, chunk: int, chunked: bool) -> None:
        self.count, rest = divmod(size, chunk)
        if chunked:
            self.framing = "Transfer-Encoding: chunked"
            self.piece = b"%x\r\n" % chunk + bytes(chunk) + b"\r\n"
            self.last = (b"%x\r\n" % rest + bytes(rest) + b"\r\n" if rest else b"") + b"0\r\n\r\n"
        else:
            self.framing = f"Content-Length: {size}"
            self.piece = bytes(chunk)
            self.last = bytes(rest)

    def send(self, sock: socket.socket, path: str) -> None:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\n{self.framing}\r\n\r\n".encode()
        )
        piece = self.piece
        for _ in range(self.count):
            sock.sendall(piece)
        if self.last:
            sock.sendall(self.last)


class Raw:
    """The benchmark's own client, over blocking sockets: it costs the server as little as
    a client can, and reads every response's framing itself."""

    name = "raw"
    scenarios = SCENARIOS

    def __init__(self, port: int, chunk: int) -> None:
        self.port = port
        self.chunk = chunk
        self.buf = bytearray(RECEIVE_BUFFER)
        self._uploads: dict[tuple[int, bool], Upload] = {}

    def _upload(self, size: int, chunked: bool) -> Upload:
        if (size, chunked) not in self._uploads:
            self._uploads[size, chunked] = Upload(size, self.chunk, chunked)
        return self._uploads[size, chunked]

    def upload(self, size: int, chunked: bool) -> float:
        """``POST /sink``: the whole body up, then its size back as text."""
        body = self._upload(size, chunked)
        with connect(self.port) as sock:
            started = time.perf_counter()
            try:
                body.send(sock, "/sink")
            except OSError as exc:
                # The server may have answered early, with an error, and closed.
                try:
                    early = read_response(sock, self.buf, keep=200)
                except (OSError, BenchError):
                    raise exc from None
                raise BenchError(
                    f"upload: {exc!r} after the answer {early.status} {early.start!r}"
                ) from None
            response = read_response(sock, self.buf, keep=64)
            seconds = time.perf_counter() - started
        check_sink("upload", response.status, response.start, size)
        return seconds

    def echo(self, size: int) -> float:
        """``POST /echo``: send and receive at once, a thread each way."""
        body = self._upload(size, chunked=True)
        failed: list[BaseException] = []

        def send(sock: socket.socket) -> None:
            try:
                body.send(sock, "/echo")
            except OSError as exc:
                failed.append(exc)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wake the reader

        with connect(self.port) as sock:
            sender = threading.Thread(target=send, args=(sock,), daemon=True)
            started = time.perf_counter()
            sender.start()
            try:
                response = read_response(sock, self.buf, keep=200)
            except BaseException:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wake the sender
                raise
            finally:
                sender.join()
            seconds = time.perf_counter() - started
        if failed:
            raise BenchError(f"echo: sending failed: {failed[0]}")
        expect(response, "echo", size)
        return seconds

    def download(self, size: int) -> float:
        """``GET /download?size=N``: N bytes down."""
        with connect(self.port) as sock:
            started = time.perf_counter()
            sock.sendall(f"GET /download?size={size} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            response = read_response(sock, self.buf, keep=200)
            seconds = time.perf_counter() - started
        expect(response, "download", size)
        return seconds

    def run(self, scenario: str, size: int) -> float:
        scenarios: dict[str, Callable[[int], float]] = {
            "upload-chunked": functools.partial(self.upload, chunked=True),
            "upload-length": functools.partial(self.upload, chunked=False),
            "echo": self.echo,
            "download": self.download,
        }
        try:
            return scenarios[scenario](size)
        except OSError as exc:  # timeouts included
            raise BenchError(f"{scenario}: {exc!r}") from None


# -- curl -------------------------------------------------------------------------------

#: After the body (or nothing, with ``--output /dev/null``), a line curl writes at the end.
CURL_WRITE_OUT = "\n%{http_code} %{size_download} %{time_total}"


@dataclass
class CurlResult:
    status: int
    #: Body bytes received.
    size: int
    #: curl's own clock, from its start of the transfer to the end.
    seconds: float
    #: The body, when it went to standard output.
    body: bytes


def parse_curl(stdout: bytes) -> CurlResult:
    """Read the body and the ``CURL_WRITE_OUT`` line from curl's standard output."""
    body, _, last = stdout.rpartition(b"\n")
    fields = last.split()
    try:
        status, size, seconds = int(fields[0]), int(fields[1]), float(fields[2])
    except (IndexError, ValueError):
        raise BenchError(f"curl: unexpected output {stdout[-200:]!r}") from None
    return CurlResult(status, size, seconds, body)


class Curl:
    """curl, one process per transfer (it inherits our CPU): ``curl -T FILE`` uploads
    (a PUT), with ``-H 'Transfer-Encoding: chunked'`` for the chunked upload and the echo.

    Its defaults otherwise, ``Expect: 100-continue`` included. Its clock is the time used.
    """

    name = "curl"
    scenarios = SCENARIOS

    def __init__(self, port: int, files: UploadFiles) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.files = files

    def command(self, scenario: str, size: int) -> list[str]:
        command = ["curl", "--silent", "--show-error", "--noproxy", "*"]
        # A transfer slower than 1 byte/s for IO_TIMEOUT seconds is a stall: curl gives up.
        command += ["--speed-limit", "1", "--speed-time", str(int(IO_TIMEOUT))]
        command += ["--write-out", CURL_WRITE_OUT]
        if scenario == "download":
            return [*command, "--output", "/dev/null", f"{self.url}/download?size={size}"]
        command += ["--upload-file", str(self.files.path(size))]
        if scenario != "upload-length":
            command += ["--header", "Transfer-Encoding: chunked"]
        if scenario == "echo":
            return [*command, "--output", "/dev/null", f"{self.url}/echo"]
        return [*command, f"{self.url}/sink"]

    def run(self, scenario: str, size: int) -> float:
        done = subprocess.run(self.command(scenario, size), capture_output=True, check=False)
        if done.returncode:
            message = done.stderr.decode(errors="replace").strip()
            raise BenchError(f"curl {scenario}: exit status {done.returncode}: {message}")
        result = parse_curl(done.stdout)
        if scenario.startswith("upload"):
            check_sink(f"curl {scenario}", result.status, result.body, size)
        else:
            check_count(f"curl {scenario}", result.status, result.size, size)
        return result.seconds


# -- httpx ------------------------------------------------------------------------------


class Httpx:
    """httpx's blocking client: a file object as ``content`` (Content-Length, 64 KiB
    reads), a generator of 64 KiB reads for the chunked upload, ``iter_raw()`` down.

    No echo: httpx sends the whole request body before it reads the response, so an echo of
    more than the sockets' buffers would wait forever.
    """

    name = "httpx"
    scenarios = ("upload-chunked", "upload-length", "download")

    def __init__(self, port: int, files: UploadFiles) -> None:
        import httpx  # only where the benchmark runs it: not a dependency of trioweb

        self._httpx = httpx
        self.url = f"http://127.0.0.1:{port}"
        self.files = files

    def _client(self) -> Any:
        return self._httpx.Client(timeout=IO_TIMEOUT, trust_env=False)

    def _upload(self, scenario: str, size: int) -> float:
        with self.files.path(size).open("rb") as file, self._client() as client:
            content: Any = file
            if scenario == "upload-chunked":  # a generator: httpx cannot know the length
                content = iter(functools.partial(file.read, HTTPX_PIECE), b"")
            started = time.perf_counter()
            response = client.post(f"{self.url}/sink", content=content)
            seconds = time.perf_counter() - started
        check_sink(f"httpx {scenario}", response.status_code, response.content, size)
        return seconds

    def _download(self, size: int) -> float:
        with self._client() as client:
            started = time.perf_counter()
            with client.stream("GET", f"{self.url}/download?size={size}") as response:
                received = 0
                for piece in response.iter_raw():
                    received += len(piece)
            seconds = time.perf_counter() - started
        check_count("httpx download", response.status_code, received, size)
        return seconds

    def run(self, scenario: str, size: int) -> float:
        try:
            if scenario == "download":
                return self._download(size)
            return self._upload(scenario, size)
        except (OSError, self._httpx.HTTPError) as exc:
            raise BenchError(f"httpx {scenario}: {exc!r}") from None


# -- aiohttp ----------------------------------------------------------------------------


class Aiohttp:
    """aiohttp's client on asyncio's default loop, one loop per transfer: an open file as
    ``data`` for the upload with Content-Length (aiohttp reads it in 256 KiB pieces, in a
    worker thread), an async generator of 256 KiB reads for the chunked upload and the
    echo, ``response.content.iter_any()`` down.

    It reads the response while it still sends (the body goes out from a task of its own),
    so it can echo; but not a file: once the response head is in, aiohttp closes the
    request's payload, and a file payload is then cut short.
    """

    name = "aiohttp"
    scenarios = SCENARIOS

    def __init__(self, port: int, files: UploadFiles) -> None:
        import aiohttp  # only where the benchmark runs it: not a dependency of trioweb

        self._aiohttp = aiohttp
        self.url = f"http://127.0.0.1:{port}"
        self.files = files

    async def _count(self, response: Any) -> int:
        received = 0
        async for piece in response.content.iter_any():
            received += len(piece)
        return received

    async def _transfer(self, scenario: str, size: int) -> float:
        aiohttp = self._aiohttp
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=IO_TIMEOUT, sock_read=IO_TIMEOUT)
        what = f"aiohttp {scenario}"
        async with aiohttp.ClientSession(timeout=timeout) as session:
            if scenario == "download":
                started = time.perf_counter()
                async with session.get(f"{self.url}/download?size={size}") as response:
                    received = await self._count(response)
                seconds = time.perf_counter() - started
                check_count(what, response.status, received, size)
                return seconds
            path = "/echo" if scenario == "echo" else "/sink"
            with self.files.path(size).open("rb") as file:

                async def pieces() -> AsyncIterator[bytes]:
                    while piece := file.read(AIOHTTP_PIECE):
                        yield piece

                # A generator: aiohttp cannot know the length, and sends it chunked.
                data = file if scenario == "upload-length" else pieces()
                started = time.perf_counter()
                async with session.post(self.url + path, data=data) as response:
                    if scenario == "echo":
                        received = await self._count(response)
                    else:
                        body = await response.read()
                seconds = time.perf_counter() - started
        if scenario == "echo":
            check_count(what, response.status, received, size)
        else:
            check_sink(what, response.status, body, size)
        return seconds

    def run(self, scenario: str, size: int) -> float:
        try:
            return asyncio.run(self._transfer(scenario, size))
        except (OSError, asyncio.TimeoutError, self._aiohttp.ClientError) as exc:
            raise BenchError(f"aiohttp {scenario}: {exc!r}") from None


# -- which clients ----------------------------------------------------------------------

CLIENTS = ("raw", "curl", "httpx", "aiohttp")
#: The scenarios each client can run.
SUPPORTED = {c.name: c.scenarios for c in (Raw, Curl, Httpx, Aiohttp)}


def pieces(name: str, chunk: int) -> str:
    """How client ``name`` cuts an upload; ``chunk`` is the raw client's."""
    return f"{show_size(chunk)} chunks (--chunk)" if name == "raw" else PIECES[name]


def missing(name: str) -> str | None:
    """Why client ``name`` cannot run here, or None."""
    if name == "curl" and shutil.which("curl") is None:
        return "curl is not installed (apt-get install curl)"
    if name in ("httpx", "aiohttp") and importlib.util.find_spec(name) is None:
        return f"{name} is not installed for this Python (`nox -s bench_stream` installs it)"
    return None


def make_client(name: str, port: int, chunk: int, files: UploadFiles) -> StreamClient:
    """Client ``name`` for the server on ``port``; ``chunk`` is the raw client's."""
    if name == "raw":
        return Raw(port, chunk)
    real: dict[str, Callable[[int, UploadFiles], StreamClient]] = {
        "curl": Curl,
        "httpx": Httpx,
        "aiohttp": Aiohttp,
    }
    return real[name](port, files)


# -- what goes over the wire ------------------------------------------------------------


@dataclass
class Seen:
    """How one request came over the wire."""

    method: str
    #: ``chunked`` or ``Content-Length: N``.
    framing: str
    #: The Expect header ("" without one).
    expect: str
    #: The size of every chunk, in order (none with Content-Length).
    chunks: list[int] = field(default_factory=list)


class _Chunks(ChunkedBody):
    """A chunked body whose chunk sizes are kept."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__(0, None)
        self._sizes = sizes

    def chunk(self, size: int) -> None:
        self._sizes.append(size)


def runs(sizes: list[int]) -> str:
    """Sizes in order, repeats counted: ``65524 x 64, 64``."""
    parts: list[str] = []
    last, count = -1, 0
    for size in [*sizes, -1]:
        if size == last:
            count += 1
            continue
        if count:
            parts.append(f"{last} x {count}" if count > 1 else str(last))
        last, count = size, 1
    return ", ".join(parts)


class Recorder:
    """A loopback server, on a thread, that answers uploads as ``/sink`` does and records
    how each came (:class:`Seen`). A context manager; one connection at a time."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # to see the stop flag
        self.port: int = self._listener.getsockname()[1]
        self.seen: list[Seen] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="recorder", daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(IO_TIMEOUT)
                try:
                    self._answer(conn)
                except (OSError, BenchError, ValueError) as exc:
                    self.errors.append(repr(exc))

    def _answer(self, conn: socket.socket) -> None:
        buf = bytearray(RECEIVE_BUFFER)
        view = memoryview(buf)
        filled = 0
        while (end := buf.find(b"\r\n\r\n", 0, filled)) == -1:
            if filled >= HEAD_LIMIT:
                raise BenchError("request head larger than 64 KiB")
            received = conn.recv_into(view[filled:])
            if not received:
                raise BenchError("connection closed before a request head")
            filled += received
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        seen = Seen(lines[0].split(" ", 1)[0], "", headers.get("expect", ""))
        body: ChunkedBody | LengthBody
        if "chunked" in headers.get("transfer-encoding", "").lower():
            seen.framing = "chunked"
            body = _Chunks(seen.chunks)
        else:
            seen.framing = f"Content-Length: {headers.get('content-length', '0')}"
            body = LengthBody(0, None, int(headers.get("content-length", "0")))
        if seen.expect.lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if filled > end + 4:
            body.feed(buf, end + 4, filled)
        while not body.done:
            received = conn.recv_into(view)
            if not received:
                body.closed()
            body.feed(buf, 0, received)
        self.seen.append(seen)  # before the answer, which the client waits for
        count = str(body.size).encode()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(count)
            + count
        )
