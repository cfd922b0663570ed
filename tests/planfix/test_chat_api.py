"""The contract of `/webchat/api`, as a table: form in, status and exact body out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from simulator.clients.http import encode_form
from simulator.store import Store
from tests.conftest import PLANFIX_TOKEN

Pairs = Sequence[tuple[str, str]]

INVALID = {"error": "Invalid parameters"}
BAD_TOKEN = {"error": "Invalid token"}
NO_TASK = {"error": "task not found"}
NO_CONTACT = {"error": "unknown contact"}
EMPTY = ""  # the documented 200 answer of newMessage, updateContact and messageStatus

SEED_NEW_MESSAGE: list[tuple[str, str]] = [
    ("cmd", "newMessage"),
    ("providerId", "superchat"),
    ("chatId", "EFHASFN1239351"),
    ("planfix_token", PLANFIX_TOKEN),
    ("message", "Hello, I have a question"),
    ("contactId", "57487124"),
    ("contactName", "Ivan"),
    ("contactLastName", "Ivanov"),
    ("contactIco", "https://superchat.io/avatars/183712.png"),
    ("contactEmail", "ivan@ivanov.com"),
    ("contactPhone", "79051234567"),
    ("contactData", "the gas boilers came as expected"),
    ("attachments[name]", "photo1.jpg"),
    ("attachments[url]", "https://superchat.io/files/5444.jpg"),
    ("attachments[name]", "photo2.jpg"),
    ("attachments[url]", "https://superchat.io/files/5445.jpg"),
]


def form(cmd: str, **fields: str) -> list[tuple[str, str]]:
    """A form for `cmd` with the default token and provider; `None`-free keyword fields."""
    pairs = [("cmd", cmd), ("providerId", "superchat"), ("planfix_token", PLANFIX_TOKEN)]
    return pairs + list(fields.items())


def new_message(**fields: str) -> list[tuple[str, str]]:
    """A minimal valid newMessage, fields overridable."""
    base = {"chatId": "chat-1", "message": "Hi", "contactId": "c-1", "contactName": "Ivan"}
    base.update(fields)
    return form("newMessage", **base)


def without(pairs: Pairs, key: str) -> list[tuple[str, str]]:
    """The form with every `key` removed."""
    return [(k, v) for k, v in pairs if k != key]


def replaced(pairs: Pairs, key: str, value: str) -> list[tuple[str, str]]:
    """The form with `key`'s value replaced."""
    return [(k, value if k == key else v) for k, v in pairs]


def renamed(pairs: Pairs, key: str, new_key: str) -> list[tuple[str, str]]:
    """The form with `key` sent under another name."""
    return [(new_key if k == key else k, v) for k, v in pairs]


def post(client: FlaskClient, pairs: Pairs, path: str = "/webchat/api") -> TestResponse:
    """POST the pairs form-encoded, in order."""
    return client.post(
        path, data=encode_form(pairs), content_type="application/x-www-form-urlencoded"
    )


def body_of(response: TestResponse) -> Any:
    """The JSON body, or the raw text when it is not JSON (empty answers)."""
    text = response.get_data(as_text=True)
    try:
        return json.loads(text)
    except ValueError:
        return text


def set_profile(client: FlaskClient, profile: str, strict: bool = False) -> None:
    """Switch the default integration's fidelity profile and strictness."""
    answer = client.patch(
        "/api/v1/integrations/default", json={"profile": profile, "strict": strict}
    )
    assert answer.status_code == 200


# Each row: what the chat sends → what Planfix answers, in the documented profile.
CONTRACT = [
    pytest.param(new_message(), 200, EMPTY, id="newMessage ok: empty body"),
    pytest.param(SEED_NEW_MESSAGE, 200, EMPTY, id="newMessage: the seed's sample call"),
    pytest.param(without(new_message(), "chatId"), 400, INVALID, id="newMessage no chatId"),
    pytest.param(without(new_message(), "message"), 400, INVALID, id="newMessage no message"),
    pytest.param(without(new_message(), "contactId"), 400, INVALID, id="newMessage no contactId"),
    pytest.param(
        without(new_message(), "contactName"), 400, INVALID, id="newMessage no contactName"
    ),
    pytest.param(without(new_message(), "providerId"), 400, INVALID, id="newMessage no providerId"),
    pytest.param(new_message(message=""), 400, INVALID, id="newMessage empty message"),
    pytest.param(
        replaced(new_message(), "providerId", "super~chat"), 400, INVALID, id="providerId with ~"
    ),
    pytest.param(new_message(isEcho="maybe"), 400, INVALID, id="isEcho unparseable"),
    pytest.param(new_message(isEcho="1"), 200, EMPTY, id="isEcho=1"),
    pytest.param(new_message(isEcho="true"), 200, EMPTY, id="isEcho=true"),
    pytest.param(new_message(isEcho="0"), 200, EMPTY, id="isEcho=0"),
    pytest.param(
        replaced(new_message(), "planfix_token", "0" * 32), 401, BAD_TOKEN, id="wrong token"
    ),
    pytest.param(without(new_message(), "planfix_token"), 401, BAD_TOKEN, id="no token"),
    pytest.param(replaced(new_message(), "planfix_token", ""), 401, BAD_TOKEN, id="empty token"),
    pytest.param(replaced(new_message(), "cmd", "deleteTask"), 400, INVALID, id="unknown cmd"),
    pytest.param(without(new_message(), "cmd"), 400, INVALID, id="no cmd"),
    pytest.param(form("getTask", chatId="never-seen"), 400, NO_TASK, id="getTask unknown chat"),
    pytest.param(form("getTask"), 400, INVALID, id="getTask no chatId"),
    pytest.param(
        form("getContact", contactId="never-seen"), 400, NO_CONTACT, id="getContact unknown"
    ),
    pytest.param(form("getContact"), 400, INVALID, id="getContact no contactId"),
    pytest.param(
        form("updateContact", contactId="c-1"), 400, INVALID, id="updateContact no contactName"
    ),
    pytest.param(form("messageStatus", messageId="1"), 400, INVALID, id="messageStatus no status"),
    pytest.param(
        form("messageStatus", messageStatus="read"), 400, INVALID, id="messageStatus no id"
    ),
]


@pytest.mark.parametrize(("pairs", "status", "body"), CONTRACT)
def test_contract(client: FlaskClient, pairs: Pairs, status: int, body: Any) -> None:
    response = post(client, pairs)
    assert (response.status_code, body_of(response)) == (status, body)


def test_get_task_and_contact_answer_numbers_after_new_message(client: FlaskClient) -> None:
    assert post(client, new_message()).status_code == 200
    task = post(client, form("getTask", chatId="chat-1"))
    contact = post(client, form("getContact", contactId="c-1"))
    assert body_of(task) == {"data": {"number": 1000}}
    assert body_of(contact) == {"data": {"number": 5000}}


def test_old_path_chat_api_is_an_alias(client: FlaskClient) -> None:
    assert post(client, new_message(), path="/chat/api").status_code == 200
    assert body_of(post(client, form("getTask", chatId="chat-1"), path="/chat/api")) == {
        "data": {"number": 1000}
    }


@pytest.mark.parametrize(
    ("cmd", "fields", "body"),
    [
        ("updateContact", {"contactId": "c-1", "contactName": "Ivan"}, EMPTY),
        ("messageStatus", {"messageId": "1", "messageStatus": "read"}, EMPTY),
    ],
)
def test_commands_with_empty_answers(
    client: FlaskClient, cmd: str, fields: dict[str, str], body: str
) -> None:
    post(client, new_message())
    response = post(client, form(cmd, **fields))
    assert (response.status_code, body_of(response)) == (200, body)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_only_post_is_allowed(client: FlaskClient, method: str) -> None:
    response = client.open("/webchat/api", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.get_json() == {"error": "Method not allowed"}


# The fixed order: method → size → cmd → token → parameters → command. Each row breaks two
# checks at once; the earlier one must win.
ORDER = [
    pytest.param("GET", new_message(planfix_token="bad"), 405, id="method before token"),
    pytest.param(
        "POST", new_message(message="x" * 2_000_000), 413, id="size before everything else"
    ),
    pytest.param(
        "POST",
        replaced(replaced(new_message(), "cmd", "nope"), "planfix_token", "bad"),
        400,
        id="cmd before token",
    ),
    pytest.param(
        "POST",
        replaced(without(new_message(), "chatId"), "planfix_token", "bad"),
        401,
        id="token before parameters",
    ),
    pytest.param(
        "POST",
        without(form("getTask", chatId="unknown"), "providerId"),
        400,
        id="parameters before command",
    ),
]


@pytest.mark.parametrize(("method", "pairs", "status"), ORDER)
def test_check_order(client: FlaskClient, method: str, pairs: Pairs, status: int) -> None:
    response = client.open(
        "/webchat/api",
        method=method,
        data=encode_form(pairs),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == status


def test_parameters_checked_before_command_gives_invalid_not_task_not_found(
    client: FlaskClient,
) -> None:
    response = post(client, without(form("getTask", chatId="unknown"), "providerId"))
    assert response.get_json() == INVALID


# The observed profile: what clients of the real service see and send.
OBSERVED = [
    pytest.param(new_message(), 200, {}, id="newMessage answers {}"),
    pytest.param(without(new_message(), "contactName"), 200, {}, id="no contactName accepted"),
    pytest.param([*new_message(), ("chatId", "chat-1")], 200, {}, id="chatId twice accepted"),
    pytest.param(new_message(telegramUserName="ivan"), 200, {}, id="unlisted field accepted"),
    pytest.param(new_message(contactEmail="", title=""), 200, {}, id="empty optional fields"),
    pytest.param(without(new_message(), "message"), 400, INVALID, id="still needs message"),
]


@pytest.mark.parametrize(("pairs", "status", "body"), OBSERVED)
def test_observed_profile(client: FlaskClient, pairs: Pairs, status: int, body: Any) -> None:
    set_profile(client, "observed")
    response = post(client, pairs)
    assert (response.status_code, body_of(response)) == (status, body)


def test_observed_profile_sends_data_as_json_string_with_status(client: FlaskClient) -> None:
    set_profile(client, "observed")
    post(client, new_message())
    task = body_of(post(client, form("getTask", chatId="chat-1")))
    contact = body_of(post(client, form("getContact", contactId="c-1")))
    assert isinstance(task["data"], str)
    assert json.loads(task["data"]) == {"number": 1000, "statusIsActive": True}
    assert json.loads(contact["data"]) == {"number": 5000}
    client.post("/api/v1/tasks/1000/complete")
    closed = json.loads(body_of(post(client, form("getTask", chatId="chat-1")))["data"])
    assert closed == {"number": 1000, "statusIsActive": False}


# Unknown behaviour: the default accepts with a contract note; strict refuses with 400.
UNKNOWN = [
    pytest.param(
        [*new_message(), ("chatId", "chat-1")], "duplicate-key", id="duplicate key (documented)"
    ),
    pytest.param(
        renamed(new_message(), "planfix_token", "token"),
        "token-field",
        id="token instead of planfix_token",
    ),
    pytest.param(
        [*new_message(), ("attachments[name]", "a.png")], "attachment-count", id="name/url mismatch"
    ),
    pytest.param(new_message(data_utm_source="ads"), "unknown-task-field", id="unknown data_"),
    pytest.param(
        form("messageStatus", messageId="999", messageStatus="read"),
        "unknown-message",
        id="unknown messageId",
    ),
    pytest.param(
        form("updateContact", contactId="new", contactName="N"),
        "unknown-contact",
        id="updateContact unknown contact",
    ),
]


@pytest.mark.parametrize(("pairs", "code"), UNKNOWN)
def test_unknown_behaviour_is_accepted_with_a_note(
    client: FlaskClient, store: Store, pairs: Pairs, code: str
) -> None:
    response = post(client, pairs)
    assert response.status_code == 200
    notes = store.journal()[-1].notes
    assert code in [n["code"] for n in notes]
    assert all(n["unknown"] for n in notes if n["code"] == code)


@pytest.mark.parametrize(("pairs", "code"), UNKNOWN)
def test_strict_mode_refuses_unknown_behaviour(
    client: FlaskClient, store: Store, pairs: Pairs, code: str
) -> None:
    set_profile(client, "documented", strict=True)
    response = post(client, pairs)
    assert (response.status_code, response.get_json()) == (400, INVALID)
    assert code in store.journal()[-1].error


def test_json_body_is_noted_and_refused_when_strict(client: FlaskClient, store: Store) -> None:
    payload = dict(new_message())
    assert client.post("/webchat/api", json=payload).status_code == 200
    assert "json-body" in [n["code"] for n in store.journal()[-1].notes]
    set_profile(client, "documented", strict=True)
    assert client.post("/webchat/api", json=payload).status_code == 400


def test_multipart_body_is_read_like_a_form(client: FlaskClient, store: Store) -> None:
    response = client.post(
        "/webchat/api", data=dict(new_message()), content_type="multipart/form-data"
    )
    assert response.status_code == 200
    assert store.task(1000).title == "Chat with Ivan"


def test_charset_content_type_and_accept_json_are_fine(client: FlaskClient) -> None:
    response = client.post(
        "/webchat/api",
        data=encode_form(new_message()),
        headers={
            "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
            "Accept": "application/json",
        },
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "raw",
    [b"cmd=newMessage&message=%zz", b"cmd=newMessage&message=%FF%FE", b"cmd=%E2%82"],
    ids=["broken percent-encoding", "invalid UTF-8", "truncated UTF-8"],
)
def test_undecodable_bodies_get_400(client: FlaskClient, raw: bytes) -> None:
    response = client.post(
        "/webchat/api", data=raw, content_type="application/x-www-form-urlencoded"
    )
    assert (response.status_code, response.get_json()) == (400, INVALID)


def test_every_exchange_is_journaled_with_fields_in_order(
    client: FlaskClient, store: Store
) -> None:
    post(client, SEED_NEW_MESSAGE)
    post(client, replaced(new_message(), "planfix_token", "bad"))
    first, second = store.journal()
    assert [tuple(p) for p in first.form] == SEED_NEW_MESSAGE
    assert (first.direction, first.party, first.cmd, first.status) == (
        "to_planfix",
        "planfix",
        "newMessage",
        200,
    )
    assert first.integration_id == 1
    assert first.duration_ms >= 0
    assert (second.status, second.integration_id) == (401, None)
    assert json.loads(second.response_body) == BAD_TOKEN


# A Telegram connector in production (CONTRACT.md, observed): its HTTP session's base URL ends in
# "/", so it posts to /webchat/api/, and it sends every optional field, empty ones as "".
CONNECTOR_FORM = [
    ("cmd", "newMessage"),
    ("providerId", "telegram"),
    ("chatId", "777"),
    ("planfix_token", PLANFIX_TOKEN),
    ("message", "hello from telegram"),
    ("contactId", "777"),
    ("contactName", "Ivan"),
    ("channel", ""),
    ("title", ""),
    ("contactLastName", ""),
    ("contactIco", ""),
    ("contactEmail", ""),
    ("contactPhone", ""),
    ("contactData", ""),
    ("isEcho", ""),
    ("userEmail", ""),
]


@pytest.mark.parametrize("path", ["/webchat/api/", "/chat/api/"])
def test_a_trailing_slash_is_the_same_endpoint_and_noted(client: FlaskClient, path: str) -> None:
    response = post(client, CONNECTOR_FORM, path)
    assert response.status_code == 200, response.get_data(as_text=True)
    [entry] = client.get("/api/v1/journal?limit=1").get_json()
    assert entry["url"].startswith(path)
    assert {
        "code": "trailing-slash",
        "text": "the path had a trailing slash",
        "unknown": False,
    } in (entry["notes"])


def test_every_optional_field_empty_files_the_message_like_a_minimal_form(
    client: FlaskClient,
) -> None:
    assert post(client, CONNECTOR_FORM, "/webchat/api/").status_code == 200
    assert post(client, new_message(chatId="minimal", message="hi")).status_code == 200
    tasks = {t["chat_id"]: t for t in client.get("/api/v1/tasks").get_json()}
    connector, minimal = tasks["777"], tasks["minimal"]
    # Empty title, channel and contact fields rename nothing and fill nothing.
    assert connector["title"] == minimal["title"] == "Chat with Ivan"
    detail = client.get(f"/api/v1/tasks/{connector['number']}").get_json()
    assert detail["fields"] == {}
    [message] = detail["messages"]
    assert message["text"] == "hello from telegram"
    assert message["kind"] == "customer"
