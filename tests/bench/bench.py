"""Benchmark `planfix-sim serve`: throughput, latency, cold start, memory, scenario replay.

The memory part also reports what a worker keeps after event-stream clients vanish.

Run from the checkout (it starts its own servers on free loopback ports):

    python tests/bench/bench.py                       # everything, RSS up to 1M messages
    python tests/bench/bench.py --rss 10000,100000    # shorter memory run
    python tests/bench/bench.py --servers gunicorn,granian,werkzeug --workers 1,2
    python tests/bench/bench.py --rounds 5 --seconds 4     # more turns of bare app vs simulator
    python tests/bench/bench.py --skip throughput,cold,rss,replay,inprocess --stream-cycles 10
    python tests/bench/bench.py --skip throughput,cold,rss,replay,inprocess,streams   # vs WireMock

The `wiremock` part runs WireMock (the npm `wiremock` package's standalone jar, fetched into
~/.cache/planfix-bench on first use) beside the simulator under the same `wrk` load, taking
turns round after round, and prints each ratio: newMessage and getTask against WireMock,
two workers against one, p99 and cold start against WireMock. The `latency` part times what a
test suite feels: an operator reply delivered and answered, an event crossing workers, and the
pytest plugin's `planfix` fixture. Java and wrk come from Debian (`--install` as root, or the
command it prints).

The load comes from separate processes (2 x 8 threads = 16 keep-alive connections by default),
each sending pre-built requests over raw sockets, so the client costs little of the CPU the
server needs. The same load runs against a bare "return 200" app on the same server and
worker count, taking turns with the simulator round after round; the simulator's throughput
is reported as a ratio of that ceiling (the median round).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import side_by_side  # beside this script: WireMock and the latencies a test suite feels

TOKEN = "303cb962ac59075b964b07152d234b70"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def form_request(path: str, body: str) -> bytes:
    """A keep-alive HTTP/1.1 POST of a form."""
    data = body.encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def new_message(chat: int, n: int) -> bytes:
    """newMessage of chat `chat` (its contact is the chat's)."""
    return form_request(
        "/webchat/api",
        f"cmd=newMessage&providerId=bench&chatId=c{chat}&planfix_token={TOKEN}"
        f"&message=hello+number+{n}&contactId=u{chat}&contactName=Bench+User",
    )


def get_task(chat: int) -> bytes:
    """getTask of chat `chat`."""
    return form_request(
        "/webchat/api",
        f"cmd=getTask&providerId=bench&chatId=c{chat}&planfix_token={TOKEN}",
    )


class Connection:
    """One keep-alive client connection that sends a request and reads the whole answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def request(self, raw: bytes) -> int:
        """Send `raw`, return the status (0 on a network error)."""
        for _ in range(2):
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.buffer = b""
                self.sock.sendall(raw)
                return self._answer()
            except OSError:
                self.close()
        return 0

    def _answer(self) -> int:
        assert self.sock is not None
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError
            rest += chunk
        self.buffer = rest[length:]
        if close:
            self.close()
        return status

    def close(self) -> None:
        """Drop the socket (the next request reconnects)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@dataclass
class LoadResult:
    """What one load run measured."""

    requests: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        """Answers per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile in ms."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _load_worker(
    port: int, kind: str, first_chat: int, threads: int, stop_at: float, count: int, out: Any
) -> None:
    results: list[tuple[dict[int, int], list[float]]] = []
    budget = [count]
    lock = threading.Lock()

    def take() -> bool:
        if count <= 0:
            return time.monotonic() < stop_at
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def run(index: int) -> None:
        conn = Connection(port)
        statuses: dict[int, int] = {}
        latencies: list[float] = []
        n = 0
        chats = 1000
        # getTask asks for the chat this thread's first newMessage opened (the warm-up sends
        # at least one per thread), so every getTask names a chat that has a task.
        asked = first_chat + (index * 7919 + 1) % chats
        while take():
            n += 1
            chat = first_chat + (index * 7919 + n) % chats
            raw = new_message(chat, n) if kind == "newMessage" else get_task(asked)
            started = time.perf_counter()
            status = conn.request(raw)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
        conn.close()
        results.append((statuses, latencies))

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    merged: dict[int, int] = {}
    latencies: list[float] = []
    for statuses, lats in results:
        for k, v in statuses.items():
            merged[k] = merged.get(k, 0) + v
        latencies.extend(lats)
    out.put((merged, latencies))


def load(
    port: int,
    kind: str,
    *,
    seconds: float = 0.0,
    count: int = 0,
    connections: int = 16,
    processes: int = 2,
    first_chat: int = 0,
) -> LoadResult:
    """Drive `kind` (newMessage/getTask) for `seconds`, or until `count` requests are answered."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    per = connections // processes
    started = time.perf_counter()
    stop_at = time.monotonic() + seconds
    procs = [
        ctx.Process(
            target=_load_worker,
            args=(port, kind, first_chat + p * 100_000, per, stop_at, count // processes, out),
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    result = LoadResult()
    for _ in procs:
        statuses, latencies = out.get()
        for k, v in statuses.items():
            result.statuses[k] = result.statuses.get(k, 0) + v
        result.latencies_ms.extend(latencies)
    for proc in procs:
        proc.join()
    result.seconds = time.perf_counter() - started
    result.requests = sum(result.statuses.values())
    return result


class Server:
    """`planfix-sim serve` in a subprocess."""

    def __init__(
        self,
        server: str,
        workers: int,
        *,
        bare: bool = False,
        db: str = "",
        port: int = 0,
        root: Path = ROOT,
    ) -> None:
        self.port = port or free_port()
        args = [sys.executable, "-m", "simulator.cli", "serve", "--port", str(self.port)]
        args += ["--server", server, "--workers", str(workers)]
        if bare:
            args.append("--bare")
        if db:
            args += ["--db", db]
        self.started = time.perf_counter()
        self.cpu_at_ready = 0.0
        # Another checkout (--baseline) runs its own code: its folder comes first on the path.
        path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": path},
        )

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds from start until the first 200 of a newMessage."""
        conn = Connection(self.port)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        pass
                except OSError:
                    time.sleep(0.002)
                    continue
                if conn.request(new_message(999_999, 0)) == 200:
                    elapsed = time.perf_counter() - self.started
                    self.cpu_at_ready = self.cpu_seconds()
                    return elapsed
                time.sleep(0.002)
        finally:
            conn.close()
        raise RuntimeError("the server did not answer 200 in time")

    def pids(self) -> list[int]:
        """The master and its workers."""
        found = [self.proc.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == self.proc.pid:
                    found.append(int(entry.name))
        return found

    def rss_mb(self) -> tuple[float, float]:
        """RSS in MB of (master + workers, workers only)."""
        sizes = {}
        for pid in self.pids():
            try:
                text = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            kb = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
            sizes[pid] = kb / 1024
        total = sum(sizes.values())
        return total, total - sizes.get(self.proc.pid, 0.0)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the master and its workers."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def _measure(target: Server, kind: str, seconds: float) -> tuple[LoadResult, float]:
    """Drive `kind` at `target`; the answers and the server's CPU ms per answer."""
    cpu = target.cpu_seconds()
    result = load(target.port, kind, seconds=seconds)
    # CPU per answer does not depend on what else the machine runs: the steadier figure.
    return result, (target.cpu_seconds() - cpu) * 1000 / max(result.requests, 1)


def throughput(server: str, workers: int, seconds: float, rounds: int = 3) -> dict[str, Any]:
    """newMessage and getTask on the simulator, and the bare app, on the same server."""
    # Both servers stay up and the loads take turns, round after round: on a shared machine
    # the rate drifts by tens of percent within a minute, so each ratio compares loads run
    # seconds apart, and the median round is reported.
    row: dict[str, Any] = {"server": server, "workers": workers, "rounds": rounds}
    bare, sim = Server(server, workers, bare=True), Server(server, workers)
    try:
        bare.wait_ready()
        sim.wait_ready()
        load(bare.port, "newMessage", seconds=1)
        load(sim.port, "newMessage", seconds=1)  # warm up: chats, tasks, caches exist
        per_round: list[dict[str, float]] = []
        latencies: dict[str, list[float]] = {"bare": [], "newMessage": [], "getTask": []}
        non_200: dict[str, int] = {"newMessage": 0, "getTask": 0}
        for _ in range(rounds):
            ceiling, bare_cpu = _measure(bare, "newMessage", seconds)
            figures = {"bare_rps": ceiling.rps, "bare_cpu_ms": bare_cpu}
            latencies["bare"].extend(ceiling.latencies_ms)
            for kind, key in (("newMessage", "new_message"), ("getTask", "get_task")):
                result, cpu_ms = _measure(sim, kind, seconds)
                latencies[kind].extend(result.latencies_ms)
                non_200[kind] += sum(v for k, v in result.statuses.items() if k != 200)
                figures[f"{key}_rps"] = result.rps
                figures[f"{key}_cpu_ms"] = cpu_ms
                figures[f"{key}_ratio"] = result.rps / ceiling.rps if ceiling.rps else 0
                figures[f"{key}_cpu_ratio"] = bare_cpu / cpu_ms if cpu_ms else 0
            per_round.append(figures)
    finally:
        bare.stop()
        sim.stop()
    for name in per_round[0]:
        values = [r[name] for r in per_round]
        median = statistics.median(values)
        row[name] = round(median) if name.endswith("_rps") else round(median, 3)
        if name.endswith("ratio"):
            row[f"{name}_rounds"] = [round(v, 3) for v in values]
    for kind, key in (("bare", "bare"), ("newMessage", "new_message"), ("getTask", "get_task")):
        pooled = LoadResult(latencies_ms=latencies[kind])
        row[f"{key}_p50_ms"] = round(pooled.percentile(0.5), 2)
        row[f"{key}_p99_ms"] = round(pooled.percentile(0.99), 2)
        if kind in non_200:
            row[f"{key}_non_200"] = non_200[kind]
    return row


def cold_start(server: str, workers: int, runs: int = 5) -> dict[str, Any]:
    """Seconds from exec to the first 200 (median and worst of `runs`)."""
    times = []
    cpu = []
    for _ in range(runs):
        sim = Server(server, workers)
        try:
            times.append(sim.wait_ready())
            cpu.append(sim.cpu_at_ready)
        finally:
            sim.stop()
    return {
        "server": server,
        "workers": workers,
        "cold_start_median_s": round(statistics.median(times), 3),
        "cold_start_max_s": round(max(times), 3),
        # CPU burnt by master and workers until the first 200: what an idle machine waits.
        "cold_start_cpu_median_s": round(statistics.median(cpu), 3),
    }


def _inflate_messages(db: str, target: int) -> int:
    # The dedicated loader for big counts: copy message rows inside SQLite (same schema, same
    # indexes), in batches so the live server keeps answering between them.
    conn = sqlite3.connect(db, timeout=60, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=60000")
        cols = [r[1] for r in conn.execute("PRAGMA table_info(messages)") if r[1] != "pk"]
        names = ", ".join(cols)
        have = int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        while have < target:
            batch = min(50_000, target - have)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                f"INSERT INTO messages ({names}) SELECT {names} FROM messages"  # noqa: S608
                " ORDER BY pk LIMIT ?",
                (batch,),
            )
            conn.execute("COMMIT")
            have += batch
        return have
    finally:
        conn.close()


def memory(server: str, workers: int, marks: list[int], http_only: bool) -> dict[str, Any]:
    """Server RSS after `marks` stored messages, journal retention on (default 10,000)."""
    folder = tempfile.mkdtemp(prefix="planfix-bench-")
    db = str(Path(folder) / "bench.sqlite3")
    sim = Server(server, workers, db=db)
    out: dict[str, Any] = {"server": server, "workers": workers, "marks": []}
    try:
        sim.wait_ready()
        sent = 0
        started = time.perf_counter()
        for mark in marks:
            via_http = mark - sent if http_only or mark <= 100_000 else 10_000
            if via_http > 0:
                result = load(sim.port, "newMessage", count=via_http, connections=32)
                bad = sum(v for k, v in result.statuses.items() if k != 200)
                sent += result.requests
                if bad:
                    out.setdefault("non_200", 0)
                    out["non_200"] += bad
            stored = _count(db, "messages")
            if stored < mark:
                stored = _inflate_messages(db, mark)
                # Real requests again, on the big store: caches and indexes now see it.
                load(sim.port, "newMessage", count=10_000, connections=32)
                sent += 10_000
            total, workers_only = sim.rss_mb()
            out["marks"].append(
                {
                    "messages": _count(db, "messages"),
                    "http_requests": sent,
                    "journal_rows": _count(db, "journal"),
                    "rss_mb": round(total, 1),
                    "workers_rss_mb": round(workers_only, 1),
                    "db_mb": round(os.path.getsize(db) / 2**20, 1),
                    "elapsed_s": round(time.perf_counter() - started, 1),
                }
            )
            print(f"  memory: {out['marks'][-1]}", flush=True)
    finally:
        sim.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _open_streams(port: int) -> dict[int, int]:
    """Event streams and waits open per worker pid (asks until each of them spoke, or gives up)."""
    seen: dict[int, int] = {}
    for _ in range(400):
        url = f"http://127.0.0.1:{port}/api/v1/events/stats"
        with urllib.request.urlopen(url, timeout=10) as answer:
            stats = json.load(answer)
        seen[stats["pid"]] = stats["streams"] + stats["waits"]
        if len(seen) == 2:
            break
    return seen


def vanished_streams(server: str, cycles: int, per_cycle: int = 20) -> dict[str, Any]:
    """Worker RSS across cycles of SSE clients that vanish without a goodbye (2 workers)."""
    sim = Server(server, 2)
    rss: list[dict[int, float]] = []  # per cycle: worker pid -> RSS MB once its streams ended
    left: dict[int, int] = {}
    try:
        sim.wait_ready()
        for _ in range(cycles):
            clients = []
            for _ in range(per_cycle):
                sock = socket.create_connection(("127.0.0.1", sim.port), timeout=30)
                sock.sendall(b"GET /api/v1/events?ping=0.1 HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.recv(64)
                clients.append(sock)
            for sock in clients:
                sock.close()  # no goodbye: a worker learns it when its next ping fails
            deadline = time.monotonic() + 30
            while True:
                left = _open_streams(sim.port)
                if (len(left) == 2 and not any(left.values())) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            rss.append({pid: _rss_mb(pid) for pid in left})
    finally:
        sim.stop()
    first, last = rss[0], rss[-1]
    out = {
        "server": server,
        "workers": 2,
        "cycles": cycles,
        "clients_per_cycle": per_cycle,
        "streams_left": sum(left.values()),
        "workers_rss_mb": [sorted(round(mb, 1) for mb in cycle.values()) for cycle in rss],
        # The figure a leak would show: what each worker kept from the first to the last cycle.
        "max_rss_growth_mb": round(max(last[pid] - first[pid] for pid in first if pid in last), 1),
    }
    print(f"  vanished streams: {out}", flush=True)
    return out


def _rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def _count(db: str, table: str) -> int:
    conn = sqlite3.connect(db, timeout=60)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
    finally:
        conn.close()


def replay(server: str, workers: int) -> dict[str, Any]:
    """`planfix-sim run scenarios/` against a running server: steps per second."""
    sim = Server(server, workers)
    try:
        sim.wait_ready()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "simulator.cli",
                "run",
                str(ROOT / "scenarios"),
                "--simulator-url",
                f"http://127.0.0.1:{sim.port}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
    finally:
        sim.stop()
    found = re.search(r"(\d+) passed, (\d+) failed; (\d+) steps in ([\d.]+) s", done.stdout)
    if not found:
        return {"error": done.stdout[-2000:] + done.stderr[-2000:]}
    passed, failed, steps, secs = found.groups()
    return {
        "scenarios_passed": int(passed),
        "scenarios_failed": int(failed),
        "steps": int(steps),
        "seconds": float(secs),
        "steps_per_s": round(int(steps) / float(secs), 1),
    }


def in_process(requests: int = 5000) -> dict[str, Any]:
    """The simulator's own CPU per answer: its WSGI app called directly, one thread, no server."""
    # What no server can go below: the floor the ratio's arithmetic in the README starts from.
    sys.path.insert(0, str(ROOT))
    from simulator.web.app import close_app, create_app

    app = create_app()
    try:

        def call(raw: bytes) -> None:
            body = raw.partition(b"\r\n\r\n")[2]
            environ = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/webchat/api",
                "QUERY_STRING": "",
                "CONTENT_TYPE": "application/x-www-form-urlencoded",
                "CONTENT_LENGTH": str(len(body)),
                "wsgi.input": io.BytesIO(body),
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "80",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "HTTP_HOST": "127.0.0.1",
                "wsgi.url_scheme": "http",
            }
            statuses: list[str] = []
            b"".join(app(environ, lambda status, headers, *_: statuses.append(status)))
            if not statuses[0].startswith("200"):
                raise RuntimeError(f"in-process answer {statuses[0]}")

        for i in range(requests):  # warm up: 1,000 chats with tasks and contacts
            call(new_message(i % 1000, i))
        out: dict[str, Any] = {}
        for kind, make in (("new_message", new_message), ("get_task", lambda c, _: get_task(c))):
            cpu = time.process_time()
            for i in range(requests):
                call(make(i % 1000, i))
            out[f"{kind}_cpu_ms"] = round((time.process_time() - cpu) * 1000 / requests, 3)
        return out
    finally:
        close_app(app)


def main() -> int:
    """Run the chosen parts and print a markdown table (and JSON with --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="gunicorn")
    parser.add_argument("--workers", default="1")
    parser.add_argument("--seconds", type=float, default=4.0, help="per load, per round")
    parser.add_argument("--rounds", type=int, default=3, help="bare/simulator turns (median)")
    parser.add_argument("--rss", default="10000,100000,1000000", help="message marks ('' skips)")
    parser.add_argument("--rss-http-only", action="store_true", help="send every message over HTTP")
    parser.add_argument(
        "--skip",
        default="",
        help="comma list of: throughput,cold,rss,replay,inprocess,streams,wiremock,latency",
    )
    parser.add_argument("--install", action="store_true", help="apt-get what is missing (root)")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never fetch the WireMock jar (as in the test suite)",
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout: its simulator takes turns too (before)"
    )
    parser.add_argument("--latency-count", type=int, default=200, help="replies and events timed")
    parser.add_argument(
        "--stream-cycles", type=int, default=5, help="cycles of 20 vanished SSE clients"
    )
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    servers = args.servers.split(",")
    workers = [int(w) for w in args.workers.split(",")]
    report: dict[str, Any] = {"cpus": os.cpu_count(), "throughput": [], "cold_start": []}
    for server in servers:
        for count in workers:
            if "throughput" not in skip:
                row = throughput(server, count, args.seconds, args.rounds)
                print(json.dumps(row), flush=True)
                report["throughput"].append(row)
            if "cold" not in skip:
                row = cold_start(server, count)
                print(json.dumps(row), flush=True)
                report["cold_start"].append(row)
    main_server, main_workers = servers[0], workers[0]
    if "inprocess" not in skip:
        report["in_process"] = in_process()
        print(json.dumps(report["in_process"]), flush=True)
    if "replay" not in skip:
        report["replay"] = replay(main_server, main_workers)
        print(json.dumps(report["replay"]), flush=True)
    marks = [int(m) for m in args.rss.split(",") if m]
    if marks and "rss" not in skip:
        report["memory"] = memory(main_server, main_workers, marks, args.rss_http_only)
    if "streams" not in skip:
        report["vanished_streams"] = vanished_streams(main_server, args.stream_cycles)
    if "wiremock" not in skip:
        report["wiremock"] = wiremock_part(main_server, args)
    if "latency" not in skip:
        report["latency"] = {
            **side_by_side.reply_latency(Server, main_server, args.latency_count),
            **side_by_side.cross_worker_latency(Server, main_server, TOKEN, args.latency_count),
            **side_by_side.fixture_time(max(args.latency_count // 4, 5)),
        }
        print(json.dumps(report["latency"]), flush=True)
    print_tables(report)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


def wiremock_part(server: str, args: argparse.Namespace) -> dict[str, Any]:
    """WireMock side by side with the simulator, or why it could not run."""
    missing = side_by_side.missing_tools()
    if missing and args.install and os.geteuid() == 0 and shutil.which("apt-get"):
        side_by_side.install_tools(missing)
        missing = side_by_side.missing_tools()
    if missing:
        how = side_by_side.install_hint(missing)
        hint = f"WireMock part skipped: {', '.join(missing)} missing; {how}"
        print(hint, flush=True)
        return {"skipped": hint}
    jar = side_by_side.wiremock_jar(fetch=not args.offline)
    if jar is None:
        hint = f"WireMock part skipped: no jar; npm install --prefix {side_by_side.CACHE} wiremock"
        print(hint, flush=True)
        return {"skipped": hint}
    out = side_by_side.side_by_side(
        jar, Server, TOKEN, args.seconds, args.rounds, server, args.baseline
    )
    out.update(side_by_side.cold_starts(jar, Server, TOKEN, max(args.rounds, 1), server))
    print(json.dumps(out), flush=True)
    return out


def print_tables(report: dict[str, Any]) -> None:
    """The figures as markdown tables."""
    if report["throughput"]:
        print(
            "\n| server | workers | bare rps (CPU ms/req) | newMessage rps (p50/p99 ms) |"
            " ratio | CPU ms/req (ratio) | getTask rps (p50/p99 ms) | ratio |"
            " CPU ms/req (ratio) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in report["throughput"]:
            print(
                f"| {r['server']} | {r['workers']} | {r['bare_rps']} ({r['bare_cpu_ms']}) |"
                f" {r['new_message_rps']} ({r['new_message_p50_ms']}/{r['new_message_p99_ms']})"
                f" | {r['new_message_ratio']} |"
                f" {r['new_message_cpu_ms']} ({r['new_message_cpu_ratio']}) |"
                f" {r['get_task_rps']} ({r['get_task_p50_ms']}/{r['get_task_p99_ms']})"
                f" | {r['get_task_ratio']} | {r['get_task_cpu_ms']} ({r['get_task_cpu_ratio']}) |"
            )
        print("\nmedians of the rounds; each round's ratios (newMessage, getTask):")
        for r in report["throughput"]:
            print(
                f"- {r['server']} x{r['workers']}: {r['new_message_ratio_rounds']},"
                f" {r['get_task_ratio_rounds']}"
            )
    for r in report["cold_start"]:
        print(
            f"cold start {r['server']} x{r['workers']}: median {r['cold_start_median_s']} s,"
            f" worst {r['cold_start_max_s']} s; CPU until then {r['cold_start_cpu_median_s']} s"
        )
    if "in_process" in report:
        print(f"in-process, no server (CPU ms per answer): {report['in_process']}")
    if "replay" in report:
        print(f"scenario replay: {report['replay']}")
    if "memory" in report:
        print("\n| messages stored | HTTP requests | journal rows | RSS MB (all) | workers MB |")
        print("|---|---|---|---|---|")
        for m in report["memory"]["marks"]:
            print(
                f"| {m['messages']} | {m['http_requests']} | {m['journal_rows']} |"
                f" {m['rss_mb']} | {m['workers_rss_mb']} |"
            )
    if report.get("wiremock") and "skipped" not in report["wiremock"]:
        print_wiremock(report["wiremock"])
    if "latency" in report:
        lat = report["latency"]
        print(
            f"\nreply delivered and answered: median {lat['reply_ms_median']} ms"
            f" (target <= 2); event across workers: median {lat['cross_worker_ms_median']} ms"
            f" (target <= 10); planfix fixture: median {lat['fixture_ms_median']} ms"
            " (target <= 5)"
        )
    if "vanished_streams" in report:
        v = report["vanished_streams"]
        print(
            f"\n{v['cycles']} x {v['clients_per_cycle']} vanished SSE clients, 2 workers:"
            f" RSS per worker after each cycle {v['workers_rss_mb']} MB,"
            f" growth first to last cycle at most {v['max_rss_growth_mb']} MB"
        )


def print_wiremock(w: dict[str, Any]) -> None:
    """The side-by-side table and each ratio the targets name."""
    print(f"\nside by side, wrk 16 connections, {w['rounds']} rounds x {w['seconds']} s (medians)")
    print(
        "\n| server | newMessage req/s | p99 ms | CPU ms/req |"
        " getTask req/s | p99 ms | CPU ms/req |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, label in (
        ("wiremock", f"WireMock {side_by_side.WIREMOCK_VERSION}, one stub, journal on"),
        ("sim1", f"planfix-sim serve ({w['server']}, 1 worker)"),
        ("sim2", f"planfix-sim serve ({w['server']}, --workers 2)"),
        ("before", "--baseline checkout (1 worker)"),
    ):
        if f"{name}_newMessage_rps" not in w:
            continue
        print(
            f"| {label} | {w[f'{name}_newMessage_rps']} | {w[f'{name}_newMessage_p99_ms']} |"
            f" {w[f'{name}_newMessage_cpu_ms']} |"
            f" {w[f'{name}_getTask_rps']} | {w[f'{name}_getTask_p99_ms']} |"
            f" {w[f'{name}_getTask_cpu_ms']} |"
        )
    print(
        f"\nnewMessage vs WireMock {w['newMessage_vs_wiremock']} (target >= 0.5;"
        f" rounds {w['newMessage_vs_wiremock_rounds']}),"
        f" getTask vs WireMock {w['getTask_vs_wiremock']}"
        f" (rounds {w['getTask_vs_wiremock_rounds']})"
    )
    print(
        f"--workers 2 vs 1: newMessage {w['newMessage_workers2_vs_1']},"
        f" getTask {w['getTask_workers2_vs_1']} (target >= 1.5)"
    )
    print(
        f"p99 vs WireMock: newMessage {w['newMessage_p99_vs_wiremock']},"
        f" getTask {w['getTask_p99_vs_wiremock']} (target <= 1)"
    )
    if "newMessage_after_vs_before" in w:
        print(
            f"this checkout vs --baseline (1 worker): newMessage {w['newMessage_after_vs_before']},"
            f" getTask {w['getTask_after_vs_before']}; CPU per answer after/before: newMessage"
            f" {w['newMessage_after_vs_before_cpu']}, getTask {w['getTask_after_vs_before_cpu']};"
            " baseline newMessage"
            f" {w['before_newMessage_rps']} req/s (p99 {w['before_newMessage_p99_ms']} ms),"
            f" getTask {w['before_getTask_rps']} req/s (p99 {w['before_getTask_p99_ms']} ms)"
        )
    print(
        f"cold start: simulator {w['sim_cold_start_s']} s, WireMock {w['wiremock_cold_start_s']} s,"
        f" ratio {w['cold_start_vs_wiremock']} (target <= 0.25)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
