"""File-download benchmark: trioweb's file_stream against Sanic's, and nginx as the ceiling.

One test file (1 GiB by default) is written to a temporary directory, then downloaded
from each server in each mode, in the same run:

* **trioweb**, ``file_stream(chunk_size=65536)``, ``chunked=True`` (``GET /chunked/NAME``)
  and ``chunked=False`` (``GET /length/NAME``: Content-Length, where trioweb may use
  sendfile), from bench/files_trioweb.py;
* **sanic**, its ``file_stream(chunk_size=65536)``, chunked, and with a Content-Length
  header (its way of sending the length), from bench/files_sanic.py;
* **nginx** from Debian, ``sendfile on``, serving the directory: the practical ceiling.

The client is this script, over blocking sockets: it counts the body bytes, parses chunked
framing, checks the framing is the one asked for, and compares every byte with the file's.
It reports MiB/s, the server's CPU seconds per GiB and its peak RSS during the download.

The machine is shared and noisy, so the servers are measured in interleaved rounds (nginx,
sanic, trioweb, nginx, ...) and medians are compared. Each server is pinned to one CPU and
the client to another. Only 127.0.0.1 is contacted.

Usage: python bench/files.py [-r 3] [--size 1GiB] [--servers trioweb,nginx]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
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
    RECEIVE_BUFFER,
    BenchError,
    GiB,
    KiB,
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

#: Every server, in the order of a round, and the modes each is measured in.
MODES = {"nginx": ("length",), "sanic": ("chunked", "length"), "trioweb": ("chunked", "length")}
APPS = {"sanic": BENCH / "files_sanic.py", "trioweb": BENCH / "files_trioweb.py"}
RESULTS = BENCH / "results" / "files.json"
#: The test file's content repeats with this period: a prime, so that no read, chunk or
#: sendfile size is a multiple of it, and a piece of the body sent out of place is caught.
BLOCK = 1_048_573
FILE_NAME = "file.bin"
#: A small file with the same content, downloaded in every mode before the measurements:
#: it checks that the server answers right, and warms it up (threads, buffers).
WARMUP_NAME, WARMUP_SIZE = "warmup.bin", 256 * KiB
STARTUP_TIMEOUT = 30.0
#: (subject, reference, the least ratio of their MiB/s that meets the goal).
GOALS = (
    ("trioweb length", "nginx length", 1 / 1.5),
    ("trioweb length", "sanic length", 1.0),
    ("trioweb chunked", "sanic chunked", 1.0),
)
NGINX_INSTALL = "apt-get install -y nginx-light (or nginx)"


# -- the test file ----------------------------------------------------------------------


class FileContent:
    """What the test files hold: one random block over and over, the last copy cut short."""

    def __init__(self) -> None:
        block = os.urandom(BLOCK)
        # Any piece of up to BLOCK bytes, from any offset in the block, without wrapping.
        self._twice = memoryview(block * 2)

    def write(self, path: Path, size: int) -> None:
        """Write ``size`` bytes, a block at a time, and wait until they are on disk.

        Flushed so that writing back dirty pages does not run during a measurement.
        """
        with path.open("wb") as f:
            left = size
            while left:
                left -= f.write(self._twice[: min(left, BLOCK)])
            f.flush()
            os.fsync(f.fileno())

    def check(self, buf: bytearray, start: int, end: int, offset: int) -> None:
        """Raise :class:`BenchError` unless ``buf[start:end]`` is the file at ``offset``."""
        while start < end:
            stop = min(end, start + BLOCK)
            at = offset % BLOCK
            # bytearray == memoryview compares with memcmp, with no copy of the block.
            if buf[start:stop] != self._twice[at : at + stop - start]:
                self._mismatch(buf, start, stop, offset)
            offset += stop - start
            start = stop

    def _mismatch(self, buf: bytearray, start: int, stop: int, offset: int) -> None:
        at = offset % BLOCK
        first = next(i for i in range(stop - start) if buf[start + i] != self._twice[at + i])
        raise BenchError(
            f"body byte {offset + first} differs from the file's: received "
            f"{bytes(buf[start + first : start + first + 40])!r}"
        )


# -- the client -------------------------------------------------------------------------


def url_path(name: str, mode: str, file_name: str) -> str:
    return f"/{file_name}" if name == "nginx" else f"/{mode}/{file_name}"


def check_framing(headers: dict[str, str], what: str, mode: str, size: int) -> None:
    """A body of the mode asked for: chunked, or with a Content-Length of the file's size."""
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    if mode == "chunked" and (not chunked or "content-length" in headers):
        raise BenchError(f"{what}: not chunked, or with Content-Length: {headers}")
    if mode == "length" and (chunked or headers.get("content-length") != str(size)):
        raise BenchError(f"{what}: no Content-Length of {size}, or chunked: {headers}")


def download(
    port: int, path: str, mode: str, size: int, content: FileContent, buf: bytearray
) -> float:
    """``GET path``, a file of ``size`` bytes; returns the wall-clock seconds once checked."""
    what = f"GET {path}"
    try:
        with connect(port) as sock:
            started = time.perf_counter()
            sock.sendall(f"{what} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            response = read_response(sock, buf, keep=200, check=content.check)
            seconds = time.perf_counter() - started
    except OSError as exc:  # timeouts included
        raise BenchError(f"{what}: {exc!r}") from None
    except BenchError as exc:
        raise BenchError(f"{what}: {exc}") from None
    expect(response, what, size)
    check_framing(response.headers, what, mode, size)
    return seconds


# -- the servers ------------------------------------------------------------------------


def find_nginx() -> str | None:
    """nginx on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def nginx_version(nginx: str) -> str:
    done = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10)
    return done.stderr.strip().rpartition("/")[2]  # "nginx version: nginx/1.22.1"


def nginx_config(directory: Path, port: int, root: Path) -> Path:
    """A config that serves ``root`` on 127.0.0.1:``port``, one process, files in ``directory``.

    Nothing under /etc or /var is read or written, so it runs as any user. Access logging
    is off, as in the other servers; errors go to stderr, shown if the run fails.
    """
    config = directory / "nginx.conf"
    config.write_text(
        f"""\
# Written by bench/files.py: one process, in the foreground, everything in this directory.
daemon off;
master_process off;
pid "{directory}/nginx.pid";
lock_file "{directory}/nginx.lock";
error_log stderr warn;
events {{
}}
http {{
    access_log off;
    sendfile on;
    default_type application/octet-stream;
    client_body_temp_path "{directory}/client_body";
    proxy_temp_path "{directory}/proxy";
    fastcgi_temp_path "{directory}/fastcgi";
    uwsgi_temp_path "{directory}/uwsgi";
    scgi_temp_path "{directory}/scgi";
    server {{
        listen 127.0.0.1:{port};
        root "{root}";
    }}
}}
"""
    )
    return config


@dataclass
class Setup:
    """What every server start needs: the files, nginx, the client's buffer."""

    pinning: Pinning
    www: Path
    scratch: Path
    size: int
    content: FileContent
    nginx: str | None
    buf: bytearray


def command(name: str, port: int, setup: Setup) -> list[str]:
    pin = setup.pinning.prefix(setup.pinning.server_cpu)
    if name == "nginx":
        assert setup.nginx is not None
        directory = setup.scratch / "nginx"
        directory.mkdir(exist_ok=True)
        config = nginx_config(directory, port, setup.www)
        # -e: the error log nginx writes to before it has read its config.
        return [*pin, setup.nginx, "-p", str(directory), "-c", str(config), "-e", "stderr"]
    return [*pin, sys.executable, str(APPS[name]), str(port), str(setup.www)]


@contextlib.contextmanager
def serving(name: str, setup: Setup) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start a server on a free port, check it serves the small file right, stop it."""
    port = free_port()

    def ready(server: subprocess.Popen[bytes]) -> None:
        wait_for_port(server, port, name, STARTUP_TIMEOUT)
        for mode in MODES[name]:
            path = url_path(name, mode, WARMUP_NAME)
            size = min(WARMUP_SIZE, setup.size)
            download(port, path, mode, size, setup.content, setup.buf)

    with running(name, command(name, port, setup), ready) as server:
        yield server, port


def one_transfer(
    server: subprocess.Popen[bytes], port: int, name: str, mode: str, setup: Setup, peak: bool
) -> Transfer:
    path = url_path(name, mode, FILE_NAME)

    def run() -> float:
        return download(port, path, mode, setup.size, setup.content, setup.buf)

    return transfer(server, f"{name} {mode}", setup.size, run, peak)


def measure(name: str, setup: Setup, fresh: bool) -> list[Transfer]:
    """The file downloaded in each of the server's modes.

    ``fresh``: a new server for each download (when the peak RSS cannot be reset).
    """
    if fresh:
        results = []
        for mode in MODES[name]:
            with serving(name, setup) as (server, port):
                results.append(one_transfer(server, port, name, mode, setup, peak=False))
        return results
    with serving(name, setup) as (server, port):
        return [one_transfer(server, port, name, mode, setup, peak=True) for mode in MODES[name]]


# -- the report -------------------------------------------------------------------------


@dataclass
class Summary:
    """Medians over the rounds for one server in one mode."""

    mib_per_sec: float
    cpu_seconds_per_gib: float
    peak_rss: int


def summarize(runs: dict[str, list[list[Transfer]]]) -> dict[str, Summary]:
    """Keyed by ``"SERVER MODE"``, such as ``"trioweb length"``."""
    summaries = {}
    for name, rounds in runs.items():
        for mode in MODES[name]:
            key = f"{name} {mode}"
            ts = [t for r in rounds for t in r if t.scenario == key]
            summaries[key] = Summary(
                mib_per_sec=statistics.median(t.mib_per_sec for t in ts),
                cpu_seconds_per_gib=statistics.median(
                    t.server_cpu_seconds / (t.size / GiB) for t in ts
                ),
                peak_rss=int(statistics.median(t.peak_rss for t in ts)),
            )
    return summaries


def ratios(summaries: dict[str, Summary]) -> dict[str, float]:
    """``"subject / reference"`` for each goal whose two sides were measured."""
    return {
        f"{subject} / {reference}": summaries[subject].mib_per_sec
        / summaries[reference].mib_per_sec
        for subject, reference, _ in GOALS
        if subject in summaries and reference in summaries
    }


def print_report(
    runs: dict[str, list[list[Transfer]]],
    summaries: dict[str, Summary],
    args: argparse.Namespace,
    pinning: Pinning,
) -> list[str]:
    """Print the tables; return the failed goals (none: PASS)."""
    print(f"\ndownload of a {show_size(args.size)} file, 64 KiB reads, ", end="")
    if pinning.server_cpu is None:
        print("not pinned")
    else:
        print(f"servers on CPU {pinning.server_cpu}, client on CPU {pinning.load_cpu}")
    print("chunked: chunked encoding; length: Content-Length (nginx: sendfile on)")
    print("\nMiB/s (2**20 bytes/s, client side) per round, medians, server CPU and peak RSS")
    rounds = "".join(f"{f'round {i + 1}':>9}" for i in range(args.rounds))
    print(f"{'server':<18}{rounds}{'median':>9}{'CPU s/GiB':>11}{'peak RSS MiB':>14}")
    for name, transfers in runs.items():
        for mode in MODES[name]:
            key = f"{name} {mode}"
            s = summaries[key]
            speeds = "".join(
                f"{t.mib_per_sec:>9.1f}" for r in transfers for t in r if t.scenario == key
            )
            print(
                f"{key:<18}{speeds}{s.mib_per_sec:>9.1f}"
                f"{s.cpu_seconds_per_gib:>11.2f}{mib(s.peak_rss):>14}"
            )

    print(f"\n{'ratio of median MiB/s':<36}{'ratio':>7}{'goal':>9}")
    failed = []
    measured = ratios(summaries)
    for subject, reference, least in GOALS:
        label = f"{subject} / {reference}"
        if label not in measured:
            print(f"{label:<36}{'-':>7}{f'>= {least:.3g}':>9}  not measured")
            continue
        ratio = measured[label]
        verdict = "PASS" if ratio >= least else "FAIL"
        print(f"{label:<36}{ratio:>7.3f}{f'>= {least:.3g}':>9}  {verdict}")
        if ratio < least:
            failed.append(f"{label} {ratio:.3f} < {least:.3g}")
    print()
    if not measured:
        print("note: no goal measured: it takes trioweb with nginx or sanic")
    if failed:
        print("FAIL: " + "; ".join(failed))
    elif measured:
        print(f"PASS: {len(measured)} of {len(GOALS)} goals measured, all met")
    return failed


# -- main -------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="File-download benchmark: trioweb against Sanic and nginx."
    )
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds per server (3)")
    parser.add_argument("--size", type=byte_size, default=GiB, help="the test file (1GiB)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=RESULTS,
        help="where to write the results (bench/results/files.json)",
    )
    parser.add_argument(
        "--servers",
        default="nginx,sanic,trioweb",
        help="comma-separated, of nginx, sanic and trioweb (nginx,sanic,trioweb)",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if "trioweb" not in names or not set(names) <= set(MODES):
        parser.error("--servers: trioweb, optionally with nginx and sanic")
    args.servers = [n for n in MODES if n in names]  # the same order in every round
    if "sanic" in args.servers and importlib.util.find_spec("sanic") is None:
        parser.error(
            f"sanic is not installed for {sys.executable}: use `nox -s bench_files`, "
            "`pip install sanic`, or --servers trioweb,nginx"
        )
    return args


def main() -> int:
    args = parse_args()
    nginx = find_nginx() if "nginx" in args.servers else None
    if "nginx" in args.servers and nginx is None:
        print(f"note: nginx not found (on PATH or /usr/sbin): skipped. Install: {NGINX_INSTALL}")
        args.servers.remove("nginx")
    pinning = choose_pinning("the client")
    pin_client(pinning)
    fresh = not can_reset_peak()
    if fresh:
        print("note: /proc/PID/clear_refs unavailable: a fresh server for every download")
    runs: dict[str, list[list[Transfer]]] = {name: [] for name in args.servers}
    started = time.monotonic()
    content = FileContent()
    with tempfile.TemporaryDirectory(prefix="trioweb-bench-files-") as scratch:
        www = Path(scratch) / "www"
        www.mkdir()
        print(f"writing the {show_size(args.size)} test file in {www} ...", flush=True)
        content.write(www / FILE_NAME, args.size)
        content.write(www / WARMUP_NAME, min(WARMUP_SIZE, args.size))
        setup = Setup(
            pinning, www, Path(scratch), args.size, content, nginx, bytearray(RECEIVE_BUFFER)
        )
        try:
            for round_number in range(1, args.rounds + 1):
                for name in args.servers:
                    print(f"round {round_number}/{args.rounds}: {name} ...", flush=True)
                    runs[name].append(measure(name, setup, fresh))
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    summaries = summarize(runs)
    failed = print_report(runs, summaries, args, pinning)
    found = versions(
        ["trioweb", "trio", "h11", *(["sanic", "uvloop"] if "sanic" in args.servers else [])]
    )
    if nginx is not None:
        found["nginx"] = nginx_version(nginx)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "files",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - started, 1),
        "python": sys.version.split()[0],
        "versions": found,
        "settings": {
            "size": args.size,
            "rounds": args.rounds,
            "servers": args.servers,
            "chunk_size": 64 * KiB,
            "content_period": BLOCK,
        },
        "pinning": asdict(pinning),
        "peak_rss": "fresh server per download" if fresh else "clear_refs 5, then VmHWM",
        "order": "interleaved: " + " ".join([" ".join(args.servers)] * args.rounds),
        "rounds": {name: [[asdict(t) for t in r] for r in rs] for name, rs in runs.items()},
        "summary": {key: asdict(s) for key, s in summaries.items()},
        "ratios": ratios(summaries),
        "goals": [
            {"subject": subject, "reference": reference, "least_ratio": least}
            for subject, reference, least in GOALS
        ],
        "failed": failed,
        "passed": not failed,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
