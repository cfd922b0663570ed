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
    brief += ["--latency-count", "8"]
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


def test_the_benchmark_runs_wiremock_side_by_side_or_says_how_to_get_it(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    parts = "--skip=throughput,cold,rss,replay,inprocess,streams"
    brief = [parts, "--rounds", "1", "--seconds", "0.5", "--latency-count", "8", "--offline"]
    brief += ["--out", str(out)]  # offline: a test never reaches a registry
    done = subprocess.run(
        [sys.executable, str(BENCH), *brief],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text(encoding="utf-8"))

    latency = report["latency"]
    for figure in ("reply_ms_median", "cross_worker_ms_median", "fixture_ms_median"):
        assert latency[figure] > 0
    side = report["wiremock"]
    if "skipped" in side:  # no Java, wrk or npm here: the run says how to get them
        assert "apt-get install" in side["skipped"] or "npm install" in side["skipped"]
        return
    for server in ("wiremock", "sim1", "sim2"):
        for kind in ("newMessage", "getTask"):
            assert side[f"{server}_{kind}_rps"] > 0
            assert side[f"{server}_{kind}_non_2xx"] == 0, "every request was answered 2xx"
    for ratio in (
        "newMessage_vs_wiremock",
        "getTask_vs_wiremock",
        "newMessage_workers2_vs_1",
        "getTask_workers2_vs_1",
        "newMessage_p99_vs_wiremock",
        "cold_start_vs_wiremock",
    ):
        assert side[ratio] > 0, ratio
    assert "vs WireMock" in done.stdout
