"""The streaming benchmark: a smoke run, and its pure parts without a server.

The smoke run is trioweb alone with small bodies, one round, with the clients installed
here. The other tests check the argument parsing, the choice of trioweb servers per engine,
the tables and goals computed from made-up transfers, curl's output, and, against the
benchmark's recording server on loopback, the chunks each client really sends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import BENCH, load_bench

stream = load_bench("stream")
clients = sys.modules["_clients"]
common = sys.modules["_common"]
MiB, KiB = common.MiB, common.KiB

#: The clients of the smoke run: those that can run here (httpx comes with the test extra).
INSTALLED = [c for c in clients.CLIENTS if clients.missing(c) is None]


@pytest.mark.skipif(sys.platform != "linux", reason="the benchmark reads /proc")
def test_stream_benchmark_runs(tmp_path: Path) -> None:
    output = tmp_path / "stream.json"
    command = [sys.executable, str(BENCH / "stream.py"), "--servers", "trioweb"]
    command += ["--clients", ",".join(INSTALLED)]
    command += ["--size", "4MiB", "--small", "1MiB", "-r", "1", "--output", str(output)]
    done = subprocess.run(command, cwd=BENCH.parent, capture_output=True, text=True, timeout=120)
    # 0 is PASS and 1 FAIL (a goal missed); 2 would mean a wrong answer or a dead server.
    assert done.returncode in (0, 1), done.stdout + done.stderr
    report = json.loads(output.read_text())
    servers = report["settings"]["servers"]
    assert servers and all(s.startswith("trioweb") for s in servers)
    assert report["settings"]["clients"] == INSTALLED
    expected = {f"{c} {s}" for c in INSTALLED for s in clients.SUPPORTED[c]}
    assert set(report["summary"]) == expected
    assert "httpx echo" not in expected and "raw echo" in expected
    for summary in report["summary"].values():
        for server in servers:
            assert summary["mib_per_sec"][server] > 0
            assert summary["peak_rss"][server] > 0


# -- the command line -------------------------------------------------------------------


def test_defaults() -> None:
    args = stream.parse_args(["--clients", "raw", "--servers", "trioweb"])
    assert (args.size, args.small, args.chunk, args.rounds) == (512 * MiB, MiB, 256 * KiB, 5)
    assert args.clients == ["raw"]
    assert not args.show_chunks


def test_clients_in_the_tables_order() -> None:
    args = stream.parse_args(["--clients", " httpx, raw", "--servers", "trioweb"])
    assert args.clients == ["raw", "httpx"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--clients", "raw,wget", "--servers", "trioweb"],
        ["--clients", ",", "--servers", "trioweb"],
        ["--clients", "raw", "--servers", "trioweb", "--size", "1MiB", "--small", "1MiB"],
        ["--clients", "raw", "--servers", "sanic"],
        ["--clients", "raw", "--servers", "trioweb", "-r", "0"],
    ],
)
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        stream.parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_client_that_is_not_installed_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(stream, "missing", lambda name: "not here" if name == "curl" else None)
    with pytest.raises(SystemExit):
        stream.parse_args(["--clients", "raw,curl", "--servers", "trioweb"])
    assert "--clients: not here; or leave curl out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("engines", "has_setting", "has_httptools", "servers"),
    [
        (None, False, True, ["trioweb"]),
        (None, True, True, ["trioweb/h11", "trioweb/httptools"]),
        (None, True, False, ["trioweb/h11"]),
        ("httptools,h11", True, True, ["trioweb/httptools", "trioweb/h11"]),
        ("auto", True, True, ["trioweb/httptools"]),
        ("auto,h11", True, False, ["trioweb/h11"]),
    ],
)
def test_trioweb_servers_per_engine(
    engines: str | None, has_setting: bool, has_httptools: bool, servers: list[str]
) -> None:
    assert stream.trioweb_servers(engines, has_setting, has_httptools) == servers


@pytest.mark.parametrize(
    ("engines", "has_setting", "has_httptools", "message"),
    [
        ("h11", False, True, "no HTTP_ENGINE"),
        ("httptools", True, False, "httptools is not installed"),
        ("h2", True, True, "unknown engine 'h2'"),
    ],
)
def test_impossible_engines_are_refused(
    engines: str, has_setting: bool, has_httptools: bool, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        stream.trioweb_servers(engines, has_setting, has_httptools)


def test_engine_of_a_server() -> None:
    assert stream.engine_of("trioweb/httptools") == "httptools"
    assert stream.engine_of("trioweb") == "h11"  # a trioweb without HTTP_ENGINE


# -- the tables and goals, from made-up transfers ---------------------------------------

SERVERS = ["sanic", "trioweb/h11", "trioweb/httptools"]


def made_up(server: int, round_: int, name: str, size: int) -> object:
    """A transfer whose numbers follow from the server, the round and the size."""
    seconds = (1.0 + server) * (1.0 + round_ / 10) * size / (512 * MiB)
    return common.Transfer(
        scenario=name,
        size=size,
        seconds=seconds,
        mib_per_sec=size / MiB / seconds,
        server_cpu_seconds=seconds / 2,
        client_cpu_seconds=seconds / 4,
        rss_before=20 * MiB,
        peak_rss=(30 + server + (round_ if size > MiB else 0)) * MiB,
    )


def made_up_runs(client_names: list[str], rounds: int) -> dict[str, list[list[object]]]:
    plan = [("raw", s, MiB) for s in clients.SCENARIOS]
    plan += [(c, s, 512 * MiB) for c, s in stream.cells(client_names)]
    return {
        server: [
            [made_up(i, r, stream.cell(c, s), size) for c, s, size in plan] for r in range(rounds)
        ]
        for i, server in enumerate(SERVERS)
    }


def test_cells_leave_out_what_a_client_cannot_do() -> None:
    assert stream.cells(["raw", "httpx"]) == [
        ("raw", "upload-chunked"),
        ("raw", "upload-length"),
        ("raw", "echo"),
        ("raw", "download"),
        ("httpx", "upload-chunked"),
        ("httpx", "upload-length"),
        ("httpx", "download"),
    ]


def test_summary_medians_ratios_and_growth() -> None:
    runs = made_up_runs(["curl", "httpx"], rounds=3)
    summaries = stream.summarize(runs, ["curl", "httpx"], 512 * MiB, MiB)
    assert [(s.client, s.scenario) for s in summaries] == stream.cells(["curl", "httpx"])
    s = summaries[0]
    # Rounds 0, 1, 2 take 1.0, 1.1 and 1.2 times the server's time: the median is 1.1.
    assert s.mib_per_sec["sanic"] == pytest.approx(512 / 1.1)
    assert s.mib_per_sec["trioweb/h11"] == pytest.approx(512 / 2.2)
    assert s.ratio == pytest.approx({"trioweb/h11": 1 / 2, "trioweb/httptools": 1 / 3})
    assert s.cpu_seconds_per_gib["trioweb/httptools"] == pytest.approx(3 * 1.1 / 2 * 2)
    assert s.client_busy["sanic"] == pytest.approx(0.25)
    # The peak grows by the round's number over the raw client's small peak: worst is 2.
    assert s.rss_growth == {server: 2 * MiB for server in SERVERS}
    assert s.peak_rss["sanic"] == 31 * MiB


def test_without_sanic_there_is_no_ratio() -> None:
    runs = made_up_runs(["curl"], rounds=1)
    del runs["sanic"]
    summaries = stream.summarize(runs, ["curl"], 512 * MiB, MiB)
    assert all(s.ratio == {} for s in summaries)
    assert stream.missed_goals(summaries) == []


def test_goals_are_curls_per_engine_and_the_rss_budget() -> None:
    summaries = stream.summarize(made_up_runs(["raw", "curl"], 1), ["raw", "curl"], 512 * MiB, MiB)
    for s in summaries:  # raw's ratios have no goal; curl's do, per engine
        s.ratio = {"trioweb/h11": 0.85, "trioweb/httptools": 0.95}
    failed = stream.missed_goals(summaries)
    assert len(failed) == 2 * 4
    assert "curl upload-chunked: trioweb/h11 / sanic 0.85 < 0.9" in failed
    assert "curl download: trioweb/httptools / sanic 0.95 < 1.0" in failed
    for s in summaries:
        s.ratio = {"trioweb/h11": 0.9, "trioweb/httptools": 1.0}
    assert stream.missed_goals(summaries) == []
    summaries[0].rss_growth["trioweb/h11"] = 16 * MiB
    summaries[0].rss_growth["sanic"] = 100 * MiB  # only trioweb has a budget
    assert stream.missed_goals(summaries) == [
        "raw upload-chunked: trioweb/h11 RSS growth 16.0 MiB >= 16.0 MiB"
    ]


def test_markdown_table() -> None:
    summaries = stream.summarize(made_up_runs(["curl"], 1), ["curl"], 512 * MiB, MiB)
    lines = stream.markdown_table(summaries, SERVERS)
    assert lines[0] == (
        "| client | scenario | sanic MiB/s | trioweb/h11 MiB/s | ratio | trioweb/httptools MiB/s"
        " | ratio | server CPU s/GiB, sanic / trioweb/h11 / trioweb/httptools | client CPU |"
    )
    assert lines[1].count("---") == 9
    assert lines[2] == (
        "| curl | upload, chunked | 512 | 256 | **0.50** | 171 | **0.33** | 1.00 / 2.00 / 3.00"
        " | 25% |"
    )
    assert len(lines) == 2 + 4


# -- what the clients send --------------------------------------------------------------


def test_curl_output() -> None:
    result = clients.parse_curl(b"536870912\n200 9 0.734")
    assert (result.status, result.size, result.seconds, result.body) == (
        200,
        9,
        0.734,
        b"536870912",
    )
    assert clients.parse_curl(b"\n200 1048576 0.5").body == b""
    with pytest.raises(common.BenchError, match="unexpected output"):
        clients.parse_curl(b"curl: (7) Failed to connect")


def test_runs_of_sizes() -> None:
    assert clients.runs([65524, 65524, 65524, 768]) == "65524 x 3, 768"
    assert clients.runs([5, 6, 6]) == "5, 6 x 2"
    assert clients.runs([]) == ""


def sent(name: str, scenario: str, size: int, tmp_path: Path) -> object:
    """How client ``name``'s upload of ``size`` bytes came to the recording server."""
    with clients.Recorder() as recorder:
        files = clients.UploadFiles(tmp_path)
        client = clients.make_client(name, recorder.port, 256 * KiB, files)
        client.run(scenario, size)  # checks the recorder's count: every byte arrived
    assert recorder.errors == []
    [seen] = recorder.seen
    return seen


def test_raw_client_sends_its_chunk_size(tmp_path: Path) -> None:
    seen = sent("raw", "upload-chunked", MiB + 5, tmp_path)
    assert (seen.method, seen.framing, seen.expect) == ("POST", "chunked", "")
    assert seen.chunks == [256 * KiB] * 4 + [5]
    seen = sent("raw", "upload-length", MiB + 5, tmp_path)
    assert (seen.framing, seen.chunks) == (f"Content-Length: {MiB + 5}", [])


def test_httpx_sends_64_kib_chunks(tmp_path: Path) -> None:
    seen = sent("httpx", "upload-chunked", MiB, tmp_path)
    assert (seen.method, seen.framing) == ("POST", "chunked")
    assert seen.chunks == [64 * KiB] * 16
    assert sent("httpx", "upload-length", MiB, tmp_path).framing == f"Content-Length: {MiB}"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sends_65524_byte_chunks_after_expect(tmp_path: Path) -> None:
    seen = sent("curl", "upload-chunked", 2 * MiB, tmp_path)
    assert (seen.method, seen.framing, seen.expect) == ("PUT", "chunked", "100-continue")
    assert seen.chunks == [65524] * 32 + [2 * MiB - 32 * 65524]
    seen = sent("curl", "upload-length", 2 * MiB, tmp_path)
    assert (seen.method, seen.framing) == ("PUT", f"Content-Length: {2 * MiB}")


def test_aiohttp_sends_256_kib_chunks(tmp_path: Path) -> None:
    seen = sent("aiohttp", "upload-chunked", MiB, tmp_path)
    assert (seen.method, seen.framing, seen.chunks) == ("POST", "chunked", [256 * KiB] * 4)
