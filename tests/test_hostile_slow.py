"""Slow clients against `planfix-sim serve` (default settings) over real HTTP on 127.0.0.1.

Hundreds of clients that connect and then trickle their request, or send nothing, must not
take `/webchat/api` down nor get the worker killed: the server bounds the total time a
request may take to arrive and reads it without giving it a request thread meanwhile.
"""

from __future__ import annotations

import re
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
import requests

from simulator.serving.gthread import request_complete
from simulator.serving.production import READ_TIMEOUT_SECONDS, worker_connections
from tests.conftest import Report, unavailable
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
            unavailable(f"needs {needed} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


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
    log = served.log  # Served reads the server's log while it runs
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
    served.stop()

    report(
        f"{SLOW_CLIENTS} slow clients for {TRICKLE_SECONDS:.0f} s: {len(waits)} getTask, "
        f"slowest {max(waits):.3f} s, {len(failures)} failed; the server hung up on slow "
        f"clients {crowd.cut_offs} times (longest open {crowd.longest_open:.1f} s; "
        f"answers {crowd.answers}); {len(log)} lines of server log"
    )
    assert not failures, failures[:5]
    assert max(waits) < 1.0
    assert pid_after == pid_before, "the worker was replaced"
    assert not [line for line in log if "WORKER TIMEOUT" in line or "SIGKILL" in line], log
    # The deadline is for the whole request, not per read: trickling clients are cut off.
    assert crowd.cut_offs >= SLOW_CLIENTS
    assert crowd.longest_open < READ_TIMEOUT_SECONDS + CUT_OFF_SLACK_SECONDS


# -- what the main loop waits for before a request gets a thread ------------------------------

FORM = urlencode(get_task("unknown")).encode()
LENGTH = b"Content-Length: %d" % len(FORM)
HEAD = b"POST /webchat/api HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        pytest.param(b"", False, id="nothing yet"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", False, id="head still arriving"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True, id="head without a body"),
        pytest.param(HEAD + LENGTH + b"\r\n\r\n" + FORM, True, id="head and body"),
        pytest.param(HEAD + LENGTH + b"\r\n\r\ncmd=", False, id="body still arriving"),
        pytest.param(
            HEAD + LENGTH.lower().replace(b" ", b"") + b"\r\n\r\n" + FORM,
            True,
            id="any case, no space",
        ),
        pytest.param(HEAD + b"Content-Length: 2000000\r\n\r\n", True, id="body over 1 MiB"),
        pytest.param(HEAD + b"Content-Length: x\r\n\r\n", True, id="bad length: parser's"),
        pytest.param(
            HEAD + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\n", True, id="two lengths"
        ),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab", False, id="chunk"),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\n0\r\n\r\n",
            True,
            id="chunks and the last",
        ),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n", True, id="trailers"
        ),
        pytest.param(
            HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n", False, id="trailers go on"
        ),
        pytest.param(HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", True, id="bad chunk"),
        pytest.param(HEAD + b"Transfer-Encoding: gzip\r\n\r\n", True, id="not chunked"),
        pytest.param(b"GET / HTTP/1.1\nHost: x\n\n", True, id="bare LF: parser's"),
        pytest.param(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 12000, True, id="head over 64 KiB"),
    ],
)
def test_a_request_gets_a_thread_once_it_arrived_or_the_parser_can_refuse_it(
    data: bytes, complete: bool
) -> None:
    assert request_complete(data) is complete


@pytest.mark.parametrize(
    ("threads", "open_files", "connections"),
    [
        pytest.param(32, 1_048_576, 1000, id="plenty of files: gunicorn's 1000"),
        pytest.param(32, 1024, 1024 - 64 - 4 * 32, id="a 1024-file limit"),
        pytest.param(32, 100, 32, id="never fewer than the threads"),
    ],
)
def test_a_worker_holds_no_more_connections_than_its_open_files_allow(
    threads: int, open_files: int, connections: int
) -> None:
    assert worker_connections(threads, open_files) == connections


# -- over HTTP: whole requests in any framing pass, trickled ones are cut off -----------------


def _request(*headers: bytes, body: bytes = FORM) -> bytes:
    lines = b"".join(h + b"\r\n" for h in headers)
    return HEAD + b"Content-Type: application/x-www-form-urlencoded\r\n" + lines + b"\r\n" + body


def _read_all(sock: socket.socket) -> bytes:
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def _pipelined(sock: socket.socket) -> bytes:
    length = LENGTH
    sock.sendall(_request(length) + _request(length, b"Connection: close"))
    return _read_all(sock)


def _expect_continue(sock: socket.socket) -> bytes:
    head = _request(LENGTH, b"Expect: 100-continue", body=b"")
    sock.sendall(head + b"")
    interim = sock.recv(100)  # the client sends its body only after this
    sock.sendall(FORM)
    return interim + _read_all(sock)


def _chunked(sock: socket.socket) -> bytes:
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(FORM), FORM)
    sock.sendall(_request(b"Transfer-Encoding: chunked", b"Connection: close", body=body))
    return _read_all(sock)


def _byte_by_byte_then_half_closed(sock: socket.socket) -> bytes:
    for byte in _request(LENGTH):
        sock.send(bytes([byte]))
    sock.shutdown(socket.SHUT_WR)
    return _read_all(sock)


@pytest.fixture(scope="module")
def shared() -> Iterator[Served]:
    """One `planfix-sim serve` for the framing cases."""
    running = Served()
    yield running
    running.kill()


@pytest.mark.parametrize(
    ("exchange", "answers"),
    [
        pytest.param(_pipelined, [b"HTTP/1.1 400", b"HTTP/1.1 400"], id="two pipelined"),
        pytest.param(_expect_continue, [b"HTTP/1.1 100", b"HTTP/1.1 400"], id="100-continue"),
        pytest.param(_chunked, [b"HTTP/1.1 400"], id="chunked body"),
        pytest.param(_byte_by_byte_then_half_closed, [b"HTTP/1.1 400"], id="byte by byte"),
    ],
)
def test_a_whole_request_is_answered_however_it_is_framed(
    shared: Served, exchange: Callable[[socket.socket], bytes], answers: list[bytes]
) -> None:
    # getTask of an unknown chat: 400 "task not found" from the API itself, not the server.
    with socket.create_connection(("127.0.0.1", shared.port), timeout=15) as sock:
        got = exchange(sock)
    assert re.findall(rb"HTTP/1\.1 \d\d\d", got) == answers
    assert got.count(b"task not found") == answers.count(b"HTTP/1.1 400")


TRICKLED: dict[str, tuple[bytes, bytes, bytes]] = {
    # name: (a whole request first, if any; then the start of one; then a piece every second)
    "head": (b"", HEAD, b"X-Slow: 1\r\n"),
    "body": (b"", _request(b"Content-Length: 1000", body=b""), b"a=b&"),
    "chunked body": (b"", _request(b"Transfer-Encoding: chunked", body=b""), b"1\r\na\r\n"),
    "after a kept-alive answer": (_request(LENGTH), HEAD, b"X: 1\r\n"),
    # Past 64 KiB the head goes to a thread as it is; its reads still end at the deadline.
    "head over 64 KiB": (
        b"",
        HEAD + b"".join(b"X-Big-%d: %s\r\n" % (i, b"b" * 8000) for i in range(9)),
        b"X: 1\r\n",
    ),
}


def test_a_trickled_request_is_cut_off_at_its_total_deadline(shared: Served) -> None:
    clients: dict[str, socket.socket] = {}
    started: dict[str, float] = {}
    ended: dict[str, tuple[float, bytes]] = {}
    try:
        for name, (whole, start, _) in TRICKLED.items():
            sock = socket.create_connection(("127.0.0.1", shared.port), timeout=15)
            if whole:
                sock.sendall(whole)
                answer = sock.recv(65536)
                while b"task not found" not in answer and (more := sock.recv(65536)):
                    answer += more
                assert b"task not found" in answer
            sock.sendall(start)
            sock.settimeout(0)
            clients[name], started[name] = sock, time.monotonic()
        deadline = time.monotonic() + READ_TIMEOUT_SECONDS + CUT_OFF_SLACK_SECONDS + 2
        while len(ended) < len(clients) and time.monotonic() < deadline:
            for name, sock in clients.items():
                if name in ended:
                    continue
                with suppress(BlockingIOError):
                    got = sock.recv(65536)
                    ended[name] = (time.monotonic() - started[name], got)
                    continue
                with suppress(OSError):
                    sock.send(TRICKLED[name][2])
            time.sleep(1)
    finally:
        for sock in clients.values():
            sock.close()
    assert set(ended) == set(TRICKLED), "these were never cut off: " + str(
        set(TRICKLED) - set(ended)
    )
    for name, (after, got) in ended.items():
        assert after < READ_TIMEOUT_SECONDS + CUT_OFF_SLACK_SECONDS, name
        # A request the main loop holds is answered 408; one a thread reads is closed quietly.
        if name == "head over 64 KiB":
            assert got == b"", name
        else:
            assert got.startswith(b"HTTP/1.1 408 Request Timeout"), name
            assert got.endswith(
                b'"error": "Request Timeout: the request did not arrive in full within 10 s"}'
            ), name
