"""Slow clients against `planfix-sim serve` (default settings) over real HTTP on 127.0.0.1.

Hundreds of clients that connect and then trickle their request, or send nothing, must not
take `/webchat/api` down nor get the worker killed: the server bounds the total time a
request may take to arrive and reads it without giving it a request thread meanwhile.
"""

from __future__ import annotations

import resource
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field

import pytest
import requests

from simulator.serving import READ_TIMEOUT_SECONDS
from tests.conftest import Report
from tests.served import Served, get_task, new_message

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 300
TRICKLE_SECONDS = 30.0
LINE_EVERY_SECONDS = 3.0  # well under the old per-read timeout, so a per-read bound never fires
# How much later than READ_TIMEOUT_SECONDS the server may hang up (one poll round, busy cores).
CUT_OFF_SLACK_SECONDS = 3.0

# What each kind of slow client sends: first, then one piece every LINE_EVERY_SECONDS.
KINDS: dict[str, tuple[bytes, bytes]] = {
    # A head that never ends: one more header line every few seconds.
    "head": (b"POST /webchat/api HTTP/1.1\r\nHost: slow\r\n", b"X-Slow: yes\r\n"),
    # A whole head, then a body that never ends.
    "body": (
        b"POST /webchat/api HTTP/1.1\r\nHost: slow\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n",
        b"a=b&",
    ),
    # Connects and says nothing.
    "silent": (b"", b""),
}


@dataclass
class _Slow:
    kind: str
    sock: socket.socket
    opened: float
    next_send: float


@dataclass
class SlowCrowd:
    """Clients that trickle requests until `until`, reconnecting whenever the server hangs up."""

    port: int
    count: int
    until: float
    cut_offs: int = 0
    longest_open: float = 0.0
    answers: dict[bytes, int] = field(default_factory=dict)
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> SlowCrowd:
        """Open every client, then keep them trickling in a background thread."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def join(self) -> None:
        """Wait until every client stopped (they stop by themselves at `until`)."""
        assert self._thread is not None
        self._thread.join(timeout=TRICKLE_SECONDS + 30)
        assert not self._thread.is_alive(), "the slow clients did not stop"
        if self.error is not None:
            raise self.error

    def _open(self, kind: str, now: float, sel: selectors.BaseSelector) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(KINDS[kind][0])
        sock.setblocking(False)
        client = _Slow(kind, sock, now, now + LINE_EVERY_SECONDS)
        sel.register(sock, selectors.EVENT_READ, client)

    def _hung_up(self, client: _Slow, now: float, sel: selectors.BaseSelector) -> None:
        sel.unregister(client.sock)
        client.sock.close()
        self.cut_offs += 1
        self.longest_open = max(self.longest_open, now - client.opened)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            kinds = list(KINDS)
            for i in range(self.count):
                # Spread over one trickle period, so the server sees a steady stream.
                self._open(kinds[i % len(kinds)], time.monotonic(), sel)
                time.sleep(LINE_EVERY_SECONDS / self.count)
            while (now := time.monotonic()) < self.until:
                for key, _ in sel.select(timeout=0.2):
                    client: _Slow = key.data
                    try:
                        got = client.sock.recv(4096)
                    except OSError:
                        got = b""
                    status = got[:12]
                    self.answers[status] = self.answers.get(status, 0) + 1
                    self._hung_up(client, now, sel)
                    if now + 1 < self.until:
                        self._open(client.kind, now, sel)
                for key in list(sel.get_map().values()):
                    client = key.data
                    if client.next_send <= now:
                        client.next_send = now + LINE_EVERY_SECONDS
                        # A server that hung up is seen as readable next round.
                        with suppress(OSError):
                            client.sock.send(KINDS[client.kind][1])
        except BaseException as exc:  # reported by join() in the test's thread
            self.error = exc
        finally:
            now = time.monotonic()
            for key in list(sel.get_map().values()):
                # Still open at the end: as long-lived as any the server hung up on.
                self.longest_open = max(self.longest_open, now - key.data.opened)
                key.fileobj.close()  # type: ignore[union-attr]
            sel.close()


def _enough_file_descriptors(needed: int) -> None:
    # The server is our child and inherits the limit: both ends of every client live here.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _drain_stderr(proc: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    # Read the server's log while it runs: a full pipe would stall the server, not the test.
    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _worker_pid(served: Served) -> int:
    answer = requests.get(served.url + "/api/v1/events/stats", timeout=30)
    pid: int = answer.json()["pid"]
    return pid


@pytest.fixture
def served() -> Iterator[Served]:
    """`planfix-sim serve` with default settings, with enough open files for the crowd."""
    _enough_file_descriptors(2 * SLOW_CLIENTS + 512)
    running = Served()
    yield running
    running.kill()


def test_300_slow_clients_neither_stall_the_chat_api_nor_get_the_worker_killed(
    served: Served, report: Report
) -> None:
    log: list[str] = []
    drainer = _drain_stderr(served.proc, log)
    assert requests.post(served.api, data=new_message("slow-1", "hi"), timeout=30).ok
    pid_before = _worker_pid(served)

    crowd = SlowCrowd(served.port, SLOW_CLIENTS, time.monotonic() + TRICKLE_SECONDS).start()
    waits: list[float] = []
    failures: list[str] = []
    session = requests.Session()
    time.sleep(LINE_EVERY_SECONDS)  # let the whole crowd connect first
    while time.monotonic() < crowd.until - 1:
        # Alternately a new connection and a kept-alive one: both must get through.
        send = session.post if len(waits) % 2 else requests.post
        started = time.monotonic()
        try:
            answer = send(served.api, data=get_task("slow-1"), timeout=5)
            if answer.status_code != 200:
                failures.append(f"status {answer.status_code}")
        except requests.RequestException as exc:
            failures.append(type(exc).__name__)
        waits.append(time.monotonic() - started)
        time.sleep(0.05)
    crowd.join()
    pid_after = _worker_pid(served)
    served.proc.terminate()
    served.proc.wait(timeout=30)
    drainer.join(timeout=10)

    report(
        f"{SLOW_CLIENTS} slow clients for {TRICKLE_SECONDS:.0f} s: {len(waits)} getTask, "
        f"slowest {max(waits):.3f} s, {len(failures)} failed; the server hung up on slow "
        f"clients {crowd.cut_offs} times (longest open {crowd.longest_open:.1f} s; "
        f"answers {crowd.answers})"
    )
    assert not failures, failures[:5]
    assert max(waits) < 1.0
    assert pid_after == pid_before, "the worker was replaced"
    assert not [line for line in log if "WORKER TIMEOUT" in line or "SIGKILL" in line], log
    # The deadline is for the whole request, not per read: trickling clients are cut off.
    assert crowd.cut_offs >= SLOW_CLIENTS
    assert crowd.longest_open < READ_TIMEOUT_SECONDS + CUT_OFF_SLACK_SECONDS
