"""The tables, and the numbered steps that bring any database this simulator wrote up to date.

The version lives in SQLite's `PRAGMA user_version`. A database made before versions existed
(release 0.1.0 and the code up to this module) has tables but version 0: it is taken for version 1,
whose tables are the same. A later change to the tables adds a step at the end of `MIGRATIONS`;
steps run in order inside the transaction that opens the store, so a database is either upgraded
whole or left as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from simulator.store.errors import SchemaTooNew

# The journal's running size in bytes (kept up to date by every insert and delete).
JOURNAL_BYTES_COUNTER = "journal_bytes"
# What a journal row costs beyond its text columns (numbers, the row header): an estimate.
ROW_OVERHEAD = 64
JOURNAL_TEXT_COLUMNS = (
    "ts", "direction", "party", "method", "url", "cmd", "chat_id", "form",
    "request_headers", "response_body", "notes", "fault", "error",
)  # fmt: skip
# The same sum in SQL, for rows about to be deleted (TEXT is stored as UTF-8).
ROW_BYTES_SQL = " + ".join(
    [f"length(CAST({c} AS BLOB))" for c in JOURNAL_TEXT_COLUMNS] + [str(ROW_OVERHEAD)]
)
SUM_JOURNAL_BYTES = f"SELECT COALESCE(SUM({ROW_BYTES_SQL}), 0) FROM journal"  # noqa: S608

# Version 1: the tables of release 0.1.0.
RELEASE_0_1_0 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE integrations (
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
CREATE TABLE employees (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    ico TEXT NOT NULL
);
CREATE TABLE contacts (
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
CREATE TABLE chats (
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
CREATE TABLE tasks (
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
CREATE INDEX tasks_integration ON tasks (integration_id);
CREATE TABLE messages (
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
CREATE INDEX messages_task ON messages (task_number);
CREATE INDEX messages_message_id ON messages (message_id);
CREATE TABLE deliveries (
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
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE TABLE inbox (
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
CREATE INDEX inbox_chat ON inbox (integration_id, chat_id);
CREATE TABLE fake_chats (
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
CREATE TABLE fault_marks (
    request_id TEXT PRIMARY KEY,
    fault TEXT NOT NULL,
    t REAL NOT NULL
);
CREATE TABLE journal (
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
CREATE INDEX journal_integration ON journal (integration_id, id);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    integration_id INTEGER,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


def _create_tables(db: sqlite3.Connection) -> None:
    """1: the tables of release 0.1.0 (a database of that release already has them)."""
    for statement in RELEASE_0_1_0.split(";"):
        if statement.strip():
            db.execute(statement)


def _count_journal_bytes(db: sqlite3.Connection) -> None:
    """2: the journal's running size, summed once (bounding the journal in bytes reads it)."""
    # OR IGNORE: databases written between 0.1.0 and versioning have the counter already.
    db.execute(
        f"INSERT OR IGNORE INTO counters (name, value) VALUES (?, ({SUM_JOURNAL_BYTES}))",  # noqa: S608
        (JOURNAL_BYTES_COUNTER,),
    )


def _index_deliveries_and_owned_rows(db: sqlite3.Connection) -> None:
    """3: indexes for reading a delivery's journal ids and deleting an integration's rows."""
    # Without them each delivery read scanned the journal (up to its retention, 10,000 rows)
    # and each integration deletion scanned every message ever stored. The journal's index
    # leaves out the chat API's rows (no delivery), so their inserts do not pay for it.
    db.execute(
        "CREATE INDEX IF NOT EXISTS journal_delivery ON journal (delivery_id)"
        " WHERE delivery_id IS NOT NULL"
    )
    db.execute("CREATE INDEX IF NOT EXISTS messages_integration ON messages (integration_id)")
    db.execute("CREATE INDEX IF NOT EXISTS deliveries_integration ON deliveries (integration_id)")


# Step n brings version n - 1 to version n. Append only: a step once released never changes.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _create_tables,
    _count_journal_bytes,
    _index_deliveries_and_owned_rows,
)
LATEST = len(MIGRATIONS)


def version(db: sqlite3.Connection) -> int:
    """The schema version of the open database (0: empty, or made before versions existed)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> int:
    """Bring the database up to `LATEST` in the caller's write transaction; the version it had."""
    found = version(db)
    if found > LATEST:
        raise SchemaTooNew(
            f"its schema is version {found}, written by a newer planfix-simulator; this one"
            f" knows versions up to {LATEST} (upgrade planfix-simulator, or use another --db)"
        )
    current = found
    if (
        current == 0
        and db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'integrations'"
        ).fetchone()
    ):
        current = 1  # release 0.1.0's tables, from before user_version was kept
    for step in MIGRATIONS[current:]:
        step(db)
    if found != LATEST:
        db.execute(f"PRAGMA user_version = {LATEST}")
    return found
