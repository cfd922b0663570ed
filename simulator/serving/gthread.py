"""gunicorn's gthread worker, made safe against slow clients.

gunicorn hands a new or kept-alive connection to a pool thread, which parses the request on a
blocking socket: a client that trickles its request (one header line every few seconds) holds
that thread for as long as it likes, and 32 of them take the whole API down. Here the worker's
main loop reads each request without blocking until its head and body have arrived (or a total
deadline passes, answered with 408), and only then gives it to a pool thread. Hanging up on a
client lingers without blocking either, so the main loop's heartbeat never stalls.
"""

from __future__ import annotations

import errno
import math
import re
import selectors
import socket
import time
from contextlib import suppress
from functools import partial
from typing import Any

from gunicorn import util  # type: ignore[import-untyped]
from gunicorn.http.errors import NoMoreData  # type: ignore[import-untyped]
from gunicorn.workers import gthread  # type: ignore[import-untyped]

from simulator.serving.limits import READ_TIMEOUT_SECONDS

# A head longer than this goes to gunicorn's parser as it is, which refuses it (400/431).
HEAD_LIMIT = 64 * 1024
# A body up to this size is read before a thread is given to the request (the default
# max_body_bytes); a larger one is read by the thread, still within the request's deadline.
BODY_PREFETCH_LIMIT = 1024 * 1024
# All the request bytes one worker's main loop holds at once; past this, requests go to the
# threads as they are (still within their deadline), so a crowd cannot run it out of memory.
BUFFERED_LIMIT = 64 * 1024 * 1024
# Hanging up: wait this long (and read this much) for the client to close first, as
# gunicorn's own graceful close does, so the kernel does not reset the answer away.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024
# Reads per readable event, so that one fast client cannot hold the main loop.
READS_PER_EVENT = 16
CHUNK = 64 * 1024

_TIMEOUT_BODY = (
    b'{"error": "Request Timeout: the request did not arrive in full within %d s"}'
    % int(READ_TIMEOUT_SECONDS)
)
REQUEST_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)
_HEADER = re.compile(rb"(?im)^([!#$%&'*+.^_`|~0-9a-z-]+)[ \t]*:[ \t]*(.*?)[ \t]*\r?$")


_http_date = util.http_date
_date_cache: tuple[int, str] = (0, "")


def http_date(timestamp: float | None = None) -> str:
    """The Date header's text, formatted once a second (gunicorn formats it every answer)."""
    # Formatting took ~5 % of a worker's CPU per answer under load; the header has
    # one-second resolution anyway. A tuple swap is atomic, so threads need no lock.
    global _date_cache
    if timestamp is not None:
        return str(_http_date(timestamp))
    second = int(time.time())
    cached = _date_cache
    if cached[0] != second:
        cached = _date_cache = (second, str(_http_date(second)))
    return cached[1]


util.http_date = http_date


class RequestTimeout(NoMoreData):  # type: ignore[misc]
    """A request thread's read after the request's deadline (gunicorn drops it quietly)."""


class DeadlineSocket(socket.socket):
    """A client socket whose reads in blocking mode end at the current request's deadline."""

    deadline = math.inf

    def setblocking(self, flag: bool) -> None:
        """Blocking means "blocking for at most READ_TIMEOUT_SECONDS per call" here."""
        if flag:
            self.settimeout(READ_TIMEOUT_SECONDS)
        else:
            super().setblocking(False)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receive, in blocking mode no later than the deadline."""
        if self.gettimeout() == 0.0:
            return super().recv(bufsize, flags)
        self._arm()
        try:
            return super().recv(bufsize, flags)
        finally:
            # Writes keep their own per-call bound, however little of the deadline was left.
            self.settimeout(READ_TIMEOUT_SECONDS)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receive into a buffer, in blocking mode no later than the deadline."""
        if self.gettimeout() == 0.0:
            return super().recv_into(buffer, nbytes, flags)
        self._arm()
        try:
            return super().recv_into(buffer, nbytes, flags)
        finally:
            self.settimeout(READ_TIMEOUT_SECONDS)

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RequestTimeout(b"")
        self.settimeout(min(READ_TIMEOUT_SECONDS, left))


def request_complete(data: bytes | bytearray) -> bool:
    """Whether `data` holds a whole request head and body, or all a thread should wait for."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        # Bare-LF heads and oversized ones are the parser's to refuse.
        return len(data) > HEAD_LIMIT or b"\n\n" in data
    headers: dict[bytes, list[bytes]] = {}
    for name, value in _HEADER.findall(bytes(data[:head_end])):
        headers.setdefault(name.lower(), []).append(value)
    body = memoryview(data)[head_end + 4 :]
    if b"transfer-encoding" in headers:
        if not headers[b"transfer-encoding"][-1].lower().endswith(b"chunked"):
            return True  # the parser refuses it
        return _chunked_complete(body)
    lengths = headers.get(b"content-length", [])
    if len(lengths) != 1 or not lengths[0].isdigit():
        return True  # no body, or one the parser refuses
    length = int(lengths[0])
    return length > BODY_PREFETCH_LIMIT or len(body) >= length


def _chunked_complete(body: memoryview) -> bool:
    # Walk the chunk sizes; a malformed one is the parser's to refuse.
    data = body.tobytes()
    pos = 0
    while len(data) <= BODY_PREFETCH_LIMIT:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return False
        size_text = data[pos:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return True
        if size == 0:
            # Trailers (usually none), then an empty line.
            rest = data[line_end + 2 :]
            return rest.startswith(b"\r\n") or b"\r\n\r\n" in rest
        pos = line_end + 2 + size + 2
        if pos > len(data):
            return False
    return True


_EXPECT_CONTINUE = re.compile(rb"(?im)^expect[ \t]*:[ \t]*100-continue[ \t]*\r\n")


def answer_expect_continue(data: bytearray) -> bool:
    """Whether a whole HTTP/1.1 head asks for `100 Continue`; if so, take the ask out of it.

    The main loop answers it (the client sends its body only then), so gunicorn must not
    answer it a second time.
    """
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0 or not data[: data.find(b"\r\n")].endswith(b"HTTP/1.1"):
        return False
    head = bytes(data[: head_end + 2])
    without = _EXPECT_CONTINUE.sub(b"", head)
    if without == head:
        return False
    data[: head_end + 2] = without
    return True


class SimulatorConn(gthread.TConn):  # type: ignore[misc]
    """A connection that carries the bytes the main loop already read of its next request."""

    def __init__(self, *args: Any, on_graceful_close: Any = None) -> None:
        super().__init__(*args)
        self.prefetched = b""
        self.drained = 0
        self.on_graceful_close = on_graceful_close

    def init(self) -> None:
        """Set up the parser (once), then hand it what was read before."""
        super().init()
        if self.prefetched and self.parser is not None and not self.is_http2:
            self.parser.unreader.unread(self.prefetched)
            self.prefetched = b""

    def close(self, graceful: bool = False) -> None:
        """Close; a graceful close lingers in the main loop instead of blocking it."""
        if graceful and self.on_graceful_close is not None:
            self.on_graceful_close(self)
        else:
            super().close()


class _Incoming:
    __slots__ = ("conn", "counted", "data", "deadline")

    def __init__(self, conn: SimulatorConn, data: bytes) -> None:
        self.conn = conn
        self.data = bytearray(data)
        self.deadline = time.monotonic() + READ_TIMEOUT_SECONDS
        self.counted = len(data)  # bytes of it in the worker's `buffered`


class BoundedThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """gthread whose pool threads only ever get requests that have arrived in full."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Both keyed by connection, in insertion order = deadline order (fixed durations).
        self.incoming: dict[SimulatorConn, _Incoming] = {}
        self.lingering: dict[SimulatorConn, float] = {}
        self.buffered = 0

    # -- taking connections ------------------------------------------------------------------

    def accept(self, listener: Any) -> None:
        """Accept the waiting connections and start reading their first requests."""
        while self.nr_conns < self.worker_connections:
            try:
                client, address = listener.accept()
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                return
            self.nr_conns += 1
            sock = DeadlineSocket(client.family, client.type, client.proto, fileno=client.detach())
            conn = SimulatorConn(
                self.cfg,
                sock,
                address,
                listener.getsockname(),
                on_graceful_close=self.linger,
            )
            self.await_request(conn)

    def on_client_socket_readable(self, conn: SimulatorConn, client: Any) -> None:
        """A kept-alive connection speaks again: read its request here, not in a thread."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.await_request(conn)

    def enqueue_req(self, conn: SimulatorConn) -> None:
        """Bytes read ahead after an answer: the next request, read to its end here first."""
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        self.await_request(conn, leftover)

    # -- reading a request without a thread ---------------------------------------------------

    def await_request(self, conn: SimulatorConn, data: bytes = b"") -> None:
        """Read `conn`'s next request in the main loop, within READ_TIMEOUT_SECONDS in all."""
        incoming = _Incoming(conn, data)
        self.incoming[conn] = incoming
        self.buffered += incoming.counted
        conn.sock.setblocking(False)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_request_bytes, incoming)
        )
        # A socket that is readable now (kept-alive) or bytes already read must not wait a round.
        self.on_request_bytes(incoming, conn.sock)

    def on_request_bytes(self, incoming: _Incoming, _sock: Any) -> None:
        """Read what arrived; a complete request goes to a pool thread."""
        conn = incoming.conn
        ended = False
        for _ in range(READS_PER_EVENT):
            try:
                chunk = conn.sock.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                chunk = b""
            if not chunk:
                ended = True
                break
            incoming.data += chunk
            incoming.counted += len(chunk)
            self.buffered += len(chunk)
            if len(chunk) < CHUNK:
                break
        if request_complete(incoming.data) or self.buffered > BUFFERED_LIMIT:
            self.forget(incoming)
            conn.prefetched = bytes(incoming.data)
            conn.data_ready = True
            conn.sock.deadline = incoming.deadline
            gthread.ThreadWorker.enqueue_req(self, conn)
        elif ended:
            # The client gave up (or never started): nothing to answer.
            self.forget(incoming)
            self.nr_conns -= 1
            conn.close()
        elif answer_expect_continue(incoming.data):
            # The client waits for this before it sends the body we wait for.
            self.send_quietly(conn, b"HTTP/1.1 100 Continue\r\n\r\n")

    def forget(self, incoming: _Incoming) -> None:
        """Stop reading `incoming` in the main loop."""
        del self.incoming[incoming.conn]
        self.buffered -= incoming.counted
        self.poller.unregister(incoming.conn.sock)

    @staticmethod
    def send_quietly(conn: SimulatorConn, data: bytes) -> None:
        """Send a short answer without blocking; a client that cannot take it misses it."""
        with suppress(OSError):
            conn.sock.send(data)

    # -- deadlines (gunicorn calls murder_pending once per round of its main loop) -------------

    def murder_pending(self) -> None:
        """Close connections whose request or lingering close ran out of time."""
        super().murder_pending()
        now = time.monotonic()
        for incoming in list(self.incoming.values()):
            if incoming.deadline > now:
                break
            self.forget(incoming)
            self.nr_conns -= 1
            if incoming.data:
                self.send_quietly(incoming.conn, REQUEST_TIMEOUT_ANSWER)
                self.linger(incoming.conn)
            else:
                incoming.conn.close()
        for conn, until in list(self.lingering.items()):
            if until > now:
                break
            self.end_linger(conn)

    # -- hanging up without blocking -------------------------------------------------------

    def linger(self, conn: SimulatorConn) -> None:
        """Close gracefully: send FIN, then wait in the main loop for the client's."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            conn.close()
            return
        self.nr_conns += 1  # still an open file until it ends
        conn.drained = 0
        self.lingering[conn] = time.monotonic() + LINGER_SECONDS
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_linger_bytes, conn))

    def on_linger_bytes(self, conn: SimulatorConn, _sock: Any) -> None:
        """Discard what the client still sends; end at its close or after LINGER_BYTES."""
        for _ in range(READS_PER_EVENT):
            try:
                chunk = conn.sock.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            conn.drained += len(chunk)
            if not chunk or conn.drained >= LINGER_BYTES:
                self.end_linger(conn)
                return

    def end_linger(self, conn: SimulatorConn) -> None:
        """Close a lingering connection for good."""
        del self.lingering[conn]
        self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()
