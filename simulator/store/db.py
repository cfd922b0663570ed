"""The store's core: the connection, the one writer, group commit, the file's health, events.

Each aggregate's module (integrations, conversations, messages, journal, deliveries, fakechat)
adds its methods on top of `Database`; `Store` (the package's face) joins them.

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
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from simulator.errors import StorageUnavailable
from simulator.store import schema
from simulator.store.errors import CannotOpen
from simulator.store.health import FileHealth

log = logging.getLogger("simulator")

# Numbering lives in `counters`; a global reset starts these sequences again.
TASK_COUNTER = "task_number"
CONTACT_COUNTER = "contact_number"
MESSAGE_COUNTER = "message_id"


def now_iso(t: float | None = None) -> str:
    """UTC timestamp with milliseconds, as shown in the journal and the UI."""
    # Rounded to the microsecond first, as datetime.fromtimestamp does, then cut to the ms.
    return _iso_ms(round((time.time() if t is None else t) * 1_000_000) // 1000)


@functools.lru_cache(maxsize=64)
def _iso_ms(ms: int) -> str:
    # One request stamps four rows within the same millisecond or two: format each once.
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Database(FileHealth):
    """One SQLite file: connections, the one writer, transactions and group commit, events."""

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
        # Group commit (`batched`): work waiting for the thread that commits for everyone.
        self._batch_lock = threading.Lock()
        self._batch: list[_Job[Any]] = []
        self._batch_led = False
        # Wakes SSE streams and waiters of this process at once; others poll the events table.
        self.changed = threading.Condition()
        try:
            with self._write() as db:
                schema.migrate(db)
                db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', ?)",
                    (uuid.uuid4().hex,),
                )
                self._init_counters(db, replace_existing=False)
            self.instance_id = self._read_meta("instance")
            found = os.stat(self.path)
        except CannotOpen:
            self.close()
            raise
        except (sqlite3.Error, OSError, StorageUnavailable) as exc:
            # Reported at start (`planfix-sim serve` exits); nothing is served on such a file.
            self.close()
            raise CannotOpen(str(exc)) from exc
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

    def _tx(self) -> sqlite3.Connection:
        """The open write transaction: steps of a rule run inside `transaction()`, no savepoint."""
        if not getattr(self._local, "writing", False):
            raise RuntimeError("a step of a rule runs inside store.transaction()")
        return self._writer

    def _connection(self) -> sqlite3.Connection:
        if getattr(self._local, "writing", False):
            return self._writer  # this thread holds the write lock
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            with self._lock:
                kept = []
                for owner, other in self._connections:
                    if owner.is_alive():
                        kept.append((owner, other))
                    elif db is None and not other.in_transaction:
                        # Adopt an ended thread's connection: a server thread per client
                        # would otherwise open one (and parse the schema) per request.
                        db = other
                    else:
                        other.close()
                if db is not None:
                    kept.append((threading.current_thread(), db))
                self._connections = kept
            if db is None:
                db = self._open()
                with self._lock:
                    self._connections.append((threading.current_thread(), db))
            self._local.db = db
        return db

    def data_version(self) -> int:
        """SQLite's count of commits by other connections, as this thread's connection sees it."""
        # Cheaper than any query (no transaction, no table): what lets a process notice another
        # process's write every few milliseconds at almost no cost. The stat sees a deleted or
        # replaced file, which no commit would announce.
        self._check_file()
        try:
            return int(self._connection().execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise self._storage_failure(exc) or StorageUnavailable(str(exc)) from exc

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
        prune(db, "events", int(cur.lastrowid or 0), max(self.journal_retention, 1) * 4)

    @staticmethod
    def _listing(select: str, integration_id: int | None, order: str) -> tuple[str, list[Any]]:
        """`select`, narrowed to one integration when given, in `order`: the lists' query."""
        if integration_id is None:
            return f"{select} ORDER BY {order}", []
        return f"{select} WHERE integration_id = ? ORDER BY {order}", [integration_id]

    def release_thread(self) -> None:
        """Close the calling thread's connection (background threads call it as they end)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            return
        with self._lock:
            self._connections = [(o, c) for o, c in self._connections if c is not db]
        db.close()
        self._local.db = None


def prune_step(bound: int) -> int:
    """How many rows past `bound` a table may run before they go (1 %)."""
    return max(1, bound // 100)


def prune(
    db: sqlite3.Connection,
    table: str,
    newest: int,
    keep: int,
    *,
    where: str = "",
    returning: str = "",
) -> list[sqlite3.Row]:
    """Drop the rows of `table` older than the newest `keep` ids (those `where` selects).

    Every bounded table (journal, events, deliveries, inbox) goes through here; the rows
    deleted come back with the `returning` columns, when asked.
    """
    if not _prune_now(newest, keep):
        return []
    sql = f"DELETE FROM {table} WHERE id <= ?"  # noqa: S608 - table and clauses are ours
    if where:
        sql += f" AND ({where})"
    if returning:
        sql += f" RETURNING {returning}"
    return db.execute(sql, (newest - keep,)).fetchall()


def _prune_now(row_id: int, bound: int) -> bool:
    """Whether inserting `row_id` drops the rows past `bound` (they go in steps of 1 %)."""
    # Deleting the oldest row on every insert cost the hot path about 15 %; deleting a step's
    # worth at once costs little more than one row, and the table runs over by under 1 %.
    return row_id > bound and row_id % prune_step(bound) == 0


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
