"""What the benchmarks share: pinning, server processes, wrk, /proc readings, a raw HTTP client.

``run.py`` (hello world against bare Trio + h11), ``stream.py`` (streaming against Sanic),
``files.py`` (file downloads against Sanic and nginx) and ``slow.py`` (wrk's latency while
slowhttptest attacks) all start servers as subprocesses on free loopback ports, pin them to
one CPU and their load generator to another, and read the server's CPU time from /proc.
``stream.py`` and ``files.py`` are their own client, over blocking sockets, and read the
server's peak RSS from /proc as well. ``shutdown.py`` is its own client too, so that it
knows what became of every request when it SIGTERMs its server under load.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
STOP_GRACE = 3.0
#: The longest the client waits for the server to take or send a byte.
IO_TIMEOUT = 60.0
RECEIVE_BUFFER = 1 * MiB
#: Above this share of the wall-clock time spent on the CPU, the client may be what limits.
CLIENT_BUSY = 0.9
HEAD_LIMIT = 64 * KiB


class BenchError(Exception):
    """A server or the load generator misbehaved: the run measures nothing."""


# -- pinning and server processes -------------------------------------------------------


@dataclass
class Pinning:
    """The CPUs of the servers and of the load generator; None when fewer than two."""

    server_cpu: int | None
    load_cpu: int | None

    def prefix(self, cpu: int | None) -> list[str]:
        """``taskset`` arguments that run a command on ``cpu`` (none when unpinned)."""
        return ["taskset", "-c", str(cpu)] if cpu is not None else []


def choose_pinning(load: str) -> Pinning:
    """The first two CPUs this process may use: servers on one, ``load`` on the other."""
    # sched_getaffinity, not cpu_count: a container may be allowed fewer CPUs than exist.
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print(f"note: only {len(cpus)} CPU available: servers and {load} are not pinned")
        return Pinning(None, None)
    if shutil.which("taskset") is None:
        print("note: taskset not found (Debian package util-linux): nothing is pinned")
        return Pinning(None, None)
    return Pinning(cpus[0], cpus[1])


def pin_client(pinning: Pinning) -> None:
    """The client is this process (its threads included): pin it here, without taskset."""
    if pinning.load_cpu is not None:
        os.sched_setaffinity(0, {pinning.load_cpu})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(proc: subprocess.Popen[bytes], port: int, name: str, timeout: float) -> None:
    """Wait until the server accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with status {proc.returncode} before serving")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                message = f"{name} did not accept connections within {timeout:.0f}s"
                raise BenchError(message) from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT, then SIGKILL after a grace period (the baseline ignores SIGINT)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running(
    name: str, command: list[str], ready: Callable[[subprocess.Popen[bytes]], None]
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server, wait until ``ready(server)`` returns, stop it (SIGINT, then SIGKILL).

    Its output is shown only if a :class:`BenchError` is raised, in ``ready`` or in the
    ``with`` block.
    """
    with tempfile.TemporaryFile() as log:
        # taskset execs the server: the pid is the server's own, for /proc.
        server = subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            ready(server)
            yield server
        except BenchError:
            stop(server)
            log.seek(0)
            output = log.read().decode(errors="replace")
            print(f"--- output of {name} ---\n{output}--- end ---", file=sys.stderr)
            raise
        finally:
            stop(server)


def versions(packages: list[str]) -> dict[str, str]:
    """The installed versions of those of ``packages`` that are installed."""
    found = {}
    for package in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


# -- Debian tools: wrk, slowhttptest -----------------------------------------------------


def ensure_tool(command: str) -> None:
    """Install ``command`` if missing, with apt-get when we are root on Debian; else exit.

    ``command`` is also the name of its Debian package (wrk, slowhttptest).
    """
    if shutil.which(command) is not None:
        return
    if os.geteuid() == 0 and shutil.which("apt-get") is not None:
        print(f"{command} not found: installing it with apt-get (we are root)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", command], check=True, env=env)
        if shutil.which(command) is not None:
            return
    sys.exit(f"error: {command} is not installed. Install it with: sudo apt-get install {command}")


@dataclass
class WrkResult:
    """What one wrk run measured."""

    requests_per_sec: float
    requests: int
    non_2xx_3xx: int
    #: Connect, read and write errors and timeouts, together.
    socket_errors: int
    #: Of those, the requests with no response within wrk's ``--timeout`` (2 s unless set).
    timeouts: int
    #: Latency percentiles ("50", "75", "90", "99") in ms; only with ``--latency``.
    latency_ms: dict[str, float]
    #: The server's CPU time (user + system) per request during the run, in µs. Less
    #: sensitive than req/s to other load on a shared machine.
    cpu_us_per_request: float = 0.0


_WRK_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _count(pattern: str, output: str) -> int:
    match = re.search(pattern, output)
    return int(match.group(1)) if match else 0


def parse_wrk(output: str) -> WrkResult:
    """Read wrk's report from its standard output."""
    match = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if match is None:
        raise BenchError(f"could not find Requests/sec in wrk's output:\n{output}")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    latency = {
        percent: float(value) * _WRK_TIME_UNITS[unit]
        for percent, value, unit in re.findall(
            r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE
        )
    }
    return WrkResult(
        requests_per_sec=float(match.group(1)),
        requests=_count(r"(\d+) requests in", output),
        non_2xx_3xx=_count(r"Non-2xx or 3xx responses: (\d+)", output),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        timeouts=int(errors.group(4)) if errors else 0,
        latency_ms=latency,
    )


# -- /proc ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak RSS) of a process, in bytes."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(value.split()[0]) * KiB
    return values


def reset_peak(pid: int) -> None:
    """Set VmHWM back to the current RSS (``5`` to clear_refs; Linux 4.0 and later)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def can_reset_peak() -> bool:
    try:
        reset_peak(os.getpid())
    except OSError:
        return False
    return True


# -- sizes ------------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "kib": KiB, "mib": MiB, "gib": GiB}


def byte_size(value: str) -> int:
    """``1GiB``, ``256KiB``, ``4MiB`` or a plain number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise argparse.ArgumentTypeError("a size such as 1GiB, 256KiB, 4MiB or 1000000")
    size = int(float(match.group(1)) * unit)
    if size < 1:
        raise argparse.ArgumentTypeError("a size of at least one byte")
    return size


def show_size(size: int) -> str:
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit:
            return f"{size / unit:g} {name}"
    return f"{size} B"


def mib(size: int) -> str:
    return f"{round(size / MiB, 1) + 0.0:.1f}"  # + 0.0: no "-0.0" for a tiny negative


# -- the client -------------------------------------------------------------------------


class Receiver(Protocol):
    """What :func:`read_response` reads from: a socket, or bytes replayed in a test."""

    def recv_into(self, buffer: memoryview, /) -> int: ...


#: Called with each span ``buf[start:end]`` of body bytes and the body offset where it
#: starts; raises :class:`BenchError` if those are not the bytes expected there.
Check = Callable[[bytearray, int, int, int], None]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    #: Body bytes received (chunked framing not counted).
    size: int
    #: The first bytes of the body, as many as asked for.
    start: bytes


class Body:
    """Counts the bytes of a response body as they arrive; subclasses know its framing."""

    def __init__(self, keep: int, check: Check | None) -> None:
        self.size = 0
        self.done = False
        self._keep = keep
        self._check = check
        self.start = bytearray()

    def _count(self, buf: bytearray, start: int, end: int) -> None:
        if self._check is not None:
            self._check(buf, start, end, self.size)
        self.size += end - start
        if len(self.start) < self._keep:
            self.start += buf[start : min(end, start + self._keep - len(self.start))]

    def feed(self, buf: bytearray, start: int, end: int) -> None:
        raise NotImplementedError

    def closed(self) -> None:
        """The server closed the connection: only a close-delimited body may end so."""
        raise BenchError(f"connection closed after {self.size} body bytes, before the end")


class LengthBody(Body):
    def __init__(self, keep: int, check: Check | None, length: int) -> None:
        super().__init__(keep, check)
        self._left = length
        self.done = length == 0

    def feed(self, buf: bytearray, start: int, end: int) -> None:
        if end - start > self._left:
            raise BenchError("more bytes than Content-Length said")
        self._count(buf, start, end)
        self._left -= end - start
        self.done = self._left == 0


class CloseDelimitedBody(Body):
    def feed(self, buf: bytearray, start: int, end: int) -> None:
        self._count(buf, start, end)

    def closed(self) -> None:
        self.done = True


class ChunkedBody(Body):
    """Parses chunked framing: size lines, data, the CRLF after it, the trailer."""

    def __init__(self, keep: int, check: Check | None) -> None:
        super().__init__(keep, check)
        self._left = 0  # data bytes left in the current chunk
        self._line = bytearray()
        self._expect = "size"  # the next line: "size", "data end" (empty) or "trailer"

    def chunk(self, size: int) -> None:
        """Called with the size of each chunk as its size line is read; for subclasses."""

    def feed(self, buf: bytearray, start: int, end: int) -> None:
        pos = start
        while pos < end:
            if self.done:
                raise BenchError("bytes after the end of a chunked body")
            if self._left:
                take = min(self._left, end - pos)
                self._count(buf, pos, pos + take)
                self._left -= take
                pos += take
                continue
            newline = buf.find(b"\n", pos, end)
            stop = end if newline == -1 else newline + 1
            self._line += buf[pos:stop]
            pos = stop
            if len(self._line) > 1024:
                raise BenchError("a chunked-framing line longer than 1 KiB")
            if newline != -1:
                self._parse_line()

    def _parse_line(self) -> None:
        if not self._line.endswith(b"\r\n"):
            raise BenchError(f"chunked-framing line without CRLF: {bytes(self._line)!r}")
        line = bytes(self._line[:-2])
        self._line.clear()
        if self._expect == "size":
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise BenchError(f"bad chunk size line: {line!r}") from None
            self._left = size
            self._expect = "data end" if size else "trailer"
            if size:
                self.chunk(size)
        elif self._expect == "data end":
            if line:
                raise BenchError(f"chunk data longer than its size line said: {line[:40]!r}")
            self._expect = "size"
        elif not line:  # the empty line that ends the trailer, and the body
            self.done = True


def read_response(
    sock: Receiver, buf: bytearray, keep: int = 0, check: Check | None = None
) -> Response:
    """Read one response, counting its body bytes; keep the first ``keep`` of them.

    ``check``, if given, sees every body byte (framing excluded) as it arrives.
    """
    view = memoryview(buf)
    filled = 0
    while (end := buf.find(b"\r\n\r\n", 0, filled)) == -1:
        if filled >= HEAD_LIMIT:
            raise BenchError("response head larger than 64 KiB")
        received = sock.recv_into(view[filled:])
        if not received:
            raise BenchError("connection closed before a response head")
        filled += received
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BenchError(f"bad status line: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body: Body
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = ChunkedBody(keep, check)
    elif "content-length" in headers:
        body = LengthBody(keep, check, int(headers["content-length"]))
    else:
        body = CloseDelimitedBody(keep, check)
    if filled > end + 4:
        body.feed(buf, end + 4, filled)
    while not body.done:
        received = sock.recv_into(view)
        if received:
            body.feed(buf, 0, received)
        else:
            body.closed()
    return Response(int(parts[1]), headers, body.size, bytes(body.start))


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def expect(response: Response, what: str, size: int) -> None:
    if response.status != 200:
        raise BenchError(f"{what}: status {response.status} {response.start[:80]!r}")
    if response.size != size:
        raise BenchError(f"{what}: {response.size} body bytes, expected {size}")


# -- one measured transfer --------------------------------------------------------------


@dataclass
class Transfer:
    """One scenario at one body size, against one server."""

    scenario: str
    size: int
    seconds: float
    #: Body bytes over the client's wall-clock time, in MiB (2**20 bytes) per second.
    mib_per_sec: float
    #: The server's CPU time (user + system) during the transfer, and the client's (its
    #: subprocesses included): a client near one CPU-second per second would be the
    #: bottleneck.
    server_cpu_seconds: float
    client_cpu_seconds: float
    #: The server's resident set size before the transfer, and its peak during it (bytes).
    rss_before: int
    peak_rss: int


def client_cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (a curl run, say).

    The servers are children too, but none ends during a transfer.
    """
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def transfer(
    server: subprocess.Popen[bytes],
    scenario: str,
    size: int,
    run: Callable[[], float],
    peak: bool,
) -> Transfer:
    """Measure ``run()``, which moves ``size`` body bytes and returns its wall-clock seconds.

    ``peak``: reset the server's peak RSS before it (else the peak includes what came before).
    """
    pid = server.pid
    if server.poll() is not None:
        raise BenchError(f"the server died before {scenario} (status {server.returncode})")
    rss_before = memory(pid)["VmRSS"]
    if peak:
        reset_peak(pid)
    cpu_before, client_before = cpu_seconds(pid), client_cpu_seconds()
    seconds = run()
    cpu_used, client_used = cpu_seconds(pid) - cpu_before, client_cpu_seconds() - client_before
    if server.poll() is not None:
        raise BenchError(f"the server died during {scenario} (status {server.returncode})")
    if size > RECEIVE_BUFFER and client_used > CLIENT_BUSY * seconds:
        print(
            f"warning: {scenario}: the client was on the CPU {client_used / seconds:.0%} of the "
            "time: it may be what limits the throughput"
        )
    return Transfer(
        scenario=scenario,
        size=size,
        seconds=seconds,
        mib_per_sec=size / MiB / seconds,
        server_cpu_seconds=cpu_used,
        client_cpu_seconds=client_used,
        rss_before=rss_before,
        peak_rss=memory(pid)["VmHWM"],
    )
