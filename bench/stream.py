"""Streaming benchmark: trioweb against Sanic, large bodies up, echoed back and down.

Four scenarios on the same routes in both servers (stream_trioweb.py and stream_sanic.py):
a chunked upload to a sink, an upload with Content-Length to the sink, a chunked upload
echoed back as it arrives (full duplex), and a streamed download. Each runs with every
client that can (bench/_clients.py): the benchmark's own raw client, curl, httpx and
aiohttp, each cutting uploads the way it does by itself. Bodies are 512 MiB by default;
the raw client also runs each scenario at 1 MiB, the baseline of the RSS growth that must
stay under 16 MiB. trioweb runs once per HTTP engine, where it has a choice.

The machine is shared and noisy, so all servers are measured in the same run, in
interleaved rounds (sanic, trioweb/h11, trioweb/httptools, sanic, ...), and medians are
compared. The server is pinned to one CPU and the client to another. Only 127.0.0.1 is
contacted.

Usage: python bench/stream.py [-r 5] [--size 512MiB] [--clients raw,curl] [--show-chunks]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from _clients import (
    CLIENTS,
    LABELS,
    SCENARIOS,
    SUPPORTED,
    Raw,
    Recorder,
    UploadFiles,
    make_client,
    missing,
    pieces,
    runs,
)
from _common import (
    BENCH,
    BenchError,
    GiB,
    KiB,
    MiB,
    Pinning,
    Transfer,
    byte_size,
    can_reset_peak,
    choose_pinning,
    free_port,
    mib,
    pin_client,
    running,
    show_size,
    transfer,
    versions,
    wait_for_port,
)

SERVERS = {"sanic": BENCH / "stream_sanic.py", "trioweb": BENCH / "stream_trioweb.py"}
ENGINES = ("h11", "httptools")
RESULTS = BENCH / "results" / "stream.json"
#: Issue 17's goals, with curl as the client: trioweb / Sanic at least this, per engine
#: (a trioweb without ``HTTP_ENGINE`` has only h11).
GOAL_CLIENT = "curl"
GOALS = {"h11": 0.9, "httptools": 1.0}
RSS_BUDGET = 16 * MiB
STARTUP_TIMEOUT = 30.0


# -- the servers ------------------------------------------------------------------------


def trioweb_servers(engines: str | None, has_setting: bool, has_httptools: bool) -> list[str]:
    """The trioweb servers to measure: ``trioweb/ENGINE`` for each engine, or ``trioweb``.

    ``engines``: the ``--engines`` argument (None: h11, and httptools when installed);
    ``has_setting``: this trioweb has ``HTTP_ENGINE``. Raises ValueError for a bad choice.
    """
    if not has_setting:
        if engines is not None:
            raise ValueError("this trioweb has no HTTP_ENGINE setting: leave --engines out")
        return ["trioweb"]
    if engines is None:
        return ["trioweb/h11", *(["trioweb/httptools"] if has_httptools else [])]
    names: list[str] = []
    for name in (n.strip() for n in engines.split(",")):
        if name == "auto":  # what trioweb's "auto" picks
            name = "httptools" if has_httptools else "h11"
        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}: auto, h11 or httptools")
        if name == "httptools" and not has_httptools:
            raise ValueError("httptools is not installed (`nox -s bench_stream` installs it)")
        if name not in names:
            names.append(name)
    return [f"trioweb/{name}" for name in names]


def engine_of(server: str) -> str:
    """The engine of a trioweb server's label (``trioweb`` alone: h11, its only engine)."""
    return server.partition("/")[2] or "h11"


def trioweb_has_engines() -> bool:
    from trioweb import Config

    return hasattr(Config, "HTTP_ENGINE")


@contextlib.contextmanager
def serving(server: str, pinning: Pinning) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start ``server`` (``sanic``, ``trioweb`` or ``trioweb/ENGINE``) on a free port,
    check that it serves, stop it (SIGINT, then SIGKILL); yield it and its port.

    Its output is shown only if something went wrong.
    """
    name, _, engine = server.partition("/")
    port = free_port()
    command = [*pinning.prefix(pinning.server_cpu), sys.executable, str(SERVERS[name]), str(port)]
    command += ["--engine", engine] if engine else []

    def ready(process: subprocess.Popen[bytes]) -> None:
        wait_for_port(process, port, server, STARTUP_TIMEOUT)
        Raw(port, 64 * KiB).run("download", 100)  # it answers 200 with the right byte count

    with running(server, command, ready) as process:
        yield process, port


# -- the rounds -------------------------------------------------------------------------


def cell(client: str, scenario: str) -> str:
    """A client and a scenario, as one name: ``curl upload-chunked``."""
    return f"{client} {scenario}"


def cells(clients: list[str]) -> list[tuple[str, str]]:
    """Every (client, scenario) measured at the large size, in the order of the tables."""
    return [(c, s) for c in clients for s in SCENARIOS if s in SUPPORTED[c]]


def measure(
    server: str, pinning: Pinning, args: argparse.Namespace, files: UploadFiles, fresh: bool
) -> list[Transfer]:
    """The raw client's scenarios at the small size, then every cell at the large one.

    One server serves it all, its peak RSS reset before each transfer; ``fresh``: a new
    server for each transfer instead (when the peak RSS cannot be reset).
    """
    plan = [("raw", s, args.small) for s in SCENARIOS]
    plan += [(c, s, args.size) for c, s in cells(args.clients)]

    def one(
        process: subprocess.Popen[bytes], port: int, name: str, scenario: str, size: int
    ) -> Transfer:
        client = make_client(name, port, args.chunk, files)
        return transfer(
            process, cell(name, scenario), size, lambda: client.run(scenario, size), not fresh
        )

    if fresh:
        results = []
        for name, scenario, size in plan:
            with serving(server, pinning) as (process, port):
                results.append(one(process, port, name, scenario, size))
        return results
    with serving(server, pinning) as (process, port):
        return [one(process, port, name, scenario, size) for name, scenario, size in plan]


# -- the report -------------------------------------------------------------------------


@dataclass
class Summary:
    """One client and scenario at the large size: medians over the rounds, per server."""

    client: str
    scenario: str
    mib_per_sec: dict[str, float]
    #: trioweb's MiB/s over Sanic's, per trioweb server (none without Sanic).
    ratio: dict[str, float]
    cpu_seconds_per_gib: dict[str, float]
    #: The client's CPU time over the transfer's wall-clock time (near 1: it may limit).
    client_busy: dict[str, float]
    peak_rss: dict[str, int]
    #: The peak RSS minus the raw client's peak at the small size in the same scenario
    #: and round; the worst round.
    rss_growth: dict[str, int]


def pick(rounds: list[list[Transfer]], name: str, size: int) -> list[Transfer]:
    """The transfers of one cell at one size, a round each."""
    return [t for r in rounds for t in r if t.scenario == name and t.size == size]


def summarize(
    runs: dict[str, list[list[Transfer]]], clients: list[str], size: int, small: int
) -> list[Summary]:
    """A :class:`Summary` per cell, from every server's rounds (keyed by server)."""
    summaries = []
    for client, scenario in cells(clients):
        large = {s: pick(rounds, cell(client, scenario), size) for s, rounds in runs.items()}
        base = {s: pick(rounds, cell("raw", scenario), small) for s, rounds in runs.items()}
        speed = {s: statistics.median(t.mib_per_sec for t in ts) for s, ts in large.items()}
        summaries.append(
            Summary(
                client=client,
                scenario=scenario,
                mib_per_sec=speed,
                ratio={
                    s: speed[s] / speed["sanic"]
                    for s in speed
                    if s.startswith("trioweb") and "sanic" in speed
                },
                cpu_seconds_per_gib={
                    s: statistics.median(t.server_cpu_seconds / (t.size / GiB) for t in ts)
                    for s, ts in large.items()
                },
                client_busy={
                    s: statistics.median(t.client_cpu_seconds / t.seconds for t in ts)
                    for s, ts in large.items()
                },
                peak_rss={
                    s: int(statistics.median(t.peak_rss for t in ts)) for s, ts in large.items()
                },
                rss_growth={
                    s: max(b.peak_rss - a.peak_rss for b, a in zip(ts, base[s], strict=True))
                    for s, ts in large.items()
                },
            )
        )
    return summaries


def missed_goals(summaries: list[Summary]) -> list[str]:
    """The goals missed (none: PASS): curl's ratios per engine, trioweb's RSS growth."""
    failed = []
    for s in summaries:
        name = cell(s.client, s.scenario)
        if s.client == GOAL_CLIENT:
            for server, ratio in s.ratio.items():
                goal = GOALS[engine_of(server)]
                if ratio < goal:
                    failed.append(f"{name}: {server} / sanic {ratio:.2f} < {goal}")
        for server, growth in s.rss_growth.items():
            if server.startswith("trioweb") and growth >= RSS_BUDGET:
                failed.append(
                    f"{name}: {server} RSS growth {mib(growth)} MiB >= {mib(RSS_BUDGET)} MiB"
                )
    return failed


def markdown_table(summaries: list[Summary], servers: list[str]) -> list[str]:
    """The medians as a Markdown table: MiB/s per server, each trioweb's ratio to Sanic,
    server CPU s/GiB per server, and how busy the client was."""
    header = ["client", "scenario"]
    for server in servers:
        header.append(f"{server} MiB/s")
        if server != "sanic" and "sanic" in servers:
            header.append("ratio")
    header += ["server CPU s/GiB, " + " / ".join(servers), "client CPU"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for s in summaries:
        row = [s.client, LABELS[s.scenario]]
        for server in servers:
            row.append(f"{s.mib_per_sec[server]:.0f}")
            if server in s.ratio:
                ratio = s.ratio[server]
                row.append(f"**{ratio:.2f}**" if s.client == GOAL_CLIENT else f"{ratio:.2f}")
        row.append(" / ".join(f"{s.cpu_seconds_per_gib[server]:.2f}" for server in servers))
        row.append(f"{max(s.client_busy.values()):.0%}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def print_report(
    runs: dict[str, list[list[Transfer]]],
    summaries: list[Summary],
    args: argparse.Namespace,
    pinning: Pinning,
) -> list[str]:
    """Print the tables; return the failed goals (none: PASS)."""
    servers = list(runs)
    large, small = show_size(args.size), show_size(args.small)
    print(f"\nstreaming, {large} bodies ({small} for the RSS baseline), ", end="")
    if pinning.server_cpu is None:
        print("not pinned")
    else:
        print(f"servers on CPU {pinning.server_cpu}, clients on CPU {pinning.load_cpu}")
    for client in args.clients:
        print(f"  {client}: uploads in {pieces(client, args.chunk)}")

    print(f"\nthroughput of the {large} bodies, MiB/s (2**20 bytes/s, client side), per round")
    width = max(len(s) for s in servers) + 2
    for c, s in cells(args.clients):
        for server in servers:
            speeds = " ".join(
                f"{t.mib_per_sec:>7.0f}" for t in pick(runs[server], cell(c, s), args.size)
            )
            print(f"{c:<9}{s:<16}{server:<{width}}{speeds}")

    print("\nmedians (client CPU: its CPU time over the transfer's, the highest of the servers)")
    print("\n".join(markdown_table(summaries, servers)))

    print(f"\nserver peak RSS growth, MiB: {large} over the raw client's {small}, worst round")
    print(f"{'':<25}" + "".join(f"{server:>{width}}" for server in servers))
    for s in summaries:
        growth = "".join(f"{mib(s.rss_growth[server]):>{width}}" for server in servers)
        print(f"{s.client:<9}{s.scenario:<16}{growth}")

    failed = missed_goals(summaries)
    print()
    if "sanic" not in runs:
        print("note: without sanic there is no ratio: only the RSS budget is checked")
    elif GOAL_CLIENT not in args.clients:
        print(f"note: without {GOAL_CLIENT} no ratio has a goal: only the RSS budget is checked")
    if failed:
        print("FAIL: " + "; ".join(failed))
    else:
        goals = ", ".join(f"{e} >= {g}" for e, g in GOALS.items())
        print(
            f"PASS: {GOAL_CLIENT}'s ratios ({goals}), trioweb RSS growth < {mib(RSS_BUDGET)} MiB"
        )
    return failed


# -- what the clients send --------------------------------------------------------------


def show_chunks(args: argparse.Namespace) -> int:
    """Run every client's uploads of ``--size`` against a recorder; print what came."""
    print(f"what each client sends, uploading {show_size(args.size)} to a recording server")
    with tempfile.TemporaryDirectory() as directory, Recorder() as recorder:
        files = UploadFiles(Path(directory))
        for name in args.clients:
            client = make_client(name, recorder.port, args.chunk, files)
            for scenario in ("upload-chunked", "upload-length"):
                try:
                    client.run(scenario, args.size)
                except BenchError as exc:
                    print(f"error: {name} {scenario}: {exc} {recorder.errors}", file=sys.stderr)
                    return 2
                seen = recorder.seen[-1]
                expect = f", Expect: {seen.expect}" if seen.expect else ""
                chunks = f": {runs(seen.chunks)}" if seen.chunks else ""
                print(f"{name:<9}{scenario:<16}{seen.method} {seen.framing}{expect}{chunks}")
    return 0


# -- the command line -------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Streaming benchmark: trioweb against Sanic, with several clients."
    )
    parser.add_argument("-r", "--rounds", type=int, default=5, help="rounds per server (5)")
    parser.add_argument(
        "--size", type=byte_size, default=512 * MiB, help="the large body (512MiB)"
    )
    parser.add_argument(
        "--small", type=byte_size, default=MiB, help="the RSS baseline's body (1MiB)"
    )
    parser.add_argument(
        "--chunk", type=byte_size, default=256 * KiB, help="the raw client's chunks (256KiB)"
    )
    parser.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help=f"comma-separated, of {', '.join(CLIENTS)} (all)",
    )
    parser.add_argument(
        "--servers",
        default="sanic,trioweb",
        help="comma-separated, of sanic and trioweb (sanic,trioweb)",
    )
    parser.add_argument(
        "--engines",
        help="trioweb's HTTP_ENGINE values to measure, of auto, h11 and httptools "
        "(h11 and httptools where installed; none for a trioweb without the setting)",
    )
    parser.add_argument(
        "--show-chunks",
        action="store_true",
        help="only record how each client sends a --size upload, and print it",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=RESULTS,
        help="where to write the results (bench/results/stream.json)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.small >= args.size:
        parser.error("--small must be smaller than --size")
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if not clients or not set(clients) <= set(CLIENTS):
        parser.error(f"--clients: of {', '.join(CLIENTS)}")
    for client in clients:
        if (why := missing(client)) is not None:
            parser.error(f"--clients: {why}; or leave {client} out")
    args.clients = [c for c in CLIENTS if c in clients]
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if "trioweb" not in names or not set(names) <= set(SERVERS):
        parser.error("--servers: trioweb, optionally with sanic")
    if "sanic" in names and importlib.util.find_spec("sanic") is None:
        parser.error(
            f"sanic is not installed for {sys.executable}: use `nox -s bench_stream`, "
            "`pip install sanic`, or --servers trioweb"
        )
    try:
        trioweb = trioweb_servers(
            args.engines, trioweb_has_engines(), importlib.util.find_spec("httptools") is not None
        )
    except ValueError as exc:
        parser.error(f"--engines: {exc}")
    args.servers = [*(["sanic"] if "sanic" in names else []), *trioweb]  # sanic first
    return args


def main() -> int:
    args = parse_args()
    if args.show_chunks:
        return show_chunks(args)
    pinning = choose_pinning("the clients")
    pin_client(pinning)
    fresh = not can_reset_peak()
    if fresh:
        print("note: /proc/PID/clear_refs unavailable: a fresh server for every transfer")
    runs: dict[str, list[list[Transfer]]] = {server: [] for server in args.servers}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        files = UploadFiles(Path(directory))
        if args.clients != ["raw"]:
            files.path(args.size)  # written now, not during a transfer
        try:
            for round_number in range(1, args.rounds + 1):
                for server in args.servers:
                    print(f"round {round_number}/{args.rounds}: {server} ...", flush=True)
                    runs[server].append(measure(server, pinning, args, files, fresh))
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    seconds = time.monotonic() - started

    summaries = summarize(runs, args.clients, args.size, args.small)
    failed = print_report(runs, summaries, args, pinning)
    print(f"the run took {seconds:.0f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    packages = ["trioweb", "trio", "h11", "httptools", "sanic", "uvloop", "httpx", "aiohttp"]
    report = {
        "benchmark": "stream",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 1),
        "python": sys.version.split()[0],
        "versions": versions(packages) | curl_version(args.clients),
        "settings": {
            "size": args.size,
            "small": args.small,
            "chunk": args.chunk,
            "rounds": args.rounds,
            "servers": args.servers,
            "clients": args.clients,
            "pieces": {c: pieces(c, args.chunk) for c in args.clients},
        },
        "pinning": asdict(pinning),
        "peak_rss": "fresh server per transfer" if fresh else "clear_refs 5, then VmHWM",
        "order": "interleaved: " + " ".join([" ".join(args.servers)] * args.rounds),
        "rounds": {s: [[asdict(t) for t in r] for r in rs] for s, rs in runs.items()},
        "summary": {cell(s.client, s.scenario): asdict(s) for s in summaries},
        "goals": {"client": GOAL_CLIENT, "ratio": GOALS, "rss_budget": RSS_BUDGET},
        "failed": failed,
        "passed": not failed,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.output}")
    return 1 if failed else 0


def curl_version(clients: list[str]) -> dict[str, str]:
    if "curl" not in clients:
        return {}
    output = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=True)
    return {"curl": output.stdout.split()[1]}


if __name__ == "__main__":
    sys.exit(main())
