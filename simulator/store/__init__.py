"""The simulator's state in SQLite: one `Store` object over one small core.

`db` holds the connection, the one writer, group commit, the file's health and events; `schema`
the tables and their numbered migrations; each aggregate has its module (`integrations`,
`conversations`, `messages`, `journal`, `deliveries`, `fakechat`). `Store` joins them, so callers
hold one object and a transaction spans aggregates. Nothing outside this package speaks SQL.
"""

from __future__ import annotations

from simulator.errors import Conflict, NotFound
from simulator.store.conversations import Conversations, TaskHead
from simulator.store.db import Database, now_iso
from simulator.store.deliveries import AttemptResult, Claim, Deliveries
from simulator.store.errors import CannotOpen, SchemaTooNew
from simulator.store.fakechat import FakeChats
from simulator.store.integrations import Integrations
from simulator.store.journal import ExchangeRecord, Journal, JournalQuery
from simulator.store.schema import JOURNAL_BYTES_COUNTER, SUM_JOURNAL_BYTES

__all__ = [
    "AttemptResult",
    "CannotOpen",
    "Claim",
    "Database",
    "ExchangeRecord",
    "JournalQuery",
    "SchemaTooNew",
    "Store",
    "TaskHead",
    "now_iso",
]


# Every table whose rows belong to one integration: what a reset forgets (a deletion: all but
# the journal).
OWNED_TABLES = (
    "contacts",
    "chats",
    "tasks",
    "messages",
    "deliveries",
    "journal",
    "inbox",
    "fake_chats",
)


class Store(Integrations, Conversations, Deliveries, Journal, FakeChats):
    """SQLite-backed state of one simulated Planfix account and its fake chat."""

    def counts(self) -> dict[str, int]:
        """Row counts per table: what the reliability tests and benchmarks watch."""
        tables = ("integrations", "contacts", "chats", "tasks", "messages", "journal", "events")
        with self._read() as db:
            return {
                t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])  # noqa: S608
                for t in tables
            }

    def reset(self, integration_id: int | None = None) -> None:
        """Forget chats, tasks, contacts, messages and journal; of one integration, or all.

        A full reset also restarts numbering; resetting one integration does not, because other
        integrations share the account's sequences.
        """
        with self._write() as db:
            for table in OWNED_TABLES:
                if integration_id is None:
                    db.execute(f"DELETE FROM {table}")  # noqa: S608
                else:
                    db.execute(f"DELETE FROM {table} WHERE integration_id = ?", (integration_id,))  # noqa: S608
            db.execute(
                "UPDATE counters SET value = ? WHERE name = ?",
                (db.execute(SUM_JOURNAL_BYTES).fetchone()[0], JOURNAL_BYTES_COUNTER),
            )
            if integration_id is None:
                self._init_counters(db, replace_existing=True)
                db.execute("UPDATE integrations SET faults = '{}'")
            else:
                db.execute("UPDATE integrations SET faults = '{}' WHERE id = ?", (integration_id,))
            self._emit(db, "reset", integration_id)

    def delete_integration(self, integration_id: int) -> None:
        """Delete an integration and the rows it owns, in one transaction; its journal stays.

        Its contacts, chats, tasks, messages, deliveries and fake-chat state go. Its journal
        entries are history and stay, marked with its id (never given to another integration)
        but no longer with their deliveries' ids, until the journal's own bounds drop them. The last
        integration stays (Conflict): the sandbox and the chat API always have one.
        """
        with self._write() as db:
            row = db.execute(
                "SELECT name, (SELECT COUNT(*) FROM integrations) FROM integrations WHERE id = ?",
                (integration_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"integration {integration_id}")
            name, count = row[0], int(row[1])
            if count == 1:
                raise Conflict(
                    f"integration {name!r} is the last integration: create another one first"
                )
            for table in OWNED_TABLES:
                if table != "journal":
                    db.execute(f"DELETE FROM {table} WHERE integration_id = ?", (integration_id,))  # noqa: S608
            # Its deliveries are gone and their ids may be given again: unlink its entries.
            db.execute(
                "UPDATE journal SET delivery_id = NULL WHERE integration_id = ?", (integration_id,)
            )
            db.execute("DELETE FROM integrations WHERE id = ?", (integration_id,))
            # Every page lists every integration: the event is for all streams (no integration).
            self._emit(db, "integration.deleted", None, id=integration_id, name=name)
            self._bump_integrations(db)
