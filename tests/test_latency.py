"""What keeps the latencies a test suite feels low: a waited reply and the `planfix` fixture.

Each test pins a mechanism (which thread runs an attempt, which index a statement uses), never a
time: `tests/bench/bench.py`'s `latency` part measures the times.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from simulator.clients.http import Answer
from simulator.planfix import delivery
from simulator.serving.live import LiveServer
from simulator.store import Store
from tests.chat_stub import (
    IntegrationStub,
    _no_background_errors,  # noqa: F401 - autouse fixture
    api,
)
from tests.planfix.test_delivery import add_integration, customer_writes, reply


@pytest.fixture
def posting_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that post deliveries to integrations, in order."""
    names: list[str] = []
    post_form = delivery.post_form

    def recording(url: str, pairs: Sequence[tuple[str, str]], **kwargs: Any) -> Answer:
        names.append(threading.current_thread().name)
        return post_form(url, pairs, **kwargs)

    monkeypatch.setattr(delivery, "post_form", recording)
    return names


@pytest.mark.parametrize(
    ("wait", "runs_on_the_pool"),
    [
        (True, False),  # the request's own thread posts: no hand-off to the pool and back
        (False, True),  # nobody waits: the pool delivers in the background
    ],
)
def test_a_waited_reply_is_attempted_on_the_requests_own_thread(
    live_server: LiveServer,
    stub: IntegrationStub,
    posting_threads: list[str],
    wait: bool,
    runs_on_the_pool: bool,
) -> None:
    integration = add_integration(live_server, f"{stub.url}/webhook")
    number = customer_writes(live_server, integration, "chat-1")

    answer = reply(live_server, number, wait=wait)
    path = f"/api/v1/deliveries/{answer['delivery']['id']}"
    for _ in range(300):  # without wait, the answer may come before the attempt
        if answer["delivery"]["state"] == "delivered":
            break
        stub.release.wait(0.02)
        answer["delivery"] = api(live_server, "GET", path)

    assert answer["delivery"]["state"] == "delivered"
    assert answer["delivery"]["attempts"] == 1
    [name] = posting_threads
    assert name.startswith("delivery-") is runs_on_the_pool, name


def _plan(db: sqlite3.Connection, sql: str) -> str:
    return " / ".join(str(row[3]) for row in db.execute("EXPLAIN QUERY PLAN " + sql, (1,)))


@pytest.mark.parametrize(
    "statement",
    [
        # Every delivery read (the reply's answer, each wait) lists the delivery's journal ids.
        "SELECT id FROM journal WHERE delivery_id = ? ORDER BY id",
        # Deleting an integration (the `planfix` fixture's teardown) deletes its rows.
        "DELETE FROM messages WHERE integration_id = ?",
        "DELETE FROM deliveries WHERE integration_id = ?",
    ],
)
def test_lookups_of_a_delivery_and_an_integrations_rows_use_an_index(
    tmp_path: Path, statement: str
) -> None:
    # A scan grows with the store: 10,000 journal rows or a million messages per statement.
    Store(str(tmp_path / "sim.db")).close()
    with sqlite3.connect(tmp_path / "sim.db") as db:
        plan = _plan(db, statement)
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    assert "SCAN" not in plan, plan


def test_short_lived_threads_reuse_one_sqlite_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The in-thread server (`planfix` fixture, LiveServer) serves each connection on a new
    # thread: opening a SQLite connection per request (and parsing the schema again) was
    # most of the time of a control-API call there.
    store = Store(str(tmp_path / "sim.db"))
    opened: list[str] = []
    connect = sqlite3.connect

    def counting(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(threading.current_thread().name)
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counting)
    before = store.open_connections  # this thread's, from opening the store
    try:
        for i in range(5):
            thread = threading.Thread(target=store.integrations, name=f"request-{i}")
            thread.start()
            thread.join(10)
        assert opened == ["request-0"]
        assert store.open_connections == before + 1
    finally:
        store.close()
