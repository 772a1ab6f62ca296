"""Graceful shutdown under load: a SIGTERM loses no request the server had started.

Each round starts ``bench/shutdown_trioweb.py`` (``GET /work/ID`` takes 10-100 ms; the server
logs ``start ID`` and ``end ID`` lines, and a ``stopping`` line when the shutdown begins),
loads it from many keep-alive connections at once, sends it SIGTERM in the middle of the
load, and then holds what every request got, as the client saw it, against the server's
log. Only 127.0.0.1 is ever contacted.

Usage: python bench/shutdown.py [-r 3] [-c 50] [--before 2]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _common import (
    BENCH,
    REPO,
    BenchError,
    KiB,
    Pinning,
    choose_pinning,
    free_port,
    pin_client,
    read_response,
    stop,
    versions,
    wait_for_port,
)

SERVER = BENCH / "shutdown_trioweb.py"
RESULTS = BENCH / "results" / "shutdown.json"
STARTUP_TIMEOUT = 15.0
#: The server's GRACEFUL_SHUTDOWN_TIMEOUT, and how much longer it may take to exit.
GRACE = 5.0
EXIT_MARGIN = 2.0
#: A client socket waiting longer than this for the server means the server hangs.
SOCKET_TIMEOUT = GRACE + EXIT_MARGIN + 3.0

# What became of a request, as the client saw it.
COMPLETE = "complete"  # a whole response
NO_RESPONSE = "no response"  # the connection closed or reset before any response byte
TRUNCATED = "truncated"  # the connection closed or reset in the middle of the response
TIMEOUT = "timeout"  # nothing for SOCKET_TIMEOUT


@dataclass
class Exchange:
    """One request and what came back."""

    request_id: int
    #: Seconds from the start of the load until the request was sent, and until it ended.
    sent: float
    ended: float
    outcome: str
    status: int = 0
    body: str = ""
    #: Whether the response said ``Connection: close``.
    close: bool = False
    error: str = ""


class Counting:
    """A socket's ``recv_into`` that counts the bytes received."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = 0

    def recv_into(self, buffer: memoryview, /) -> int:
        size = self.sock.recv_into(buffer)
        self.received += size
        return size


class Load:
    """Keep-alive connections, each sending its next request once the last one ended.

    A connection that ends (``Connection: close``, or closed under a request) is replaced
    by a new one, until a connection is refused after the signal: the listener is closed.
    """

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.exchanges: list[Exchange] = []
        #: Connections refused once the signal was sent; and anything else that went wrong.
        self.refused = 0
        self.errors: list[str] = []
        self.signalled = threading.Event()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._began = time.monotonic()
        self._threads = [
            threading.Thread(target=self._connection, name=f"load-{n}", daemon=True)
            for n in range(connections)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        deadline = time.monotonic() + SOCKET_TIMEOUT + 5
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise BenchError(f"{thread.name} still running {SOCKET_TIMEOUT + 5:.0f}s on")

    def now(self) -> float:
        return round(time.monotonic() - self._began, 4)

    def _connection(self) -> None:
        buf = bytearray(64 * KiB)
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=SOCKET_TIMEOUT)
            except ConnectionRefusedError:
                with self._lock:
                    if self.signalled.is_set():
                        self.refused += 1
                    else:
                        self.errors.append(
                            f"connection refused at {self.now()} s, before the signal"
                        )
                return
            except OSError as exc:
                with self._lock:
                    self.errors.append(f"connect failed at {self.now()} s: {exc!r}")
                return
            with sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    exchange = self._exchange(sock, buf)
                    with self._lock:
                        self.exchanges.append(exchange)
                    if exchange.outcome != COMPLETE or exchange.close:
                        break

    def _exchange(self, sock: socket.socket, buf: bytearray) -> Exchange:
        with self._lock:
            request_id = next(self._ids)
        receiver = Counting(sock)
        sent = self.now()
        try:
            sock.sendall(b"GET /work/%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % request_id)
            response = read_response(receiver, buf, keep=32)
        except (OSError, BenchError) as exc:
            if isinstance(exc, TimeoutError):
                outcome = TIMEOUT
            else:
                outcome = TRUNCATED if receiver.received else NO_RESPONSE
            return Exchange(request_id, sent, self.now(), outcome, error=repr(exc))
        return Exchange(
            request_id,
            sent,
            self.now(),
            COMPLETE,
            status=response.status,
            body=response.start.decode(errors="replace"),
            close=response.headers.get("connection", "").lower() == "close",
        )


# -- one round --------------------------------------------------------------------------


@dataclass
class Round:
    """What one SIGTERM under load did."""

    requests: int
    complete: int
    #: Seconds from the start of the load to the signal, and from the signal to the exit.
    signal_at: float
    exit_seconds: float | None
    exit_code: int | None
    #: Handlers that had started before ``before_server_stop`` ran and ended after it.
    in_flight: int
    #: Of those, the responses with ``Connection: close``.
    in_flight_closed: int
    #: Handlers that started after ``before_server_stop`` ran.
    started_after: int
    #: Requests that got no response byte and whose handler never started: dropped with
    #: their keep-alive connection at the shutdown, before the server began on them.
    dropped_unstarted: int
    refused: int
    #: The failures, each with its request ids (none: the round passed).
    lost: list[int] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)
    not_ok: list[str] = field(default_factory=list)
    without_close: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_log(path: Path) -> tuple[dict[int, int], dict[int, int], dict[str, int]]:
    """Where each ``start ID`` and ``end ID`` line is, and each marker line."""
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    markers: dict[str, int] = {}
    for number, line in enumerate(path.read_text().splitlines()):
        word, _, rest = line.partition(" ")
        if word == "start":
            starts[int(rest)] = number
        elif word == "end":
            ends[int(rest)] = number
        else:
            markers[line] = number
    return starts, ends, markers


def one_round(pinning: Pinning, connections: int, before: float) -> Round:
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        events = Path(workdir) / "events.log"
        output = Path(workdir) / "output.log"
        command = [*pinning.prefix(pinning.server_cpu), sys.executable, str(SERVER)]
        command += [str(port), str(events)]
        with output.open("wb") as out:
            server = subprocess.Popen(
                command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(server, port, "the server", STARTUP_TIMEOUT)
            load = Load(port, connections)
            load.start()
            time.sleep(before)
            load.signalled.set()
            signal_at = load.now()
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(GRACE + EXIT_MARGIN)
                exit_seconds: float | None = round(load.now() - signal_at, 3)
            except subprocess.TimeoutExpired:
                exit_seconds = None
                stop(server)  # so that the clients see their connections close
            load.join()
        except BenchError:
            print(
                f"--- output of the server ---\n{output.read_text()}--- end ---", file=sys.stderr
            )
            raise
        finally:
            stop(server)
        return judge(
            load,
            events,
            output.read_text(errors="replace"),
            signal_at,
            exit_seconds,
            server.returncode,
        )


def judge(
    load: Load,
    events: Path,
    output: str,
    signal_at: float,
    exit_seconds: float | None,
    exit_code: int | None,
) -> Round:
    """Hold what the client saw against the server's log."""
    starts, ends, markers = read_log(events)
    stopping = markers.get("stopping")
    problems = list(load.errors)
    if exit_seconds is None:
        problems.append(f"still running {GRACE + EXIT_MARGIN:.0f}s after SIGTERM: killed")
    elif exit_code != 0:
        problems.append(f"exit status {exit_code}")
    if stopping is None or "stopped" not in markers:
        problems.append("the before_server_stop or after_server_stop listener did not run")
        stopping = len(starts) + len(ends) + len(markers)
    if "Traceback" in output:
        problems.append(f"a traceback in the server's output:\n{output}")
    by_id = {e.request_id: e for e in load.exchanges}
    if len(by_id) != len(load.exchanges) or not set(starts) <= set(by_id):
        raise BenchError("the server's log and the client's requests do not match")
    in_flight = [i for i, at in starts.items() if at < stopping < ends.get(i, stopping + 1)]
    result = Round(
        requests=len(load.exchanges),
        complete=sum(e.outcome == COMPLETE for e in load.exchanges),
        signal_at=signal_at,
        exit_seconds=exit_seconds,
        exit_code=exit_code,
        in_flight=len(in_flight),
        in_flight_closed=sum(by_id[i].close for i in in_flight),
        started_after=sum(at > stopping for at in starts.values()),
        dropped_unstarted=sum(
            e.outcome == NO_RESPONSE and e.request_id not in starts for e in load.exchanges
        ),
        refused=load.refused,
        problems=problems,
    )
    for e in load.exchanges:
        started = e.request_id in starts
        answered = e.outcome == COMPLETE and e.status == 200 and e.body == str(e.request_id)
        if e.outcome == TRUNCATED:
            result.truncated.append(e.request_id)
        if e.outcome == COMPLETE and not answered:
            result.not_ok.append(f"{e.request_id}: {e.status} {e.body!r}")
        if (started and not answered) or (
            # Failed before the shutdown could explain it (0.1 s: a request sent just
            # before the signal may still be dropped with its connection), or hung.
            not started
            and (e.outcome == TIMEOUT or (e.outcome == NO_RESPONSE and e.sent < signal_at - 0.1))
        ):
            result.lost.append(e.request_id)
            if e.outcome != COMPLETE:
                problems.append(f"request {e.request_id}: {e.outcome} at {e.ended} s ({e.error})")
        if e.request_id in in_flight and e.outcome == COMPLETE and not e.close:
            result.without_close.append(e.request_id)
    if not in_flight:
        problems.append("no request was in flight at the signal: the round tested nothing")
    return result


def failures(r: Round) -> list[str]:
    found = list(r.problems)
    for name, ids in (
        ("lost", r.lost),
        ("truncated", r.truncated),
        ("not 200 with their id", r.not_ok),
        ("in flight at the signal and answered without Connection: close", r.without_close),
    ):
        if ids:
            shown = ", ".join(str(i) for i in ids[:10])
            found.append(f"{len(ids)} {name}: {shown}{' ...' if len(ids) > 10 else ''}")
    return found


# -- the report -------------------------------------------------------------------------


def print_report(rounds: list[Round], args: argparse.Namespace, pinning: Pinning) -> list[str]:
    print()
    print(f"SIGTERM after {args.before:g} s of load from {args.connections} keep-alive ", end="")
    print("connections, GET /work/ID taking 10-100 ms; ", end="")
    if pinning.server_cpu is None:
        print("not pinned")
    else:
        print(f"server on CPU {pinning.server_cpu}, client on CPU {pinning.load_cpu}")
    header = (
        f"{'round':<7}{'requests':>9}{'complete':>9}{'in flight':>10}{'+close':>8}"
        f"{'started after':>14}{'dropped':>8}{'lost':>6}{'truncated':>10}{'refused':>8}"
        f"{'exit':>6}{'after s':>8}"
    )
    print(header)
    failed = []
    for number, r in enumerate(rounds, 1):
        print(
            f"{number:<7}{r.requests:>9}{r.complete:>9}{r.in_flight:>10}{r.in_flight_closed:>8}"
            f"{r.started_after:>14}{r.dropped_unstarted:>8}{len(r.lost):>6}"
            f"{len(r.truncated):>10}{r.refused:>8}{r.exit_code!s:>6}"
            f"{r.exit_seconds if r.exit_seconds is not None else '-':>8}"
        )
        failed += [f"round {number}: {problem}" for problem in failures(r)]
    print(
        "\nin flight: handlers running when before_server_stop ran; +close: of those, the "
        "responses with Connection: close;\nstarted after: handlers started after it; "
        "dropped: requests that got no response byte and whose handler never started\n"
        "(sent on a keep-alive connection as the shutdown closed it); refused: connections "
        "refused after the signal"
    )
    print()
    if failed:
        print("FAIL:\n  " + "\n  ".join(failed))
    else:
        print(
            f"PASS: every started request answered whole, with Connection: close if in flight; "
            f"exit 0 within {GRACE + EXIT_MARGIN:g} s"
        )
    return failed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="SIGTERM a trioweb server under load; check no started request is lost."
    )
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds, a server each (3)")
    parser.add_argument(
        "-c", "--connections", type=int, default=50, help="concurrent connections (50)"
    )
    parser.add_argument(
        "--before", type=float, default=2.0, help="seconds of load before the signal (2)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=RESULTS,
        help="where to write the results (bench/results/shutdown.json)",
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.connections < 1 or args.before <= 0:
        parser.error("--rounds and --connections must be at least 1, --before above 0")
    return args


def main() -> int:
    args = parse_args()
    pinning = choose_pinning("the client")
    pin_client(pinning)
    started = time.monotonic()
    rounds = []
    try:
        for number in range(1, args.rounds + 1):
            print(f"round {number}/{args.rounds} ...", flush=True)
            rounds.append(one_round(pinning, args.connections, args.before))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = print_report(rounds, args, pinning)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "shutdown",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - started, 1),
        "python": sys.version.split()[0],
        "versions": versions(["trioweb", "trio", "h11"]),
        "settings": {
            "rounds": args.rounds,
            "connections": args.connections,
            "before": args.before,
            "graceful_shutdown_timeout": GRACE,
            "exit_margin": EXIT_MARGIN,
        },
        "pinning": asdict(pinning),
        "rounds": [asdict(r) for r in rounds],
        "failed": failed,
        "passed": not failed,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    shown = args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output
    print(f"results written to {shown}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
