"""The journal of exchanges (bounded in rows and bytes) and the event log."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import NotFound
from simulator.records import (
    Event,
    JournalEntry,
)
from simulator.store.db import (
    Database,
    now_iso,
    prune,
    prune_step,
)
from simulator.store.schema import (
    JOURNAL_BYTES_COUNTER,
    JOURNAL_TEXT_COLUMNS,
    ROW_BYTES_SQL,
    ROW_OVERHEAD,
)

CUT_NOTE = "journal-cut"
# Past the byte bound the oldest entries go 16 at a time (never the one just written).
_DROP_OLDEST = (
    "DELETE FROM journal WHERE id IN"  # noqa: S608 - constant SQL of our own
    " (SELECT id FROM journal WHERE id < ? ORDER BY id LIMIT 16)"
    " RETURNING " + ROW_BYTES_SQL
)


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


class Journal(Database):
    """Journal entries and events."""

    @property
    def journal_bound(self) -> int:
        """The most journal entries kept at once: the retention plus one pruning step."""
        return self.journal_retention + prune_step(self.journal_retention) - 1

    def record(self, exchange: ExchangeRecord) -> int:
        """Journal one exchange, cut to the entry cap; the oldest entries past the bounds go."""
        t = self.clock()
        row = _fitted_row(exchange, now_iso(t), self.journal_entry_bytes)
        size = sum(len(row[c].encode()) for c in JOURNAL_TEXT_COLUMNS) + ROW_OVERHEAD
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
            dropped = prune(
                db, "journal", entry_id, self.journal_retention, returning=ROW_BYTES_SQL
            )
            total = self._freed(db, dropped, total)
            if total > self.journal_bytes:
                # Down to the bound less one step, so the next inserts do not prune again.
                floor = self.journal_bytes - prune_step(self.journal_bytes)
                while total > floor:
                    dropped = db.execute(_DROP_OLDEST, (entry_id,)).fetchall()
                    if not dropped:
                        break  # only the new entry is left: it alone may pass the bound
                    total = self._freed(db, dropped, total)
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
    def _freed(db: sqlite3.Connection, dropped: list[sqlite3.Row], total: int) -> int:
        """Take the bytes of `dropped` journal rows off the running size; the size left."""
        freed = sum(int(r[0]) for r in dropped)
        if not freed:
            return total
        db.execute(
            "UPDATE counters SET value = ? WHERE name = ?",
            (max(total - freed, 0), JOURNAL_BYTES_COUNTER),
        )
        return total - freed

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


def _fitted_row(exchange: ExchangeRecord, ts: str, cap: int) -> dict[str, str]:
    """The text columns of a journal row, its values cut to `cap` bytes in all, with a note."""
    # The journal holds text: a missing form value is an empty string, never null.
    form = [["" if k is None else str(k), "" if v is None else str(v)] for k, v in exchange.form]
    headers = dict(exchange.request_headers)
    notes = [dict(n) for n in exchange.notes]
    chars = len(exchange.url) + len(exchange.cmd) + len(exchange.chat_id)
    chars += sum(len(k) + len(v) for k, v in form) + sum(map(len, headers))
    chars += sum(map(len, headers.values())) + len(exchange.response_body) + len(exchange.error)
    chars += sum(len(str(n.get("text", ""))) for n in notes)
    if chars * 4 <= cap:
        # Every request of a load test: at most 4 bytes a character, so it surely fits, and
        # naming each piece for a cut note (a string per field) would be wasted work.
        return _row(exchange, ts, exchange.url, exchange.cmd, exchange.chat_id, form, headers)
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
        return _row(exchange, ts, url, cmd, chat_id, form, headers, body, error, notes)
    return _row(exchange, ts, exchange.url, exchange.cmd, exchange.chat_id, form, headers)


def _row(
    exchange: ExchangeRecord,
    ts: str,
    url: str,
    cmd: str,
    chat_id: str,
    form: list[list[str]],
    headers: dict[str, str],
    body: str | None = None,
    error: str | None = None,
    notes: list[dict[str, object]] | None = None,
) -> dict[str, str]:
    """The journal row's text columns; body, error and notes are the exchange's unless given."""
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
        "response_body": exchange.response_body if body is None else body,
        "notes": json.dumps(exchange.notes if notes is None else notes),
        "fault": exchange.fault,
        "error": exchange.error if error is None else error,
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
