"""The peer benchmark's own parts, with no peer server started.

wrk's report, the requests wrk and the open-loop client send, the answer checks, the
medians, ratios, goals and the rate, the tables and the docs section; trioweb's bench app
answering every workload in memory; and the open-loop client (compiled here) charging a
stalled server for the requests that waited, against a one-connection fake on loopback.
"""

from __future__ import annotations

import array
import importlib.util
import json
import math
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import h11
import pytest

from trioweb.testing import TestClient

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


def load(name: str) -> ModuleType:
    """Import ``bench/NAME.py``, which imports its neighbours by their bare names."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


peers = load("peers")
common = sys.modules["_common"]

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:40123/echo
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.21ms    1.35ms  41.76ms   89.28%
    Req/Sec    15.65k     2.77k   18.90k    70.00%
  Latency Distribution
     50%  509.00us
     75%    2.82ms
     90%    4.56ms
     99%   17.18ms
  77612 requests in 5.00s, 94.69MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  15522.40
Transfer/sec:     18.94MB
"""


def test_wrk_report_is_read() -> None:
    result = common.parse_wrk(WRK_OUTPUT)
    assert result.requests_per_sec == 15522.40
    assert result.requests == 77612
    assert (result.non_2xx_3xx, result.socket_errors, result.timeouts) == (7, 3, 1)
    assert result.latency_ms == {"50": 0.509, "75": 2.82, "90": 4.56, "99": 17.18}


def lua_bytes(literal: str) -> bytes:
    """What Lua reads from a literal that ``lua_string`` wrote (it writes only \\ddd)."""
    assert literal[0] == literal[-1] == '"'
    out, i, text = bytearray(), 1, literal[1:-1]
    while i <= len(text):
        if text[i - 1] == "\\":
            out.append(int(text[i : i + 3]))
            i += 4
        else:
            out.append(ord(text[i - 1]))
            i += 1
    return bytes(out)


def test_wrk_script_sends_the_workloads_bytes() -> None:
    post = next(w for w in peers.WORKLOADS if w.name == "post")
    script = post.wrk_script()
    assert script.isascii()
    method, body, header = script.splitlines()
    assert method.startswith("wrk.method = ") and lua_bytes(method[13:]) == b"POST"
    assert body.startswith("wrk.body = ") and lua_bytes(body[11:]) == peers.POST_BODY
    name, value = header.removeprefix("wrk.headers[").split("] = ")
    assert (lua_bytes(name), lua_bytes(value)) == (b"Content-Type", b"application/octet-stream")
    assert len(peers.POST_BODY) == 1024
    every_byte = peers.lua_string(bytes(range(256)))
    assert every_byte.isascii() and lua_bytes(every_byte) == bytes(range(256))
    hello = next(w for w in peers.WORKLOADS if w.name == "hello")
    assert hello.wrk_script() == 'wrk.method = "GET"\n'


@pytest.mark.parametrize("name", ["hello", "post"])
def test_raw_request_is_one_valid_request(name: str) -> None:
    workload = next(w for w in peers.WORKLOADS if w.name == name)
    server = h11.Connection(h11.SERVER)
    server.receive_data(workload.raw_request(8000))
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert (request.method, request.target) == (workload.method.encode(), workload.path.encode())
    body = b""
    while not isinstance(event := server.next_event(), h11.EndOfMessage):
        body += event.data
    assert body == workload.body
    assert server.trailing_data == (b"", False)  # nothing after it: one request, not two


def test_checks_refuse_wrong_answers() -> None:
    hello, as_json, path, post = peers.WORKLOADS
    json_headers = {"content-type": "application/json"}
    assert hello.check(200, {}, b"Hello, world!") is None
    assert "body" in hello.check(200, {}, b"Not Found")
    assert as_json.check(200, json_headers, json.dumps(peers.SMALL_JSON).encode()) is None
    assert "content-type" in as_json.check(200, {"content-type": "text/html"}, b"{}")
    assert "not the JSON" in as_json.check(200, json_headers, b'{"message": "Hello"}')
    assert "not the JSON" in as_json.check(200, json_headers, b"<html>")
    assert path.check(200, {}, b"user 12345") is None
    assert post.check(200, {}, peers.POST_BODY[:-1] + b"!") is not None


async def test_trioweb_app_answers_every_workload() -> None:
    app = load("peers_trioweb").app
    async with TestClient(app) as client:
        for workload in peers.WORKLOADS:
            response = await client.request(
                workload.method, workload.path, content=workload.body, headers=workload.headers
            )
            assert response.status_code == 200, workload.name
            headers = {k.lower(): v for k, v in response.headers.items()}
            assert workload.check(200, headers, response.content) is None, workload.name


def test_bare_loop_answers_every_workload() -> None:
    answer = load("peers_trio_h11").answer
    for workload in peers.WORKLOADS:
        status, content_type, body = answer(
            workload.method.encode(), workload.path.encode(), workload.body
        )
        assert status == 200
        assert workload.check(status, {"content-type": content_type.decode()}, body) is None
    assert answer(b"GET", b"/user/x", b"")[0] == 404


# -- the open-loop client's report, percentiles ------------------------------------------

REPORT = "recorded=6\nrecorded_answered=4\nsent=8\nanswered=6\nnon_200=0\nerrors=2\n"
REPORT += "worst_late_ns=2500000\nelapsed_ns=3000000000\n"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert peers.percentile(values, 50) == 50
    assert peers.percentile(values, 99) == 99
    assert peers.percentile(values, 99.9) == 100
    assert peers.percentile(values, 100) == 100
    assert peers.percentile([7.0], 50) == 7
    with pytest.raises(ValueError):
        peers.percentile([], 50)


def test_unanswered_requests_count_as_infinitely_late() -> None:
    result = peers.parse_openloop(REPORT, [4_000_000, 1_000_000, 2_000_000, 3_000_000], 1000)
    assert (result.recorded, result.answered, result.errors) == (6, 4, 2)
    assert result.worst_late_ms == 2.5
    # Sorted: 1, 2, 3, 4 ms, then two unanswered: p50 is the third of six, p99 the last.
    assert result.ms["50"] == 3.0
    assert result.ms["90"] == math.inf and result.ms["99"] == math.inf


def test_openloop_report_must_be_whole() -> None:
    with pytest.raises(common.BenchError, match="lacks"):
        peers.parse_openloop("recorded=6\n", [], 1000)
    with pytest.raises(common.BenchError, match="different number"):
        peers.parse_openloop(REPORT, [1, 2, 3], 1000)


# -- medians, ratios, goals, rate, tables --------------------------------------------------


def wrk(rps: float, cpu: float = 50.0) -> Any:
    return common.WrkResult(rps, int(rps * 5), 0, 0, 0, {}, cpu)


def latency(p50: float, p99: float) -> Any:
    return peers.Latency(1000, 5000, 5000, 0, 0, 0.1, {"50": p50, "99": p99})


def results(**hello: list[float]) -> Any:
    """Results with hello-world rounds per server (underscores for dashes)."""
    return peers.Results(
        throughput={
            name.replace("_", "-"): {"hello": [wrk(v) for v in values]}
            for name, values in hello.items()
        },
        latency={},
        failed={},
        over_capacity=[],
        rate=None,
    )


def test_medians_and_ratios() -> None:
    r = results(trioweb_httptools=[9000, 12000, 30000], sanic=[10000, 11000, 8000])
    assert r.requests_per_sec("trioweb-httptools", "hello") == 12000
    assert r.ratio("trioweb-httptools", "sanic", "hello") == 12000 / 10000
    assert r.ratio("trioweb-httptools", "starlette", "hello") is None
    r.latency = {"trioweb-httptools": [latency(1, 4), latency(1, 2)], "sanic": [latency(1, 6)]}
    assert r.latency_ms("trioweb-httptools", "99") == 3
    # Lower is better: the reference's p99 over ours, so above 1 is trioweb's win.
    assert r.ratio("trioweb-httptools", "sanic", peers.LATENCY) == 2.0


def test_rate_is_half_the_slowest_relevant_server() -> None:
    r = results(trioweb_h11=[9050], sanic=[20000], hypercorn_trio=[600])
    assert peers.auto_rate(r) == 4500  # Hypercorn is not among RATE_SERVERS
    assert peers.auto_rate(results(quart_trio=[1234], hypercorn_trio=[2600])) == 600
    assert peers.auto_rate(results(trio_h11=[150])) == 100
    with pytest.raises(common.BenchError, match="--rate"):
        peers.auto_rate(results(sanic=[]))


def test_goals_met_missed_and_not_measured() -> None:
    r = results(trioweb_httptools=[12000], sanic=[10000], trioweb_h11=[5000], trio_h11=[8000])
    r.throughput["starlette"] = {"hello": []}  # in the run, failed before its first result
    lines, verdicts = peers.ratio_table(r, ["hello"])
    text = "\n".join(lines)
    assert "| trioweb, httptools engine / Sanic, one process | 1.20 (goal 1: met) |" in text
    assert "0.62 (goal 0.8: MISSED)" in text
    assert "- (goal 1: not measured)" in text
    assert "Hypercorn" not in text  # not in the run: no row
    assert verdicts == {
        "trioweb-httptools / sanic, hello: 1.20 (goal 1: met)": True,
        "trioweb-h11 / trio-h11, hello: 0.62 (goal 0.8: MISSED)": False,
    }


def test_results_table_shows_every_state() -> None:
    r = results(trioweb_h11=[5000], sanic=[20000], quart_trio=[400])
    r.rate = 2500
    r.latency = {"trioweb-h11": [latency(0.5, 3.25)], "sanic": [latency(0.25, 2.5)]}
    r.over_capacity = ["quart-trio"]
    r.failed = {"starlette": "wrong answer"}
    lines = peers.results_table(r, ["hello", peers.LATENCY])
    assert (
        lines[0] == "| server | hello world, req/s | p50 ms at 2500 req/s | p99 ms at 2500 req/s |"
    )
    assert "| trioweb, h11 engine | 5,000 | 0.50 | 3.25 |" in lines
    assert "| Quart-Trio on Hypercorn | 400 | over capacity | over capacity |" in lines
    assert any(line.startswith("| Starlette on uvicorn") and "failed" in line for line in lines)
    cpu = peers.cpu_table(r, ["hello", peers.LATENCY])
    assert "| Sanic, one process | 50 |" in cpu


def test_docs_section_is_replaced_between_markers() -> None:
    page = f"# B\n\nintro\n\n{peers.DOCS_BEGIN}\nold table\n{peers.DOCS_END}\n\n## Method\n"
    once = peers.update_docs(page, ["new table"])
    assert (
        once == f"# B\n\nintro\n\n{peers.DOCS_BEGIN}\nnew table\n{peers.DOCS_END}\n\n## Method\n"
    )
    assert peers.update_docs(once, ["new table"]) == once
    with pytest.raises(common.BenchError, match="markers"):
        peers.update_docs("# B\n", ["x"])
    assert peers.DOCS_BEGIN in peers.DOCS_PAGE.read_text()


def test_arguments() -> None:
    args = peers.parse_args(["--servers", "sanic,trioweb-h11", "--workloads", "latency,hello"])
    assert args.servers == ["trioweb-h11", "sanic"]  # the fixed order, whatever was typed
    assert args.workloads == ["hello", peers.LATENCY]
    assert peers.parse_args(["--workloads", "latency", "--rate", "900"]).rate == 900
    for bad in (["--servers", "nginx"], ["--workloads", "latency"], ["-r", "0"]):
        with pytest.raises(SystemExit):
            peers.parse_args(bad)


# -- the open-loop client against a stalling fake ------------------------------------------

STALL = 0.3


def stalling_server(listener: socket.socket, stall_at: int) -> None:
    """Answer one keep-alive connection; hold the answer to request ``stall_at``."""
    listener.settimeout(10)
    conn, _ = listener.accept()
    conn.settimeout(10)
    count, pending = 0, b""
    with conn:
        while True:
            while b"\r\n\r\n" not in pending:
                data = conn.recv(65536)
                if not data:
                    return
                pending += data
            _, pending = pending.split(b"\r\n\r\n", 1)
            count += 1
            if count == stall_at:
                time.sleep(STALL)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="the open-loop client is built by gcc")
@pytest.mark.skipif(sys.platform != "linux", reason="the client uses epoll and timerfd")
def test_openloop_charges_a_stall_to_every_request_that_waited(tmp_path: Path) -> None:
    binary = peers.build_openloop(tmp_path)  # -Wall -Wextra -Werror
    rate, seconds = 200, 1.5
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        fake = threading.Thread(target=stalling_server, args=(listener, 100), daemon=True)
        fake.start()
        request, out = tmp_path / "request", tmp_path / "latencies"
        request.write_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        command = [str(binary), str(port), str(rate), str(seconds), "0", "1", str(request)]
        done = subprocess.run(
            [*command, str(out)], capture_output=True, text=True, timeout=seconds + 20
        )
        fake.join(10)
    assert done.returncode == 0, done.stderr
    values = array.array("Q")
    values.frombytes(out.read_bytes())
    result = peers.parse_openloop(done.stdout, values.tolist(), rate)
    assert result.recorded == result.answered == 300
    # Requests are due every 5 ms; the 100th answer is held 300 ms, and the requests due
    # meanwhile wait for the only connection. Timed from when they were due, about 60 of
    # them are late, 30 by 150 ms or more; a closed-loop client would have timed one.
    assert result.worst_late_ms >= 0.8 * STALL * 1000
    assert sum(1 for v in values if v >= 0.15e9) >= 25
    assert result.ms["100"] >= STALL * 1000
