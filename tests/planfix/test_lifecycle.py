"""Planfix's task life cycle decides where a message goes; the store only keeps the rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.contract import ContactInfo, Integration, NewMessage, Options
from simulator.planfix import lifecycle
from simulator.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store with one integration."""
    kept = Store(str(tmp_path / "s.sqlite3"))
    kept.add_integration(Integration(id=0, name="one", planfix_token="pt", token="t", url="u"))
    yield kept
    kept.close()


def integration(store: Store, *, new_task_when_closed: bool = True) -> Integration:
    """The integration with the option set as asked."""
    found = store.integrations()[0]
    return replace(found, options=Options(new_task_when_closed=new_task_when_closed))


def write(store: Store, item: Integration, text: str, *, title: str | None = None) -> int:
    """The customer of chat c1 writes; the task it went to."""
    command = NewMessage("p", "c1", text, ContactInfo("u1", "Ann"), title=title)
    return lifecycle.file_message(store, item, command, None).task_number


@pytest.mark.parametrize(
    ("completed", "new_task_when_closed", "opens_a_task", "note"),
    [
        (False, True, False, None),
        (False, False, False, None),
        (True, True, True, None),
        (True, False, False, "closed-task"),
    ],
    ids=["active", "active-option-off", "completed", "completed-option-off"],
)
def test_the_next_message_of_a_chat_goes_where_the_life_cycle_says(
    store: Store,
    completed: bool,
    new_task_when_closed: bool,
    opens_a_task: bool,
    note: str | None,
) -> None:
    item = integration(store, new_task_when_closed=new_task_when_closed)
    first = write(store, item, "hello")
    if completed:
        store.set_task_status(first, "completed")
    command = NewMessage("p", "c1", "again", ContactInfo("u1", "Ann"))
    filed = lifecycle.file_message(store, item, command, None)
    assert filed.task_created is opens_a_task
    assert (filed.task_number != first) is opens_a_task
    assert [n.code for n in filed.notes] == ([note] if note else [])
    if opens_a_task:
        follower = store.task(filed.task_number)
        assert follower.previous_number == first
        assert "hello" in follower.description


def test_a_first_message_into_a_chat_whose_task_was_completed_opens_one_with_its_history(
    store: Store,
) -> None:
    item = integration(store)
    first = write(store, item, "hello")
    store.set_task_status(first, "completed")
    reserved = store.reserve_task_number()
    with store.transaction():
        where = lifecycle.open_conversation(
            store,
            item.id,
            provider_id="p",
            chat_id="c1",
            contact=ContactInfo("u1"),
            channel=None,
            title="Chat with +1",
            new_task_when_closed=True,
            number=reserved,
        )
    opened = store.task(where.task_number)
    assert (opened.number, opened.previous_number, opened.title) == (
        reserved,
        first,
        "Chat with +1",
    )
    assert "hello" in opened.description, "a task that follows another carries its history"


@pytest.mark.parametrize(
    "name", ["file_message", "open_chat", "move_message", "set_delivery_state", "next_message_id"]
)
def test_the_store_keeps_no_rules_and_no_dead_methods(name: str) -> None:
    assert not hasattr(Store, name)


def test_a_step_of_a_rule_outside_a_transaction_is_refused(store: Store) -> None:
    with pytest.raises(RuntimeError, match="transaction"):
        store.find_or_add_contact(1, "p", ContactInfo("u1"))
