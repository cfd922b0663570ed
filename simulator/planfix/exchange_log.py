"""`serve`'s log: one line per exchange on stderr, in both directions, tokens masked.

The exchange builder calls `emit` once per finished exchange, often inside the store's write
transaction: `emit` checks the line's level (all the chat API pays when the log is off) and
queues the record; a thread per process (`Writer`) names the integration, masks, formats and
writes. `serve` installs the handler and the thread in every worker process (`configure`);
elsewhere (tests, the pytest plugin) the logger has no handler of its own and prints nothing.

Levels: a served or sent exchange at INFO; a delivery (or another call the simulator made)
that failed at WARNING; no answer at all or a 5xx at ERROR. Each line with a failure carries
its reason.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Collection, Sequence
from logging import DEBUG
from typing import TYPE_CHECKING, Any

from simulator.config.settings import LOG_FORMATS, LOG_LEVELS
from simulator.errors import StorageUnavailable
from simulator.masking import mask_output

if TYPE_CHECKING:
    from simulator.store import ExchangeRecord, Store

LOGGER = "simulator.exchange"
# The choices are the settings' (config is the lower layer); named here for the log's callers.
LEVELS = LOG_LEVELS
FORMATS = LOG_FORMATS
# Integration names and tokens are read again at most this often (a line names an
# integration by the id its exchange carries).
DIRECTORY_SECONDS = 1.0
# Lines waiting for the writer thread at most (a few hundred bytes each).
MAX_QUEUED = 10_000
# Exchanges the simulator answered (the rest it sent): (direction, the face that journaled it).
# A page or control-API request is no exchange: it is logged at DEBUG only, as "control".
CONTROL = ("control", "simulator")
_SERVED = frozenset({("to_planfix", "planfix"), ("to_chat", "fake_chat"), CONTROL})
WEBHOOK_ENDPOINT = "fake_chat_webhook.webhook"  # a Flask view, but an exchange (journaled)

log = logging.getLogger(LOGGER)
# A library's logger: silent unless the application (`serve`) gives it a handler.
log.addHandler(logging.NullHandler())


class Directory:
    """Integration names and the tokens to mask, read from the store at most once a second."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # (when read, names by id, tokens): replaced whole, so threads never see half of it.
        self._read: tuple[float, dict[int, str], frozenset[str]] = (
            -DIRECTORY_SECONDS,
            {},
            frozenset(),
        )

    def lookup(self, integration_id: int | None) -> tuple[str, frozenset[str]]:
        """The integration's name ("" for none) and every integration's tokens."""
        read_at, names, secrets = self._read
        now = time.monotonic()
        unknown = integration_id is not None and integration_id not in names
        if unknown or now - read_at > DIRECTORY_SECONDS:
            read_at, names, secrets = self._refresh(now)
        return (names.get(integration_id, "") if integration_id is not None else ""), secrets

    def _refresh(self, now: float) -> tuple[float, dict[int, str], frozenset[str]]:
        try:
            items = self.store.integrations()
        except StorageUnavailable:
            return self._read  # keep what was read last (the database may be unavailable)
        self._read = (
            now,
            {item.id: item.name for item in items},
            frozenset(t for item in items for t in (item.planfix_token, item.token) if t),
        )
        return self._read


# When it ended, its level, the exchange: all a line needs, taken inside the transaction.
Queued = tuple[float, int, "ExchangeRecord"]
_writer: Writer | None = None


def level_of(record: ExchangeRecord) -> int:
    """INFO, WARNING for a call of ours that failed, ERROR for no answer or a 5xx.

    Page and control-API requests are not exchanges: DEBUG, whatever their answer.
    """
    if (record.direction, record.party) == CONTROL:
        return DEBUG
    if record.status is None or record.status >= 500:
        return logging.ERROR
    if (record.direction, record.party) not in _SERVED and _failed(record):
        return logging.WARNING
    return logging.INFO


def _failed(record: ExchangeRecord) -> bool:
    ok = record.status is not None and 200 <= record.status < 300
    return not ok or bool(record.error) or bool(_contract_notes(record.notes))


def _contract_notes(notes: Sequence[Any]) -> list[str]:
    # A delivery's verdict is its contract note: why the answer does not count as delivered.
    return [str(n.get("text", "")) for n in notes if n.get("code") == "contract"]


def reason(record: ExchangeRecord) -> str:
    """Why an exchange failed (or was faulted): empty for a plain success."""
    parts: list[str] = []
    if (record.direction, record.party) not in _SERVED:
        parts = _contract_notes(record.notes)
    if not parts and record.error:
        parts = [record.error]
    if record.fault:
        parts.append(f"fault {record.fault}")
    return "; ".join(parts)


def fields(record: ExchangeRecord, name: str = "", secrets: Collection[str] = ()) -> dict[str, Any]:
    """The logged fields of an exchange, every text masked by the one masking function."""
    found: dict[str, Any] = {
        "direction": "in" if (record.direction, record.party) in _SERVED else "out",
        "method": record.method,
        "path": mask_output(record.url, secrets),
        "cmd": record.cmd,
        "status": record.status,
        "duration_ms": round(float(record.duration_ms), 3),
        "integration": name or None,
        "integration_id": record.integration_id,
    }
    why = reason(record)
    if why:
        # Answer bodies and network errors may quote a URL or echo a token.
        found["error"] = mask_output(why, secrets)
    return found


def emit(record: ExchangeRecord, level: int | None = None) -> None:
    """Log one finished exchange at its level; nothing is built when that level is off."""
    level = level_of(record) if level is None else level
    if not log.isEnabledFor(level):
        return
    writer = _writer
    if writer is None:
        write_line((time.time(), level, record))
    else:
        writer.put((time.time(), level, record))


def write_line(item: Queued, names: Directory | None = None) -> None:
    """Build an exchange's line and hand it to the logger's handlers."""
    created, level, record = item
    name, secrets = names.lookup(record.integration_id) if names else ("", frozenset())
    found = fields(record, name, secrets)
    # makeRecord and handle, not log.log: no stack walk for a caller nobody reads, per line.
    line = log.makeRecord(LOGGER, level, "", 0, _text(found), (), None, extra={"exchange": found})
    line.created, line.msecs = created, (created - int(created)) * 1000
    log.handle(line)


class Writer:
    """The thread that writes the lines of one process, in the order the exchanges ended.

    The builder runs inside the store's write transaction (group commit: one thread may run
    a whole batch of requests' work): there it only queues the record, and a slow or blocked
    stderr never holds the database. Past MAX_QUEUED lines waiting, new ones are dropped
    (and counted in the log once it moves again).
    """

    def __init__(self, names: Directory | None) -> None:
        self.names = names
        self.queued: deque[Queued] = deque()
        self.dropped = 0
        self.wake = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="exchange-log", daemon=True)
        self.thread.start()

    def put(self, item: Queued) -> None:
        """Queue one exchange's line (cheap: no lookup, masking or formatting here)."""
        if len(self.queued) >= MAX_QUEUED:
            self.dropped += 1  # the count may miss a few under races: it is a hint
            return
        self.queued.append(item)
        if not self.wake.is_set():
            self.wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Write what is queued, then end the thread."""
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping or self.queued:
            self.wake.wait()
            self.wake.clear()
            while self.queued:
                item = self.queued.popleft()
                try:
                    write_line(item, self.names)
                except Exception:
                    # A bug: shown with its traceback, and the lines after it still written.
                    log.exception("cannot log an exchange")
            if self.dropped:
                dropped, self.dropped = self.dropped, 0
                log.warning(
                    "%d exchange log lines dropped: stderr was not read fast enough", dropped
                )


def _clean(value: Any) -> str:
    # Values come off the wire: a newline in a path must not forge a second log line.
    text = "-" if value is None or value == "" else str(value)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _text(found: dict[str, Any]) -> str:
    """`in  POST /webchat/api  newMessage  200  3.1 ms  integration=default[  error: …]`."""
    line = (
        f"{found['direction']}  {_clean(found['method'])} {_clean(found['path'])}  "
        f"{_clean(found['cmd'])}  {_clean(found['status'])}  {found['duration_ms']:.1f} ms  "
        f"integration={_clean(found['integration'])}"
    )
    if "error" in found:
        line += f"  error: {_clean(found['error'])}"
    return line


_second: tuple[int, str] = (-1, "")


def timestamp(created: float) -> str:
    """`2026-12-04T21:30:01.123Z` (UTC, milliseconds)."""
    global _second
    whole = int(created)
    second, text = _second
    if second != whole:
        # Formatted once a second: many lines share it under load.
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, text)
    return f"{text}.{int((created - whole) * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    """`time  line`; other records of the simulator as `time  LEVEL  logger: message`."""

    def format(self, record: logging.LogRecord) -> str:
        """One line per exchange; a traceback, if any, on the lines after."""
        when = timestamp(record.created)
        if hasattr(record, "exchange"):
            return f"{when}  {record.getMessage()}"
        line = f"{when}  {record.levelname}  {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the exchange's fields, or a message, with time and level."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        head = {"time": timestamp(record.created), "level": record.levelname.lower()}
        exchange: dict[str, Any] | None = getattr(record, "exchange", None)
        if exchange is not None:
            return json.dumps({**head, **exchange}, ensure_ascii=False)
        body: dict[str, Any] = {**head, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


class _ServeHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `serve` installs (found again and replaced when configured twice)."""


def configure(level: str, output_format: str, store: Store | None = None) -> None:
    """Log the simulator's exchanges (and its other messages) to stderr at `level`."""
    global _writer
    package = logging.getLogger("simulator")
    for handler in [h for h in package.handlers if isinstance(h, _ServeHandler)]:
        package.removeHandler(handler)
    handler = _ServeHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if output_format == "json" else TextFormatter())
    package.addHandler(handler)
    package.setLevel(LEVELS[level])
    # One line per exchange even if the server (granian) gives the root logger a handler.
    package.propagate = False
    # The logging HOWTO's "Optimization": no format here or in gunicorn's log uses thread or
    # process names, and each costs calls per line (gunicorn's log does use the process id).
    logging.logMultiprocessing = logging.logThreads = False
    if _writer is not None:
        _writer.stop()
    else:
        atexit.register(_stop)
    _writer = Writer(Directory(store) if store is not None else None)


def _stop() -> None:
    # At a worker's exit: the lines of its last exchanges still get written.
    if _writer is not None:
        _writer.stop()
