"""Messages of tasks, both ways, with their delivery state and status."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from simulator.contract import (
    Attachment,
    Employee,
    contact_display_name,
)
from simulator.errors import NotFound
from simulator.records import (
    MessageRecord,
)
from simulator.store.db import (
    MESSAGE_COUNTER,
    Database,
)


class Messages(Database):
    """Messages: inbound, outbound, their delivery state and status."""

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
        task_number: int | None,
        *,
        kind: str,
        text: str,
        author: Employee,
        attachments: Sequence[Attachment],
        integration_id: int | None = None,
        channel: str = "",
    ) -> MessageRecord:
        """An operator's message leaving Planfix: stored as pending, with a fresh messageId.

        A reply names its task (integration and channel are the task's); a first message has
        no task yet (`None`: task 0 until its chat exists) and names its integration and channel.
        """
        with self._write() as db:
            if task_number is not None:
                row = db.execute(
                    "SELECT t.integration_id, c.channel FROM tasks t JOIN chats c"
                    " ON c.pk = t.chat_pk WHERE t.number = ?",
                    (task_number,),
                ).fetchone()
                if row is None:
                    raise NotFound(f"task {task_number}")
                integration_id, channel = row["integration_id"], row["channel"]
            elif integration_id is None:
                raise ValueError("a message in no task names its integration")
            pk = self._insert_message(
                db,
                task_number=task_number or 0,
                integration_id=integration_id,
                direction="out",
                kind=kind,
                text=text,
                author=contact_display_name(author.name, author.last_name, author.email),
                employee_email=author.email,
                attachments=attachments,
                message_id=str(self._next(db, MESSAGE_COUNTER)),
                delivery_state="pending",
                channel=channel,
            )
            found = db.execute("SELECT * FROM messages WHERE pk = ?", (pk,)).fetchone()
        return self._message(found)

    def add_inbound(
        self,
        task_number: int,
        integration_id: int,
        *,
        kind: str,
        text: str,
        author: str,
        employee_email: str,
        attachments: Sequence[Attachment],
        channel: str,
    ) -> int:
        """A message into Planfix (inside `transaction()`); its id."""
        return self._insert_message(
            self._tx(),
            task_number=task_number,
            integration_id=integration_id,
            direction="in",
            kind=kind,
            text=text,
            author=author,
            employee_email=employee_email,
            attachments=attachments,
            channel=channel,
        )

    def place_message(self, pk: int, task_number: int) -> None:
        """File a message in a task (a first message, once its chat has one; in `transaction()`)."""
        db = self._tx()
        db.execute("UPDATE messages SET task_number = ? WHERE pk = ?", (task_number, pk))
        db.execute("UPDATE tasks SET updated_at = ? WHERE number = ?", (self._now(), task_number))

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

    def outbound_delivery_state(self, integration_id: int, message_id: str) -> str | None:
        """pending | delivered | failed of an outbound message by messageId; None if unknown."""
        with self._read() as db:
            row = db.execute(
                "SELECT delivery_state FROM messages WHERE integration_id = ? AND message_id = ?"
                " AND direction = 'out'",
                (integration_id, message_id),
            ).fetchone()
        return None if row is None else str(row[0])
