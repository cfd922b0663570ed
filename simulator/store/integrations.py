"""Integrations (their settings and fault plans) and the account's employees."""

from __future__ import annotations

import hmac
import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from simulator.contract import (
    Employee,
    Integration,
    Options,
    Retry,
    new_token,
)
from simulator.errors import BadRequest, NotFound, StorageUnavailable
from simulator.store.db import (
    Database,
)

# The highest integration id ever given (the table's own rowids would reuse a deleted one).
INTEGRATION_COUNTER = "integration_ids"


class Integrations(Database):
    """Integrations, their fault plans, employees."""

    # Every process caches integrations for token lookups (see `_integrations_cached`).
    _integrations_cache: tuple[str, list[Integration]] | None = None

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
                # Ids are never reused (SQLite would reuse a deleted highest one): a page, a
                # script or a late journal entry holding a deleted id must not reach a new one.
                new_id = int(
                    db.execute(
                        "SELECT MAX(COALESCE((SELECT value FROM counters WHERE name = ?), 0),"
                        " COALESCE((SELECT MAX(id) FROM integrations), 0)) + 1",
                        (INTEGRATION_COUNTER,),
                    ).fetchone()[0]
                )
                db.execute(
                    "INSERT INTO counters (name, value) VALUES (?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    (INTEGRATION_COUNTER, new_id),
                )
                db.execute(
                    "INSERT INTO integrations (id, name, planfix_token, token, url, profile,"
                    " strict, task_fields, default_employee, options, timeout, retry, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (new_id, *self._integration_values(item), self._now()),
                )
                created = replace(item, id=new_id)
                self._emit(db, "integration.created", created.id, name=created.name)
                self._bump_integrations(db)
        except sqlite3.IntegrityError as exc:
            raise BadRequest(self._clash(item)) from exc
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
            raise BadRequest(self._clash(item)) from exc
        return item

    def _clash(self, item: Integration) -> str:
        """Why `item` cannot be stored beside the others, and what to do instead."""
        with self._read() as db:
            for column in ("planfix_token", "name"):
                row = db.execute(
                    f"SELECT id, name FROM integrations WHERE {column} = ? AND id != ?",  # noqa: S608
                    (getattr(item, column), item.id),
                ).fetchone()
                if row is not None:
                    return (
                        f"an integration with this {column} exists ({row['name']!r},"
                        f" id {row['id']}): reuse it, or pick another {column}"
                    )
        return "an integration with that name or planfix_token exists"

    def upsert_integration(self, item: Integration) -> None:
        """Apply a configured integration at start, unless its declaration is the one applied last.

        What a user changed since (control API, sandbox) survives a restart; a declaration that
        changed in the configuration is applied again, over the stored settings. An empty token
        is generated (or the stored one kept).
        """
        # The declaration as applied, kept to tell an edited configuration from a restart.
        declared = json.dumps(asdict(replace(item, id=0)), sort_keys=True)
        key = f"declared_integration:{item.name}"
        with self._write() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] == declared:
                return  # unchanged: the stored state wins, even a rename or a deletion
            existing = self.integration_by_name(item.name)
            # A token the configuration leaves out is generated once, then kept: the declaration
            # (with the empty token) stays the same across restarts and workers.
            item = replace(
                item,
                planfix_token=item.planfix_token
                or (existing.planfix_token if existing else new_token()),
                token=item.token or (existing.token if existing else new_token()),
            )
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
