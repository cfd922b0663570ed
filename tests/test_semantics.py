"""What each command does to the account: tasks, contacts, messages, life cycle."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from simulator.contract import Attachment, Employee
from simulator.store import Store
from tests.planfix.test_chat_api import body_of, form, new_message, post


def test_first_message_creates_task_later_messages_join_it(
    client: FlaskClient, store: Store
) -> None:
    post(client, new_message(message="one"))
    post(client, new_message(message="two"))
    post(client, new_message(chatId="chat-2", contactId="c-2", message="other chat"))
    tasks = {t.chat_id: t for t in store.tasks()}
    assert tasks["chat-1"].number == 1000
    assert tasks["chat-2"].number == 1001
    assert [m.text for m in store.messages(1000)] == ["one", "two"]


def test_task_and_contact_numbers_start_where_configured() -> None:
    from simulator.web.app import close_app, create_app

    app = create_app({"testing": True, "task_number_start": 1014, "contact_number_start": 1058})
    try:
        client = app.test_client()
        post(client, new_message())
        assert body_of(post(client, form("getTask", chatId="chat-1"))) == {"data": {"number": 1014}}
        assert body_of(post(client, form("getContact", contactId="c-1"))) == {
            "data": {"number": 1058}
        }
    finally:
        close_app(app)


def test_title_names_the_task_and_renames_it(client: FlaskClient, store: Store) -> None:
    post(client, new_message(title="Boiler order"))
    assert store.task(1000).title == "Boiler order"
    post(client, new_message(title="Boiler order #2"))
    assert store.task(1000).title == "Boiler order #2"
    assert "task-renamed" in [n["code"] for n in store.journal()[-1].notes]


def test_rename_on_title_can_be_switched_off(client: FlaskClient, store: Store) -> None:
    client.patch("/api/v1/integrations/default", json={"options": {"rename_task_on_title": False}})
    post(client, new_message(title="First"))
    post(client, new_message(title="Second"))
    assert store.task(1000).title == "First"


def test_task_without_title_is_named_after_the_contact(client: FlaskClient, store: Store) -> None:
    post(client, new_message(contactName="Ivan", contactLastName="Ivanov"))
    assert store.task(1000).title == "Chat with Ivan Ivanov"


def test_contacts_are_created_once_and_updated(client: FlaskClient, store: Store) -> None:
    post(client, new_message(contactId="c-1", contactName="Ivan", contactEmail="i@x.io"))
    post(client, new_message(chatId="chat-2", contactId="c-1", contactName="Ignored"))
    post(client, new_message(chatId="chat-3", contactId="c-2", contactName="Olga"))
    assert [(c.contact_id, c.number) for c in reversed(store.contacts())] == [
        ("c-1", 5000),
        ("c-2", 5001),
    ]
    answer = post(
        client, form("updateContact", contactId="c-1", contactName="Ivan", contactPhone="7905")
    )
    assert answer.status_code == 200
    contact = store.contact(1, "superchat", "c-1")
    assert contact is not None
    assert (contact.name, contact.email, contact.phone, contact.number) == (
        "Ivan",
        "i@x.io",
        "7905",
        5000,
    )


def test_contacts_are_kept_apart_by_provider(client: FlaskClient, store: Store) -> None:
    post(client, new_message())
    post(client, replaced_provider(new_message(), "otherchat"))
    assert sorted(c.provider_id for c in store.contacts()) == ["otherchat", "superchat"]
    assert len(store.tasks()) == 2


def replaced_provider(pairs: list[tuple[str, str]], provider: str) -> list[tuple[str, str]]:
    """The form sent under another providerId."""
    return [(k, provider if k == "providerId" else v) for k, v in pairs]


def test_attachments_and_channel_are_kept(client: FlaskClient, store: Store) -> None:
    pairs = [
        *new_message(channel="whatsapp"),
        ("attachments[name]", "a.jpg"),
        ("attachments[url]", "https://x.io/a.jpg"),
        ("attachments[name]", "b.pdf"),
        ("attachments[url]", "https://x.io/b.pdf"),
    ]
    post(client, pairs)
    (message,) = store.messages(1000)
    assert message.attachments == (
        Attachment("a.jpg", "https://x.io/a.jpg"),
        Attachment("b.pdf", "https://x.io/b.pdf"),
    )
    assert message.channel == "whatsapp"
    assert store.task(1000).channel == "whatsapp"


def test_data_fields_fill_declared_task_fields_only(client: FlaskClient, store: Store) -> None:
    client.patch("/api/v1/integrations/default", json={"task_fields": ["utm_source"]})
    post(client, new_message(data_utm_source="ads", data_utm_medium="cpc"))
    assert store.task(1000).fields == {"utm_source": "ads"}
    notes = store.journal()[-1].notes
    assert [n["code"] for n in notes] == ["unknown-task-field"]


@pytest.mark.parametrize(
    ("user_email", "default_employee", "author"),
    [
        ("olga@example.com", None, "Olga Smirnova"),
        ("OLGA@example.com", None, "Olga Smirnova"),
        (None, "olga@example.com", "Olga Smirnova"),
        (None, None, "Peter Peterson"),
        ("nobody@example.com", None, "Peter Peterson"),
    ],
    ids=["userEmail", "userEmail any case", "integration's employee", "set-up employee", "unknown"],
)
def test_echo_author(
    client: FlaskClient,
    store: Store,
    user_email: str | None,
    default_employee: str | None,
    author: str,
) -> None:
    store.add_employee(Employee(0, "olga@example.com", "Olga", "Smirnova"))
    client.patch("/api/v1/integrations/default", json={"default_employee": default_employee})
    fields = {"isEcho": "1"} | ({"userEmail": user_email} if user_email else {})
    post(client, new_message(**fields))
    (message,) = store.messages(1000)
    assert (message.kind, message.author) == ("echo", author)


def test_completed_task_gets_a_successor_with_the_history(
    client: FlaskClient, store: Store
) -> None:
    post(client, new_message(message="my boiler is broken"))
    assert client.post("/api/v1/tasks/1000/complete").status_code == 200
    post(client, new_message(message="it broke again"))
    old, new = store.task(1000), store.task(1001)
    assert (old.status, new.status, new.previous_number) == ("completed", "active", 1000)
    assert "my boiler is broken" in new.description
    assert [m.text for m in store.messages(1001)] == ["it broke again"]
    assert body_of(post(client, form("getTask", chatId="chat-1"))) == {"data": {"number": 1001}}


def test_with_new_task_when_closed_off_messages_go_to_the_old_task(
    client: FlaskClient, store: Store
) -> None:
    client.patch("/api/v1/integrations/default", json={"options": {"new_task_when_closed": False}})
    post(client, new_message(message="one"))
    client.post("/api/v1/tasks/1000/complete")
    post(client, new_message(message="two"))
    assert len(store.tasks()) == 1
    assert [m.text for m in store.messages(1000)] == ["one", "two"]
    assert "closed-task" in [n["code"] for n in store.journal()[-1].notes]


def test_reopen_makes_the_task_active_again(client: FlaskClient, store: Store) -> None:
    post(client, new_message())
    client.post("/api/v1/tasks/1000/complete")
    assert client.post("/api/v1/tasks/1000/reopen").get_json()["status"] == "active"
    post(client, new_message(message="again"))
    assert len(store.tasks()) == 1


@pytest.mark.parametrize(
    ("sent", "recorded"),
    [("sent", "sent"), ("read", "read"), ("error", "error"), ("delivered", "sent"), ("", None)],
)
def test_message_status_marks_outbound_messages(
    client: FlaskClient, store: Store, sent: str, recorded: str | None
) -> None:
    post(client, new_message())
    outbound = store.add_outbound(
        1000, kind="reply", text="Hello", author=store.employees()[0], attachments=()
    )
    answer = post(
        client,
        [
            *form("messageStatus", messageId=outbound.message_id, messageStatus=sent),
            ("messageStatusText", "why"),
        ],
    )
    if recorded is None:
        assert answer.status_code == 400
        return
    assert answer.status_code == 200
    message = store.message(outbound.pk)
    assert (message.status, message.status_text) == (recorded, "why")


def test_message_status_of_another_integration_is_unknown(
    client: FlaskClient, store: Store
) -> None:
    other = client.post("/api/v1/integrations", json={"name": "other"}).get_json()
    post(client, new_message())
    outbound = store.add_outbound(
        1000, kind="reply", text="Hello", author=store.employees()[0], attachments=()
    )
    pairs = [
        ("cmd", "messageStatus"),
        ("providerId", "superchat"),
        ("planfix_token", other["planfix_token"]),
        ("messageId", outbound.message_id),
        ("messageStatus", "read"),
    ]
    assert post(client, pairs).status_code == 200
    assert store.message(outbound.pk).status == ""
