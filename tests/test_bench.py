"""The benchmark script still runs end to end: every part, briefly, on real server processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent / "bench" / "bench.py"


def test_every_part_of_the_benchmark_runs_and_reports_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    brief = ["--rounds", "2", "--seconds", "0.5", "--rss", "300,600", "--stream-cycles", "2"]
    brief += ["--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(BENCH), *brief],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text(encoding="utf-8"))

    (row,) = report["throughput"]
    assert (row["server"], row["workers"], row["rounds"]) == ("gunicorn", 1, 2)
    for key in ("new_message", "get_task"):
        assert row[f"{key}_rps"] > 0
        assert row[f"{key}_non_200"] == 0, "every request of the load was answered 200"
        assert len(row[f"{key}_ratio_rounds"]) == 2
        assert 0 < row[f"{key}_ratio"] <= max(row[f"{key}_ratio_rounds"])
    (cold,) = report["cold_start"]
    assert 0 < cold["cold_start_median_s"] <= cold["cold_start_max_s"]
    assert report["in_process"]["new_message_cpu_ms"] > 0
    assert report["replay"]["scenarios_failed"] == 0
    assert report["replay"]["steps"] > 0
    marks = report["memory"]["marks"]
    assert [m["messages"] >= m["http_requests"] for m in marks] == [True, True]
    assert [m["http_requests"] for m in marks] == [300, 600]
    streams = report["vanished_streams"]
    assert (streams["cycles"], streams["clients_per_cycle"]) == (2, 20)
    assert streams["streams_left"] == 0
    assert [len(cycle) for cycle in streams["workers_rss_mb"]] == [2, 2], "RSS of both workers"
    assert isinstance(streams["max_rss_growth_mb"], float), "the growth is reported, not bounded"
    assert "| server | workers |" in done.stdout, "the markdown table is printed"
    assert "vanished SSE clients" in done.stdout
