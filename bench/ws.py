"""WebSocket benchmark: trioweb against Sanic, Starlette on uvicorn and Starlette on
Hypercorn's trio worker, in one run.

Workloads, for each server (``SERVERS``), in interleaved rounds whose medians are compared:

- **echo**: ``-c`` connections (50) each send a 1 KiB text message and wait for its echo,
  again and again for ``-d`` seconds: messages per second, and the p99 round trip;
- **stream**: one connection receives ``--stream`` bytes (1 GiB) as 64 KiB binary
  messages: MiB/s, and the server's CPU seconds per GiB;
- **idle**: ``--idle`` WebSockets (1,000) opened and left idle: the server's RSS growth
  divided by their number;
- **stalled**: one client asks for 1 GiB and reads nothing for 3 s: how much the server's
  RSS grew meanwhile (backpressure holds when it stays flat);
- the server's **peak RSS** over its whole life (VmHWM).

Each server is pinned to one CPU and this process, the client, to another. The client is
Trio driving the ``websockets`` package's sans-I/O ``ClientProtocol`` (the same for every
server; its masking is the package's C code); it checks every echo. Only 127.0.0.1 is
contacted. Usage: ``python bench/ws.py [-r 1] [-d 10] [--servers trioweb,sanic]``; ``nox
-s bench_ws`` installs the peers into its own virtualenv and runs it (bench/README.md).
"""

from __future__ import annotations

import argparse
import array
import json
import math
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from _common import (
    CLIENT_BUSY,
    REPO,
    BenchError,
    GiB,
    KiB,
    MiB,
    Pinning,
    byte_size,
    choose_pinning,
    cpu_seconds,
    free_port,
    memory,
    pin_client,
    running,
    versions,
    wait_for_port,
)

#: What the servers import: the size of one streamed message, and trioweb's connection cap.
STREAM_MESSAGE = 64 * KiB
MAX_CONNECTIONS = 5000
#: The echo's message: 1 KiB of text, not one repeated character.
MESSAGE = "".join(chr(48 + (i * 7919) % 75) for i in range(1024))

RESULTS = REPO / "bench" / "results" / "ws.json"
PYTHON = sys.executable
SERVERS: dict[str, list[str]] = {
    "trioweb": ["bench/ws_trioweb.py"],
    "sanic": ["bench/ws_sanic.py"],
    "starlette-uvicorn": ["bench/ws_starlette.py", "{port}", "uvicorn"],
    "starlette-hypercorn-trio": ["bench/ws_starlette.py", "{port}", "hypercorn-trio"],
}
PEER_PACKAGES = ["trioweb", "websockets", "sanic", "starlette", "uvicorn", "hypercorn", "wsproto"]
STALL_SECONDS = 3.0


# -- the client ---------------------------------------------------------------------------


class Client:
    """One WebSocket to a benchmarked server (imports trio and websockets when used)."""

    def __init__(self, stream: Any, protocol: Any, frames: list[Any]) -> None:
        self.stream = stream
        self.protocol = protocol
        self.frames = frames

    @classmethod
    async def connect(cls, port: int, path: str) -> Client:
        import trio
        from websockets.client import ClientProtocol
        from websockets.protocol import CONNECTING
        from websockets.uri import parse_uri

        stream = await trio.open_tcp_stream("127.0.0.1", port)
        protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        protocol.send_request(protocol.connect())
        await stream.send_all(b"".join(protocol.data_to_send()))
        frames: list[Any] = []
        while protocol.state is CONNECTING:
            data = await stream.receive_some(65536)
            if not data:
                raise BenchError(f"the server closed during the handshake of {path}")
            protocol.receive_data(data)
            frames += [e for e in protocol.events_received() if hasattr(e, "opcode")]
        if protocol.handshake_exc is not None:
            raise BenchError(f"handshake for {path} refused: {protocol.handshake_exc}")
        return cls(stream, protocol, frames)

    async def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        await self.stream.send_all(b"".join(self.protocol.data_to_send()))

    async def next_frame(self) -> Any:
        """The next frame from the server (None once the connection has ended).

        Pongs the protocol queues go out with the next send: the benchmark's
        connections are shorter than a ping interval, or they send.
        """
        while not self.frames:
            data = await self.stream.receive_some(256 * KiB)
            if not data:
                return None
            self.protocol.receive_data(data)
            self.frames += self.protocol.events_received()
        return self.frames.pop(0)

    async def aclose(self) -> None:
        import trio

        await trio.aclose_forcefully(self.stream)


async def echo_workload(port: int, connections: int, duration: float) -> dict[str, float]:
    import trio

    clients = [await Client.connect(port, "/echo") for _ in range(connections)]
    latencies = array.array("d")
    deadline = time.perf_counter() + duration

    async def loop(client: Client) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await client.send_text(MESSAGE)
            frame = await client.next_frame()
            if frame is None or bytes(frame.data) != MESSAGE.encode():
                raise BenchError("the echo lost or changed the message")
            latencies.append(time.perf_counter() - start)

    cpu_before = _client_cpu()
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(loop, client)
    elapsed = time.perf_counter() - started
    busy = (_client_cpu() - cpu_before) / elapsed
    for client in clients:
        await client.aclose()
    ordered = sorted(latencies)
    return {
        "messages_per_s": len(latencies) / elapsed,
        "p99_ms": ordered[math.ceil(0.99 * len(ordered)) - 1] * 1000,
        "client_busy": busy,
    }


async def stream_workload(port: int, pid: int, size: int) -> dict[str, float]:
    count = size // STREAM_MESSAGE
    client = await Client.connect(port, f"/stream/{count}")
    received = 0
    cpu_before, client_before = cpu_seconds(pid), _client_cpu()
    started = time.perf_counter()
    while received < count * STREAM_MESSAGE:
        frame = await client.next_frame()
        if frame is None:
            raise BenchError(f"the stream ended after {received} bytes")
        if frame.opcode.name in ("BINARY", "CONT"):
            received += len(frame.data)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    busy = (_client_cpu() - client_before) / elapsed
    await client.aclose()
    return {
        "mib_per_s": received / MiB / elapsed,
        "server_cpu_s_per_gib": cpu * GiB / received,
        "stream_client_busy": busy,
    }


async def idle_workload(port: int, pid: int, count: int) -> dict[str, float]:
    before = memory(pid)["VmRSS"]
    clients = [await Client.connect(port, "/echo") for _ in range(count)]
    after = memory(pid)["VmRSS"]
    for client in clients:
        await client.aclose()
    return {"rss_per_connection_kib": (after - before) / count / KiB}


async def stalled_workload(port: int, pid: int) -> dict[str, float]:
    import trio

    before = memory(pid)["VmRSS"]
    client = await Client.connect(port, f"/stream/{GiB // STREAM_MESSAGE}")
    await trio.sleep(STALL_SECONDS)  # reading nothing: the server must wait, not buffer
    grown = memory(pid)["VmRSS"] - before
    await client.aclose()
    return {"stalled_rss_growth_mib": grown / MiB}


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- one server, one round ------------------------------------------------------------


@dataclass
class Round:
    server: str
    results: dict[str, float] = field(default_factory=dict)


def measure(server: str, pinning: Pinning, args: argparse.Namespace) -> Round:
    import trio

    port = free_port()
    script, *rest = SERVERS[server]
    extra = [part.format(port=port) for part in rest] or [str(port)]
    command = [*pinning.prefix(pinning.server_cpu), PYTHON, script, *extra]
    ready = partial(wait_for_port, port=port, name=server, timeout=30)
    with running(server, command, lambda proc: ready(proc)) as proc:
        result = Round(server)
        result.results |= trio.run(stalled_workload, port, proc.pid)
        result.results |= trio.run(idle_workload, port, proc.pid, args.idle)
        time.sleep(0.5)  # let the server drop the idle connections
        result.results |= trio.run(echo_workload, port, args.connections, args.duration)
        result.results |= trio.run(stream_workload, port, proc.pid, args.stream)
        result.results["peak_rss_mib"] = memory(proc.pid)["VmHWM"] / MiB
    return result


# -- the report -------------------------------------------------------------------------

COLUMNS = [
    ("messages_per_s", "echo msg/s", "{:,.0f}"),
    ("p99_ms", "echo p99 ms", "{:.2f}"),
    ("mib_per_s", "stream MiB/s", "{:,.0f}"),
    ("server_cpu_s_per_gib", "CPU s/GiB", "{:.2f}"),
    ("peak_rss_mib", "peak RSS MiB", "{:.1f}"),
    ("rss_per_connection_kib", "idle KiB/conn", "{:.1f}"),
    ("stalled_rss_growth_mib", "stalled +MiB", "{:.1f}"),
]


def medians(rounds: list[Round]) -> dict[str, dict[str, float]]:
    by_server: dict[str, dict[str, list[float]]] = {}
    for each in rounds:
        for key, value in each.results.items():
            by_server.setdefault(each.server, {}).setdefault(key, []).append(value)
    return {
        server: {key: statistics.median(values) for key, values in results.items()}
        for server, results in by_server.items()
    }


def table(summary: dict[str, dict[str, float]]) -> str:
    header = ["server", *(title for _, title, _ in COLUMNS)]
    rows = [header]
    for server, results in summary.items():
        rows.append([server, *(form.format(results[key]) for key, _, form in COLUMNS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def verdicts(summary: dict[str, dict[str, float]]) -> list[str]:
    """The issue's goals: at least Sanic's messages/s and MiB/s; RSS flat while stalled."""
    out = []
    ours, sanic = summary.get("trioweb"), summary.get("sanic")
    if ours and sanic:
        for key, title in (("messages_per_s", "echo messages/s"), ("mib_per_s", "stream MiB/s")):
            ratio = ours[key] / sanic[key]
            out.append(f"{title}: {ratio:.2f}x Sanic ({'met' if ratio >= 1.0 else 'missed'})")
    if ours:
        grown = ours["stalled_rss_growth_mib"]
        out.append(
            f"RSS while a client stalls: +{grown:.1f} MiB ({'met' if grown < 8 else 'missed'})"
        )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="WebSockets: trioweb against its peers.")
    parser.add_argument("-r", "--rounds", type=int, default=1, help="rounds per server (1)")
    parser.add_argument("-d", "--duration", type=float, default=10, help="echo seconds (10)")
    parser.add_argument("-c", "--connections", type=int, default=50, help="echo connections (50)")
    parser.add_argument("--stream", type=byte_size, default=GiB, help="bytes streamed (1GiB)")
    parser.add_argument("--idle", type=int, default=1000, help="idle WebSockets (1000)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    servers = args.servers.split(",")
    unknown = set(servers) - set(SERVERS)
    if unknown:
        sys.exit(f"unknown servers: {', '.join(sorted(unknown))}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.idle)), hard))
    pinning = choose_pinning("the client")
    pin_client(pinning)
    rounds: list[Round] = []
    try:
        for number in range(args.rounds):
            for server in servers:
                print(f"round {number + 1}: {server} ...", flush=True)
                rounds.append(measure(server, pinning, args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = medians(rounds)
    print()
    print(table(summary))
    print()
    for line in verdicts(summary):
        print(line)
    for key, workload in (("client_busy", "echo"), ("stream_client_busy", "stream")):
        busy = max(each[key] for each in summary.values())
        if busy > CLIENT_BUSY:
            print(f"note: the client was busy {busy:.0%} of the {workload}: it may be what limits")
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "settings": {**vars(args), "output": str(args.output)},
                "versions": versions(PEER_PACKAGES),
                "rounds": [asdict(r) for r in rounds],
                "medians": summary,
            },
            indent=2,
        )
    )
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
