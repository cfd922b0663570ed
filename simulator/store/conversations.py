"""Contacts, their chats, and the tasks that hold a chat's conversation."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace

from simulator.contract import (
    ContactInfo,
    HistoryLine,
    UpdateContact,
)
from simulator.errors import NotFound
from simulator.records import (
    ChatRecord,
    ContactRecord,
    TaskRecord,
)
from simulator.store.db import (
    CONTACT_COUNTER,
    TASK_COUNTER,
)
from simulator.store.messages import Messages


@dataclass(frozen=True)
class TaskHead:
    """What Planfix's rules read of a chat's task before filing a message."""

    number: int
    status: str
    title: str
    fields: dict[str, str]


class Conversations(Messages):
    """Contacts, chats and tasks."""

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
        number: int | None = None,
    ) -> int:
        if number is None:
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

    # -- steps of Planfix's rules (simulator/planfix/lifecycle.py), inside `transaction()` --

    def find_or_add_contact(
        self, integration_id: int, provider_id: str, info: ContactInfo
    ) -> ContactRecord:
        """The contact with this chat-side identity, created when new."""
        db = self._tx()
        found = self._find_contact(db, integration_id, provider_id, info.contact_id)
        return found or self._create_contact(db, integration_id, provider_id, info)

    def ensure_chat(
        self,
        integration_id: int,
        provider_id: str,
        chat_id: str,
        channel: str | None,
        contact_pk: int | None,
    ) -> ChatRecord:
        """The chat, created when new; a channel given replaces, a contact fills a gap."""
        return self._ensure_chat(
            self._tx(), integration_id, provider_id, chat_id, channel, contact_pk
        )

    def task_head(self, number: int) -> TaskHead:
        """A task's status, title and fields: what the rules decide on (one read)."""
        row = (
            self._tx()
            .execute("SELECT status, title, fields FROM tasks WHERE number = ?", (number,))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"task {number}")
        return TaskHead(number, row["status"], row["title"], json.loads(row["fields"]))

    def chat_history(self, chat_pk: int) -> list[HistoryLine]:
        """Every message of the chat's tasks, oldest first."""
        return self._history(self._tx(), chat_pk)

    def open_task(
        self,
        integration_id: int,
        chat: ChatRecord,
        *,
        title: str,
        description: str,
        previous: int | None,
        number: int | None = None,
    ) -> int:
        """A new active task as the chat's current one (a reserved `number`, or the next)."""
        return self._create_task(
            self._tx(), integration_id, chat, title, description, previous, number
        )

    def rename_task(self, integration_id: int, number: int, title: str) -> None:
        """Give a task a new title."""
        self._tx().execute("UPDATE tasks SET title = ? WHERE number = ?", (title, number))
        self._emit(self._tx(), "task.renamed", integration_id, number=number, title=title)

    def set_task_fields(self, number: int, fields: dict[str, str]) -> None:
        """Replace a task's fields."""
        self._tx().execute(
            "UPDATE tasks SET fields = ? WHERE number = ?", (json.dumps(fields), number)
        )

    # -- reads -----------------------------------------------------------------------------

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
