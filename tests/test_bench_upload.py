"""The upload benchmark: a smoke run of trioweb alone, and its goals from made-up numbers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import BENCH, load_bench

upload = load_bench("upload")
common = sys.modules["_common"]
MiB = common.MiB


@pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("curl") is None, reason="/proc, and curl"
)
def test_upload_benchmark_runs(tmp_path: Path) -> None:
    output = tmp_path / "upload.json"
    command = [sys.executable, str(BENCH / "upload.py"), "--servers", "trioweb"]
    command += ["--size", "4MiB", "-r", "1", "--output", str(output)]
    done = subprocess.run(command, cwd=BENCH.parent, capture_output=True, text=True, timeout=120)
    # 0 is PASS and 1 FAIL (a goal missed); 2 would mean a wrong answer or a dead server.
    assert done.returncode in (0, 1), done.stdout + done.stderr
    report = json.loads(output.read_text())
    assert report["settings"]["servers"] == ["trioweb"]
    [[small, large]] = report["rounds"]["trioweb"]
    assert (small["size"], large["size"]) == (MiB, 4 * MiB)
    assert "| trioweb |" in done.stdout


def transfer(size: int, mib_per_sec: float, peak_rss: int) -> object:
    return common.Transfer("upload", size, 1.0, mib_per_sec, 1.0, 0.1, 0, peak_rss)


def runs(speed: dict[str, float], growth: dict[str, int]) -> dict[str, list[list[object]]]:
    return {
        server: [
            [transfer(MiB, 1.0, 30 * MiB), transfer(256 * MiB, speed[server], 30 * MiB + grown)]
        ]
        for server, grown in growth.items()
    }


def test_goals_met() -> None:
    summaries = upload.summarize(
        runs(
            {"trioweb": 300, "starlette": 150, "sanic": 50},
            {"trioweb": MiB, "starlette": 0, "sanic": 800 * MiB},
        ),
        256 * MiB,
    )
    assert upload.fastest_peer(summaries) == "starlette"
    assert upload.missed_goals(summaries) == []
    table = upload.markdown_table(summaries, MiB)
    assert table[2] == "| trioweb | 300 |  | 4.00 | 31.0 | 1.0 |"  # 1 s of CPU for 1/4 GiB
    assert table[3].startswith("| starlette | 150 | 2.00 |")


def test_goals_missed() -> None:
    summaries = upload.summarize(
        runs({"trioweb": 140, "starlette": 150}, {"trioweb": 16 * MiB, "starlette": 0}), 256 * MiB
    )
    assert upload.missed_goals(summaries) == [
        "trioweb / starlette 0.93 < 1.0",
        "trioweb RSS growth 16.0 MiB >= 16.0 MiB",
    ]


async def test_the_trioweb_server_answers_what_the_benchmark_checks(tmp_path: Path) -> None:
    from trioweb.testing import TestClient

    server = load_bench("upload_trioweb")
    server.DIRECTORY = tmp_path
    async with TestClient(server.app) as client:
        r = await client.post("/upload", data=upload.FIELDS, files={"file": ("f", bytes(5000))})
    assert set(r.text.splitlines()) == upload.expected_answer(5000)
    assert (tmp_path / "upload.bin").read_bytes() == bytes(5000)
