"""Smoke test of the streaming benchmark: trioweb alone, small bodies, one round."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(sys.platform != "linux", reason="the benchmark reads /proc")
def test_stream_benchmark_runs(tmp_path: Path) -> None:
    output = tmp_path / "stream.json"
    command = [sys.executable, str(REPO / "bench" / "stream.py"), "--servers", "trioweb"]
    command += ["--size", "4MiB", "--small", "1MiB", "-r", "1", "--output", str(output)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    # 0 is PASS and 1 FAIL (a goal missed); 2 would mean a wrong answer or a dead server.
    assert done.returncode in (0, 1), done.stdout + done.stderr
    report = json.loads(output.read_text())
    assert report["settings"]["servers"] == ["trioweb"]
    for scenario in ("upload", "echo", "download"):
        assert report["summary"][scenario]["mib_per_sec"]["trioweb"] > 0
        assert report["summary"][scenario]["peak_rss_large"]["trioweb"] > 0
