"""Slow clients: wrk's latency on normal requests while slowhttptest holds 500 connections.

One scenario after another, each against a fresh server (``bench/slow_trioweb.py``,
production-like timeouts): wrk alone loads ``GET /`` (the baseline), then wrk again while
slowhttptest attacks in one of its modes (slowloris, slow POST, slow read). The attack is
kept up: when the server has closed all of slowhttptest's connections and it exits, it
starts again, until wrk is done. The server is pinned to one CPU, wrk and slowhttptest to
another. Only 127.0.0.1 is ever contacted.

Usage: python bench/slow.py [-d 15] [--modes slowloris,slow-post,slow-read]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _common import (
    BENCH,
    REPO,
    BenchError,
    Pinning,
    WrkResult,
    can_reset_peak,
    choose_pinning,
    cpu_seconds,
    ensure_tool,
    free_port,
    memory,
    mib,
    parse_wrk,
    pin_client,
    reset_peak,
    running,
    stop,
    versions,
    wait_for_port,
)

SERVER = BENCH / "slow_trioweb.py"
RESULTS = BENCH / "results" / "slow.json"
STARTUP_TIMEOUT = 15.0
WRK_CONNECTIONS = 20
#: wrk's per-request timeout, above its 2 s default: a slow answer should count in the
#: latencies rather than drop out of them as a timeout.
WRK_TIMEOUT = "10s"
ATTACK_CONNECTIONS = 500
#: New connections per second: slowhttptest has all 500 open in about a second.
ATTACK_RATE = 500
#: The attack holds this share of its connections on the server before wrk starts.
ATTACK_READY = 0.9
ATTACK_READY_TIMEOUT = 15.0
#: slowhttptest's probe: a normal request every this many seconds, "service available"
#: when it is answered within as many seconds.
PROBE_EVERY = 3
#: How often the server's open connections are counted while wrk runs.
SAMPLE_EVERY = 0.5
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: How slowhttptest says it ended because the server had closed all its connections.
ALL_CLOSED = "No open connections left"


@dataclass(frozen=True)
class Mode:
    """One of slowhttptest's attacks: its flag, the path it targets, what it does."""

    flag: str
    path: str
    options: tuple[str, ...]
    what: str
    #: What to know when reading slowhttptest's own counts.
    note: str = ""


MODES = {
    # A follow-up every 2 s, well inside the server's 10 s REQUEST_TIMEOUT: the
    # connections trickle bytes rather than sit idle.
    "slowloris": Mode("-H", "/", ("-i", "2"), "request heads, one more header line every 2 s"),
    "slow-post": Mode(
        "-B", "/", ("-i", "2"), "POST / bodies (Content-Length 4096), a few bytes every 2 s"
    ),
    "slow-read": Mode(
        "-X",
        "/big",
        (),
        "GET /big (1 MiB), read 5 bytes a second through a 1-512 byte window",
        "slowhttptest sees a reset only once it has read the bytes its window let in, "
        "minutes later: the server's own count tells when it cut them off",
    ),
}


@dataclass
class AttackRound:
    """One slowhttptest run, as its CSV report saw it, one row per second."""

    #: When it started, in seconds since the scenario began.
    started: float
    exit_status: str
    #: Its rows: seconds since it started, then its connections closed (by the server:
    #: slowhttptest closes none itself), pending, connected, and the connection count when
    #: its probe was answered (0 when the service looked unavailable).
    rows: list[list[int]]

    def closed(self) -> int:
        if self.exit_status.startswith(ALL_CLOSED):
            # It ends once every connection is closed, before writing that second's row.
            return self.connected()
        return self.rows[-1][1] if self.rows else 0

    def connected(self) -> int:
        """The most connections it held at once."""
        return max((row[3] for row in self.rows), default=0)

    def closing(self) -> tuple[int, int] | None:
        """The seconds (since it started) of the first and of the last close."""
        closed = self.closed()
        if not closed:
            return None
        first = next((row[0] for row in self.rows if row[1]), self.rows[-1][0] + 1)
        last = next((row[0] for row in self.rows if row[1] == closed), self.rows[-1][0] + 1)
        return first, last

    def unavailable(self) -> int:
        """Seconds during which its probe was not answered."""
        return sum(1 for row in self.rows if not row[4])


@dataclass
class Scenario:
    """wrk's run against one server, alone or under one attack."""

    name: str
    wrk: WrkResult
    #: The server's CPU time (user + system) during wrk's run.
    server_cpu_seconds: float
    #: The server's peak RSS from the start of the attack (or of wrk) to the end of wrk.
    peak_rss: int
    #: When wrk started, in seconds since the scenario began (with the attack, if any).
    wrk_started: float
    #: The server's open client connections, sampled while wrk ran: (seconds since the
    #: scenario began, count).
    connections: list[tuple[float, int]]
    attack: list[AttackRound]


# -- the server -------------------------------------------------------------------------


def check_serving(port: int, when: str) -> None:
    """``GET /`` answers ``Hello, world!``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        status, body = response.status, response.read()
    except OSError as exc:
        raise BenchError(f"{when}: GET / failed: {exc!r}") from None
    finally:
        conn.close()
    if status != 200 or body != b"Hello, world!":
        raise BenchError(f"{when}: GET / answered {status} {body[:60]!r}")


def open_sockets(pid: int) -> int:
    """How many sockets the process holds, from /proc/PID/fd."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed since the listing
            if os.readlink(fd).startswith("socket:"):
                count += 1
    return count


# -- slowhttptest -----------------------------------------------------------------------


class Attacker:
    """slowhttptest in one mode, restarted whenever it ends until :meth:`stop`."""

    def __init__(
        self, mode: Mode, port: int, pinning: Pinning, workdir: Path, began: float
    ) -> None:
        self.mode = mode
        self.port = port
        self.pinning = pinning
        self.rounds: list[AttackRound] = []
        self._began = began
        self._started = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._prefix = workdir / "round"
        self._output = workdir / "round.out"

    def start(self, seconds: float) -> None:
        """Start a round that ends by itself after ``seconds`` at the latest."""
        mode = self.mode
        command = [
            *self.pinning.prefix(self.pinning.load_cpu),
            # slowhttptest's loop keeps about half a CPU busy: at the lowest priority it
            # takes only what wrk leaves, so that wrk measures the server, not its own CPU.
            "nice",
            "-n",
            "19",
            "slowhttptest",
            mode.flag,
            *mode.options,
            "-c",
            str(ATTACK_CONNECTIONS),
            "-r",
            str(ATTACK_RATE),
            "-l",
            str(max(1, round(seconds))),
            "-p",
            str(PROBE_EVERY),
            "-u",
            f"http://127.0.0.1:{self.port}{mode.path}",
            "-g",
            "-o",
            str(self._prefix),
        ]
        self._started = time.monotonic() - self._began
        with self._output.open("wb") as output:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
            )

    def ended(self) -> bool:
        """Whether the current round ended by itself (and was recorded)."""
        if self._proc is None or self._proc.poll() is None:
            return False
        self._record()
        return True

    def stop(self) -> None:
        if self._proc is not None:
            stop(self._proc)  # SIGINT: slowhttptest reports, then exits
            self._record()

    def _record(self) -> None:
        assert self._proc is not None
        code, self._proc = self._proc.returncode, None
        output = _ANSI.sub("", self._output.read_text(errors="replace"))
        csv = self._prefix.with_suffix(".csv")
        if not csv.exists():
            raise BenchError(f"slowhttptest wrote no report (status {code}):\n{output}")
        rows = [
            [int(field) for field in line.split(",")]
            for line in csv.read_text().splitlines()[1:]
            if line.strip()
        ]
        csv.unlink()
        status = re.search(r"Exit status:\s*(.+)", output)
        self.rounds.append(
            AttackRound(
                started=round(self._started, 1),
                exit_status=status.group(1).strip() if status else f"status {code}",
                rows=rows,
            )
        )


# -- one scenario -----------------------------------------------------------------------


def wait_for_attack(server: subprocess.Popen[bytes], attacker: Attacker, idle: int) -> None:
    """Until the server holds most of the attack's connections."""
    deadline = time.monotonic() + ATTACK_READY_TIMEOUT
    while open_sockets(server.pid) - idle < ATTACK_READY * ATTACK_CONNECTIONS:
        if attacker.ended():
            raise BenchError(f"slowhttptest ended before it was under way: {attacker.rounds[-1]}")
        if server.poll() is not None:
            raise BenchError(f"the server died under attack (status {server.returncode})")
        if time.monotonic() > deadline:
            held = open_sockets(server.pid) - idle
            raise BenchError(f"the attack held only {held} connections after 15 s")
        time.sleep(0.1)


def measure(name: str, pinning: Pinning, seconds: int, peak: bool) -> Scenario:
    """One fresh server; wrk alone (``name`` "baseline") or under the attack ``name``."""
    port = free_port()
    command = [*pinning.prefix(pinning.server_cpu), sys.executable, str(SERVER), str(port)]

    def ready(server: subprocess.Popen[bytes]) -> None:
        wait_for_port(server, port, name, STARTUP_TIMEOUT)
        check_serving(port, "before the run")  # a fast error page would look fast

    wrk_command = [
        *pinning.prefix(pinning.load_cpu),
        "wrk",
        "-t1",
        f"-c{WRK_CONNECTIONS}",
        f"-d{seconds}s",
        f"--timeout={WRK_TIMEOUT}",
        "--latency",
        f"http://127.0.0.1:{port}/",
    ]
    with (
        running(name, command, ready) as server,
        tempfile.TemporaryDirectory() as workdir,
    ):
        # The listener and Trio's own wakeup socket: what is not a client connection.
        idle = open_sockets(server.pid)
        if peak:
            reset_peak(server.pid)
        began = time.monotonic()
        attacker = None
        if name in MODES:
            attacker = Attacker(MODES[name], port, pinning, Path(workdir), began)
            attacker.start(seconds + 5)
        try:
            if attacker is not None:
                wait_for_attack(server, attacker, idle)
            scenario = load(server, name, wrk_command, began, seconds, attacker, idle)
        finally:
            if attacker is not None:
                attacker.stop()
        if attacker is not None:
            scenario.attack = attacker.rounds
        if server.poll() is not None:
            raise BenchError(f"the server died during {name} (status {server.returncode})")
        check_serving(port, f"after {name}")
        scenario.peak_rss = memory(server.pid)["VmHWM"]
    return scenario


def load(
    server: subprocess.Popen[bytes],
    name: str,
    wrk_command: list[str],
    began: float,
    seconds: int,
    attacker: Attacker | None,
    idle: int,
) -> Scenario:
    """Run wrk; meanwhile count the server's connections and keep the attack up."""
    cpu_before = cpu_seconds(server.pid)
    started = time.monotonic()
    samples: list[tuple[float, int]] = []
    with tempfile.TemporaryFile() as output:
        wrk = subprocess.Popen(wrk_command, stdin=subprocess.DEVNULL, stdout=output)
        try:
            while wrk.poll() is None:
                now = time.monotonic()
                with contextlib.suppress(OSError):  # the server died: reported below
                    samples.append((round(now - began, 1), open_sockets(server.pid) - idle))
                left = seconds - (now - started)
                # Restart an attack the server has fought off, unless wrk is nearly done.
                if attacker is not None and attacker.ended() and left > 2:
                    attacker.start(left + 5)
                time.sleep(SAMPLE_EVERY)
        finally:
            stop(wrk)
        cpu_used = cpu_seconds(server.pid) - cpu_before
        output.seek(0)
        text = output.read().decode(errors="replace")
    if wrk.returncode != 0:
        raise BenchError(f"wrk failed ({wrk.returncode}):\n{text}")
    wrk_started = round(started - began, 1)
    return Scenario(name, parse_wrk(text), round(cpu_used, 2), 0, wrk_started, samples, [])


# -- the report -------------------------------------------------------------------------


def print_report(scenarios: list[Scenario], seconds: int, pinning: Pinning) -> None:
    print()
    print(f"wrk -t1 -c{WRK_CONNECTIONS} -d{seconds}s --latency against GET /, ", end="")
    print(f"slowhttptest -c {ATTACK_CONNECTIONS} -r {ATTACK_RATE}; ", end="")
    if pinning.server_cpu is None:
        print("not pinned")
    else:
        print(f"server on CPU {pinning.server_cpu}, load on CPU {pinning.load_cpu}")
    baseline = scenarios[0].wrk.latency_ms.get("99", 0.0)
    print(
        f"\n{'scenario':<12}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99/base':>10}"
        f"{'non-2xx':>9}{'sock err':>10}{'timeouts':>10}{'CPU s':>7}{'RSS MiB':>9}"
    )
    for s in scenarios:
        w = s.wrk
        p99 = w.latency_ms.get("99", 0.0)
        ratio = f"{p99 / baseline:.2f}" if baseline else "-"
        print(
            f"{s.name:<12}{w.requests_per_sec:>10.0f}{w.latency_ms.get('50', 0.0):>9.2f}"
            f"{p99:>9.2f}{ratio:>10}{w.non_2xx_3xx:>9}{w.socket_errors:>10}{w.timeouts:>10}"
            f"{s.server_cpu_seconds:>7.1f}{mib(s.peak_rss):>9}"
        )
    print(
        "p99/base: p99 over the baseline's; CPU s: the server's CPU time during wrk's run; "
        "RSS MiB: its peak.\nBelow, times are in seconds since the attack began."
    )
    for s in scenarios:
        if not s.attack:
            continue
        mode = MODES[s.name]
        print(f"\n{s.name}: {mode.what}; wrk started at {s.wrk_started:.1f} s")
        if mode.note:
            print(f"  ({mode.note})")
        for i, r in enumerate(s.attack, 1):
            closing = r.closing()
            when = ""
            if closing is not None:
                first, last = closing
                span = f"{first}" if first == last else f"{first}-{last}"
                when = f" {span} s after it started"
            print(
                f"  slowhttptest run {i} (at {r.started:.1f} s): held up to {r.connected()}, "
                f"{r.closed()} closed by the server{when}; probe unanswered "
                f"{r.unavailable()} s; {r.exit_status}"
            )
        counts = [count for _, count in s.connections]
        if counts:
            top = counts.index(max(counts))
            low = min(counts[top:])
            at = s.connections[top + counts[top:].index(low)][0]
            fell = f", then down to {low} at {at:.1f} s" if low < counts[top] else ""
            print(
                f"  the server's open connections while wrk ran (wrk's {WRK_CONNECTIONS} "
                f"included): at most {counts[top]} at {s.connections[top][0]:.1f} s{fell}"
            )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="wrk's latency on GET / alone and under slowhttptest's attacks."
    )
    parser.add_argument(
        "-d", "--duration", type=int, default=15, help="seconds of wrk per scenario (15)"
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated attacks, of {', '.join(MODES)} (all)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=RESULTS,
        help="where to write the results (bench/results/slow.json)",
    )
    args = parser.parse_args()
    if args.duration < 1:
        parser.error("--duration must be at least 1")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or not set(modes) <= set(MODES):
        parser.error(f"--modes: one or more of {', '.join(MODES)}")
    args.modes = [m for m in MODES if m in modes]
    return args


def main() -> int:
    args = parse_args()
    ensure_tool("wrk")
    ensure_tool("slowhttptest")
    pinning = choose_pinning("wrk and slowhttptest")
    pin_client(pinning)  # this process counts the server's connections while wrk runs
    peak = can_reset_peak()
    if not peak:
        print("note: /proc/PID/clear_refs unavailable: peak RSS includes the server's startup")
    started = time.monotonic()
    scenarios = []
    try:
        for name in ["baseline", *args.modes]:
            print(f"{name} ...", flush=True)
            scenarios.append(measure(name, pinning, args.duration, peak))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    print_report(scenarios, args.duration, pinning)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "slow",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - started, 1),
        "python": sys.version.split()[0],
        "versions": versions(["trioweb", "trio", "h11"]),
        "settings": {
            "duration": args.duration,
            "modes": args.modes,
            "wrk": {"threads": 1, "connections": WRK_CONNECTIONS, "timeout": WRK_TIMEOUT},
            "attack": {
                "connections": ATTACK_CONNECTIONS,
                "rate": ATTACK_RATE,
                "probe_every": PROBE_EVERY,
                "modes": {name: asdict(MODES[name]) for name in args.modes},
            },
        },
        "pinning": asdict(pinning),
        "scenarios": [asdict(s) for s in scenarios],
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    shown = args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output
    print(f"\nresults written to {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
