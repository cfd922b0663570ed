"""A database kept with `--db` opens in every later release, with all its data.

The fixture was written by release 0.1.0's own code (tests/fixtures/make_release_db.py says how).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from simulator.contract import ContactInfo, NewMessage
from simulator.planfix import lifecycle
from simulator.store import CannotOpen, SchemaTooNew, Store, schema
from tests.served import Served

RELEASE_DB = Path(__file__).resolve().parent.parent / "fixtures" / "release-0.1.0.sqlite3"
# What the release's script made (tests/fixtures/make_release_db.py).
RELEASE_COUNTS = {
    "integrations": 2,
    "contacts": 4,
    "chats": 4,
    "tasks": 5,
    "messages": 9,
    "journal": 17,
}
HIGHEST_TASK = 1004


@pytest.fixture
def kept(tmp_path: Path) -> Path:
    """A copy of the release's database, as a user kept it."""
    copy = tmp_path / "kept.sqlite3"
    shutil.copyfile(RELEASE_DB, copy)
    return copy


@pytest.fixture
def upgraded(kept: Path) -> Iterator[Store]:
    """Today's store on the copy."""
    store = Store(str(kept))
    yield store
    store.close()


def user_version(path: Path) -> int:
    """The schema version stamped in the file."""
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_the_fixture_is_the_release_schema_without_a_version() -> None:
    assert user_version(RELEASE_DB) == 0


def test_a_release_database_is_stamped_with_the_latest_version(kept: Path, upgraded: Store) -> None:
    assert user_version(kept) == schema.LATEST


def test_every_kind_of_row_of_the_release_is_kept(upgraded: Store) -> None:
    counts = upgraded.counts()
    assert {t: counts[t] for t in RELEASE_COUNTS} == RELEASE_COUNTS


def test_integrations_keep_their_own_tokens_and_settings(upgraded: Store) -> None:
    crm = upgraded.integration_by_name("crm")
    assert crm is not None
    assert (crm.planfix_token, crm.token) == (
        "crm-planfix-token-0123456789",
        "crm-chat-token-0123456789",
    )
    assert crm.profile == "observed"
    assert crm.task_fields == ("Source", "Order")
    assert crm.default_employee == "anna@example.com"
    assert (crm.options.new_task_when_closed, crm.options.rename_task_on_title) == (False, True)
    assert (crm.timeout, crm.retry.schedule, crm.retry.time_factor) == (7.5, (1.0, 2.0), 0.5)
    assert upgraded.integration_by_token("crm-planfix-token-0123456789") == crm
    assert [e.email for e in upgraded.employees()] == ["peter@example.com", "anna@example.com"]


def test_tasks_messages_and_their_life_cycle_are_kept(upgraded: Store) -> None:
    assert upgraded.task(1001).status == "completed"
    follower = upgraded.task(1004)
    assert follower.previous_number == 1001
    assert "continued from task #1001" in follower.description
    assert upgraded.task(1002).fields == {"Source": "crm"}
    thread = upgraded.messages(1000)
    assert [m.kind for m in thread] == ["customer", "customer", "echo", "reply"]
    assert thread[0].attachments[0].name == "photo.jpg"
    assert thread[3].delivery_state == "delivered"
    assert upgraded.task(1000).unread == 0


def test_deliveries_inbox_and_journal_are_kept(upgraded: Store) -> None:
    retried = upgraded.delivery(2)
    assert (retried.state, retried.attempts, len(retried.journal_ids)) == ("delivered", 2, 2)
    assert [d.variant for d in upgraded.deliveries()] == ["first", "reply", "reply"]
    assert [i.message for i in upgraded.inbox()] == ["We are on it", "Olga?", "A first message"]
    assert len(upgraded.fake_chats()) == 4
    entries = upgraded.journal()
    assert len(entries) == RELEASE_COUNTS["journal"]
    assert upgraded.journal_entry(entries[0].id).cmd == "newMessage"


def test_new_writes_continue_the_release_numbering(upgraded: Store) -> None:
    integration = upgraded.integrations()[0]
    command = NewMessage("fakechat", "chat-new", "After the upgrade", ContactInfo("contact-new"))
    filed = lifecycle.file_message(upgraded, integration, command, None)
    assert filed.task_number == HIGHEST_TASK + 1
    assert filed.contact_number == 5004
    assert upgraded.counts()["journal"] == RELEASE_COUNTS["journal"]


def test_an_upgraded_database_opens_again_as_it_is(kept: Path) -> None:
    Store(str(kept)).close()
    store = Store(str(kept))
    try:
        assert store.counts()["tasks"] == RELEASE_COUNTS["tasks"]
    finally:
        store.close()
    assert user_version(kept) == schema.LATEST


def test_a_fresh_database_starts_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite3"
    Store(str(path)).close()
    assert user_version(path) == schema.LATEST


def stamp(path: Path, version: int) -> None:
    """Write `version` into the file's header, as a newer release would."""
    db = sqlite3.connect(path)
    try:
        db.execute(f"PRAGMA user_version = {version}")
        db.commit()
    finally:
        db.close()


def test_a_database_of_a_newer_release_is_refused_untouched(kept: Path) -> None:
    Store(str(kept)).close()
    stamp(kept, schema.LATEST + 1)
    before = kept.read_bytes()
    with pytest.raises(SchemaTooNew, match=f"version {schema.LATEST + 1}"):
        Store(str(kept))
    assert kept.read_bytes() == before
    assert issubclass(SchemaTooNew, CannotOpen)


def test_served_on_a_release_database_shows_its_data_and_files_new_messages(
    kept: Path,
) -> None:
    served = Served("--db", str(kept))
    try:
        api = served.url + "/api/v1"
        integrations = requests.get(api + "/integrations?reveal=1", timeout=30).json()
        crm = next(i for i in integrations if i["name"] == "crm")
        assert crm["planfix_token"] == "crm-planfix-token-0123456789"
        assert crm["retry"] == {"enabled": True, "schedule": [1.0, 2.0], "time_factor": 0.5}
        tasks = requests.get(api + "/tasks", timeout=30).json()
        assert sorted(t["number"] for t in tasks) == list(range(1000, HIGHEST_TASK + 1))
        task = requests.get(api + "/tasks/1001", timeout=30).json()
        assert task["status"] == "completed"
        assert task["contact"]["last_name"] == "Smirnova"
        contacts = requests.get(api + "/contacts", timeout=30).json()
        assert len(contacts) == RELEASE_COUNTS["contacts"]
        journal = requests.get(api + "/journal", timeout=30).json()
        assert len(journal) == RELEASE_COUNTS["journal"]
        deliveries = requests.get(api + "/deliveries", timeout=30).json()
        assert [d["attempts"] for d in deliveries] == [1, 2, 1]
        form = {
            "cmd": "newMessage",
            "providerId": "fakechat",
            "chatId": "chat-after-upgrade",
            "planfix_token": crm["planfix_token"],
            "message": "Hello again",
            "contactId": "contact-after-upgrade",
            "contactName": "New",
        }
        answer = requests.post(served.api, data=form, timeout=30)
        assert answer.status_code == 200, answer.text
        created = requests.get(api + "/tasks", timeout=30).json()[0]
        assert (created["number"], created["chat_id"]) == (HIGHEST_TASK + 1, "chat-after-upgrade")
    finally:
        assert served.stop() == 0, served.stderr[-2000:]
    assert user_version(kept) == schema.LATEST


def test_serve_refuses_a_database_of_a_newer_release_with_one_line(kept: Path) -> None:
    stamp(kept, schema.LATEST + 7)
    done = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "serve", "--port", "0", "--db", str(kept)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "newer planfix-simulator" in lines[0]
    assert f"version {schema.LATEST + 7}" in lines[0]
    assert user_version(kept) == schema.LATEST + 7
