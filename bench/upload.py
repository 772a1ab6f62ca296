"""Upload benchmark: one large file and a few fields, multipart, saved to disk.

trioweb streams the parts (``request.multipart()``, ``part.save()``: upload_trioweb.py)
against Starlette on uvicorn (``await request.form()``: upload_starlette.py) and Sanic
(``request.files``: upload_sanic.py). curl sends each upload (``-F``, the file streamed
from a file of zeros written before the rounds). Each server answers what it got; the
answer and the saved file's size are checked, then the file is deleted.

Measured per server, in interleaved rounds of the same run (trioweb, starlette, sanic,
trioweb, ...), server pinned to one CPU and curl to the other: the throughput of the large
upload (client side), the server's CPU time, and its peak RSS, whose growth from a small
upload (1 MiB) to the large one is the memory an upload costs. Medians over the rounds;
the RSS growth is the worst round's. Only 127.0.0.1 is contacted.

Usage: python bench/upload.py [-r 3] [--size 256MiB] [--servers trioweb,starlette,sanic]
Issue 12's goals are for ``--size 1GiB``. See bench/README.md.
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

from _common import (
    BENCH,
    IO_TIMEOUT,
    BenchError,
    GiB,
    KiB,
    MiB,
    Pinning,
    Transfer,
    byte_size,
    can_reset_peak,
    choose_pinning,
    ensure_tool,
    free_port,
    mib,
    pin_client,
    running,
    show_size,
    transfer,
    versions,
    wait_for_port,
)

SERVERS = {
    "trioweb": BENCH / "upload_trioweb.py",
    "starlette": BENCH / "upload_starlette.py",
    "sanic": BENCH / "upload_sanic.py",
}
#: The module each server needs, to say which are missing before the run starts.
MODULES = {"trioweb": "trioweb", "starlette": "starlette", "sanic": "sanic"}
RESULTS = BENCH / "results" / "upload.json"
FIELDS = {"title": "holiday", "description": "a few photos, one video", "tags": "sea,sun"}
#: Issue 12's goals: trioweb's throughput over the fastest peer's, and its RSS growth.
GOAL_RATIO = 1.0
RSS_BUDGET = 16 * MiB
STARTUP_TIMEOUT = 30.0


# -- one upload -------------------------------------------------------------------------


def expected_answer(size: int) -> set[str]:
    """The lines every server answers for a complete upload of a ``size``-byte file."""
    return {f"{name}={value}" for name, value in FIELDS.items()} | {f"file={size}"}


def curl_upload(port: int, source: Path, saved: Path) -> float:
    """Upload ``source`` with the fields, check the answer and ``saved``; its seconds."""
    size = source.stat().st_size
    command = ["curl", "-sS", "--noproxy", "*", "-w", "\n%{http_code}"]
    command += ["--speed-limit", "1", "--speed-time", str(int(IO_TIMEOUT))]
    for name, value in FIELDS.items():
        command += ["-F", f"{name}={value}"]
    command += ["-F", f"file=@{source}", f"http://127.0.0.1:{port}/upload"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"curl exited with {done.returncode}: {done.stderr.strip()}")
    body, _, status = done.stdout.rpartition("\n")
    if status != "200" or set(body.splitlines()) != expected_answer(size):
        raise BenchError(f"status {status}, answer {body[:200]!r}")
    try:
        saved_size = saved.stat().st_size
    except FileNotFoundError:
        raise BenchError("the server saved no file") from None
    if saved_size != size:
        raise BenchError(f"the server saved {saved_size} bytes of {size}")
    saved.unlink()
    return seconds


def write_zeros(path: Path, size: int) -> None:
    with path.open("wb") as file:
        piece = bytes(MiB)
        for start in range(0, size, MiB):
            file.write(piece[: min(MiB, size - start)])


@dataclass
class Files:
    """The files to upload (by size), and where the servers save theirs."""

    directory: Path

    def source(self, size: int) -> Path:
        path = self.directory / f"upload-{size}.bin"
        if not path.exists():
            write_zeros(path, size)
        return path

    @property
    def saved(self) -> Path:
        return self.directory / "saved" / "upload.bin"


# -- the rounds -------------------------------------------------------------------------


@contextlib.contextmanager
def serving(
    server: str, pinning: Pinning, files: Files
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start ``server`` on a free port, check that it takes an upload; stop it after."""
    port = free_port()
    command = [*pinning.prefix(pinning.server_cpu), sys.executable, str(SERVERS[server])]
    command += [str(port), str(files.saved.parent)]

    def ready(process: subprocess.Popen[bytes]) -> None:
        wait_for_port(process, port, server, STARTUP_TIMEOUT)
        curl_upload(port, files.source(KiB), files.saved)

    with running(server, command, ready) as process:
        yield process, port


def measure(
    server: str, pinning: Pinning, args: argparse.Namespace, files: Files, fresh: bool
) -> list[Transfer]:
    """The small upload, then the large one, each measured on its own peak RSS.

    ``fresh``: a new server for each (when the peak RSS cannot be reset).
    """
    results = []
    with contextlib.ExitStack() as stack:
        process, port = stack.enter_context(serving(server, pinning, files))
        for size in (args.small, args.size):
            if fresh and results:
                stack.close()
                process, port = stack.enter_context(serving(server, pinning, files))
            source = files.source(size)
            results.append(
                transfer(
                    process,
                    f"upload {show_size(size)}",
                    size,
                    lambda source=source, port=port: curl_upload(port, source, files.saved),
                    not fresh,
                )
            )
    return results


# -- the report -------------------------------------------------------------------------


@dataclass
class Summary:
    """One server's medians over the rounds, at the large size."""

    mib_per_sec: float
    cpu_seconds_per_gib: float
    peak_rss: int
    #: The large upload's peak RSS minus the small one's, in the worst round.
    rss_growth: int
    rounds: list[float]


def summarize(runs: dict[str, list[list[Transfer]]], size: int) -> dict[str, Summary]:
    summaries = {}
    for server, rounds in runs.items():
        large = [t for r in rounds for t in r if t.size == size]
        summaries[server] = Summary(
            mib_per_sec=statistics.median(t.mib_per_sec for t in large),
            cpu_seconds_per_gib=statistics.median(
                t.server_cpu_seconds / (t.size / GiB) for t in large
            ),
            peak_rss=int(statistics.median(t.peak_rss for t in large)),
            rss_growth=max(r[1].peak_rss - r[0].peak_rss for r in rounds),
            rounds=[t.mib_per_sec for t in large],
        )
    return summaries


def fastest_peer(summaries: dict[str, Summary]) -> str | None:
    peers = [s for s in summaries if s != "trioweb"]
    return max(peers, key=lambda s: summaries[s].mib_per_sec) if peers else None


def missed_goals(summaries: dict[str, Summary]) -> list[str]:
    """The goals missed (none: PASS): the ratio to the fastest peer, the RSS growth."""
    ours = summaries["trioweb"]
    failed = []
    peer = fastest_peer(summaries)
    if peer is not None:
        ratio = ours.mib_per_sec / summaries[peer].mib_per_sec
        if ratio < GOAL_RATIO:
            failed.append(f"trioweb / {peer} {ratio:.2f} < {GOAL_RATIO}")
    if ours.rss_growth >= RSS_BUDGET:
        failed.append(f"trioweb RSS growth {mib(ours.rss_growth)} MiB >= {mib(RSS_BUDGET)} MiB")
    return failed


def markdown_table(summaries: dict[str, Summary], small: int) -> list[str]:
    """The medians as a Markdown table, one server a row."""
    ours = summaries["trioweb"].mib_per_sec
    lines = [
        "| server | MiB/s | trioweb / it | server CPU s/GiB | peak RSS MiB "
        f"| RSS growth from {show_size(small)}, MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for server, s in summaries.items():
        ratio = "" if server == "trioweb" else f"{ours / s.mib_per_sec:.2f}"
        lines.append(
            f"| {server} | {s.mib_per_sec:.0f} | {ratio} | {s.cpu_seconds_per_gib:.2f} "
            f"| {mib(s.peak_rss)} | {mib(s.rss_growth)} |"
        )
    return lines


def print_report(
    summaries: dict[str, Summary], args: argparse.Namespace, pinning: Pinning
) -> list[str]:
    """Print the tables; return the failed goals (none: PASS)."""
    where = (
        "not pinned"
        if pinning.server_cpu is None
        else f"servers on CPU {pinning.server_cpu}, curl on CPU {pinning.load_cpu}"
    )
    print(f"\nmultipart upload of {show_size(args.size)} and {len(FIELDS)} fields, saved; {where}")
    print("\nthroughput per round, MiB/s")
    for server, s in summaries.items():
        print(f"{server:<11}" + " ".join(f"{speed:>7.0f}" for speed in s.rounds))
    print("\nmedians")
    print("\n".join(markdown_table(summaries, args.small)))
    failed = missed_goals(summaries)
    print()
    if fastest_peer(summaries) is None:
        print("note: without a peer there is no ratio: only the RSS budget is checked")
    if failed:
        print("FAIL: " + "; ".join(failed))
    else:
        print(
            f"PASS: trioweb >= {GOAL_RATIO}x the fastest peer, RSS growth < {mib(RSS_BUDGET)} MiB"
        )
    return failed


# -- the command line -------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Multipart upload benchmark: trioweb against Starlette and Sanic."
    )
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds per server (3)")
    parser.add_argument(
        "--size",
        type=byte_size,
        default=256 * MiB,
        help="the large file (256MiB; the goals: 1GiB)",
    )
    parser.add_argument(
        "--small", type=byte_size, default=MiB, help="the RSS baseline's file (1MiB)"
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated, of {', '.join(SERVERS)}, trioweb first (all)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=RESULTS,
        help="the results (bench/results/upload.json)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.small >= args.size:
        parser.error("--small must be smaller than --size")
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if "trioweb" not in names or not set(names) <= set(SERVERS):
        parser.error(f"--servers: trioweb, and any of {', '.join(SERVERS)}")
    for name in names:
        if importlib.util.find_spec(MODULES[name]) is None:
            parser.error(
                f"{name} is not installed for {sys.executable}: use `nox -s bench_upload`, "
                f"or leave it out of --servers"
            )
    args.servers = [s for s in SERVERS if s in names]  # trioweb first
    return args


def main() -> int:
    args = parse_args()
    ensure_tool("curl")
    pinning = choose_pinning("curl")
    pin_client(pinning)
    fresh = not can_reset_peak()
    if fresh:
        print("note: /proc/PID/clear_refs unavailable: a fresh server for every upload")
    runs: dict[str, list[list[Transfer]]] = {server: [] for server in args.servers}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        files = Files(Path(directory))
        files.saved.parent.mkdir()
        for size in (KiB, args.small, args.size):
            files.source(size)  # written now, not during a transfer
        try:
            for round_number in range(1, args.rounds + 1):
                for server in args.servers:
                    print(f"round {round_number}/{args.rounds}: {server} ...", flush=True)
                    runs[server].append(measure(server, pinning, args, files, fresh))
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    seconds = time.monotonic() - started
    summaries = summarize(runs, args.size)
    failed = print_report(summaries, args, pinning)
    print(f"the run took {seconds:.0f} s")
    packages = ["trioweb", "trio", "multipart", "httptools", "starlette", "python-multipart"]
    packages += ["uvicorn", "uvloop", "sanic"]
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=True)
    report = {
        "benchmark": "upload",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 1),
        "python": sys.version.split()[0],
        "versions": versions(packages) | {"curl": curl.stdout.split()[1]},
        "settings": {
            "size": args.size,
            "small": args.small,
            "rounds": args.rounds,
            "servers": args.servers,
            "fields": FIELDS,
        },
        "pinning": asdict(pinning),
        "peak_rss": "fresh server per upload" if fresh else "clear_refs 5, then VmHWM",
        "order": "interleaved: " + " ".join([" ".join(args.servers)] * args.rounds),
        "rounds": {s: [[asdict(t) for t in r] for r in rs] for s, rs in runs.items()},
        "summary": {s: asdict(summary) for s, summary in summaries.items()},
        "goals": {"ratio": GOAL_RATIO, "rss_budget": RSS_BUDGET},
        "failed": failed,
        "passed": not failed,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
