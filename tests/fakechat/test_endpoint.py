"""The fake third-party chat: its webhook, its customer side, and the sandbox with no config."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.clients.http import post_form, request_json
from simulator.runtime import runtime
from simulator.serving.live import LiveServer
from tests.chat_stub import (
    IntegrationStub,
    _no_background_errors,  # noqa: F401 - autouse fixture
    api,
    json_answer,
    wait_until,
)
from tests.conftest import CHAT_TOKEN, PLANFIX_TOKEN

# The documentation's sample call from Planfix to a chat (seed/…script-examples.txt), verbatim.
SEED_SAMPLE = [
    ("cmd", "newMessage"),
    ("providerId", "superchat"),
    ("chatId", "EFHASFN1239351"),
    ("token", "202cb962ac59075b964b07152d234b70"),
    ("message", "Hello, how can I help you?"),
    ("userName", "Peter"),
    ("userLastName", "Peterson"),
    ("userIco", "https://account_name.planfix.com/?action=getuserpic&id=77"),
    ("attachments[name]", "file1.doc"),
    ("attachments[url]", "https://account_name.planfix.com/file/aadkapdoa5456454"),
    ("attachments[name]", "file2.doc"),
    ("attachments[url]", "https://account_name.planfix.com/file/aadkapdoa5456455"),
]


def webhook(server: LiveServer, pairs: list[tuple[str, str]]) -> tuple[int | None, Any]:
    """Post a form to the fake chat's webhook as an outside caller would."""
    answer = post_form(server.url + "/fake-chat/webhook", pairs)
    return answer.status, answer.json_or_none()


def without(pairs: list[tuple[str, str]], *keys: str) -> list[tuple[str, str]]:
    """The form without these fields."""
    return [(k, v) for k, v in pairs if k not in keys]


def replaced(pairs: list[tuple[str, str]], key: str, value: str) -> list[tuple[str, str]]:
    """The form with one field's value changed."""
    return [(k, value if k == key else v) for k, v in pairs]


def test_webhook_accepts_the_seed_sample_verbatim(live_server: LiveServer) -> None:
    status, body = webhook(live_server, SEED_SAMPLE)

    assert status == 200
    assert body == {"chatId": "EFHASFN1239351", "contactId": "EFHASFN1239351"}
    [item] = api(live_server, "GET", "/api/v1/chat/inbox?chatId=EFHASFN1239351")
    assert item["variant"] == "reply"
    assert (item["providerId"], item["message"], item["userName"]) == (
        "superchat",
        "Hello, how can I help you?",
        "Peter",
    )
    assert item["attachments"] == [
        {"name": "file1.doc", "url": "https://account_name.planfix.com/file/aadkapdoa5456454"},
        {"name": "file2.doc", "url": "https://account_name.planfix.com/file/aadkapdoa5456455"},
    ]
    entry = api(live_server, "GET", "/api/v1/journal")[-1]
    assert (entry["direction"], entry["party"], entry["status"]) == ("to_chat", "fake_chat", 200)
    absent = {n["text"].split()[0] for n in entry["notes"] if n["code"] == "missing-field"}
    assert absent == {"messageId", "taskEmail"}


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(replaced(SEED_SAMPLE, "token", "0" * 32), id="wrong-token"),
        pytest.param(without(SEED_SAMPLE, "token"), id="no-token"),
        pytest.param(replaced(SEED_SAMPLE, "token", PLANFIX_TOKEN), id="planfix-token"),
        pytest.param(replaced(SEED_SAMPLE, "token", CHAT_TOKEN[:-1]), id="prefix"),
    ],
)
def test_webhook_refuses_a_bad_token(live_server: LiveServer, form: list[tuple[str, str]]) -> None:
    assert webhook(live_server, form) == (401, {"error": "Invalid token"})
    assert api(live_server, "GET", "/api/v1/chat/inbox") == []


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(replaced(SEED_SAMPLE, "cmd", "getTask"), id="other-cmd"),
        pytest.param(without(SEED_SAMPLE, "cmd"), id="no-cmd"),
        pytest.param(without(SEED_SAMPLE, "providerId"), id="no-provider"),
        pytest.param(without(SEED_SAMPLE, "message"), id="no-message"),
        pytest.param(without(SEED_SAMPLE, "chatId"), id="no-chat-no-phone"),
        pytest.param(SEED_SAMPLE[:-1], id="attachment-without-url"),
        pytest.param(
            without(replaced(SEED_SAMPLE, "message", ""), "attachments[name]", "attachments[url]"),
            id="empty-message",
        ),
    ],
)
def test_webhook_refuses_invalid_parameters(
    live_server: LiveServer, form: list[tuple[str, str]]
) -> None:
    assert webhook(live_server, form) == (400, {"error": "Invalid parameters"})
    assert api(live_server, "GET", "/api/v1/chat/inbox") == []
    assert api(live_server, "GET", "/api/v1/journal")[-1]["status"] == 400


def test_first_message_gets_a_fresh_chat_and_the_phone_keeps_its_contact(
    live_server: LiveServer,
) -> None:
    first = [*without(SEED_SAMPLE, "chatId"), ("contactPhone", "79051234567")]

    status, one = webhook(live_server, first)
    _, two = webhook(live_server, first)

    assert status == 200
    assert one["chatId"] != two["chatId"]
    assert one["contactId"] == two["contactId"]
    assert one["chatId"] != one["contactId"]
    chats = api(live_server, "GET", "/api/v1/chat/chats")
    assert {c["chatId"] for c in chats} == {one["chatId"], two["chatId"]}
    assert {c["contactPhone"] for c in chats} == {"79051234567"}
    inbox = api(live_server, "GET", "/api/v1/chat/inbox")
    assert [i["variant"] for i in inbox] == ["first", "first"]


def test_sandbox_with_no_config_round_trip_with_ticks(live_server: LiveServer) -> None:
    sent = api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {"chatId": "c-1", "contactId": "u-1", "contactName": "Ivan", "message": "Where is it?"},
    )
    assert (sent["status"], sent["error"]) == (200, "")
    [task] = api(live_server, "GET", "/api/v1/tasks")
    assert task["chat_id"] == "c-1"
    assert task["last_message"] == "Where is it?"

    result = api(
        live_server, "POST", f"/api/v1/tasks/{task['number']}/replies", {"message": "On its way"}
    )

    assert result["delivery"]["state"] == "delivered"
    [item] = api(live_server, "GET", "/api/v1/chat/inbox?integration=default&chatId=c-1")
    assert (item["message"], item["contactId"]) == ("On its way", "u-1")
    assert item["messageId"] == result["message"]["message_id"]
    assert item["taskEmail"] == f"task+{task['number']}@test.planfix.com"

    # The ticks come after the answer, from the fake chat's own thread.
    reports = wait_until(
        lambda: (
            (found := api(live_server, "GET", "/api/v1/journal?cmd=messageStatus"))
            and len(found) == 2
            and found
        )
    )
    assert [dict(tuple(p) for p in e["form"])["messageStatus"] for e in reports] == [
        "sent",
        "read",
    ]
    assert {dict(tuple(p) for p in e["form"])["messageId"] for e in reports} == {item["messageId"]}
    message = api(live_server, "GET", f"/api/v1/tasks/{task['number']}")["messages"][-1]
    assert message["status"] == "read"
    # The chat reports after the delivery is recorded, so the journal reads in causal order.
    assert [(e["direction"], e["cmd"]) for e in api(live_server, "GET", "/api/v1/journal")] == [
        ("to_planfix", "newMessage"),
        ("to_chat", "newMessage"),
        ("to_planfix", "messageStatus"),
        ("to_planfix", "messageStatus"),
    ]
    # One exchange, one entry: the fake chat does not journal the simulator's own delivery.
    to_chat = api(live_server, "GET", "/api/v1/journal?direction=to_chat")
    assert [(e["party"], e["delivery_id"]) for e in to_chat] == [
        ("planfix", result["delivery"]["id"])
    ]


@pytest.mark.parametrize("app_config", [{"fake_chat_reports_status": False}])
def test_status_reports_can_be_switched_off(live_server: LiveServer) -> None:
    api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {"chatId": "c-2", "contactId": "u-2", "contactName": "Ivan", "message": "Hi"},
    )
    [task] = api(live_server, "GET", "/api/v1/tasks")

    api(live_server, "POST", f"/api/v1/tasks/{task['number']}/replies", {"message": "Hello"})

    assert live_server.app is not None
    reporter = runtime(live_server.app).reporter
    assert reporter._thread is None  # never started: nothing was ever reported
    assert api(live_server, "GET", "/api/v1/journal?cmd=messageStatus") == []


def test_customer_message_form_has_every_field_in_order(live_server: LiveServer) -> None:
    # ?reveal=1: the answer's form shows the token as sent (masked otherwise, like every answer).
    sent = api(
        live_server,
        "POST",
        "/api/v1/chat/messages?reveal=1",
        {
            "integration": "default",
            "providerId": "superchat",
            "chatId": "c-3",
            "contactId": "u-3",
            "contactName": "Ivan",
            "contactLastName": "Ivanov",
            "contactPhone": "79051234567",
            "channel": "telegram",
            "title": "Boilers",
            "message": "Hello",
            "attachments": [{"name": "a.jpg", "url": "https://x/a.jpg"}],
            "isEcho": False,
            "data": {"utm_source": "ads"},
            "telegramUserName": "ivan",
        },
    )

    assert sent["status"] == 200
    assert sent["form"] == [
        ["cmd", "newMessage"],
        ["providerId", "superchat"],
        ["channel", "telegram"],
        ["chatId", "c-3"],
        ["planfix_token", PLANFIX_TOKEN],
        ["message", "Hello"],
        ["title", "Boilers"],
        ["contactId", "u-3"],
        ["contactName", "Ivan"],
        ["contactLastName", "Ivanov"],
        ["contactPhone", "79051234567"],
        ["attachments[name]", "a.jpg"],
        ["attachments[url]", "https://x/a.jpg"],
        ["isEcho", "false"],
        ["data_utm_source", "ads"],
        ["telegramUserName", "ivan"],
    ]
    [chat] = api(live_server, "GET", "/api/v1/chat/chats?integration=default")
    assert (chat["chatId"], chat["contactId"], chat["contactName"]) == ("c-3", "u-3", "Ivan Ivanov")


def test_customer_commands_reach_planfix(live_server: LiveServer) -> None:
    api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {"chatId": "c-4", "contactId": "u-4", "contactName": "Ivan", "message": "Hi"},
    )
    [task] = api(live_server, "GET", "/api/v1/tasks")

    # ?reveal=1: the form as sent, token included (answers mask it otherwise).
    got = api(
        live_server, "POST", "/api/v1/chat/commands?reveal=1", {"cmd": "getTask", "chatId": "c-4"}
    )
    missing = api(live_server, "POST", "/api/v1/chat/commands", {"cmd": "getTask", "chatId": "x"})
    bad_token = api(
        live_server,
        "POST",
        "/api/v1/chat/commands",
        {"cmd": "getContact", "contactId": "u-4", "planfix_token": "nope"},
    )

    assert (got["status"], got["json"]) == (200, {"data": {"number": task["number"]}})
    assert (missing["status"], missing["json"]) == (400, {"error": "task not found"})
    assert (bad_token["status"], bad_token["json"]) == (401, {"error": "Invalid token"})
    assert got["form"] == [
        ["cmd", "getTask"],
        ["providerId", "fakechat"],
        ["planfix_token", PLANFIX_TOKEN],
        ["chatId", "c-4"],
    ]


def test_fake_chat_talks_to_an_external_planfix(
    live_server: LiveServer, stub: IntegrationStub
) -> None:
    stub.then(lambda call: json_answer({}))

    sent = api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {
            "planfix_url": f"{stub.url}/webchat/api?k=1",
            "planfix_token": "real-account-token",
            "chatId": "c-5",
            "contactId": "u-5",
            "contactName": "Ivan",
            "message": "Hi",
        },
    )

    assert (sent["status"], sent["json"]) == (200, {})
    [call] = stub.calls
    assert (call.path, call.query) == ("/webchat/api", "k=1")
    assert call.get("planfix_token") == "real-account-token"
    entry = api(live_server, "GET", "/api/v1/journal")[-1]
    assert (entry["direction"], entry["party"], entry["status"]) == ("to_planfix", "fake_chat", 200)
    assert entry["url"] == f"{stub.url}/webchat/api?k=1"
    assert api(live_server, "GET", "/api/v1/tasks") == []


def test_customer_side_validates_its_input(live_server: LiveServer) -> None:
    for path, body, status in (
        ("/api/v1/chat/messages", {"attachments": [{"name": "x"}]}, 400),
        ("/api/v1/chat/commands", {"chatId": "c"}, 400),
        ("/api/v1/chat/messages", {"integration": "no-such", "message": "x"}, 404),
    ):
        assert request_json("POST", live_server.url + path, body).status == status
