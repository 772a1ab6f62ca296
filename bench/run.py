"""Hello-world benchmark: trioweb against a bare Trio + h11 server, in one run.

The machine is shared and noisy, so both servers are measured in the same run, in
interleaved rounds (baseline, trioweb, baseline, trioweb, ...), and the medians are
compared. Each server is pinned to one CPU and wrk to another, so the server under test
never competes with its load generator. Only 127.0.0.1 is ever contacted.

Usage: python bench/run.py [--rounds 3] [-d 10s] [-c 50] [--baseline PATH]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from _common import (
    REPO,
    BenchError,
    Pinning,
    WrkResult,
    choose_pinning,
    cpu_seconds,
    ensure_tool,
    free_port,
    parse_wrk,
    running,
    wait_for_port,
)

HELLO = REPO / "examples" / "hello.py"
DEFAULT_BASELINE = REPO.parent / "shared" / "bench" / "trio_h11_baseline.py"
RESULTS = REPO / "bench" / "results" / "hello.json"
GOAL_RATIO = 0.6
EXPECTED_BODY = b"Hello, world!"
STARTUP_TIMEOUT = 15.0


def wait_until_serving(proc: subprocess.Popen[bytes], port: int, name: str) -> None:
    """Wait for the port to accept connections, then check it answers Hello, world!."""
    wait_for_port(proc, port, name, STARTUP_TIMEOUT)
    # A server that answers 500 quickly would look fast: check the answer first.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200 or body != EXPECTED_BODY:
        raise BenchError(f"{name} answered {response.status} {body[:60]!r}")


def measure(name: str, script: Path, pinning: Pinning, args: argparse.Namespace) -> WrkResult:
    """Start one server, load it with wrk, stop it. Its output is shown only if it fails."""
    port = free_port()
    command = [*pinning.prefix(pinning.server_cpu), sys.executable, str(script), str(port)]
    wrk = [
        *pinning.prefix(pinning.load_cpu),
        "wrk",
        "-t1",
        f"-c{args.connections}",
        f"-d{args.duration}",
        f"http://127.0.0.1:{port}/",
    ]
    with running(name, command, lambda server: wait_until_serving(server, port, name)) as server:
        cpu_before = cpu_seconds(server.pid)
        done = subprocess.run(wrk, capture_output=True, text=True)
        cpu_used = cpu_seconds(server.pid) - cpu_before
        if done.returncode != 0:
            raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
        if server.poll() is not None:
            raise BenchError(f"{name} died during the run (status {server.returncode})")
        result = parse_wrk(done.stdout)
        if result.requests:
            result.cpu_us_per_request = cpu_used / result.requests * 1e6
    if result.non_2xx_3xx or result.socket_errors:
        print(
            f"warning: {name}: {result.non_2xx_3xx} non-2xx/3xx responses, "
            f"{result.socket_errors} socket errors"
        )
    return result


def duration(value: str) -> str:
    if not re.fullmatch(r"\d+[smh]?", value):
        raise argparse.ArgumentTypeError("a wrk duration such as 10s, 2m or 30")
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Hello-world benchmark: trioweb against a bare Trio + h11 server."
    )
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds per server (3)")
    parser.add_argument(
        "-d", "--duration", type=duration, default="10s", help="wrk duration per run (10s)"
    )
    parser.add_argument("-c", "--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=DEFAULT_BASELINE,
        help="the Trio + h11 baseline server (../shared/bench/trio_h11_baseline.py)",
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.connections < 1:
        parser.error("--rounds and --connections must be at least 1")
    if not args.baseline.is_file():
        parser.error(f"baseline server not found: {args.baseline}")
    return args


def main() -> int:
    args = parse_args()
    ensure_tool("wrk")
    pinning = choose_pinning("wrk")
    servers = {"baseline": args.baseline, "trioweb": HELLO}
    runs: dict[str, list[WrkResult]] = {name: [] for name in servers}
    try:
        for round_number in range(1, args.rounds + 1):
            for name, script in servers.items():
                print(f"round {round_number}/{args.rounds}: {name} ...", flush=True)
                runs[name].append(measure(name, script, pinning, args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    medians = {
        name: statistics.median(r.requests_per_sec for r in rs) for name, rs in runs.items()
    }
    ratio = medians["trioweb"] / medians["baseline"]
    passed = ratio >= GOAL_RATIO

    print()
    print(f"hello world, wrk -t1 -c{args.connections} -d{args.duration}, ", end="")
    if pinning.server_cpu is None:
        print("not pinned")
    else:
        print(f"servers on CPU {pinning.server_cpu}, wrk on CPU {pinning.load_cpu}")
    cpu = {name: statistics.median(r.cpu_us_per_request for r in rs) for name, rs in runs.items()}
    cpu_ratio = cpu["baseline"] / cpu["trioweb"] if cpu["trioweb"] else 0.0
    print(f"{'round':<8}{'baseline req/s':>16}{'trioweb req/s':>16}{'CPU µs/req b / t':>20}")
    for i in range(args.rounds):
        b, t = runs["baseline"][i], runs["trioweb"][i]
        print(
            f"{i + 1:<8}{b.requests_per_sec:>16.1f}{t.requests_per_sec:>16.1f}"
            f"{b.cpu_us_per_request:>12.1f} / {t.cpu_us_per_request:<6.1f}"
        )
    print(
        f"{'median':<8}{medians['baseline']:>16.1f}{medians['trioweb']:>16.1f}"
        f"{cpu['baseline']:>12.1f} / {cpu['trioweb']:<6.1f}"
    )
    print(f"ratio trioweb/baseline: {ratio:.3f} (goal >= {GOAL_RATIO})")
    print(f"CPU-time ratio (baseline µs/req over trioweb µs/req): {cpu_ratio:.3f}")
    print(
        f"{'PASS' if passed else 'FAIL'}: ratio {ratio:.3f} {'>=' if passed else '<'} {GOAL_RATIO}"
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "hello",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "wrk": {"threads": 1, "connections": args.connections, "duration": args.duration},
        "pinning": asdict(pinning),
        "order": "interleaved: " + " ".join(["baseline trioweb"] * args.rounds),
        "rounds": {name: [asdict(r) for r in rs] for name, rs in runs.items()},
        "median_requests_per_sec": medians,
        "ratio": ratio,
        "median_cpu_us_per_request": cpu,
        "cpu_ratio": cpu_ratio,
        "goal_ratio": GOAL_RATIO,
        "passed": passed,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {RESULTS.relative_to(REPO)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
