"""Live events (`GET /api/v1/events`, Server-Sent Events) and waiting (`POST /api/v1/wait`).

Both read the `events` and `journal` tables rather than in-process state, so they work when
several worker processes share the SQLite file. A `Hub` per app turns changes into a version
number that streams and waiters sleep on: a write in this process wakes it at once through
`store.changed`; writes of other processes are seen by polling the newest event id every
`poll_seconds`. Its watcher thread runs only while someone listens.

WSGI gives an application no way to see a client leave: the server notices when a write fails
and then calls `close()` on the response iterable, which raises GeneratorExit inside the
generator (werkzeug's `run_wsgi` and gunicorn both do this; an empty chunk is never written, so
it would never fail). A write to a socket whose peer has closed still succeeds once, so pings
alone take two intervals to end a stream. Gunicorn and werkzeug also put the client's socket in
the environ: an idle stream looks at it every `GONE_CHECK_SECONDS` and ends as soon as the
client has closed it (a reloaded page), which frees its slot. Other servers rely on the pings.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any, ClassVar

from flask import Blueprint, Flask, Response, jsonify, request

from simulator.errors import BadRequest, SimulatorError, StorageUnavailable
from simulator.masking import mask_output
from simulator.matching import MATCH_SCHEMA, Match, closest, differences, matches
from simulator.records import Event, JournalEntry
from simulator.runtime import runtime
from simulator.store import JournalQuery, Store
from simulator.web import security
from simulator.web.api.control import resolve_integration
from simulator.web.declare import JSON, MAX_ID, declare, json_body, query_param
from simulator.web.hub import Hub
from simulator.web.schemas import INTEGRATION_FILTER
from simulator.web.schemas import ref as named

bp = Blueprint("events", __name__, url_prefix="/api/v1")

PING_SECONDS = 15.0
# How often an idle stream checks that its client is still there (a gone page frees its slot).
GONE_CHECK_SECONDS = 0.5
# Where WSGI servers put the client's socket.
SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")
RETRY_MS = 1000  # how soon EventSource reconnects
BATCH = 500
DEFAULT_WAIT = 10.0
MAX_WAIT = 300.0
CLOSEST = 5

WAIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "match": MATCH_SCHEMA,
        "timeout": {"type": "number", "minimum": 0, "maximum": MAX_WAIT},
        # The maximum is SQLite's: a larger id cannot even be compared (a 500, not an answer).
        "since": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
    },
}


class WaitTimedOut(SimulatorError):
    """408 from `POST /api/v1/wait`: nothing matched in time; carries the closest entries."""

    status: ClassVar[int] = 408
    wire_text: ClassVar[str] = "Timed out"

    def __init__(self, match: Match, near: list[JournalEntry], detail: str = "") -> None:
        super().__init__(detail)
        self.match = match
        self.near = near

    def body(self) -> dict[str, Any]:
        """The error, the closest entries seen (best first) and how each differs."""
        return {
            "error": self.wire_text,
            "closest": [security.shown_entry(e.as_dict()) for e in self.near],
            "differences": [differences(self.match, e) for e in self.near],
        }


def hub(app: Flask | None = None) -> Hub:
    """The app's hub."""
    return runtime(app).hub


# -- Server-Sent Events ---------------------------------------------------------------------


def frame(event: Event, secrets: Collection[str] = ()) -> str:
    """One SSE frame: id, event kind, and the event's JSON (secrets masked) on one data line."""
    shown = mask_output(event.as_dict(), secrets)
    data = json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


def _last_event_id(store: Store) -> int:
    raw = request.headers.get("Last-Event-ID")
    if raw is None or raw.strip() == "":
        raw = request.args.get("last_event_id")
    if raw is None or raw.strip() == "":
        return store.last_event_id()  # a new client gets what happens from now on
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("Last-Event-ID must be an event id (an integer)") from None
    if value < 0:
        raise BadRequest("Last-Event-ID must not be negative")
    # An id from another database (the server restarted on a fresh one): start from now
    # rather than stay silent until the numbering catches up.
    return min(value, store.last_event_id())


def _ping_seconds() -> float:
    raw = request.args.get("ping")
    if raw is None or raw == "":
        return PING_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest("ping must be a number of seconds") from None
    if not 0.1 <= value <= 300:
        raise BadRequest("ping must be between 0.1 and 300 seconds")
    return value


def peer_closed(sock: socket.socket) -> bool:
    """Whether the client has closed its side of `sock` (readable, and reading finds the end)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):  # reset, or already closed by the server
        return True


def client_gone_check(environ: dict[str, Any]) -> Callable[[], bool] | None:
    """A check that the request's client has left, when the server exposes its socket."""
    for key in SOCKET_KEYS:
        sock = environ.get(key)
        if isinstance(sock, socket.socket):
            return lambda: peer_closed(sock)
    return None


def stream_events(
    hub: Hub,
    last_id: int,
    integration_id: int | None,
    ping_seconds: float,
    client_gone: Callable[[], bool] | None = None,
) -> Iterator[str]:
    """The SSE body: events after `last_id` (of one integration and global ones), then live."""
    with hub.listening(stream=True):
        # Written at once so the client sees headers and knows the stream is open.
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        next_ping = time.monotonic() + ping_seconds
        queried: int | None = None  # the hub version the last query saw
        while not hub.stopping:
            version = hub.version
            if version != queried:
                queried = version
                try:
                    batch = hub.store.events_after(last_id, limit=BATCH)
                    secrets = security.known_secrets(hub.store) if batch else frozenset()
                except StorageUnavailable:
                    # The store logged why. End the stream whole: EventSource reconnects and
                    # meets the 503 (and resumes from Last-Event-ID once the store is back).
                    return
                for event in batch:
                    last_id = event.id
                    if integration_id is None or event.integration_id in (integration_id, None):
                        yield frame(event, secrets)
                        # Only bytes written count as a sign of life: a filtered stream whose
                        # integration is quiet still pings while others are busy.
                        next_ping = time.monotonic() + ping_seconds
                if len(batch) == BATCH:
                    queried = None  # more are waiting: query again, no sleep
                    continue
            remaining = next_ping - time.monotonic()
            if remaining <= 0:
                yield ": ping\n\n"
                next_ping = time.monotonic() + ping_seconds
                continue
            if client_gone is None:
                hub.wait(version, remaining)
            elif hub.wait(version, min(remaining, GONE_CHECK_SECONDS)) == version and client_gone():
                return  # the page went: end now and free the slot, not at the next ping


@bp.get("/events")
@declare(
    "Every change as Server-Sent Events",
    {"type": "string"},
    media="text/event-stream",
    description="Frames `id: <event id>`, `event: <kind>`, `data: <Event JSON>`; a `: ping` "
    "comment every `ping` seconds. Without Last-Event-ID the stream starts at the newest event; "
    "`last_event_id=0` replays every stored event. With `integration`, its events and global "
    "ones (integration_id null) are sent. Each data line is an `Event` (components/schemas).",
    query=(
        INTEGRATION_FILTER,
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 0},
            "description": "Resume after this event id (EventSource sends it on reconnect)",
        },
        query_param(
            "last_event_id",
            {"type": "integer", "minimum": 0, "maximum": MAX_ID},
            "Resume after this event id (when the Last-Event-ID header cannot be set)",
        ),
        query_param(
            "ping",
            {"type": "number", "minimum": 0.1, "maximum": 300, "default": PING_SECONDS},
            "Seconds between keep-alive comments",
        ),
    ),
    errors=(400, 404, 503),
)
def events() -> Response:
    """Every change as Server-Sent Events; resumes after Last-Event-ID; `?integration=` filters."""
    rt = runtime()
    target = resolve_integration(request.args.get("integration"))
    last_id = _last_event_id(rt.store)
    # A plain generator, not stream_with_context: it needs nothing from the request once
    # started, and keeping the request context alive for hours would pin it in memory.
    body = stream_events(
        hub(),
        last_id,
        target.id if target else None,
        _ping_seconds(),
        client_gone_check(request.environ),
    )
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


@bp.get("/events/stats")
@declare("Open SSE streams and pending waits of the answering worker process", named("EventStats"))
def events_stats() -> Response:
    """Open streams and pending waits of the worker process that answers (not of all workers)."""
    current = hub()
    return jsonify(
        pid=os.getpid(),
        streams=current.streams,
        waits=current.listeners - current.streams,
    )


# -- waiting for an exchange ------------------------------------------------------------------


def _newest_journal_id(store: Store) -> int:
    newest = store.journal(JournalQuery(limit=1))
    return newest[-1].id if newest else 0


def wait_for(
    hub: Hub, match: Match, *, since: int, timeout: float
) -> tuple[JournalEntry | None, list[JournalEntry]]:
    """The first entry after journal id `since` that matches, or None and the closest seen."""
    store = hub.store
    deadline = time.monotonic() + timeout
    near: list[JournalEntry] = []
    cursor = since
    with hub.listening():
        while True:
            version = hub.version
            # The journal never holds more than `journal_bound` entries: this reads every
            # entry after the cursor, oldest first, in one short transaction.
            batch = store.journal(JournalQuery(since=cursor, limit=store.journal_bound))
            for entry in batch:
                if matches(match, entry):
                    return entry, []
            if batch:
                cursor = batch[-1].id
                near = closest(match, [*near, *batch], CLOSEST)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or hub.stopping:
                return None, near
            hub.wait(version, remaining)


@bp.post("/wait")
@declare(
    "Wait until a matching exchange is journaled",
    named("JournalEntry"),
    body=WAIT_SCHEMA,
    description="Returns the first journal entry after `since` (default: the newest entry when "
    "the call starts) that meets every criterion of `match`; after `timeout` seconds (default "
    "10, max 300) answers 408 with the entries that came closest.",
    errors=(400, 404, 503),
    responses={
        408: {
            "description": "Nothing matched in time",
            "content": {JSON: {"schema": named("WaitTimedOut")}},
        }
    },
)
def wait() -> Response:
    """Block until a matching exchange is journaled (200) or the timeout passes (408)."""
    data = json_body()
    raw_match: dict[str, Any] = data.get("match") or {}
    target = resolve_integration(raw_match.get("integration"))
    match = Match.from_wire(raw_match, target.id if target else None)
    rt = runtime()
    since = data.get("since")
    if since is None:
        since = _newest_journal_id(rt.store)  # only what is journaled from now on
    timeout = float(data.get("timeout", DEFAULT_WAIT))
    found, near = wait_for(hub(), match, since=int(since), timeout=timeout)
    if found is None:
        raise WaitTimedOut(match, near, f"nothing matched {match.as_dict()} in {timeout:g} s")
    return jsonify(security.shown_entry(found.as_dict()))
