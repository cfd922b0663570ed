"""The only mutable state: one SQLite database behind one class.

Every public method is one transaction; inside `transaction()` (one /webchat/api request: its
command and its journal entry) they join the open one through savepoints and commit together.
Writers take SQLite's write lock up front, on the one connection of the process that writes
(`BEGIN IMMEDIATE`), so task and contact numbers are taken atomically even when several worker
processes share the file. Each change also appends an event row in the same transaction; the SSE
stream and `wait` read those rows, which is what makes them work across processes.
"""

from __future__ import annotations

import fcntl
import functools
import hmac
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from simulator.contract import (
    Attachment,
    ContactInfo,
    Employee,
    HistoryLine,
    Integration,
    NewMessage,
    Note,
    Options,
    Retry,
    UpdateContact,
    contact_display_name,
    default_task_title,
    history_description,
)
from simulator.errors import BadRequest, NotFound, StorageUnavailable
from simulator.records import (
    ChatRecord,
    ContactRecord,
    DeliveryRecord,
    Event,
    FakeChat,
    InboxItem,
    JournalEntry,
    MessageRecord,
    TaskRecord,
)

log = logging.getLogger("simulator")

# SQLite's primary result codes that blame the file, not the request: the store answers 503.
_STORAGE_CODES = frozenset(
    {
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOTADB,
    }
)
# Of those, the ones no retry cures: the store refuses everything until it is restarted.
_BROKEN_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS integrations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    planfix_token TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL,
    url TEXT NOT NULL,
    profile TEXT NOT NULL,
    strict INTEGER NOT NULL,
    task_fields TEXT NOT NULL,
    default_employee TEXT,
    options TEXT NOT NULL,
    timeout REAL NOT NULL,
    retry TEXT NOT NULL,
    faults TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS employees (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    ico TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contacts (
    pk INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL,
    provider_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    number INTEGER NOT NULL UNIQUE,
    name TEXT NOT NULL, last_name TEXT NOT NULL, ico TEXT NOT NULL,
    email TEXT NOT NULL, phone TEXT NOT NULL, data TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    UNIQUE (integration_id, provider_id, contact_id)
);
CREATE TABLE IF NOT EXISTS chats (
    pk INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL,
    provider_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    contact_pk INTEGER,
    task_number INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE (integration_id, provider_id, chat_id)
);
CREATE TABLE IF NOT EXISTS tasks (
    number INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL,
    chat_pk INTEGER NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    fields TEXT NOT NULL,
    previous_number INTEGER,
    last_read_pk INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_integration ON tasks (integration_id);
CREATE TABLE IF NOT EXISTS messages (
    pk INTEGER PRIMARY KEY,
    task_number INTEGER NOT NULL,
    integration_id INTEGER NOT NULL,
    direction TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    author TEXT NOT NULL,
    employee_email TEXT NOT NULL,
    attachments TEXT NOT NULL,
    message_id TEXT NOT NULL,
    delivery_state TEXT NOT NULL,
    delivery_note TEXT NOT NULL,
    status TEXT NOT NULL,
    status_text TEXT NOT NULL,
    channel TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_task ON messages (task_number);
CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL,
    message_pk INTEGER,
    variant TEXT NOT NULL,
    form TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    claimed_by TEXT,
    outcome TEXT NOT NULL DEFAULT '',
    answer TEXT NOT NULL DEFAULT '{}',
    task_number INTEGER,
    lease_until REAL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    integration_id INTEGER NOT NULL,
    variant TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    contact_phone TEXT NOT NULL,
    channel TEXT NOT NULL,
    message TEXT NOT NULL,
    message_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    user_last_name TEXT NOT NULL,
    user_ico TEXT NOT NULL,
    task_email TEXT NOT NULL,
    attachments TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_chat ON inbox (integration_id, chat_id);
CREATE TABLE IF NOT EXISTS fake_chats (
    pk INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL,
    provider_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    contact_name TEXT NOT NULL,
    contact_phone TEXT NOT NULL,
    channel TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (integration_id, provider_id, chat_id)
);
CREATE TABLE IF NOT EXISTS fault_marks (
    request_id TEXT PRIMARY KEY,
    fault TEXT NOT NULL,
    t REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused after a reset: `since` stays meaningful
    ts TEXT NOT NULL,
    t REAL NOT NULL,
    integration_id INTEGER,
    direction TEXT NOT NULL,
    party TEXT NOT NULL,
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    cmd TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    form TEXT NOT NULL,
    request_headers TEXT NOT NULL,
    status INTEGER,
    response_body TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    notes TEXT NOT NULL,
    fault TEXT NOT NULL,
    error TEXT NOT NULL,
    delivery_id INTEGER
);
CREATE INDEX IF NOT EXISTS journal_integration ON journal (integration_id, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    integration_id INTEGER,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
"""

# Numbering lives in `counters`; a global reset starts these sequences again.
TASK_COUNTER = "task_number"
CONTACT_COUNTER = "contact_number"
MESSAGE_COUNTER = "message_id"
# The journal's running size in bytes (kept up to date by every insert and delete).
JOURNAL_BYTES_COUNTER = "journal_bytes"
CUT_NOTE = "journal-cut"
# What a journal row costs beyond its text columns (numbers, the row header): an estimate.
ROW_OVERHEAD = 64
_TEXT_COLUMNS = (
    "ts", "direction", "party", "method", "url", "cmd", "chat_id", "form",
    "request_headers", "response_body", "notes", "fault", "error",
)  # fmt: skip
# The same sum in SQL, for rows about to be deleted (TEXT is stored as UTF-8).
_ROW_BYTES_SQL = " + ".join(
    [f"length(CAST({c} AS BLOB))" for c in _TEXT_COLUMNS] + [str(ROW_OVERHEAD)]
)
_SUM_JOURNAL_BYTES = f"SELECT COALESCE(SUM({_ROW_BYTES_SQL}), 0) FROM journal"  # noqa: S608


def now_iso(t: float | None = None) -> str:
    """UTC timestamp with milliseconds, as shown in the journal and the UI."""
    # Rounded to the microsecond first, as datetime.fromtimestamp does, then cut to the ms.
    return _iso_ms(round((time.time() if t is None else t) * 1_000_000) // 1000)


@functools.lru_cache(maxsize=64)
def _iso_ms(ms: int) -> str:
    # One request stamps four rows within the same millisecond or two: format each once.
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Filed:
    """What `newMessage` did: where the message went and what it created."""

    task_number: int
    task_created: bool
    message_pk: int
    contact_number: int
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class ExchangeRecord:
    """A request and its answer, ready to journal."""

    direction: str
    party: str
    method: str
    url: str
    cmd: str = ""
    chat_id: str = ""
    form: Sequence[Sequence[str]] = ()
    request_headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    response_body: str = ""
    duration_ms: float = 0.0
    notes: Sequence[dict[str, Any]] = ()
    fault: str = ""
    error: str = ""
    integration_id: int | None = None
    delivery_id: int | None = None


@dataclass(frozen=True)
class JournalQuery:
    """Filters of `GET /api/v1/journal`."""

    integration_id: int | None = None
    cmd: str | None = None
    direction: str | None = None
    status: int | None = None
    since: int | None = None  # journal id: entries after it
    before: int | None = None  # journal id: entries before it (the next page's cursor)
    ids: Sequence[int] | None = None
    limit: int = 1000


class Store:
    """SQLite-backed state of one simulated Planfix account and its fake chat."""

    def __init__(
        self,
        path: str,
        *,
        journal_retention: int = 10_000,
        journal_entry_bytes: int = 65_536,
        journal_bytes: int = 67_108_864,
        task_number_start: int = 1000,
        contact_number_start: int = 5000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.journal_retention = journal_retention
        self.journal_entry_bytes = journal_entry_bytes
        self.journal_bytes = journal_bytes
        self.task_number_start = task_number_start
        self.contact_number_start = contact_number_start
        self.clock = clock
        self._local = threading.local()
        # One connection per thread, with the thread that owns it: a threaded server starts a
        # thread per client, so connections of ended threads are closed as new ones open.
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._lock_fd = -1
        self._writer_db: sqlite3.Connection | None = None
        self._integrations_cache: tuple[str, list[Integration]] | None = None
        # Group commit (`batched`): work waiting for the thread that commits for everyone.
        self._batch_lock = threading.Lock()
        self._batch: list[_Job[Any]] = []
        self._batch_led = False
        # Wakes SSE streams and waiters of this process at once; others poll the events table.
        self.changed = threading.Condition()
        # The file's health. `_identity` is the (device, inode) this store opened: another one
        # at the path means the file was deleted or replaced. `_stamp` is the main file's
        # (mtime, size) as this process last wrote or verified it: a change made by anyone
        # else gets its pages checked. `_broken` is sticky (a restart cures it), `_failing`
        # is not (space may return).
        self._identity: tuple[int, int] | None = None
        self._stamp: tuple[int, int] = (0, 0)
        self._broken = ""
        self._failing = ""
        with self._write() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', ?)",
                (uuid.uuid4().hex,),
            )
            self._init_counters(db, replace_existing=False)
            # A database of an older release has no running size yet: sum it once.
            if not db.execute(
                "SELECT 1 FROM counters WHERE name = ?", (JOURNAL_BYTES_COUNTER,)
            ).fetchone():
                db.execute(
                    "INSERT INTO counters (name, value) VALUES (?, ?)",
                    (JOURNAL_BYTES_COUNTER, db.execute(_SUM_JOURNAL_BYTES).fetchone()[0]),
                )
        self.instance_id = self._read_meta("instance")
        found = os.stat(self.path)
        self._identity = (found.st_dev, found.st_ino)
        self._stamp = (found.st_mtime_ns, found.st_size)

    # -- connections and transactions ------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        target = self.path
        if self._identity is not None:
            # Once the file exists, never create it again: a connection opened after the file
            # was deleted would otherwise start a new, empty database at the path.
            target = f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=rw"
        # check_same_thread=False: the writer is shared by the threads that hold the write
        # lock, and a reader may be closed by another thread once its owner has ended.
        try:
            db = sqlite3.connect(
                target,
                timeout=30.0,
                isolation_level=None,
                check_same_thread=False,
                uri=self._identity is not None,
            )
        except sqlite3.Error as exc:
            raise self._storage_failure(exc) or exc from exc
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout=30000")
            # Switching to WAL takes an exclusive lock; worker processes opening a file that
            # is already WAL (the CLI creates it first) must not race for it.
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            db.close()
            raise self._storage_failure(exc) or exc from exc
        return db

    # -- the file's health -------------------------------------------------------------------

    def _storage_failure(self, exc: sqlite3.Error) -> StorageUnavailable | None:
        """The 503 an SQLite error stands for when the file is at fault (logged once)."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or code & 0xFF not in _STORAGE_CODES:
            return None  # a bug or a constraint: not the disk's doing
        reason = f"{exc} ({getattr(exc, 'sqlite_errorname', code)})"
        if code & 0xFF in _BROKEN_CODES:
            return self._break(reason)
        if not self._failing:
            log.error("database %s cannot be written: %s; writes answer 503", self.path, reason)
        self._failing = reason
        return StorageUnavailable(reason)

    def _break(self, reason: str) -> StorageUnavailable:
        """Refuse every later call: the file can no longer be trusted (logged once)."""
        if not self._broken:
            self._broken = reason
            log.error(
                "database %s: %s; every request answers 503 until the simulator is restarted"
                " on a sound file",
                self.path,
                reason,
            )
        return StorageUnavailable(self._broken)

    def _check_file(self) -> os.stat_result | None:
        """Raise StorageUnavailable unless the path still names the file this store opened."""
        # One stat (~2 µs) per transaction: the hot path commits for many requests at once.
        if self._broken:
            raise StorageUnavailable(self._broken)
        if self._identity is None:
            return None  # still creating it
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            raise self._break("the file was deleted while serving") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot stat the file: {exc}") from exc
        if (found.st_dev, found.st_ino) != self._identity:
            raise self._break("the file was replaced by another file while serving")
        return found

    def _verify(self, db: sqlite3.Connection, found: os.stat_result) -> None:
        """Check the pages when someone other than this process changed the main file."""
        stamp = (found.st_mtime_ns, found.st_size)
        if stamp == self._stamp:
            return
        # Another process wrote it: a worker's checkpoint, or damage. SQLite would go on
        # using its cached pages, so drop them and read every page back (~15 ms per 20 MB).
        db.execute("PRAGMA shrink_memory")
        problem = str(db.execute("PRAGMA quick_check(1)").fetchone()[0])
        if problem != "ok":
            problem = " ".join(problem.replace("*** in database main ***", "").split())
            raise self._break(f"database disk image is malformed: {problem}")
        self._stamp = stamp

    def _wrote(self) -> None:
        """After a commit: space is back if it was gone, and the file's changes are ours."""
        if self._failing:
            log.warning("database %s: writes succeed again", self.path)
            self._failing = ""
        if self._identity is not None:
            # An automatic checkpoint of this commit changed the main file: not damage.
            with suppress(OSError):
                found = os.stat(self.path)
                self._stamp = (found.st_mtime_ns, found.st_size)

    def _rollback(self, db: sqlite3.Connection) -> None:
        """End the writer's transaction, whatever state a failed statement left it in."""
        # SQLite rolls back on its own after some I/O errors (then ROLLBACK fails, harmlessly);
        # a writer that cannot roll back is closed, which does, and reopened next time.
        with suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        if db.in_transaction:
            with suppress(sqlite3.Error):
                db.close()
            self._writer_db = None

    @property
    def _writer(self) -> sqlite3.Connection:
        if self._writer_db is None:  # opened by the outermost `_write` before `writing` is set
            raise RuntimeError("no write transaction is open")
        return self._writer_db

    def _connection(self) -> sqlite3.Connection:
        if getattr(self._local, "writing", False):
            return self._writer  # this thread holds the write lock
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._open()
            self._local.db = db
            with self._lock:
                kept = []
                for owner, other in self._connections:
                    if owner.is_alive():
                        kept.append((owner, other))
                    else:
                        other.close()
                kept.append((threading.current_thread(), db))
                self._connections = kept
        return db

    @property
    def open_connections(self) -> int:
        """How many SQLite connections are open (one per live thread that used the store)."""
        with self._lock:
            return len(self._connections)

    @contextmanager
    def _process_lock(self) -> Iterator[None]:
        # Worker processes queue on an flock of a sidecar file: the kernel wakes the next
        # writer when the lock is released, where SQLite's busy handler would sleep and poll.
        if self._lock_fd < 0:
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if getattr(self._local, "writing", False):
            db = self._writer
            if not db.in_transaction:
                # An earlier piece of this transaction failed on the disk and SQLite rolled
                # it all back: SAVEPOINT would start (and RELEASE commit) a new one.
                raise StorageUnavailable(self._failing or self._broken or "transaction lost")
            # Inside `transaction()` on this thread: join it. A savepoint keeps "a method that
            # fails changes nothing" while the outer transaction goes on (and commits).
            db.execute("SAVEPOINT nested")
            try:
                yield db
            except BaseException as exc:
                try:
                    db.execute("ROLLBACK TO nested")
                    db.execute("RELEASE nested")
                except sqlite3.Error:
                    pass  # the whole transaction is gone: the outermost level fails too
                if isinstance(exc, sqlite3.Error):
                    failure = self._storage_failure(exc)
                    if failure is not None:
                        raise failure from exc
                raise
            db.execute("RELEASE nested")
            return
        # Threads of one process queue on a mutex: SQLite's busy handler would make them sleep
        # and poll (up to 100 ms a try), which is what made p99 latency jump under load.
        # Other processes still meet at BEGIN IMMEDIATE.
        with self._write_lock, self._process_lock():
            found = self._check_file()
            try:
                # One connection per process does all the writing: SQLite drops a
                # connection's page cache whenever another connection has written, so a
                # writer per thread would start every transaction cold.
                if self._writer_db is None:
                    self._writer_db = self._open()
                db = self._writer_db
                if found is not None:
                    self._verify(db, found)
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._storage_failure(exc) or exc from exc
            self._local.writing = True
            try:
                yield db
            except BaseException as exc:
                self._rollback(db)
                if isinstance(exc, sqlite3.Error):
                    failure = self._storage_failure(exc)
                    if failure is not None:
                        raise failure from exc
                raise
            finally:
                self._local.writing = False
            try:
                if not db.in_transaction:  # rolled back by SQLite after a disk error
                    raise StorageUnavailable(self._failing or self._broken or "transaction lost")
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                # A failed COMMIT (disk full) leaves the transaction open, holding SQLite's
                # write lock: end it, or no later write of any process could start.
                self._rollback(db)
                raise self._storage_failure(exc) or exc from exc
            self._wrote()
        with self.changed:
            self.changed.notify_all()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction around several calls: this thread's store calls inside join it."""
        # It commits, and wakes event streams, once at the end.
        with self._write():
            yield

    def batched(self, work: Callable[[], T]) -> T:
        """Run `work` in a write transaction shared with other threads' work (group commit)."""
        # Under load, threads of a process queue here and one of them commits for all: one
        # lock hand-off, one BEGIN and one COMMIT serve many requests. Each piece of work has
        # its own savepoint, so one that fails changes nothing and the rest still commit.
        # Work runs on whichever thread leads the batch: it must not use thread-locals.
        job = _Job(work)
        with self._batch_lock:
            self._batch.append(job)
            lead = not self._batch_led
            self._batch_led = True
        if not lead:
            job.done.acquire()  # released when its batch is done, or to promote it
            lead = job.promoted  # the last leader handed the next batch to this thread
        if lead:
            self._lead_batch()
        return job.result()

    def _lead_batch(self) -> None:
        with self._batch_lock:
            batch, self._batch = self._batch, []
        try:
            with self._write():
                for job in batch:
                    try:
                        with self._write():  # a savepoint
                            job.value = job.work()
                    except BaseException as exc:  # raised again in the thread that asked
                        job.error = exc
        except BaseException as exc:  # BEGIN or COMMIT failed: none of the batch was kept
            for job in batch:
                job.error = job.error or exc
        finally:
            with self._batch_lock:
                if self._batch:
                    # Whoever waits longest leads next; this thread goes back to its request.
                    self._batch[0].promoted = True
                    self._batch[0].done.release()
                else:
                    self._batch_led = False
            for job in batch:
                job.done.release()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if getattr(self._local, "writing", False):
            yield self._writer  # inside this thread's write transaction: sees its writes
            return
        self._check_file()
        db = self._connection()
        try:
            db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise self._storage_failure(exc) or exc from exc
        try:
            yield db
        except BaseException as exc:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                failure = self._storage_failure(exc)
                if failure is not None:
                    raise failure from exc
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._storage_failure(exc) or exc from exc

    def close(self) -> None:
        """Close every connection this store opened (all threads)."""
        with self._lock:
            for _, db in self._connections:
                with suppress(sqlite3.ProgrammingError):
                    db.close()
            self._connections.clear()
        with self._write_lock:
            if self._writer_db is not None:
                self._writer_db.close()
                self._writer_db = None
        with self._lock:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
        self._local = threading.local()

    def _read_meta(self, key: str) -> str:
        with self._read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else ""

    def _init_counters(self, db: sqlite3.Connection, *, replace_existing: bool) -> None:
        verb = "INSERT OR REPLACE" if replace_existing else "INSERT OR IGNORE"
        for name, start in (
            (TASK_COUNTER, self.task_number_start),
            (CONTACT_COUNTER, self.contact_number_start),
            (MESSAGE_COUNTER, 1),
        ):
            db.execute(f"{verb} INTO counters (name, value) VALUES (?, ?)", (name, start - 1))

    @staticmethod
    def _next(db: sqlite3.Connection, name: str) -> int:
        row = db.execute(
            "UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value", (name,)
        ).fetchone()
        return int(row[0])

    def _now(self) -> str:
        return now_iso(self.clock())

    def _emit(
        self, db: sqlite3.Connection, event: str, integration_id: int | None, /, **data: Any
    ) -> None:
        cur = db.execute(
            "INSERT INTO events (ts, integration_id, kind, data) VALUES (?, ?, ?, ?)",
            (self._now(), integration_id, event, json.dumps(data)),
        )
        # Events are bounded like the journal: a long soak keeps a flat store.
        limit = max(self.journal_retention, 1) * 4
        if cur.lastrowid and _prune_now(cur.lastrowid, limit):
            db.execute("DELETE FROM events WHERE id <= ?", (cur.lastrowid - limit,))

    # -- integrations and employees --------------------------------------------------------

    @staticmethod
    def _integration(row: sqlite3.Row) -> Integration:
        options = json.loads(row["options"])
        retry = json.loads(row["retry"])
        return Integration(
            id=row["id"],
            name=row["name"],
            planfix_token=row["planfix_token"],
            token=row["token"],
            url=row["url"],
            profile=row["profile"],
            strict=bool(row["strict"]),
            task_fields=tuple(json.loads(row["task_fields"])),
            default_employee=row["default_employee"],
            options=Options(**options),
            timeout=row["timeout"],
            retry=Retry(
                enabled=retry["enabled"],
                schedule=tuple(retry["schedule"]),
                time_factor=retry["time_factor"],
            ),
        )

    @staticmethod
    def _integration_values(item: Integration) -> tuple[Any, ...]:
        return (
            item.name,
            item.planfix_token,
            item.token,
            item.url,
            item.profile,
            int(item.strict),
            json.dumps(list(item.task_fields)),
            item.default_employee,
            json.dumps(
                {
                    "new_task_when_closed": item.options.new_task_when_closed,
                    "rename_task_on_title": item.options.rename_task_on_title,
                }
            ),
            item.timeout,
            json.dumps(
                {
                    "enabled": item.retry.enabled,
                    "schedule": list(item.retry.schedule),
                    "time_factor": item.retry.time_factor,
                }
            ),
        )

    def add_integration(self, item: Integration) -> Integration:
        """Create an integration; its name and Planfix token must be new."""
        try:
            with self._write() as db:
                cur = db.execute(
                    "INSERT INTO integrations (name, planfix_token, token, url, profile, strict,"
                    " task_fields, default_employee, options, timeout, retry, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*self._integration_values(item), self._now()),
                )
                created = replace(item, id=int(cur.lastrowid or 0))
                self._emit(db, "integration.created", created.id, name=created.name)
                self._bump_integrations(db)
        except sqlite3.IntegrityError as exc:
            raise BadRequest("an integration with that name or planfix_token exists") from exc
        return created

    def save_integration(self, item: Integration) -> Integration:
        """Replace an existing integration's settings."""
        try:
            with self._write() as db:
                cur = db.execute(
                    "UPDATE integrations SET name = ?, planfix_token = ?, token = ?, url = ?,"
                    " profile = ?, strict = ?, task_fields = ?, default_employee = ?, options = ?,"
                    " timeout = ?, retry = ? WHERE id = ?",
                    (*self._integration_values(item), item.id),
                )
                if cur.rowcount == 0:
                    raise NotFound(f"integration {item.id}")
                self._emit(db, "integration.changed", item.id, name=item.name)
                self._bump_integrations(db)
        except sqlite3.IntegrityError as exc:
            raise BadRequest("an integration with that name or planfix_token exists") from exc
        return item

    def upsert_integration(self, item: Integration) -> None:
        """Apply a configured integration at start, unless its declaration is the one applied last.

        What a user changed since (control API, sandbox) survives a restart; a declaration that
        changed in the configuration is applied again, over the stored settings.
        """
        # The declaration as applied, kept to tell an edited configuration from a restart.
        declared = json.dumps(asdict(replace(item, id=0)), sort_keys=True)
        key = f"declared_integration:{item.name}"
        with self._write() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] == declared:
                return  # unchanged: the stored state wins, even a rename or a deletion
            existing = self.integration_by_name(item.name)
            if existing is None:
                self.add_integration(item)
            else:
                self.save_integration(replace(item, id=existing.id))
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, declared),
            )

    def integrations(self) -> list[Integration]:
        """Every integration, oldest first."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM integrations ORDER BY id").fetchall()
        return [self._integration(r) for r in rows]

    def integration(self, integration_id: int) -> Integration:
        """One integration by id; NotFound when there is none."""
        with self._read() as db:
            row = db.execute(
                "SELECT * FROM integrations WHERE id = ?", (integration_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"integration {integration_id}")
        return self._integration(row)

    def integration_by_name(self, name: str) -> Integration | None:
        """One integration by name, or None."""
        with self._read() as db:
            row = db.execute("SELECT * FROM integrations WHERE name = ?", (name,)).fetchone()
        return self._integration(row) if row else None

    @staticmethod
    def _bump_integrations(db: sqlite3.Connection) -> None:
        # Every process caches integrations for token lookups; this counter tells them to reload.
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('integrations_version', '1')"
            " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def _integrations_cached(self) -> list[Integration]:
        # Every /webchat/api request looks its token up: one indexed read of the version
        # instead of reading and decoding every integration.
        with self._read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'integrations_version'").fetchone()
            version = str(row[0]) if row else ""
            cached = self._integrations_cache
            if cached is not None and cached[0] == version:
                return cached[1]
            rows = db.execute("SELECT * FROM integrations ORDER BY id").fetchall()
        items = [self._integration(r) for r in rows]
        self._integrations_cache = (version, items)
        return items

    def secret_values(self) -> frozenset[str]:
        """Every integration's tokens: what outputs mask wherever it appears."""
        try:
            items = self._integrations_cached()
        except StorageUnavailable:
            # Error answers are masked too: with the file gone, mask the tokens last read.
            cached = self._integrations_cache
            items = cached[1] if cached is not None else []
        return frozenset(t for i in items for t in (i.planfix_token, i.token) if t)

    def integration_by_token(self, planfix_token: str) -> Integration | None:
        """The integration whose Planfix token this is, compared in constant time."""
        found: Integration | None = None
        given = planfix_token.encode()
        for item in self._integrations_cached():
            # Compare against every integration so timing does not reveal which one matched.
            if hmac.compare_digest(item.planfix_token.encode(), given):
                found = item
        return found

    def faults(self, integration_id: int) -> dict[str, Any]:
        """The fault plan of an integration (empty when none)."""
        with self._read() as db:
            row = db.execute(
                "SELECT faults FROM integrations WHERE id = ?", (integration_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"integration {integration_id}")
        result: dict[str, Any] = json.loads(row["faults"])
        return result

    def set_faults(self, integration_id: int, faults: dict[str, Any]) -> None:
        """Replace an integration's fault plan."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE integrations SET faults = ? WHERE id = ?",
                (json.dumps(faults), integration_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"integration {integration_id}")
            self._emit(db, "faults.changed", integration_id, faults=faults)

    def take_fault(
        self,
        integration_id: int,
        side: str,
        decide: Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any] | None]],
    ) -> dict[str, Any] | None:
        """Let `decide` consume the fault planned for `side` in one transaction.

        `decide(plan)` returns the plan to keep (counters, RNG state) and the fault to inject
        now, or None; doing it inside the write lock keeps counts and seeded draws exact when
        several processes share the store.
        """
        # Most calls have no plan: a read answers them without taking the write lock (and
        # without waking every SSE stream, as each commit does).
        with self._read() as db:
            row = db.execute(
                "SELECT faults FROM integrations WHERE id = ?", (integration_id,)
            ).fetchone()
        if row is None or not json.loads(row["faults"]).get(side):
            return None
        with self._write() as db:
            row = db.execute(
                "SELECT faults FROM integrations WHERE id = ?", (integration_id,)
            ).fetchone()
            if row is None:
                return None
            faults = json.loads(row["faults"])
            plan = faults.get(side)
            if not plan:
                return None
            kept, injected = decide(plan)
            faults[side] = kept
            db.execute(
                "UPDATE integrations SET faults = ? WHERE id = ?",
                (json.dumps(faults), integration_id),
            )
            return injected

    def add_employee(self, employee: Employee) -> Employee:
        """Add an employee, or update the one with that e-mail."""
        with self._write() as db:
            row = db.execute(
                "INSERT INTO employees (email, name, last_name, ico) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (email) DO UPDATE SET name = excluded.name,"
                " last_name = excluded.last_name, ico = excluded.ico RETURNING id",
                (employee.email, employee.name, employee.last_name, employee.ico),
            ).fetchone()
            self._emit(db, "employee.changed", None, email=employee.email)
        return replace(employee, id=int(row[0]))

    def employees(self) -> list[Employee]:
        """Every employee, in the order they were added."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM employees ORDER BY id").fetchall()
        return [Employee(r["id"], r["email"], r["name"], r["last_name"], r["ico"]) for r in rows]

    # -- contacts ------------------------------------------------------------------------

    @staticmethod
    def _contact(row: sqlite3.Row) -> ContactRecord:
        return ContactRecord(
            pk=row["pk"],
            integration_id=row["integration_id"],
            provider_id=row["provider_id"],
            contact_id=row["contact_id"],
            number=row["number"],
            name=row["name"],
            last_name=row["last_name"],
            ico=row["ico"],
            email=row["email"],
            phone=row["phone"],
            data=row["data"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def _find_contact(
        self, db: sqlite3.Connection, integration_id: int, provider_id: str, contact_id: str
    ) -> ContactRecord | None:
        row = db.execute(
            "SELECT * FROM contacts WHERE integration_id = ? AND provider_id = ?"
            " AND contact_id = ?",
            (integration_id, provider_id, contact_id),
        ).fetchone()
        return self._contact(row) if row else None

    def _create_contact(
        self, db: sqlite3.Connection, integration_id: int, provider_id: str, info: ContactInfo
    ) -> ContactRecord:
        number = self._next(db, CONTACT_COUNTER)
        now = self._now()
        db.execute(
            "INSERT INTO contacts (integration_id, provider_id, contact_id, number, name,"
            " last_name, ico, email, phone, data, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                integration_id,
                provider_id,
                info.contact_id,
                number,
                info.name or "",
                info.last_name or "",
                info.ico or "",
                info.email or "",
                info.phone or "",
                info.data or "",
                now,
                now,
            ),
        )
        self._emit(db, "contact.created", integration_id, number=number, contactId=info.contact_id)
        found = self._find_contact(db, integration_id, provider_id, info.contact_id)
        assert found is not None  # noqa: S101 - inserted just above in this transaction
        return found

    def contact(
        self, integration_id: int, provider_id: str, contact_id: str
    ) -> ContactRecord | None:
        """A contact by its chat-side identity, or None."""
        with self._read() as db:
            return self._find_contact(db, integration_id, provider_id, contact_id)

    @staticmethod
    def _listing(select: str, integration_id: int | None, order: str) -> tuple[str, list[Any]]:
        """`select`, narrowed to one integration when given, in `order`: the lists' query."""
        if integration_id is None:
            return f"{select} ORDER BY {order}", []
        return f"{select} WHERE integration_id = ? ORDER BY {order}", [integration_id]

    def contacts(self, integration_id: int | None = None) -> list[ContactRecord]:
        """Contacts, newest first, optionally of one integration."""
        sql, args = self._listing("SELECT * FROM contacts", integration_id, "pk DESC")
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [self._contact(r) for r in rows]

    def update_contact(
        self, integration_id: int, command: UpdateContact, *, create_unknown: bool
    ) -> ContactRecord | None:
        """Apply updateContact; an unknown contact is created only when `create_unknown`."""
        info = command.contact
        with self._write() as db:
            found = self._find_contact(db, integration_id, command.provider_id, info.contact_id)
            if found is None:
                if not create_unknown:
                    return None
                return self._create_contact(db, integration_id, command.provider_id, info)
            changes = {
                "name": info.name,
                "last_name": info.last_name,
                "ico": info.ico,
                "email": info.email,
                "phone": info.phone,
                "data": info.data,
            }
            given = {k: v for k, v in changes.items() if v is not None}
            sets = ", ".join(f"{k} = ?" for k in given)
            db.execute(
                f"UPDATE contacts SET {sets}, updated_at = ? WHERE pk = ?",  # noqa: S608
                (*given.values(), self._now(), found.pk),
            )
            self._emit(
                db,
                "contact.updated",
                integration_id,
                number=found.number,
                contactId=info.contact_id,
                changed=sorted(given),
            )
            return self._find_contact(db, integration_id, command.provider_id, info.contact_id)

    # -- chats, tasks, messages ------------------------------------------------------------

    @staticmethod
    def _chat(row: sqlite3.Row) -> ChatRecord:
        return ChatRecord(
            pk=row["pk"],
            integration_id=row["integration_id"],
            provider_id=row["provider_id"],
            chat_id=row["chat_id"],
            channel=row["channel"],
            contact_pk=row["contact_pk"],
            task_number=row["task_number"],
        )

    def _find_chat(
        self, db: sqlite3.Connection, integration_id: int, provider_id: str, chat_id: str
    ) -> ChatRecord | None:
        row = db.execute(
            "SELECT * FROM chats WHERE integration_id = ? AND provider_id = ? AND chat_id = ?",
            (integration_id, provider_id, chat_id),
        ).fetchone()
        return self._chat(row) if row else None

    def _create_task(
        self,
        db: sqlite3.Connection,
        integration_id: int,
        chat: ChatRecord,
        title: str,
        description: str,
        previous: int | None,
    ) -> int:
        number = self._next(db, TASK_COUNTER)
        now = self._now()
        db.execute(
            "INSERT INTO tasks (number, integration_id, chat_pk, title, description, status,"
            " fields, previous_number, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'active', '{}', ?, ?, ?)",
            (number, integration_id, chat.pk, title, description, previous, now, now),
        )
        db.execute("UPDATE chats SET task_number = ? WHERE pk = ?", (number, chat.pk))
        self._emit(
            db,
            "task.created",
            integration_id,
            number=number,
            title=title,
            chatId=chat.chat_id,
            previous=previous,
        )
        return number

    def _ensure_chat(
        self,
        db: sqlite3.Connection,
        integration_id: int,
        provider_id: str,
        chat_id: str,
        channel: str | None,
        contact_pk: int | None,
    ) -> ChatRecord:
        chat = self._find_chat(db, integration_id, provider_id, chat_id)
        if chat is None:
            cur = db.execute(
                "INSERT INTO chats (integration_id, provider_id, chat_id, channel, contact_pk,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (integration_id, provider_id, chat_id, channel or "", contact_pk, self._now()),
            )
            return ChatRecord(
                pk=int(cur.lastrowid or 0),
                integration_id=integration_id,
                provider_id=provider_id,
                chat_id=chat_id,
                channel=channel or "",
                contact_pk=contact_pk,
                task_number=None,
            )
        # The row is known: update it and return what it now holds, without reading it again.
        if channel and channel != chat.channel:
            db.execute("UPDATE chats SET channel = ? WHERE pk = ?", (channel, chat.pk))
            chat = replace(chat, channel=channel)
        if contact_pk is not None and chat.contact_pk is None:
            db.execute("UPDATE chats SET contact_pk = ? WHERE pk = ?", (contact_pk, chat.pk))
            chat = replace(chat, contact_pk=contact_pk)
        return chat

    def _history(self, db: sqlite3.Connection, chat_pk: int) -> list[HistoryLine]:
        rows = db.execute(
            "SELECT m.created_at, m.author, m.text FROM messages m"
            " JOIN tasks t ON t.number = m.task_number WHERE t.chat_pk = ? ORDER BY m.pk",
            (chat_pk,),
        ).fetchall()
        return [HistoryLine(r["created_at"], r["author"], r["text"]) for r in rows]

    def _insert_message(
        self,
        db: sqlite3.Connection,
        *,
        task_number: int,
        integration_id: int,
        direction: str,
        kind: str,
        text: str,
        author: str,
        employee_email: str = "",
        attachments: Sequence[Attachment] = (),
        message_id: str = "",
        delivery_state: str = "",
        channel: str = "",
    ) -> int:
        now = self._now()
        cur = db.execute(
            "INSERT INTO messages (task_number, integration_id, direction, kind, text, author,"
            " employee_email, attachments, message_id, delivery_state, delivery_note, status,"
            " status_text, channel, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', '', ?, ?)",
            (
                task_number,
                integration_id,
                direction,
                kind,
                text,
                author,
                employee_email,
                json.dumps([[a.name, a.url] for a in attachments]),
                message_id,
                delivery_state,
                channel,
                now,
            ),
        )
        db.execute("UPDATE tasks SET updated_at = ? WHERE number = ?", (now, task_number))
        pk = int(cur.lastrowid or 0)
        self._emit(
            db,
            f"message.{direction}",
            integration_id,
            id=pk,
            task=task_number,
            kind=kind,
            author=author,
            text=text,
            messageId=message_id,
        )
        return pk

    def file_message(
        self, integration: Integration, command: NewMessage, author: Employee | None
    ) -> Filed:
        """newMessage: file the message in its chat's task, creating contact, chat and task."""
        notes: list[Note] = []
        iid = integration.id
        with self._write() as db:
            contact = self._find_contact(db, iid, command.provider_id, command.contact.contact_id)
            if contact is None:
                contact = self._create_contact(db, iid, command.provider_id, command.contact)
            chat = self._ensure_chat(
                db, iid, command.provider_id, command.chat_id, command.channel, contact.pk
            )
            display = contact_display_name(contact.name, contact.last_name, contact.contact_id)
            task_number = chat.task_number
            created = False
            current: sqlite3.Row | None = None  # the chat's task as it was: one read
            if task_number is not None:
                current = db.execute(
                    "SELECT status, title, fields FROM tasks WHERE number = ?", (task_number,)
                ).fetchone()
                assert current is not None  # noqa: S101 - chats point at tasks that exist
                status = current["status"]
                if status != "active":
                    if integration.options.new_task_when_closed:
                        history = history_description(task_number, self._history(db, chat.pk))
                        task_number = self._create_task(
                            db,
                            iid,
                            chat,
                            command.title or default_task_title(display),
                            history,
                            task_number,
                        )
                        created = True
                    else:
                        notes.append(
                            Note(
                                "closed-task",
                                f"task {task_number} is {status}; filed there "
                                "(new_task_when_closed is off)",
                            )
                        )
            else:
                task_number = self._create_task(
                    db, iid, chat, command.title or default_task_title(display), "", None
                )
                created = True
            if not created and command.title:
                assert current is not None  # noqa: S101 - not created: the chat had a task
                if current["title"] != command.title and integration.options.rename_task_on_title:
                    db.execute(
                        "UPDATE tasks SET title = ? WHERE number = ?", (command.title, task_number)
                    )
                    self._emit(db, "task.renamed", iid, number=task_number, title=command.title)
                    notes.append(
                        Note(
                            "task-renamed",
                            "title renamed the task (observed behaviour; the docs only say a "
                            "title names new tasks; option rename_task_on_title)",
                        )
                    )
            if command.fields:
                # A task created just above has no fields yet.
                fields = {} if created or current is None else json.loads(current["fields"])
                fields.update(dict(command.fields))
                db.execute(
                    "UPDATE tasks SET fields = ? WHERE number = ?",
                    (json.dumps(fields), task_number),
                )
            if command.is_echo:
                kind = "echo"
                name = (
                    contact_display_name(author.name, author.last_name, author.email)
                    if author
                    else "Integration owner"
                )
                email = author.email if author else ""
            else:
                kind, name, email = "customer", display, ""
            pk = self._insert_message(
                db,
                task_number=task_number,
                integration_id=iid,
                direction="in",
                kind=kind,
                text=command.message,
                author=name,
                employee_email=email,
                attachments=command.attachments,
                channel=command.channel or "",
            )
        return Filed(task_number, created, pk, contact.number, notes)

    def chat_task(self, integration_id: int, provider_id: str, chat_id: str) -> TaskRecord | None:
        """The chat's current task (completed or not), or None when the chat has none."""
        with self._read() as db:
            chat = self._find_chat(db, integration_id, provider_id, chat_id)
            if chat is None or chat.task_number is None:
                return None
            return self._task(db, chat.task_number)

    def chat_task_state(
        self, integration_id: int, provider_id: str, chat_id: str
    ) -> tuple[int, bool] | None:
        """(number, is active) of the chat's current task, or None: what getTask answers."""
        with self._read() as db:
            row = db.execute(
                "SELECT t.number, t.status FROM chats c JOIN tasks t ON t.number = c.task_number"
                " WHERE c.integration_id = ? AND c.provider_id = ? AND c.chat_id = ?",
                (integration_id, provider_id, chat_id),
            ).fetchone()
        return None if row is None else (int(row[0]), row[1] == "active")

    def chats(self, integration_id: int | None = None) -> list[ChatRecord]:
        """Chats, newest first, optionally of one integration."""
        sql, args = self._listing("SELECT * FROM chats", integration_id, "pk DESC")
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [self._chat(r) for r in rows]

    def _task(self, db: sqlite3.Connection, number: int) -> TaskRecord | None:
        row = db.execute(
            "SELECT t.*, c.provider_id, c.chat_id, c.channel, c.contact_pk,"
            " (SELECT COUNT(*) FROM messages m WHERE m.task_number = t.number) AS message_count,"
            " (SELECT COUNT(*) FROM messages m WHERE m.task_number = t.number"
            "   AND m.direction = 'in' AND m.pk > t.last_read_pk) AS unread,"
            " (SELECT m.text FROM messages m WHERE m.task_number = t.number"
            "   ORDER BY m.pk DESC LIMIT 1) AS last_message,"
            " (SELECT m.created_at FROM messages m WHERE m.task_number = t.number"
            "   ORDER BY m.pk DESC LIMIT 1) AS last_message_at"
            " FROM tasks t JOIN chats c ON c.pk = t.chat_pk WHERE t.number = ?",
            (number,),
        ).fetchone()
        if row is None:
            return None
        contact = None
        if row["contact_pk"] is not None:
            crow = db.execute(
                "SELECT * FROM contacts WHERE pk = ?", (row["contact_pk"],)
            ).fetchone()
            contact = self._contact(crow) if crow else None
        return TaskRecord(
            number=row["number"],
            integration_id=row["integration_id"],
            chat_pk=row["chat_pk"],
            provider_id=row["provider_id"],
            chat_id=row["chat_id"],
            channel=row["channel"],
            title=row["title"],
            description=row["description"],
            status=row["status"],
            fields=json.loads(row["fields"]),
            contact=contact,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            previous_number=row["previous_number"],
            message_count=row["message_count"],
            unread=row["unread"],
            last_message=row["last_message"] or "",
            last_message_at=row["last_message_at"] or "",
        )

    def task(self, number: int) -> TaskRecord:
        """One task by number; NotFound when there is none."""
        with self._read() as db:
            found = self._task(db, number)
        if found is None:
            raise NotFound(f"task {number}")
        return found

    def tasks(self, integration_id: int | None = None) -> list[TaskRecord]:
        """Tasks, most recently active first, optionally of one integration."""
        sql, args = self._listing(
            "SELECT number FROM tasks", integration_id, "updated_at DESC, number DESC"
        )
        with self._read() as db:
            numbers = [r[0] for r in db.execute(sql, args)]
            found = [self._task(db, n) for n in numbers]
        return [t for t in found if t is not None]

    def set_task_status(self, number: int, status: str) -> TaskRecord:
        """Complete (`completed`) or reopen (`active`) a task."""
        with self._write() as db:
            row = db.execute(
                "SELECT integration_id, status, chat_pk FROM tasks WHERE number = ?", (number,)
            ).fetchone()
            if row is None:
                raise NotFound(f"task {number}")
            if status == "active":
                # Reopening an older task makes it the chat's task again.
                db.execute(
                    "UPDATE chats SET task_number = ? WHERE pk = ?", (number, row["chat_pk"])
                )
            if row["status"] != status:
                db.execute(
                    "UPDATE tasks SET status = ?, updated_at = ? WHERE number = ?",
                    (status, self._now(), number),
                )
                kind = "task.completed" if status == "completed" else "task.reopened"
                self._emit(db, kind, row["integration_id"], number=number)
            found = self._task(db, number)
        assert found is not None  # noqa: S101 - checked above in this transaction
        return found

    def mark_read(self, number: int) -> None:
        """The operator has seen every message of the task so far."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE tasks SET last_read_pk = (SELECT COALESCE(MAX(pk), 0) FROM messages"
                " WHERE task_number = ?) WHERE number = ?",
                (number, number),
            )
            if cur.rowcount == 0:
                raise NotFound(f"task {number}")

    @staticmethod
    def _message(row: sqlite3.Row) -> MessageRecord:
        return MessageRecord(
            pk=row["pk"],
            task_number=row["task_number"],
            integration_id=row["integration_id"],
            direction=row["direction"],
            kind=row["kind"],
            text=row["text"],
            author=row["author"],
            employee_email=row["employee_email"],
            attachments=tuple(Attachment(n, u) for n, u in json.loads(row["attachments"])),
            message_id=row["message_id"],
            delivery_state=row["delivery_state"],
            delivery_note=row["delivery_note"],
            status=row["status"],
            status_text=row["status_text"],
            channel=row["channel"],
            created_at=row["created_at"],
        )

    def messages(self, task_number: int) -> list[MessageRecord]:
        """A task's thread, oldest first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM messages WHERE task_number = ? ORDER BY pk", (task_number,)
            ).fetchall()
        return [self._message(r) for r in rows]

    def message(self, pk: int) -> MessageRecord:
        """One message by its id."""
        with self._read() as db:
            row = db.execute("SELECT * FROM messages WHERE pk = ?", (pk,)).fetchone()
        if row is None:
            raise NotFound(f"message {pk}")
        return self._message(row)

    def add_outbound(
        self,
        task_number: int,
        *,
        kind: str,
        text: str,
        author: Employee,
        attachments: Sequence[Attachment],
    ) -> MessageRecord:
        """An operator's message leaving Planfix: stored as pending, with a fresh messageId."""
        with self._write() as db:
            row = db.execute(
                "SELECT t.integration_id, c.channel FROM tasks t JOIN chats c"
                " ON c.pk = t.chat_pk WHERE t.number = ?",
                (task_number,),
            ).fetchone()
            if row is None:
                raise NotFound(f"task {task_number}")
            message_id = str(self._next(db, MESSAGE_COUNTER))
            pk = self._insert_message(
                db,
                task_number=task_number,
                integration_id=row["integration_id"],
                direction="out",
                kind=kind,
                text=text,
                author=contact_display_name(author.name, author.last_name, author.email),
                employee_email=author.email,
                attachments=attachments,
                message_id=message_id,
                delivery_state="pending",
                channel=row["channel"],
            )
            found = db.execute("SELECT * FROM messages WHERE pk = ?", (pk,)).fetchone()
        return self._message(found)

    def next_message_id(self) -> str:
        """A fresh Planfix messageId (unique across the account, never reused)."""
        with self._write() as db:
            return str(self._next(db, MESSAGE_COUNTER))

    def open_chat(
        self,
        integration: Integration,
        *,
        provider_id: str,
        chat_id: str,
        contact: ContactInfo,
        channel: str | None,
        title: str,
    ) -> int:
        """Create (or find) chat, contact and task for a chat the integration assigned."""
        with self._write() as db:
            found = self._find_contact(db, integration.id, provider_id, contact.contact_id)
            if found is None:
                found = self._create_contact(db, integration.id, provider_id, contact)
            chat = self._ensure_chat(db, integration.id, provider_id, chat_id, channel, found.pk)
            if chat.task_number is not None:
                status = db.execute(
                    "SELECT status FROM tasks WHERE number = ?", (chat.task_number,)
                ).fetchone()["status"]
                if status == "active":
                    return chat.task_number
            return self._create_task(db, integration.id, chat, title, "", chat.task_number)

    def move_message(self, pk: int, task_number: int) -> None:
        """File an outbound message in another task (a first message, once its chat exists)."""
        with self._write() as db:
            db.execute("UPDATE messages SET task_number = ? WHERE pk = ?", (task_number, pk))

    def set_delivery_state(self, pk: int, state: str, note: str = "") -> None:
        """pending → delivered | failed, with the reason when failed."""
        with self._write() as db:
            self._set_delivery_state(db, pk, state, note)

    def _set_delivery_state(self, db: sqlite3.Connection, pk: int, state: str, note: str) -> None:
        row = db.execute(
            "UPDATE messages SET delivery_state = ?, delivery_note = ? WHERE pk = ?"
            " RETURNING integration_id, task_number, message_id",
            (state, note, pk),
        ).fetchone()
        if row is None:
            raise NotFound(f"message {pk}")
        self._emit(
            db,
            "message.delivery",
            row["integration_id"],
            id=pk,
            task=row["task_number"],
            messageId=row["message_id"],
            state=state,
            note=note,
        )

    def set_message_status(
        self, integration_id: int, message_id: str, status: str, text: str | None
    ) -> bool:
        """messageStatus: record sent/read/error on an outbound message; False when unknown."""
        with self._write() as db:
            row = db.execute(
                "UPDATE messages SET status = ?, status_text = ? WHERE integration_id = ?"
                " AND message_id = ? AND direction = 'out' RETURNING pk, task_number",
                (status, text or "", integration_id, message_id),
            ).fetchone()
            if row is None:
                return False
            self._emit(
                db,
                "message.status",
                integration_id,
                id=row["pk"],
                task=row["task_number"],
                messageId=message_id,
                status=status,
            )
        return True

    # -- journal and events ----------------------------------------------------------------

    @property
    def journal_bound(self) -> int:
        """The most journal entries kept at once: the retention plus one pruning step."""
        return self.journal_retention + _prune_step(self.journal_retention) - 1

    def record(self, exchange: ExchangeRecord) -> int:
        """Journal one exchange, cut to the entry cap; the oldest entries past the bounds go."""
        t = self.clock()
        row = _fitted_row(exchange, now_iso(t), self.journal_entry_bytes)
        size = sum(len(row[c].encode()) for c in _TEXT_COLUMNS) + ROW_OVERHEAD
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO journal (ts, t, integration_id, direction, party, method, url, cmd,"
                " chat_id, form, request_headers, status, response_body, duration_ms, notes,"
                " fault, error, delivery_id)"
                " VALUES (:ts, :t, :integration_id, :direction, :party, :method, :url, :cmd,"
                " :chat_id, :form, :request_headers, :status, :response_body, :duration_ms,"
                " :notes, :fault, :error, :delivery_id)",
                {
                    **row,
                    "t": t,
                    "integration_id": exchange.integration_id,
                    "status": exchange.status,
                    "duration_ms": round(exchange.duration_ms, 3),
                    "delivery_id": exchange.delivery_id,
                },
            )
            entry_id = int(cur.lastrowid or 0)
            total = int(
                db.execute(
                    "UPDATE counters SET value = value + ? WHERE name = ? RETURNING value",
                    (size, JOURNAL_BYTES_COUNTER),
                ).fetchone()[0]
            )
            if _prune_now(entry_id, self.journal_retention):
                total -= self._drop_journal(db, "id <= ?", entry_id - self.journal_retention, total)
            if total > self.journal_bytes:
                # Down to the bound less one step, so the next inserts do not prune again.
                floor = self.journal_bytes - _prune_step(self.journal_bytes)
                while total > floor:
                    freed = self._drop_journal(
                        db,
                        "id IN (SELECT id FROM journal WHERE id < ? ORDER BY id LIMIT 16)",
                        entry_id,
                        total,
                    )
                    if not freed:
                        break  # only the new entry is left: it alone may pass the bound
                    total -= freed
            self._emit(
                db,
                "journal",
                exchange.integration_id,
                id=entry_id,
                direction=exchange.direction,
                cmd=row["cmd"],
                status=exchange.status,
                chatId=row["chat_id"],
            )
        return entry_id

    @staticmethod
    def _drop_journal(db: sqlite3.Connection, where: str, arg: int, total: int) -> int:
        """Delete the journal rows `where` selects; the bytes freed (taken off the running size)."""
        freed = sum(
            int(r[0])
            for r in db.execute(
                f"DELETE FROM journal WHERE {where} RETURNING {_ROW_BYTES_SQL}",  # noqa: S608
                (arg,),
            )
        )
        if freed:
            db.execute(
                "UPDATE counters SET value = ? WHERE name = ?",
                (max(total - freed, 0), JOURNAL_BYTES_COUNTER),
            )
        return freed

    @staticmethod
    def _entry(row: sqlite3.Row) -> JournalEntry:
        return JournalEntry(
            id=row["id"],
            ts=row["ts"],
            integration_id=row["integration_id"],
            direction=row["direction"],
            party=row["party"],
            method=row["method"],
            url=row["url"],
            cmd=row["cmd"],
            chat_id=row["chat_id"],
            form=json.loads(row["form"]),
            request_headers=json.loads(row["request_headers"]),
            status=row["status"],
            response_body=row["response_body"],
            duration_ms=row["duration_ms"],
            notes=json.loads(row["notes"]),
            fault=row["fault"],
            error=row["error"],
            delivery_id=row["delivery_id"],
        )

    def journal(self, query: JournalQuery | None = None) -> list[JournalEntry]:
        """Matching entries, oldest first: the newest `limit`, or the oldest after `since`."""
        q = query or JournalQuery()
        where: list[str] = []
        args: list[Any] = []
        if q.integration_id is not None:
            where.append("integration_id = ?")
            args.append(q.integration_id)
        if q.cmd:
            where.append("cmd = ?")
            args.append(q.cmd)
        if q.direction:
            where.append("direction = ?")
            args.append(q.direction)
        if q.status is not None:
            where.append("status = ?")
            args.append(q.status)
        if q.since is not None:
            where.append("id > ?")
            args.append(q.since)
        if q.before is not None:
            where.append("id < ?")
            args.append(q.before)
        if q.ids is not None:
            where.append(f"id IN ({', '.join('?' for _ in q.ids)})")
            args.extend(q.ids)
        sql = "SELECT * FROM journal"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # Following the journal (`since` alone) reads the oldest entries after it, so a reader
        # that fell more than a page behind catches up page by page instead of skipping some.
        following = q.since is not None and q.before is None
        sql += " ORDER BY id " + ("ASC" if following else "DESC") + " LIMIT ?"
        args.append(max(q.limit, 0))
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [self._entry(r) for r in (rows if following else reversed(rows))]

    def journal_entry(self, entry_id: int) -> JournalEntry:
        """One journal entry; NotFound when dropped or never written."""
        with self._read() as db:
            row = db.execute("SELECT * FROM journal WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise NotFound(f"journal entry {entry_id}")
        return self._entry(row)

    def counts(self) -> dict[str, int]:
        """Row counts per table: what the reliability tests and benchmarks watch."""
        tables = ("integrations", "contacts", "chats", "tasks", "messages", "journal", "events")
        with self._read() as db:
            return {
                t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])  # noqa: S608
                for t in tables
            }

    def events_after(
        self, last_id: int, integration_id: int | None = None, limit: int = 500
    ) -> list[Event]:
        """Events with an id above `last_id`, oldest first."""
        sql = "SELECT * FROM events WHERE id > ?"
        args: list[Any] = [last_id]
        if integration_id is not None:
            sql += " AND integration_id = ?"
            args.append(integration_id)
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [
            Event(r["id"], r["ts"], r["integration_id"], r["kind"], json.loads(r["data"]))
            for r in rows
        ]

    def last_event_id(self) -> int:
        """The newest event id (0 when none)."""
        with self._read() as db:
            row = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        return int(row[0])

    def reset(self, integration_id: int | None = None) -> None:
        """Forget chats, tasks, contacts, messages and journal; of one integration, or all.

        A full reset also restarts numbering; resetting one integration does not, because other
        integrations share the account's sequences.
        """
        tables = (
            "contacts",
            "chats",
            "tasks",
            "messages",
            "deliveries",
            "journal",
            "inbox",
            "fake_chats",
        )
        with self._write() as db:
            for table in tables:
                if integration_id is None:
                    db.execute(f"DELETE FROM {table}")  # noqa: S608
                else:
                    db.execute(f"DELETE FROM {table} WHERE integration_id = ?", (integration_id,))  # noqa: S608
            db.execute(
                "UPDATE counters SET value = ? WHERE name = ?",
                (db.execute(_SUM_JOURNAL_BYTES).fetchone()[0], JOURNAL_BYTES_COUNTER),
            )
            if integration_id is None:
                self._init_counters(db, replace_existing=True)
                db.execute("UPDATE integrations SET faults = '{}'")
            else:
                db.execute("UPDATE integrations SET faults = '{}' WHERE id = ?", (integration_id,))
            self._emit(db, "reset", integration_id)

    # -- deliveries, the fake chat's inbox, fault marks (issue 3) -------------------------------

    def release_thread(self) -> None:
        """Close the calling thread's connection (background threads call it as they end)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            return
        with self._lock:
            self._connections = [(o, c) for o, c in self._connections if c is not db]
        db.close()
        self._local.db = None

    def add_first_outbound(
        self,
        integration_id: int,
        *,
        text: str,
        author: Employee,
        attachments: Sequence[Attachment],
        channel: str,
    ) -> MessageRecord:
        """A first message to a contact: pending, in no task (task 0) until its chat exists."""
        with self._write() as db:
            message_id = str(self._next(db, MESSAGE_COUNTER))
            pk = self._insert_message(
                db,
                task_number=0,
                integration_id=integration_id,
                direction="out",
                kind="first",
                text=text,
                author=contact_display_name(author.name, author.last_name, author.email),
                employee_email=author.email,
                attachments=attachments,
                message_id=message_id,
                delivery_state="pending",
                channel=channel,
            )
            found = db.execute("SELECT * FROM messages WHERE pk = ?", (pk,)).fetchone()
        return self._message(found)

    def reserve_task_number(self) -> int:
        """Take a task number now (a first message's taskEmail names the task it will open)."""
        with self._write() as db:
            return self._next(db, TASK_COUNTER)

    def _delivery(self, db: sqlite3.Connection, row: sqlite3.Row) -> DeliveryRecord:
        journal_ids = [
            int(r[0])
            for r in db.execute(
                "SELECT id FROM journal WHERE delivery_id = ? ORDER BY id", (row["id"],)
            )
        ]
        due = row["state"] in ("pending", "retrying") and row["next_attempt_at"] is not None
        answer = json.loads(row["answer"])
        return DeliveryRecord(
            id=row["id"],
            integration_id=row["integration_id"],
            variant=row["variant"],
            state=row["state"],
            attempts=row["attempts"],
            next_attempt_at=now_iso(row["next_attempt_at"]) if due else None,
            message_pk=row["message_pk"],
            task_number=row["task_number"],
            outcome=row["outcome"],
            answer=answer or None,
            form=json.loads(row["form"]),
            journal_ids=journal_ids,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def queue_delivery(
        self,
        integration_id: int,
        *,
        variant: str,
        form: Sequence[tuple[str, str]],
        message_pk: int,
        task_number: int | None,
    ) -> DeliveryRecord:
        """Queue a Planfix → integration newMessage, due at once."""
        now = self._now()
        with self._write() as db:
            row = db.execute(
                "INSERT INTO deliveries (integration_id, message_pk, variant, form, state,"
                " next_attempt_at, task_number, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?) RETURNING *",
                (
                    integration_id,
                    message_pk,
                    variant,
                    json.dumps([list(p) for p in form]),
                    self.clock(),
                    task_number,
                    now,
                    now,
                ),
            ).fetchone()
            # Finished deliveries are bounded like the journal; pending ones are always kept.
            if row["id"] > self.journal_retention:
                db.execute(
                    "DELETE FROM deliveries WHERE id <= ? AND state IN ('delivered', 'failed')",
                    (row["id"] - self.journal_retention,),
                )
            return self._delivery(db, row)

    def claim_deliveries(self, worker: str, limit: int, lease_margin: float = 30.0) -> list[int]:
        """Atomically claim up to `limit` due deliveries for `worker`.

        A claim is a lease (the integration's timeout plus a margin): if the claiming process
        dies, the delivery becomes due again for any other worker.
        """
        if limit <= 0:
            return []
        now = self.clock()
        with self._write() as db:
            rows = db.execute(
                "UPDATE deliveries SET claimed_by = ?, lease_until = ? + ? + COALESCE("
                " (SELECT timeout FROM integrations i WHERE i.id = deliveries.integration_id),"
                " 10) WHERE id IN (SELECT id FROM deliveries WHERE state IN"
                " ('pending', 'retrying') AND next_attempt_at <= ? AND (claimed_by IS NULL"
                " OR lease_until < ?) ORDER BY next_attempt_at, id LIMIT ?) RETURNING id",
                (worker, now, lease_margin, now, now, limit),
            ).fetchall()
        return sorted(int(r[0]) for r in rows)

    def next_delivery_due(self) -> float | None:
        """When the next delivery falls due (a lease counts as not due before it ends)."""
        with self._read() as db:
            row = db.execute(
                "SELECT MIN(CASE WHEN claimed_by IS NULL THEN next_attempt_at"
                " ELSE MAX(next_attempt_at, COALESCE(lease_until, 0)) END)"
                " FROM deliveries WHERE state IN ('pending', 'retrying')"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def finish_attempt(
        self, delivery_id: int, worker: str, result: AttemptResult
    ) -> DeliveryRecord | None:
        """Record an attempt's outcome; None when `worker` no longer holds the claim."""
        now = self._now()
        if result.delivered:
            state = "delivered"
        elif result.retry_at is not None:
            state = "retrying"
        else:
            state = "failed"
        with self._write() as db:
            row = db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, claimed_by = NULL,"
                " lease_until = NULL, state = ?, next_attempt_at = ?, outcome = ?, answer = ?,"
                " updated_at = ? WHERE id = ? AND claimed_by = ? RETURNING *",
                (
                    state,
                    result.retry_at,
                    result.outcome,
                    json.dumps(result.answer or {}),
                    now,
                    delivery_id,
                    worker,
                ),
            ).fetchone()
            if row is None:
                return None
            pk = row["message_pk"]
            task_number = row["task_number"]
            if result.delivered and result.first_chat is not None:
                task_number = self._assign_first_chat(db, row, result.first_chat)
                row = db.execute(
                    "UPDATE deliveries SET task_number = ? WHERE id = ? RETURNING *",
                    (task_number, delivery_id),
                ).fetchone()
            if pk is not None:
                message_state = {"delivered": "delivered", "failed": "failed"}.get(state, "pending")
                self._set_delivery_state(db, pk, message_state, result.outcome)
            self._emit(
                db,
                "delivery",
                row["integration_id"],
                id=delivery_id,
                variant=row["variant"],
                state=state,
                attempts=row["attempts"],
                outcome=result.outcome,
                message=pk,
                task=task_number,
            )
            return self._delivery(db, row)

    def _assign_first_chat(self, db: sqlite3.Connection, row: sqlite3.Row, first: FirstChat) -> int:
        """Open contact, chat and task for a delivered first message; move the message there."""
        iid = row["integration_id"]
        contact = self._find_contact(db, iid, first.provider_id, first.contact.contact_id)
        if contact is None:
            contact = self._create_contact(db, iid, first.provider_id, first.contact)
        chat = self._ensure_chat(
            db, iid, first.provider_id, first.chat_id, first.channel, contact.pk
        )
        number: int | None = None
        if chat.task_number is not None:
            status = db.execute(
                "SELECT status FROM tasks WHERE number = ?", (chat.task_number,)
            ).fetchone()["status"]
            if status == "active":
                number = chat.task_number  # the chat already has a task: the message joins it
        if number is None:
            # The task takes the number reserved for the taskEmail that was sent.
            number = row["task_number"] or self._next(db, TASK_COUNTER)
            now = self._now()
            db.execute(
                "INSERT INTO tasks (number, integration_id, chat_pk, title, description, status,"
                " fields, previous_number, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, '', 'active', '{}', ?, ?, ?)",
                (number, iid, chat.pk, first.title, chat.task_number, now, now),
            )
            db.execute("UPDATE chats SET task_number = ? WHERE pk = ?", (number, chat.pk))
            self._emit(
                db,
                "task.created",
                iid,
                number=number,
                title=first.title,
                chatId=chat.chat_id,
                previous=chat.task_number,
            )
        if row["message_pk"] is not None:
            db.execute(
                "UPDATE messages SET task_number = ? WHERE pk = ?", (number, row["message_pk"])
            )
            db.execute("UPDATE tasks SET updated_at = ? WHERE number = ?", (self._now(), number))
        return int(number)

    def request_retry(self, delivery_id: int) -> DeliveryRecord:
        """Make a delivery due now (redelivery by hand); refused while an attempt runs."""
        now = self.clock()
        with self._write() as db:
            row = db.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            if row is None:
                raise NotFound(f"delivery {delivery_id}")
            if row["claimed_by"] is not None and (row["lease_until"] or 0) >= now:
                raise BadRequest(f"delivery {delivery_id}: an attempt is in progress")
            if row["variant"] == "first" and row["state"] == "delivered":
                raise BadRequest(
                    f"delivery {delivery_id}: a delivered first message has opened its chat; "
                    "reply in the task instead"
                )
            row = db.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, claimed_by = NULL,"
                " lease_until = NULL, updated_at = ? WHERE id = ? RETURNING *",
                (now, self._now(), delivery_id),
            ).fetchone()
            if row["message_pk"] is not None:
                self._set_delivery_state(db, row["message_pk"], "pending", "")
            return self._delivery(db, row)

    def delivery(self, delivery_id: int) -> DeliveryRecord:
        """One delivery; NotFound when there is none."""
        with self._read() as db:
            row = db.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            if row is None:
                raise NotFound(f"delivery {delivery_id}")
            return self._delivery(db, row)

    def deliveries(
        self, integration_id: int | None = None, limit: int = 1000
    ) -> list[DeliveryRecord]:
        """Deliveries, newest first, optionally of one integration."""
        sql, args = self._listing("SELECT * FROM deliveries", integration_id, "id DESC LIMIT ?")
        args.append(max(limit, 0))
        with self._read() as db:
            return [self._delivery(db, r) for r in db.execute(sql, args).fetchall()]

    @staticmethod
    def _fake_chat(row: sqlite3.Row) -> FakeChat:
        return FakeChat(
            integration_id=row["integration_id"],
            provider_id=row["provider_id"],
            chat_id=row["chat_id"],
            contact_id=row["contact_id"],
            contact_name=row["contact_name"],
            contact_phone=row["contact_phone"],
            channel=row["channel"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def _save_fake_chat(self, db: sqlite3.Connection, chat: FakeChat) -> None:
        now = self._now()
        # Empty values never overwrite what the fake chat already knows.
        db.execute(
            "INSERT INTO fake_chats (integration_id, provider_id, chat_id, contact_id,"
            " contact_name, contact_phone, channel, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (integration_id, provider_id, chat_id)"
            " DO UPDATE SET"
            " contact_id = CASE WHEN excluded.contact_id = '' THEN contact_id"
            "  ELSE excluded.contact_id END,"
            " contact_name = CASE WHEN excluded.contact_name = '' THEN contact_name"
            "  ELSE excluded.contact_name END,"
            " contact_phone = CASE WHEN excluded.contact_phone = '' THEN contact_phone"
            "  ELSE excluded.contact_phone END,"
            " channel = CASE WHEN excluded.channel = '' THEN channel ELSE excluded.channel END,"
            " updated_at = excluded.updated_at",
            (
                chat.integration_id,
                chat.provider_id,
                chat.chat_id,
                chat.contact_id,
                chat.contact_name,
                chat.contact_phone,
                chat.channel,
                now,
                now,
            ),
        )

    def note_fake_chat(self, chat: FakeChat) -> None:
        """The fake chat's customer wrote in this chat: remember it (timestamps are set here)."""
        with self._write() as db:
            self._save_fake_chat(db, chat)

    def fake_chats(self, integration_id: int | None = None) -> list[FakeChat]:
        """Chats the fake chat knows, most recently active first."""
        sql, args = self._listing(
            "SELECT * FROM fake_chats", integration_id, "updated_at DESC, pk DESC"
        )
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [self._fake_chat(r) for r in rows]

    def file_inbox(self, item: InboxItem, new_contact_id: str) -> InboxItem:
        """The fake chat received a message from Planfix: file it and decide the contactId.

        A reply answers with the contactId the fake chat knows for the chat (else the chatId, as
        integrations often do); a first message reuses the contact of that phone, else
        `new_contact_id`.
        """
        with self._write() as db:
            if item.variant == "first":
                row = db.execute(
                    "SELECT contact_id FROM fake_chats WHERE integration_id = ?"
                    " AND contact_phone = ? AND contact_phone != '' ORDER BY pk LIMIT 1",
                    (item.integration_id, item.contact_phone),
                ).fetchone()
                contact_id = row["contact_id"] if row and row["contact_id"] else new_contact_id
            else:
                row = db.execute(
                    "SELECT contact_id FROM fake_chats WHERE integration_id = ?"
                    " AND provider_id = ? AND chat_id = ?",
                    (item.integration_id, item.provider_id, item.chat_id),
                ).fetchone()
                contact_id = row["contact_id"] if row and row["contact_id"] else item.chat_id
            filed = replace(item, contact_id=contact_id, ts=self._now())
            cur = db.execute(
                "INSERT INTO inbox (ts, integration_id, variant, provider_id, chat_id, contact_id,"
                " contact_phone, channel, message, message_id, user_name, user_last_name,"
                " user_ico, task_email, attachments)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    filed.ts,
                    filed.integration_id,
                    filed.variant,
                    filed.provider_id,
                    filed.chat_id,
                    filed.contact_id,
                    filed.contact_phone,
                    filed.channel,
                    filed.message,
                    filed.message_id,
                    filed.user_name,
                    filed.user_last_name,
                    filed.user_ico,
                    filed.task_email,
                    json.dumps([[a.name, a.url] for a in filed.attachments]),
                ),
            )
            filed = replace(filed, id=int(cur.lastrowid or 0))
            self._save_fake_chat(
                db,
                FakeChat(
                    filed.integration_id,
                    filed.provider_id,
                    filed.chat_id,
                    filed.contact_id,
                    "",
                    filed.contact_phone,
                    filed.channel,
                    "",
                    "",
                ),
            )
            # Bounded like the journal, so a long soak keeps a flat store.
            if filed.id > self.journal_retention:
                db.execute("DELETE FROM inbox WHERE id <= ?", (filed.id - self.journal_retention,))
            self._emit(
                db,
                "inbox",
                filed.integration_id,
                id=filed.id,
                variant=filed.variant,
                chatId=filed.chat_id,
                contactId=filed.contact_id,
                messageId=filed.message_id,
                message=filed.message,
            )
        return filed

    def inbox(
        self, integration_id: int | None = None, chat_id: str | None = None, limit: int = 1000
    ) -> list[InboxItem]:
        """What the fake chat's customers received, oldest first (the newest `limit`)."""
        where: list[str] = []
        args: list[Any] = []
        if integration_id is not None:
            where.append("integration_id = ?")
            args.append(integration_id)
        if chat_id:
            where.append("chat_id = ?")
            args.append(chat_id)
        sql = "SELECT * FROM inbox"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(max(limit, 0))
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [
            InboxItem(
                id=r["id"],
                ts=r["ts"],
                integration_id=r["integration_id"],
                variant=r["variant"],
                provider_id=r["provider_id"],
                chat_id=r["chat_id"],
                contact_id=r["contact_id"],
                contact_phone=r["contact_phone"],
                channel=r["channel"],
                message=r["message"],
                message_id=r["message_id"],
                user_name=r["user_name"],
                user_last_name=r["user_last_name"],
                user_ico=r["user_ico"],
                task_email=r["task_email"],
                attachments=tuple(Attachment(n, u) for n, u in json.loads(r["attachments"])),
            )
            for r in reversed(rows)
        ]

    def outbound_delivery_state(self, integration_id: int, message_id: str) -> str | None:
        """pending | delivered | failed of an outbound message by messageId; None if unknown."""
        with self._read() as db:
            row = db.execute(
                "SELECT delivery_state FROM messages WHERE integration_id = ? AND message_id = ?"
                " AND direction = 'out'",
                (integration_id, message_id),
            ).fetchone()
        return None if row is None else str(row[0])

    def put_fault_mark(self, request_id: str, fault: str) -> None:
        """A face injected `fault` into a call the simulator made to itself: tell the sender."""
        t = self.clock()
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO fault_marks (request_id, fault, t) VALUES (?, ?, ?)",
                (request_id, fault, t),
            )
            # Marks nobody collected (the sender died) go after an hour.
            db.execute("DELETE FROM fault_marks WHERE t < ?", (t - 3600,))

    def take_fault_mark(self, request_id: str) -> str:
        """The fault injected into the sender's own call `request_id` ("" when none)."""
        with self._read() as db:
            # Usually there is none: a read then spares the write lock.
            found = db.execute(
                "SELECT 1 FROM fault_marks WHERE request_id = ?", (request_id,)
            ).fetchone()
        if found is None:
            return ""
        with self._write() as db:
            row = db.execute(
                "DELETE FROM fault_marks WHERE request_id = ? RETURNING fault", (request_id,)
            ).fetchone()
        return str(row[0]) if row else ""


def _fitted_row(exchange: ExchangeRecord, ts: str, cap: int) -> dict[str, str]:
    """The text columns of a journal row, its values cut to `cap` bytes in all, with a note."""
    # The journal holds text: a missing form value is an empty string, never null.
    form = [["" if k is None else str(k), "" if v is None else str(v)] for k, v in exchange.form]
    headers = dict(exchange.request_headers)
    notes = [dict(n) for n in exchange.notes]
    pieces: list[tuple[str, str]] = [
        ("url", exchange.url),
        ("cmd", exchange.cmd),
        ("chatId", exchange.chat_id),
        *((f"form name {i + 1}", name) for i, (name, _) in enumerate(form)),
        *((f"form value {name[:40]!r}", value) for name, value in form),
        *((f"header name {i + 1}", name) for i, name in enumerate(headers)),
        *((f"header {name[:40]!r}", value) for name, value in headers.items()),
        ("response body", exchange.response_body),
        ("error", exchange.error),
        *((f"note {i + 1}", str(n.get("text", ""))) for i, n in enumerate(notes)),
    ]
    kept, cuts = _fit([text for _, text in pieces], cap)
    if cuts:
        texts = iter(kept)
        url, cmd, chat_id = next(texts), next(texts), next(texts)
        names = [next(texts) for _ in form]
        form = [[name, next(texts)] for name in names]
        header_names = [next(texts) for _ in headers]
        headers = dict(zip(header_names, [next(texts) for _ in headers], strict=True))
        body, error = next(texts), next(texts)
        for note in notes:
            note["text"] = next(texts)
        notes.append(
            {
                "code": CUT_NOTE,
                "text": "; ".join(
                    f"{pieces[i][0]} cut from {before:,} to {after:,} bytes"
                    for i, before, after in cuts
                )
                + f" (journal_entry_bytes: {cap:,})",
                "unknown": False,
            }
        )
    else:
        url, cmd, chat_id = exchange.url, exchange.cmd, exchange.chat_id
        body, error = exchange.response_body, exchange.error
    return {
        "ts": ts,
        "direction": exchange.direction,
        "party": exchange.party,
        "method": exchange.method,
        "url": url,
        "cmd": cmd,
        "chat_id": chat_id,
        "form": json.dumps(form),
        "request_headers": json.dumps(headers),
        "response_body": body,
        "notes": json.dumps(notes),
        "fault": exchange.fault,
        "error": error,
    }


def _fit(texts: Sequence[str], cap: int) -> tuple[list[str], list[tuple[int, int, int]]]:
    """`texts` cut so their UTF-8 bytes sum to at most `cap`, the longest first; and the cuts.

    A cut is (index, bytes before, bytes after). Short texts are kept whole: only those over the
    level where the sum fits are cut, each to that level.
    """
    if sum(map(len, texts)) * 4 <= cap:  # at most 4 bytes a character: surely fits
        return list(texts), []
    sizes = [len(t.encode()) for t in texts]
    if sum(sizes) <= cap:
        return list(texts), []
    level, left = 0, cap
    ordered = sorted(sizes)
    for i, size in enumerate(ordered):
        share = left // (len(ordered) - i)
        if size > share:
            level = share
            break
        left -= size
    kept: list[str] = []
    cuts: list[tuple[int, int, int]] = []
    for i, (text, size) in enumerate(zip(texts, sizes, strict=True)):
        if size <= level:
            kept.append(text)
            continue
        # Cut on a character boundary: a partial UTF-8 sequence at the end is dropped.
        cut = text.encode()[:level].decode("utf-8", "ignore")
        kept.append(cut)
        cuts.append((i, size, len(cut.encode())))
    return kept, cuts


def _prune_step(bound: int) -> int:
    return max(1, bound // 100)


def _prune_now(row_id: int, bound: int) -> bool:
    """Whether inserting `row_id` drops the rows past `bound` (they go in steps of 1 %)."""
    # Deleting the oldest row on every insert cost the hot path about 15 %; deleting a step's
    # worth at once costs little more than one row, and the table runs over by under 1 %.
    return row_id > bound and row_id % _prune_step(bound) == 0


T = TypeVar("T")


class _Job(Generic[T]):
    """One piece of batched work and what became of it."""

    __slots__ = ("done", "error", "promoted", "value", "work")

    def __init__(self, work: Callable[[], T]) -> None:
        self.work = work
        # A plain lock, held from the start, is the cheapest one-shot signal: an Event is a
        # Condition and two more locks, made per request on the hot path.
        self.done = threading.Lock()
        self.done.acquire()
        self.promoted = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def result(self) -> T:
        """The work's value, or its exception raised in this (the asking) thread."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


@dataclass(frozen=True)
class FirstChat:
    """The chat a first message opened: what the integration assigned, what Planfix knew."""

    provider_id: str
    chat_id: str
    contact: ContactInfo
    channel: str | None
    title: str


@dataclass(frozen=True)
class AttemptResult:
    """One delivery attempt's verdict, as the store records it."""

    delivered: bool
    outcome: str
    answer: dict[str, Any] | None
    retry_at: float | None = None
    first_chat: FirstChat | None = None
