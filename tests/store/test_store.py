"""The store: persistence across restarts, retention, isolation, reset."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from simulator.planfix import lifecycle
from simulator.runtime import runtime
from simulator.store import ExchangeRecord, JournalQuery, Store
from simulator.web.app import close_app, create_app
from tests.planfix.test_chat_api import new_message, post


def test_a_restart_with_the_same_db_keeps_everything(tmp_path: Path) -> None:
    db = str(tmp_path / "state.sqlite3")
    first = create_app({"testing": True, "db": db})
    client = first.test_client()
    post(client, new_message(chatId="a", contactId="ca"))
    post(client, new_message(chatId="b", contactId="cb"))
    client.post("/api/v1/tasks/1001/complete")
    close_app(first)
    assert Path(db).exists(), "a --db file must survive the app"

    second = create_app({"testing": True, "db": db})
    try:
        store = runtime(second).store
        assert [t.number for t in store.tasks()] == [1001, 1000]
        assert [c.number for c in store.contacts()] == [5001, 5000]
        assert len(store.journal()) == 2
        post(second.test_client(), new_message(chatId="b", contactId="cb"))
        post(second.test_client(), new_message(chatId="c", contactId="cc"))
        numbers = sorted(t.number for t in store.tasks())
        assert numbers == [1000, 1001, 1002, 1003], "numbering continues without reuse"
    finally:
        close_app(second)


def test_the_default_database_is_temporary() -> None:
    app = create_app({"testing": True})
    path = Path(runtime(app).store.path)
    assert path.exists()
    close_app(app)
    assert not path.exists()


def test_journal_retention_drops_the_oldest_entries() -> None:
    app = create_app({"testing": True, "journal_retention": 5})
    try:
        client = app.test_client()
        for i in range(12):
            post(client, new_message(message=f"m{i}"))
        store = runtime(app).store
        entries = store.journal()
        assert [e.id for e in entries] == [8, 9, 10, 11, 12]
        assert store.counts()["journal"] == 5
        assert store.counts()["messages"] == 12, "retention bounds the journal, not the data"
    finally:
        close_app(app)


def test_retention_drops_the_oldest_rows_in_steps_of_one_percent(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.sqlite3"), journal_retention=500)
    try:
        sizes = set()
        for i in range(1, 1301):
            store.record(_exchange(f"/{i}"))
            if i >= 500:
                sizes.add(store.counts()["journal"])
        assert sizes == set(range(500, 505)), "never fewer than kept, never a step (5) over"
        assert store.journal_bound == 504
        assert store.counts()["events"] < 4 * 500 + 20
        kept = store.journal(JournalQuery(limit=store.journal_bound))
        assert [e.url for e in kept] == [f"/{i}" for i in range(801, 1301)], "the newest stay"
    finally:
        store.close()


def test_integrations_see_only_their_own_records(client: FlaskClient, store: Store) -> None:
    other = client.post("/api/v1/integrations", json={"name": "ci-job-7"}).get_json()
    post(client, new_message(chatId="mine"))
    theirs = [(k, other["planfix_token"] if k == "planfix_token" else v) for k, v in new_message()]
    post(client, theirs)
    for path in ("/api/v1/tasks", "/api/v1/contacts", "/api/v1/journal"):
        listed = client.get(f"{path}?integration=ci-job-7").get_json()
        assert len(listed) == 1
        assert {item["integration_id"] for item in listed} == {other["id"]}
    assert len(client.get("/api/v1/tasks").get_json()) == 2


def test_reset_of_one_integration_keeps_the_others(client: FlaskClient, store: Store) -> None:
    other = client.post("/api/v1/integrations", json={"name": "other"}).get_json()
    post(client, new_message())
    theirs = [(k, other["planfix_token"] if k == "planfix_token" else v) for k, v in new_message()]
    post(client, theirs)
    assert client.post("/api/v1/reset?integration=other").status_code == 200
    assert [t.integration_id for t in store.tasks()] == [1]
    post(client, theirs)
    assert store.task(1002).integration_id == other["id"], "a partial reset keeps numbering"


def test_full_reset_restarts_numbering(client: FlaskClient, store: Store) -> None:
    post(client, new_message())
    client.post("/api/v1/reset")
    assert store.counts()["tasks"] == 0
    post(client, new_message())
    assert [t.number for t in store.tasks()] == [1000]


def test_numbering_is_atomic_across_threads(store: Store) -> None:
    import threading

    from simulator.contract import ContactInfo, NewMessage

    integration = store.integrations()[0]

    def send(worker: int) -> None:
        for i in range(20):
            chat = f"w{worker}-{i}"
            command = NewMessage("p", chat, "hi", ContactInfo(chat, "N"))
            lifecycle.file_message(store, integration, command, None)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = [t.number for t in store.tasks()]
    assert len(numbers) == 120
    assert sorted(numbers) == list(range(1000, 1120))


def _exchange(url: str) -> ExchangeRecord:
    return ExchangeRecord(direction="to_planfix", party="planfix", method="POST", url=url)


def _journal_then_fail(store: Store, url: str) -> None:
    with store.transaction():
        store.record(_exchange(url))
        raise RuntimeError("the caller failed after a store call")


def test_a_transaction_commits_its_calls_together_or_not_at_all(store: Store) -> None:
    with pytest.raises(RuntimeError):
        _journal_then_fail(store, "/first")
    assert store.journal() == [], "a failed transaction leaves nothing behind"

    seen_by_other_thread: list[int] = []
    with store.transaction():
        store.record(_exchange("/a"))
        store.record(_exchange("/b"))
        reader = threading.Thread(target=lambda: seen_by_other_thread.append(len(store.journal())))
        reader.start()
        reader.join()
    assert seen_by_other_thread == [0], "other threads see the writes only once committed"
    assert [e.url for e in store.journal()] == ["/a", "/b"]


def test_a_failing_step_inside_a_transaction_undoes_only_itself(store: Store) -> None:
    with store.transaction():
        store.record(_exchange("/kept-before"))
        with pytest.raises(RuntimeError):
            _journal_then_fail(store, "/undone")
        store.record(_exchange("/kept-after"))
    assert [e.url for e in store.journal()] == ["/kept-before", "/kept-after"]


def _queued(store: Store, count: int) -> None:
    """Wait until `count` pieces of work wait for the batch's leader."""
    for _ in range(500):
        with store._batch_lock:
            if len(store._batch) >= count:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} pieces of work never queued")


def test_batched_work_of_waiting_threads_commits_in_one_transaction(store: Store) -> None:
    release = threading.Event()
    ran_on: dict[str, int] = {}
    results: dict[str, object] = {}

    def work(url: str, *, block: bool = False, fail: bool = False) -> int:
        ran_on[url] = threading.get_ident()
        if block:
            release.wait(10)
        entry = store.record(_exchange(url))
        if fail:
            raise RuntimeError(f"{url} failed after writing")
        return entry

    def ask(url: str, **kwargs: bool) -> None:
        try:
            results[url] = store.batched(lambda: work(url, **kwargs))
        except RuntimeError as error:
            results[url] = error

    leader = threading.Thread(target=ask, args=("/leader",), kwargs={"block": True})
    leader.start()
    _queued(store, 0)
    while "/leader" not in ran_on:
        threading.Event().wait(0.01)
    waiting = [
        threading.Thread(target=ask, args=("/kept",)),
        threading.Thread(target=ask, args=("/undone",), kwargs={"fail": True}),
        threading.Thread(target=ask, args=("/kept-too",)),
    ]
    for thread in waiting:
        thread.start()
        _queued(store, waiting.index(thread) + 1)
    release.set()
    for thread in [leader, *waiting]:
        thread.join(10)

    assert len({ran_on[url] for url in ("/kept", "/undone", "/kept-too")}) == 1, (
        "the work that queued behind the leader ran as one batch, on one thread"
    )
    assert isinstance(results["/undone"], RuntimeError), "a failure reaches the thread that asked"
    assert str(results["/undone"]) == "/undone failed after writing"
    journal = {e.url: e.id for e in store.journal()}
    assert set(journal) == {"/leader", "/kept", "/kept-too"}, "failed work changes nothing"
    assert results["/kept"] == journal["/kept"], "each thread gets its own work's value"
    assert results["/kept-too"] == journal["/kept-too"]


def test_batched_work_from_many_threads_all_commits(store: Store) -> None:
    def send(worker: int) -> None:
        for i in range(25):
            store.batched(lambda i=i: store.record(_exchange(f"/w{worker}/{i}")))

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    urls = sorted(e.url for e in store.journal())
    assert urls == sorted(f"/w{w}/{i}" for w in range(8) for i in range(25))


def test_a_command_and_its_journal_entry_commit_together(
    client: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def journal_fails(exchange: ExchangeRecord) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "record", journal_fails)
    with pytest.raises(sqlite3.OperationalError):
        post(client, new_message(chatId="lost"))
    monkeypatch.undo()
    assert store.chat_task_state(1, "superchat", "lost") is None
    assert store.counts()["messages"] == 0, "no message without its journal entry"

    assert post(client, new_message(chatId="kept")).status_code == 200
    assert store.chat_task_state(1, "superchat", "kept") == (1000, True)
    assert [e.chat_id for e in store.journal()] == ["kept"]
