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
import importlib.util
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from _common import (
    BENCH,
    RECEIVE_BUFFER,
    BenchError,
    GiB,
    KiB,
    MiB,
    Pinning,
    Transfer,
    byte_size,
    can_reset_peak,
    choose_pinning,
    connect,
    expect,
    free_port,
    mib,
    pin_client,
    read_response,
    running,
    show_size,
    transfer,
    versions,
    wait_for_port,
)

SERVERS = {"sanic": BENCH / "stream_sanic.py", "trioweb": BENCH / "stream_trioweb.py"}
RESULTS = BENCH / "results" / "stream.json"
SCENARIOS = ("upload", "echo", "download")
GOAL_RATIO = 1.0
RSS_BUDGET = 16 * MiB
STARTUP_TIMEOUT = 30.0


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


@contextlib.contextmanager
def serving(
    name: str, pinning: Pinning, chunk: int
) -> Iterator[tuple[subprocess.Popen[bytes], Client]]:
    """Start a server on a free port, check it serves, stop it (SIGINT, then SIGKILL).

    Its output is shown only if something went wrong.
    """
    client = Client(free_port(), chunk)
    command = [*pinning.prefix(pinning.server_cpu), sys.executable, str(SERVERS[name])]
    command.append(str(client.port))
    with running(name, command, lambda server: wait_until_serving(server, client, name)) as server:
        yield server, client


def wait_until_serving(server: subprocess.Popen[bytes], client: Client, name: str) -> None:
    wait_for_port(server, client.port, name, STARTUP_TIMEOUT)
    client.run("download", 100)  # it answers 200 with the right byte count


def one_transfer(
    server: subprocess.Popen[bytes], client: Client, scenario: str, size: int, peak: bool
) -> Transfer:
    """One scenario at one size; ``peak``: reset the server's peak RSS before it."""
    return transfer(server, scenario, size, lambda: client.run(scenario, size), peak)


def measure(name: str, pinning: Pinning, args: argparse.Namespace, fresh: bool) -> list[Transfer]:
    """Every scenario at the small size, then the large one, against one server.

    ``fresh``: a new server for each transfer (when the peak RSS cannot be reset).
    """
    plan = [(scenario, size) for scenario in SCENARIOS for size in (args.small, args.size)]
    if fresh:
        results = []
        for scenario, size in plan:
            with serving(name, pinning, args.chunk) as (server, client):
                results.append(one_transfer(server, client, scenario, size, peak=False))
        return results
    with serving(name, pinning, args.chunk) as (server, client):
        return [one_transfer(server, client, scenario, size, peak=True) for scenario, size in plan]


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
        "versions": versions(
            ["trioweb", "trio", "h11", *(["sanic", "uvloop"] if "sanic" in args.servers else [])]
        ),
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
