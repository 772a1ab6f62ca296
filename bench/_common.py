"""What the benchmarks share: pinning, server processes, /proc readings.

``run.py`` (hello world against bare Trio + h11) and ``stream.py`` (streaming against
Sanic) both start servers as subprocesses on free loopback ports, pin them to one CPU and
their load generator to another, and read the server's CPU time from /proc.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE = 3.0


class BenchError(Exception):
    """A server or the load generator misbehaved: the run measures nothing."""


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
