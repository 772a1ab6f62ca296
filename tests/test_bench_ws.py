"""The WebSocket benchmark (``bench/ws.py``): it runs against trioweb, and judges its goals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import BENCH, load_bench

REPO = BENCH.parent
ws = load_bench("ws")


@pytest.mark.skipif(sys.platform != "linux", reason="the benchmark reads /proc")
def test_the_benchmark_runs_against_trioweb(tmp_path: Path) -> None:
    output = tmp_path / "ws.json"
    command = [sys.executable, str(BENCH / "ws.py"), "--servers", "trioweb", "-d", "0.5"]
    command += ["--stream", "4MiB", "--idle", "20", "-c", "5", "--output", str(output)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(output.read_text())["medians"]["trioweb"]
    for key, _, _ in ws.COLUMNS:
        assert results[key] >= 0, key
    assert results["messages_per_s"] > 0
    assert results["mib_per_s"] > 0
    assert "| trioweb |" in done.stdout


def test_goals_are_judged_against_sanic() -> None:
    base = {"messages_per_s": 100.0, "mib_per_s": 100.0, "stalled_rss_growth_mib": 0.5}
    summary = {
        "trioweb": {**base, "messages_per_s": 120.0, "mib_per_s": 90.0},
        "sanic": base,
    }
    assert ws.verdicts(summary) == [
        "echo messages/s: 1.20x Sanic (met)",
        "stream MiB/s: 0.90x Sanic (missed)",
        "RSS while a client stalls: +0.5 MiB (met)",
    ]
    summary["trioweb"]["stalled_rss_growth_mib"] = 100.0
    assert ws.verdicts(summary)[-1].endswith("(missed)")


def test_medians_per_server() -> None:
    rounds = [ws.Round("a", {"x": v}) for v in (3.0, 1.0, 2.0)]
    assert ws.medians(rounds) == {"a": {"x": 2.0}}
