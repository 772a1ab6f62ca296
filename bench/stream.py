"""Streaming benchmark: trioweb against Sanic, large bodies up, echoed back and down.

Three scenarios, each on the same routes in both servers (stream_trioweb.py and
stream_sanic.py): a chunked upload to a sink (``POST /sink``), a chunked upload echoed
back as it arrives (``POST /echo``), and a streamed download (``GET /download?size=N``).
Each runs at two body sizes, 1 GiB and 1 MiB by default: the large one gives the
throughput (MiB/s of body, measured by the client), both give the server's peak RSS, and
their difference is the RSS growth that must stay under 16 MiB.

The machine is shared and noisy, so both servers are measured in the same run, in
interleaved rounds (sanic, trioweb, sanic, trioweb, ...), and medians are compared. The
server is pinned to one CPU and the client to another. Only 127.0.0.1 is contacted.

Usage: python bench/stream.py [-r 3] [--size 1GiB] [--small 1MiB] [--servers trioweb]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from _common import (
    BenchError,
    Pinning,
    choose_pinning,
    cpu_seconds,
    free_port,
    stop,
    wait_for_port,
)

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SERVERS = {"sanic": BENCH / "stream_sanic.py", "trioweb": BENCH / "stream_trioweb.py"}
RESULTS = BENCH / "results" / "stream.json"
SCENARIOS = ("upload", "echo", "download")
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
GOAL_RATIO = 1.0
RSS_BUDGET = 16 * MiB
STARTUP_TIMEOUT = 30.0
#: The longest the client waits for the server to take or send a byte.
IO_TIMEOUT = 60.0
RECEIVE_BUFFER = 1 * MiB
#: Above this share of the wall-clock time spent on the CPU, the client may be what limits.
CLIENT_BUSY = 0.9
HEAD_LIMIT = 64 * KiB


@dataclass
class Transfer:
    """One scenario at one body size, against one server."""

    scenario: str
    size: int
    seconds: float
    #: Body bytes over the client's wall-clock time, in MiB (2**20 bytes) per second.
    mib_per_sec: float
    #: The server's CPU time (user + system) during the transfer, and the client's: a
    #: client near one CPU-second per second would be the bottleneck.
    server_cpu_seconds: float
    client_cpu_seconds: float
    #: The server's resident set size before the transfer, and its peak during it (bytes).
    rss_before: int
    peak_rss: int


def pin_client(pinning: Pinning) -> None:
    """The client is this process (its threads included): pin it here, without taskset."""
    if pinning.load_cpu is not None:
        os.sched_setaffinity(0, {pinning.load_cpu})


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


# -- the client -------------------------------------------------------------------------


class ChunkedUpload:
    """A chunked request body of ``size`` zero bytes, framed once, sent with sendall."""

    def __init__(self, size: int, chunk: int) -> None:
        self.size = size
        self.count, rest = divmod(size, chunk)
        # One preformatted frame (size line, payload, CRLF) is sent again and again.
        self.frame = b"%x\r\n" % chunk + bytes(chunk) + b"\r\n"
        self.last = (b"%x\r\n" % rest + bytes(rest) + b"\r\n" if rest else b"") + b"0\r\n\r\n"

    def send(self, sock: socket.socket, path: str) -> None:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        frame = self.frame
        for _ in range(self.count):
            sock.sendall(frame)
        sock.sendall(self.last)


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

    def __init__(self, keep: int) -> None:
        self.size = 0
        self.done = False
        self._keep = keep
        self.start = bytearray()

    def _count(self, buf: bytearray, start: int, end: int) -> None:
        self.size += end - start
        if len(self.start) < self._keep:
            self.start += buf[start : min(end, start + self._keep - len(self.start))]

    def feed(self, buf: bytearray, start: int, end: int) -> None:
        raise NotImplementedError

    def closed(self) -> None:
        """The server closed the connection: only a close-delimited body may end so."""
        raise BenchError(f"connection closed after {self.size} body bytes, before the end")


class LengthBody(Body):
    def __init__(self, keep: int, length: int) -> None:
        super().__init__(keep)
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

    def __init__(self, keep: int) -> None:
        super().__init__(keep)
        self._left = 0  # data bytes left in the current chunk
        self._line = bytearray()
        self._expect = "size"  # the next line: "size", "data end" (empty) or "trailer"

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
        elif self._expect == "data end":
            if line:
                raise BenchError(f"chunk data longer than its size line said: {line[:40]!r}")
            self._expect = "size"
        elif not line:  # the empty line that ends the trailer, and the body
            self.done = True


def read_response(sock: socket.socket, buf: bytearray, keep: int = 0) -> Response:
    """Read one response, counting its body bytes; keep the first ``keep`` of them."""
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
        body = ChunkedBody(keep)
    elif "content-length" in headers:
        body = LengthBody(keep, int(headers["content-length"]))
    else:
        body = CloseDelimitedBody(keep)
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


class Client:
    """The three scenarios; each returns its wall-clock seconds once checked."""

    def __init__(self, port: int, chunk: int) -> None:
        self.port = port
        self.chunk = chunk
        self.buf = bytearray(RECEIVE_BUFFER)
        self._uploads: dict[int, ChunkedUpload] = {}

    def _upload(self, size: int) -> ChunkedUpload:
        if size not in self._uploads:
            self._uploads[size] = ChunkedUpload(size, self.chunk)
        return self._uploads[size]

    def upload(self, size: int) -> float:
        """``POST /sink``: the whole body up, then its size back as text."""
        body = self._upload(size)
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
        expect(response, "upload", len(str(size)))
        if response.start != str(size).encode():
            raise BenchError(f"upload: the sink counted {response.start!r}, not {size}")
        return seconds

    def echo(self, size: int) -> float:
        """``POST /echo``: send and receive at once, a thread each way."""
        body = self._upload(size)
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
            "upload": self.upload,
            "echo": self.echo,
            "download": self.download,
        }
        try:
            return scenarios[scenario](size)
        except OSError as exc:  # timeouts included
            raise BenchError(f"{scenario}: {exc!r}") from None


# -- the server -------------------------------------------------------------------------


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


@contextlib.contextmanager
def running(
    name: str, pinning: Pinning, chunk: int
) -> Iterator[tuple[subprocess.Popen[bytes], Client]]:
    """Start a server on a free port, check it serves, stop it (SIGINT, then SIGKILL).

    Its output is shown only if something went wrong.
    """
    port = free_port()
    command = [*pinning.prefix(pinning.server_cpu), sys.executable, str(SERVERS[name]), str(port)]
    with tempfile.TemporaryFile() as log:
        # taskset execs the server: the pid is the server's own, for /proc.
        server = subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            client = Client(port, chunk)
            wait_until_serving(server, client, name)
            yield server, client
        except BenchError:
            stop(server)
            log.seek(0)
            output = log.read().decode(errors="replace")
            print(f"--- output of {name} ---\n{output}--- end ---", file=sys.stderr)
            raise
        finally:
            stop(server)


def wait_until_serving(server: subprocess.Popen[bytes], client: Client, name: str) -> None:
    wait_for_port(server, client.port, name, STARTUP_TIMEOUT)
    client.run("download", 100)  # it answers 200 with the right byte count


def transfer(
    server: subprocess.Popen[bytes], client: Client, scenario: str, size: int, peak: bool
) -> Transfer:
    """One scenario at one size; ``peak``: reset the server's peak RSS before it."""
    pid = server.pid
    if server.poll() is not None:
        raise BenchError(f"the server died before {scenario} (status {server.returncode})")
    rss_before = memory(pid)["VmRSS"]
    if peak:
        reset_peak(pid)
    cpu_before, client_before = cpu_seconds(pid), time.process_time()
    seconds = client.run(scenario, size)
    cpu_used, client_used = cpu_seconds(pid) - cpu_before, time.process_time() - client_before
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


def measure(name: str, pinning: Pinning, args: argparse.Namespace, fresh: bool) -> list[Transfer]:
    """Every scenario at the small size, then the large one, against one server.

    ``fresh``: a new server for each transfer (when the peak RSS cannot be reset).
    """
    plan = [(scenario, size) for scenario in SCENARIOS for size in (args.small, args.size)]
    if fresh:
        results = []
        for scenario, size in plan:
            with running(name, pinning, args.chunk) as (server, client):
                results.append(transfer(server, client, scenario, size, peak=False))
        return results
    with running(name, pinning, args.chunk) as (server, client):
        return [transfer(server, client, scenario, size, peak=True) for scenario, size in plan]


# -- the report -------------------------------------------------------------------------


@dataclass
class Summary:
    """Medians over the rounds for one scenario; ratios are trioweb / sanic."""

    mib_per_sec: dict[str, float]
    ratio: float | None
    cpu_seconds_per_gib: dict[str, float]
    peak_rss_small: dict[str, int]
    peak_rss_large: dict[str, int]
    #: peak(large) - peak(small), the worst round.
    rss_growth: dict[str, int]


def pick(rounds: list[list[Transfer]], scenario: str, size: int) -> list[Transfer]:
    """The transfers of one scenario at one size, a round each."""
    return [t for r in rounds for t in r if t.scenario == scenario and t.size == size]


def summarize(
    runs: dict[str, list[list[Transfer]]], args: argparse.Namespace
) -> dict[str, Summary]:
    summaries = {}
    for scenario in SCENARIOS:
        large = {name: pick(rounds, scenario, args.size) for name, rounds in runs.items()}
        small = {name: pick(rounds, scenario, args.small) for name, rounds in runs.items()}
        speed = {n: statistics.median(t.mib_per_sec for t in ts) for n, ts in large.items()}
        summaries[scenario] = Summary(
            mib_per_sec=speed,
            ratio=speed["trioweb"] / speed["sanic"] if len(speed) == 2 else None,
            cpu_seconds_per_gib={
                n: statistics.median(t.server_cpu_seconds / (t.size / GiB) for t in ts)
                for n, ts in large.items()
            },
            peak_rss_small={
                n: int(statistics.median(t.peak_rss for t in ts)) for n, ts in small.items()
            },
            peak_rss_large={
                n: int(statistics.median(t.peak_rss for t in ts)) for n, ts in large.items()
            },
            rss_growth={
                n: max(b.peak_rss - s.peak_rss for b, s in zip(ts, small[n], strict=True))
                for n, ts in large.items()
            },
        )
    return summaries


def mib(size: int) -> str:
    return f"{round(size / MiB, 1) + 0.0:.1f}"  # + 0.0: no "-0.0" for a tiny negative


def print_report(
    runs: dict[str, list[list[Transfer]]],
    summaries: dict[str, Summary],
    args: argparse.Namespace,
    pinning: Pinning,
) -> list[str]:
    """Print the tables; return the failed goals (none: PASS)."""
    names = list(runs)
    large, small = show_size(args.size), show_size(args.small)
    print()
    print(f"streaming, {large} bodies ({small} for the RSS baseline), ", end="")
    print(f"{show_size(args.chunk)} upload chunks, ", end="")
    if pinning.server_cpu is None:
        print("not pinned")
    else:
        print(f"servers on CPU {pinning.server_cpu}, client on CPU {pinning.load_cpu}")
    print(f"\nthroughput of the {large} body, MiB/s (2**20 bytes/s, client side)")
    print(f"{'scenario':<10}{'round':<8}" + "".join(f"{n:>10}" for n in names))
    for scenario in SCENARIOS:
        speeds = [pick(runs[n], scenario, args.size) for n in names]
        for i in range(args.rounds):
            row = "".join(f"{ts[i].mib_per_sec:>10.1f}" for ts in speeds)
            print(f"{scenario:<10}{i + 1:<8}{row}")
    print(f"\n{'medians':<18}" + "".join(f"{n:>10}" for n in names), end="")
    print(f"{'ratio':>8}   server CPU s/GiB " + " / ".join(names))
    for scenario, s in summaries.items():
        ratio = f"{s.ratio:.3f}" if s.ratio is not None else "-"
        cpu = " / ".join(f"{s.cpu_seconds_per_gib[n]:.2f}" for n in names)
        print(
            f"{scenario:<18}" + "".join(f"{s.mib_per_sec[n]:>10.1f}" for n in names),
            f"{ratio:>7}   {cpu}",
        )
    print(f"\nserver peak RSS, MiB (median of rounds); growth {small} -> {large}, worst round")
    print(f"{'scenario':<10}{'server':<10}{small:>10}{large:>10}{'growth':>10}")
    for scenario, s in summaries.items():
        for n in names:
            print(
                f"{scenario:<10}{n:<10}{mib(s.peak_rss_small[n]):>10}"
                f"{mib(s.peak_rss_large[n]):>10}{mib(s.rss_growth[n]):>10}"
            )

    failed = []
    for scenario, s in summaries.items():
        if s.ratio is not None and s.ratio < GOAL_RATIO:
            failed.append(f"{scenario} throughput ratio {s.ratio:.3f} < {GOAL_RATIO}")
        if s.rss_growth["trioweb"] >= RSS_BUDGET:
            failed.append(
                f"{scenario} RSS growth {mib(s.rss_growth['trioweb'])} MiB >= "
                f"{mib(RSS_BUDGET)} MiB"
            )
    print()
    if "sanic" not in runs:
        print("note: trioweb alone: no throughput ratio, only the RSS budget is checked")
    if failed:
        print("FAIL: " + "; ".join(failed))
    else:
        goals = f"ratio >= {GOAL_RATIO} in every scenario, " if "sanic" in runs else ""
        print(f"PASS: {goals}trioweb RSS growth < {mib(RSS_BUDGET)} MiB in every scenario")
    return failed


def versions(names: list[str]) -> dict[str, str]:
    found = {}
    for package in ["trioweb", "trio", "h11", *(["sanic", "uvloop"] if "sanic" in names else [])]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Streaming benchmark: trioweb against Sanic, uploads, echo and download."
    )
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds per server (3)")
    parser.add_argument(
        "--size", type=byte_size, default=GiB, help="the large body, for throughput (1GiB)"
    )
    parser.add_argument(
        "--small", type=byte_size, default=MiB, help="the small body, the RSS baseline (1MiB)"
    )
    parser.add_argument(
        "--chunk", type=byte_size, default=256 * KiB, help="upload chunk payload (256KiB)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=RESULTS,
        help="where to write the results (bench/results/stream.json)",
    )
    parser.add_argument(
        "--servers",
        default="sanic,trioweb",
        help="comma-separated, of sanic and trioweb (sanic,trioweb)",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.small >= args.size:
        parser.error("--small must be smaller than --size")
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if "trioweb" not in names or not set(names) <= set(SERVERS):
        parser.error("--servers: trioweb, optionally with sanic")
    args.servers = [n for n in SERVERS if n in names]  # sanic first in every round
    if "sanic" in args.servers and importlib.util.find_spec("sanic") is None:
        parser.error(
            f"sanic is not installed for {sys.executable}: use `nox -s bench_stream`, "
            "`pip install sanic`, or --servers trioweb"
        )
    return args


def main() -> int:
    args = parse_args()
    pinning = choose_pinning("the client")
    pin_client(pinning)
    fresh = not can_reset_peak()
    if fresh:
        print("note: /proc/PID/clear_refs unavailable: a fresh server for every transfer")
    runs: dict[str, list[list[Transfer]]] = {name: [] for name in args.servers}
    started = time.monotonic()
    try:
        for round_number in range(1, args.rounds + 1):
            for name in args.servers:
                print(f"round {round_number}/{args.rounds}: {name} ...", flush=True)
                runs[name].append(measure(name, pinning, args, fresh))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    summaries = summarize(runs, args)
    failed = print_report(runs, summaries, args, pinning)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "stream",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - started, 1),
        "python": sys.version.split()[0],
        "versions": versions(args.servers),
        "settings": {
            "size": args.size,
            "small": args.small,
            "chunk": args.chunk,
            "rounds": args.rounds,
            "servers": args.servers,
        },
        "pinning": asdict(pinning),
        "peak_rss": "fresh server per transfer" if fresh else "clear_refs 5, then VmHWM",
        "order": "interleaved: " + " ".join([" ".join(args.servers)] * args.rounds),
        "rounds": {name: [[asdict(t) for t in r] for r in rs] for name, rs in runs.items()},
        "summary": {scenario: asdict(s) for scenario, s in summaries.items()},
        "goal_ratio": GOAL_RATIO,
        "rss_budget": RSS_BUDGET,
        "failed": failed,
        "passed": not failed,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
