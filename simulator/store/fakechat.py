"""The fake chat's side: the chats it knows, its inbox, and fault marks."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from typing import Any

from simulator.contract import (
    Attachment,
)
from simulator.records import (
    FakeChat,
    InboxItem,
)
from simulator.store.db import (
    Database,
    prune,
)


class FakeChats(Database):
    """The fake chat's chats, inbox and fault marks."""

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
            prune(db, "inbox", filed.id, self.journal_retention)
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
