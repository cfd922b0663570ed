"""WireMock beside the simulator, and the latencies a test suite feels.

Imported by `bench.py` (its `wiremock` and `latency` parts). The load is `wrk` (16 connections,
2 threads) for every server alike, so the client is the same and costs little CPU. WireMock is
the standalone jar that the npm `wiremock` package ships, run with one stub for
`POST /webchat/api` and its request journal on (its default).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WIREMOCK_VERSION = "3.13.2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "planfix-bench"
DEBIAN_PACKAGES = {"java": "default-jre-headless", "wrk": "wrk"}

# One wrk script for both commands: each wrk thread counts its own requests; newMessage goes to
# the same 1,000 chats as bench.py's loader uses, and getTask asks c1 to c100 of them, which
# any warm-up has opened, so it always names a chat that has a task.
WRK_SCRIPT = """
local n = 0
local kind = "%s"
local token = "%s"
request = function()
  n = n + 1
  local chat = n %% 1000
  local body
  if kind == "newMessage" then
    body = "cmd=newMessage&providerId=bench&chatId=c" .. chat .. "&planfix_token=" .. token ..
      "&message=hello+number+" .. n .. "&contactId=u" .. chat .. "&contactName=Bench+User"
  else
    body = "cmd=getTask&providerId=bench&chatId=c" .. (1 + n %% 100) .. "&planfix_token=" .. token
  end
  return wrk.format("POST", "/webchat/api",
    {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
"""


def missing_tools() -> list[str]:
    """The commands the side-by-side run needs that this machine lacks."""
    return [tool for tool in DEBIAN_PACKAGES if shutil.which(tool) is None]


def install_hint(missing: list[str]) -> str:
    """How to get what is missing (Debian's packages; the jar comes from npm)."""
    packages = " ".join(DEBIAN_PACKAGES[tool] for tool in missing)
    return f"apt-get install -y {packages}   (or run bench.py with --install as root)"


def install_tools(missing: list[str]) -> None:
    """Install the missing Debian packages (root only)."""
    packages = [DEBIAN_PACKAGES[tool] for tool in missing]
    subprocess.run(["apt-get", "update", "-q"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True)


def wiremock_jar(fetch: bool = True) -> Path | None:
    """The standalone jar, from the npm package installed into the cache on first use."""
    pattern = f"node_modules/wiremock/build/wiremock-standalone-{WIREMOCK_VERSION}.jar"
    found = sorted(CACHE.glob(pattern))
    if found:
        return found[0]
    if not fetch or shutil.which("npm") is None:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "install", "--no-save", "--prefix", str(CACHE), f"wiremock@{WIREMOCK_VERSION}"],
        check=False,
        capture_output=True,
    )
    found = sorted(CACHE.glob(pattern))
    return found[0] if found else None


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WireMock:
    """WireMock standalone with one stub for the chat API, its request journal on."""

    def __init__(self, jar: Path) -> None:
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="planfix-bench-wiremock-")
        mappings = Path(self.root) / "mappings"
        mappings.mkdir()
        stub = {
            "request": {"method": "POST", "url": "/webchat/api"},
            "response": {
                "status": 200,
                "body": '{"data":{"number":1}}',
                "headers": {"Content-Type": "application/json"},
            },
        }
        (mappings / "chat-api.json").write_text(json.dumps(stub), encoding="utf-8")
        args = ["java", "-jar", str(jar), "--port", str(self.port), "--root-dir", self.root]
        args.append("--disable-banner")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the JVM used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM, wait, and remove its folder."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def wait_first_200(port: int, started: float, body: bytes, timeout: float = 60.0) -> float:
    """Seconds from `started` until a POST of `body` to /webchat/api is answered 200."""
    deadline = time.monotonic() + timeout
    raw = (
        b"POST /webchat/api HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(raw)
                head = sock.recv(64)
            if head.startswith(b"HTTP/1.1 200"):
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.002)
    raise RuntimeError(f"nothing answered 200 on port {port} in {timeout:g} s")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def wrk(port: int, kind: str, token: str, seconds: float, connections: int = 16) -> dict[str, Any]:
    """`kind` (newMessage/getTask) under wrk: req/s, p50 and p99 in ms, answers not 2xx."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % (kind, token))
    try:
        done = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{max(seconds, 1):g}s",
                "--latency",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}/",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    finally:
        os.unlink(script.name)
    out = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, flags=re.MULTILINE))
    if rps is None or len(percentiles) < 2:
        raise RuntimeError(f"wrk on port {port} said: {out[-1500:]} {done.stderr[-500:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _ms(percentiles["50"]),
        "p99_ms": _ms(percentiles["99"]),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def side_by_side(
    jar: Path,
    server_cls: Any,
    token: str,
    seconds: float,
    rounds: int,
    server: str,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """WireMock, the simulator with 1 worker and with 2, loaded in turn, round after round.

    With `baseline` (another checkout), its simulator (1 worker) takes its turn too: the
    before of a before-and-after, measured seconds apart from the after.
    """
    # All three stay up and take turns, so each ratio compares loads run seconds apart on a
    # machine whose speed drifts; the median round is reported.
    mock = WireMock(jar)
    sims = {1: server_cls(server, 1), 2: server_cls(server, 2)}
    names = {"wiremock": mock.port, "sim1": sims[1].port, "sim2": sims[2].port}
    if baseline is not None:
        sims[0] = server_cls(server, 1, root=baseline)
        names["before"] = sims[0].port
    try:
        warm = b"cmd=getTask&providerId=bench&chatId=c1&planfix_token=" + token.encode()
        wait_first_200(mock.port, mock.started, warm)
        for sim in sims.values():
            sim.wait_ready()
        for name, port in names.items():  # warm up: chats and tasks exist, the JIT compiled
            # The JVM keeps getting faster for several seconds of load: a longer turn.
            wrk(port, "newMessage", token, (4 if name == "wiremock" else 2) * seconds)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            name: {"newMessage": [], "getTask": []} for name in names
        }
        owners = {"wiremock": mock, "sim1": sims[1], "sim2": sims[2], "before": sims.get(0)}
        for _ in range(rounds):
            for kind in ("newMessage", "getTask"):
                for name, port in names.items():
                    # CPU per answer depends least on what else the machine runs.
                    cpu = owners[name].cpu_seconds()
                    result = wrk(port, kind, token, seconds)
                    spent = owners[name].cpu_seconds() - cpu
                    answers = max(result["rps"] * max(seconds, 1), 1)
                    result["cpu_ms"] = spent * 1000 / answers
                    runs[name][kind].append(result)
    finally:
        mock.stop()
        for sim in sims.values():
            sim.stop()
    row: dict[str, Any] = {"rounds": rounds, "seconds": seconds, "server": server}
    for name, kinds in runs.items():
        for kind, results in kinds.items():
            row[f"{name}_{kind}_rps"] = round(statistics.median(r["rps"] for r in results))
            row[f"{name}_{kind}_p99_ms"] = round(statistics.median(r["p99_ms"] for r in results), 2)
            row[f"{name}_{kind}_cpu_ms"] = round(statistics.median(r["cpu_ms"] for r in results), 3)
            row[f"{name}_{kind}_non_2xx"] = sum(r["non_2xx"] for r in results)
            row[f"{name}_{kind}_socket_errors"] = sum(r["socket_errors"] for r in results)
    for kind in ("newMessage", "getTask"):
        pairs = zip(runs["sim1"][kind], runs["wiremock"][kind], runs["sim2"][kind], strict=True)
        per_round = [(s1["rps"] / wm["rps"], s2["rps"] / s1["rps"]) for s1, wm, s2 in pairs]
        row[f"{kind}_vs_wiremock"] = round(statistics.median(r[0] for r in per_round), 3)
        row[f"{kind}_vs_wiremock_rounds"] = [round(r[0], 3) for r in per_round]
        row[f"{kind}_workers2_vs_1"] = round(statistics.median(r[1] for r in per_round), 3)
        p99 = row[f"sim1_{kind}_p99_ms"] / max(row[f"wiremock_{kind}_p99_ms"], 0.001)
        row[f"{kind}_p99_vs_wiremock"] = round(p99, 3)
        if "before" in runs:
            after = [
                s1["rps"] / b["rps"]
                for s1, b in zip(runs["sim1"][kind], runs["before"][kind], strict=True)
            ]
            row[f"{kind}_after_vs_before"] = round(statistics.median(after), 3)
            cpu = [
                s1["cpu_ms"] / b["cpu_ms"]
                for s1, b in zip(runs["sim1"][kind], runs["before"][kind], strict=True)
            ]
            row[f"{kind}_after_vs_before_cpu"] = round(statistics.median(cpu), 3)
    return row


def cold_starts(jar: Path, server_cls: Any, token: str, runs: int, server: str) -> dict[str, Any]:
    """Exec to the first 200, WireMock and the simulator (1 worker) in turn: medians, ratio."""
    body = b"cmd=getTask&providerId=bench&chatId=c1&planfix_token=" + token.encode()
    mock_s: list[float] = []
    sim_s: list[float] = []
    for _ in range(runs):
        mock = WireMock(jar)
        try:
            mock_s.append(wait_first_200(mock.port, mock.started, body))
        finally:
            mock.stop()
        sim = server_cls(server, 1)
        try:
            sim_s.append(sim.wait_ready())
        finally:
            sim.stop()
    wm, sim_median = statistics.median(mock_s), statistics.median(sim_s)
    return {
        "wiremock_cold_start_s": round(wm, 3),
        "sim_cold_start_s": round(sim_median, 3),
        "cold_start_vs_wiremock": round(sim_median / wm, 3),
    }


class _Hook(BaseHTTPRequestHandler):
    """The integration's webhook: answers every delivery 200 at once."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        """Read the delivery, answer 200 naming the chat and contact, as an integration does."""
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"chatId":"chat-1","contactId":"contact-1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def reply_latency(server_cls: Any, server: str, replies: int) -> dict[str, Any]:
    """Operator replies delivered to an integration and answered, one after another (ms each)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from simulator.clients.control import ControlClient
    from simulator.clients.planfix import PlanfixClient

    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    sim = server_cls(server, 1)
    try:
        sim.wait_ready()
        base = f"http://127.0.0.1:{sim.port}"
        control = ControlClient(base)
        integration = control.create_integration(
            name="bench-replies", url=f"http://127.0.0.1:{hook.server_port}/hook"
        )
        client = PlanfixClient(base + "/webchat/api", integration["planfix_token"])
        client.new_message("chat-1", "contact-1", "hello", contact_name="Bench")
        number = client.get_task("chat-1").number
        if number is None:
            raise RuntimeError("the chat got no task")
        times = []
        for i in range(replies + 5):
            started = time.perf_counter()
            answer = control.reply(number, f"reply {i}")
            elapsed = (time.perf_counter() - started) * 1000
            if answer["delivery"]["state"] != "delivered":
                raise RuntimeError(f"reply not delivered: {answer['delivery']}")
            if i >= 5:  # the first few open connections and warm caches
                times.append(elapsed)
    finally:
        sim.stop()
        hook.shutdown()
        hook.server_close()
    return {
        "replies": replies,
        "reply_ms_median": round(statistics.median(times), 2),
        "reply_ms_p90": round(sorted(times)[int(0.9 * (len(times) - 1))], 2),
    }


def _send(sock: socket.socket, raw: bytes) -> bytes:
    """Send one request on a kept-alive socket; the answer's body (Content-Length framed)."""
    sock.sendall(raw)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return body


def _worker_sockets(port: int) -> tuple[socket.socket, socket.socket]:
    """Two kept-alive connections that two different worker processes serve."""
    stats = b"GET /api/v1/events/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    by_pid: dict[int, socket.socket] = {}
    spare: list[socket.socket] = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        pid = int(json.loads(_send(sock, stats))["pid"])
        if pid in by_pid:
            spare.append(sock)
        else:
            by_pid[pid] = sock
        if len(by_pid) == 2:
            break
    for sock in spare:
        sock.close()
    if len(by_pid) < 2:
        raise RuntimeError("every connection went to one worker")
    first, second = by_pid.values()
    return first, second


def cross_worker_latency(server_cls: Any, server: str, token: str, events: int) -> dict[str, Any]:
    """A newMessage served by one worker until an event stream in the other sees it (ms)."""
    sim = server_cls(server, 2)
    times: list[float] = []
    try:
        sim.wait_ready()
        stream, writer = _worker_sockets(sim.port)
        # No keep-alive comments: the only bytes on the stream are events.
        stream.sendall(b"GET /api/v1/events?ping=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        stream.recv(4096)  # the stream's head
        body = (
            f"cmd=newMessage&providerId=bench&chatId=cross&planfix_token={token}"
            "&message=hi&contactId=cross&contactName=Cross"
        ).encode()
        raw = (
            b"POST /webchat/api HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        pause = random.Random(15)  # noqa: S311 - timing, not secrets
        for i in range(events + 3):
            # A write lands at any moment, not in step with a poll: a random pause first.
            time.sleep(pause.uniform(0, 0.25))
            started = time.perf_counter()
            _send(writer, raw)
            seen = b""
            while b"data:" not in seen:
                seen += stream.recv(65536)
            elapsed = (time.perf_counter() - started) * 1000
            stream.settimeout(0.3)  # the rest of this write's events
            try:
                while stream.recv(65536):
                    pass
            except TimeoutError:
                pass
            stream.settimeout(10)
            if i >= 3:  # the chat, contact and task exist from here on
                times.append(elapsed)
        stream.close()
        writer.close()
    finally:
        sim.stop()
    return {
        "events": events,
        "cross_worker_ms_median": round(statistics.median(times), 2),
        "cross_worker_ms_max": round(max(times), 2),
    }


FIXTURE_TESTS = """
import os

import pytest


@pytest.mark.parametrize("i", range(int(os.environ["BENCH_TESTS"])))
def test_uses_the_planfix_fixture(planfix, i):
    assert planfix.token
"""

FIXTURE_TIMER = """
import json
import os
import time

import pytest

TIMES = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    started = time.perf_counter()
    yield
    item.bench_setup = time.perf_counter() - started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    started = time.perf_counter()
    yield
    TIMES.append(item.bench_setup + time.perf_counter() - started)


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(TIMES, out)
"""


def fixture_time(tests: int) -> dict[str, Any]:
    """The pytest plugin's `planfix` fixture: setup plus teardown per test (ms, median)."""
    folder = Path(tempfile.mkdtemp(prefix="planfix-bench-fixture-"))
    try:
        (folder / "test_fixture.py").write_text(FIXTURE_TESTS, encoding="utf-8")
        (folder / "conftest.py").write_text(FIXTURE_TIMER, encoding="utf-8")
        root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "BENCH_TESTS": str(tests + 1),
            "BENCH_OUT": str(folder / "times.json"),
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
        # The first test also starts the session's simulator: not a per-test cost.
        times = json.loads((folder / "times.json").read_text(encoding="utf-8"))[1:]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "tests": tests,
        "fixture_ms_median": round(statistics.median(times) * 1000, 2),
        "fixture_ms_p90": round(sorted(times)[int(0.9 * (len(times) - 1))] * 1000, 2),
    }
