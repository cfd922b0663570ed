"""Deliveries: Planfix's newMessage to an integration, queued, leased, retried."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from simulator.errors import BadRequest, NotFound
from simulator.records import (
    DeliveryRecord,
)
from simulator.store.db import (
    TASK_COUNTER,
    now_iso,
    prune,
)
from simulator.store.messages import Messages


class Deliveries(Messages):
    """Queued deliveries and their attempts."""

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
            prune(
                db,
                "deliveries",
                row["id"],
                self.journal_retention,
                where="state IN ('delivered', 'failed')",
            )
            return self._delivery(db, row)

    def claim_deliveries(
        self, worker: str, limit: int, lease_margin: float = 30.0, only: int | None = None
    ) -> list[int]:
        """Atomically claim up to `limit` due deliveries (or just `only`) for `worker`.

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
                " OR lease_until < ?) AND (? IS NULL OR id = ?)"
                " ORDER BY next_attempt_at, id LIMIT ?) RETURNING id",
                (worker, now, lease_margin, now, now, only, only, limit),
            ).fetchall()
        return sorted(int(r[0]) for r in rows)

    def claim_delivery(self, delivery_id: int, worker: str, lease_margin: float = 30.0) -> bool:
        """Claim one delivery for `worker` if it is due and unclaimed (see `claim_deliveries`)."""
        return bool(self.claim_deliveries(worker, 1, lease_margin, only=delivery_id))

    def next_delivery_due(self) -> float | None:
        """When the next delivery falls due (a lease counts as not due before it ends)."""
        with self._read() as db:
            row = db.execute(
                "SELECT MIN(CASE WHEN claimed_by IS NULL THEN next_attempt_at"
                " ELSE MAX(next_attempt_at, COALESCE(lease_until, 0)) END)"
                " FROM deliveries WHERE state IN ('pending', 'retrying')"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def held_claim(self, delivery_id: int, worker: str) -> Claim | None:
        """The claimed delivery, if `worker` still holds it (inside `transaction()`)."""
        row = (
            self._tx()
            .execute(
                "SELECT integration_id, message_pk, task_number FROM deliveries"
                " WHERE id = ? AND claimed_by = ?",
                (delivery_id, worker),
            )
            .fetchone()
        )
        return None if row is None else Claim(*row)

    def finish_attempt(
        self,
        delivery_id: int,
        worker: str,
        result: AttemptResult,
        task_number: int | None = None,
    ) -> DeliveryRecord | None:
        """Record an attempt's outcome; None when `worker` no longer holds the claim.

        `task_number`: the task a delivered first message opened (or joined).
        """
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
                " task_number = COALESCE(?, task_number), updated_at = ?"
                " WHERE id = ? AND claimed_by = ? RETURNING *",
                (
                    state,
                    result.retry_at,
                    result.outcome,
                    json.dumps(result.answer or {}),
                    task_number,
                    now,
                    delivery_id,
                    worker,
                ),
            ).fetchone()
            if row is None:
                return None
            pk = row["message_pk"]
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
                task=row["task_number"],
            )
            return self._delivery(db, row)

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


class Claim(NamedTuple):
    """A claimed delivery: what opening a first message's chat needs of it."""

    integration_id: int
    message_pk: int | None
    task_number: int | None  # reserved for a first message's taskEmail


@dataclass(frozen=True)
class AttemptResult:
    """One delivery attempt's verdict, as the store records it."""

    delivered: bool
    outcome: str
    answer: dict[str, Any] | None
    retry_at: float | None = None
