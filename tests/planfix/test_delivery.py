"""Planfix → integration delivery, end to end over loopback HTTP against an integration stub."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from simulator.clients.http import Answer, post_form, request_json
from simulator.contract import Retry
from simulator.planfix.delivery import check_answer, retry_at
from simulator.runtime import runtime
from simulator.serving.live import LiveServer
from tests.chat_stub import (
    ANSWER_BUDGET,
    Call,
    IntegrationStub,
    _no_background_errors,  # noqa: F401 - autouse fixture
    api,
    background_errors,
    drop,
    hang,
    json_answer,
    raw_answer,
    refused_url,
    wait_until,
)

SECRET_QUERY = "secret=S3cr%C3%A9t&x=1"


def add_integration(server: LiveServer, url: str, **settings: Any) -> dict[str, Any]:
    """A fresh integration pointing at `url`."""
    return api(server, "POST", "/api/v1/integrations", {"url": url, **settings}, 201)  # type: ignore[no-any-return]


def customer_writes(
    server: LiveServer, integration: dict[str, Any], chat_id: str, **fields: str
) -> int:
    """A customer message from the chat; returns the number of the chat's task."""
    form = {
        "cmd": "newMessage",
        "providerId": "wa",
        "chatId": chat_id,
        "planfix_token": integration["planfix_token"],
        "message": "Hello, I have a question",
        "contactId": f"u-{chat_id}",
        "contactName": "Ivan",
        **fields,
    }
    answer = post_form(server.url + "/webchat/api", list(form.items()))
    assert answer.status == 200, answer.text
    task = post_form(
        server.url + "/webchat/api",
        [
            ("cmd", "getTask"),
            ("providerId", "wa"),
            ("chatId", chat_id),
            ("planfix_token", integration["planfix_token"]),
        ],
    )
    return int(task.json()["data"]["number"])


def reply(server: LiveServer, number: int, **body: Any) -> dict[str, Any]:
    """An operator reply through the control API."""
    return api(server, "POST", f"/api/v1/tasks/{number}/replies", {"message": "Hi!", **body})  # type: ignore[no-any-return]


def journal(server: LiveServer, **filters: Any) -> list[dict[str, Any]]:
    """Journal entries, oldest first."""
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return api(server, "GET", f"/api/v1/journal?{query}")  # type: ignore[no-any-return]


def test_reply_carries_every_field_in_order(live_server: LiveServer, stub: IntegrationStub) -> None:
    integration = add_integration(live_server, f"{stub.url}/webhook/planfix?{SECRET_QUERY}")
    number = customer_writes(
        live_server, integration, "chat-1", contactPhone="79051234567", channel="whatsapp"
    )
    attachments = [
        {"name": "file1.doc", "url": "https://test.planfix.com/file/a1"},
        {"name": "file2.doc", "url": "https://test.planfix.com/file/a2"},
    ]

    result = reply(
        live_server, number, message="Hello, how can I help you?", attachments=attachments
    )

    message, delivery = result["message"], result["delivery"]
    assert (delivery["state"], delivery["attempts"], delivery["outcome"]) == ("delivered", 1, "")
    assert message["delivery_state"] == "delivered"
    [call] = stub.calls
    assert call.path == "/webhook/planfix"
    assert call.query == SECRET_QUERY
    assert call.form == [
        ("cmd", "newMessage"),
        ("providerId", "wa"),
        ("chatId", "chat-1"),
        ("token", integration["token"]),
        ("message", "Hello, how can I help you?"),
        ("messageId", message["message_id"]),
        ("userName", "Peter"),
        ("userLastName", "Peterson"),
        ("userIco", "https://test.planfix.com/?action=getuserpic&id=77"),
        ("taskEmail", f"task+{number}@test.planfix.com"),
        ("contactPhone", "79051234567"),
        ("channel", "whatsapp"),
        ("attachments[name]", "file1.doc"),
        ("attachments[url]", "https://test.planfix.com/file/a1"),
        ("attachments[name]", "file2.doc"),
        ("attachments[url]", "https://test.planfix.com/file/a2"),
    ]
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert live_server.app is not None
    assert call.headers["X-Planfix-Sim-Origin"] == runtime(live_server.app).store.instance_id
    [entry] = [journal(live_server, reveal=1)[-1]]
    assert entry["id"] in delivery["journal_ids"]
    assert (entry["direction"], entry["party"], entry["status"]) == ("to_chat", "planfix", 200)
    assert entry["delivery_id"] == delivery["id"]
    assert entry["url"] == f"{stub.url}/webhook/planfix?{SECRET_QUERY}"
    assert [tuple(p) for p in entry["form"]] == call.form


def test_without_phone_or_channel_the_reply_omits_them(
    live_server: LiveServer, stub: IntegrationStub
) -> None:
    integration = add_integration(live_server, stub.url)
    number = customer_writes(live_server, integration, "chat-2")

    reply(live_server, number)

    keys = [k for k, _ in stub.calls[0].form]
    assert "contactPhone" not in keys
    assert "channel" not in keys
    assert "attachments[name]" not in keys


def test_each_reply_has_a_new_message_id(live_server: LiveServer, stub: IntegrationStub) -> None:
    integration = add_integration(live_server, stub.url)
    number = customer_writes(live_server, integration, "chat-3")

    first = reply(live_server, number)["message"]["message_id"]
    second = reply(live_server, number)["message"]["message_id"]

    assert first != second
    assert [c.get("messageId") for c in stub.calls] == [first, second]


def test_reply_author_is_the_named_employee(live_server: LiveServer, stub: IntegrationStub) -> None:
    integration = add_integration(live_server, stub.url)
    api(
        live_server,
        "POST",
        "/api/v1/employees",
        {"email": "anna@example.com", "name": "Anna", "last_name": "Smith", "ico": "https://i/a"},
        201,
    )
    number = customer_writes(live_server, integration, "chat-4")

    reply(live_server, number, employee="anna@example.com")
    unknown = request_json(
        "POST",
        f"{live_server.url}/api/v1/tasks/{number}/replies",
        {"message": "x", "employee": "nobody@example.com"},
    )

    call = stub.calls[0]
    assert (call.get("userName"), call.get("userLastName"), call.get("userIco")) == (
        "Anna",
        "Smith",
        "https://i/a",
    )
    assert unknown.status == 400


def test_first_message_assigns_the_chat(live_server: LiveServer, stub: IntegrationStub) -> None:
    integration = add_integration(live_server, stub.url)
    stub.then(lambda call: json_answer({"chatId": "wa-777", "contactId": "contact-9"}))

    result = api(
        live_server,
        "POST",
        "/api/v1/first-messages",
        {
            "integration": integration["name"],
            "contactPhone": "79990001122",
            "message": "Your order is ready",
            "channel": "whatsapp",
            "providerId": "wa",
        },
    )

    assert (result["chatId"], result["contactId"]) == ("wa-777", "contact-9")
    assert result["delivery"]["state"] == "delivered"
    assert result["delivery"]["variant"] == "first"
    number = result["task"]
    [call] = stub.calls
    assert "chatId" not in [k for k, _ in call.form]
    assert call.get("providerId") == "wa"
    assert call.get("contactPhone") == "79990001122"
    assert call.get("channel") == "whatsapp"
    assert call.get("taskEmail") == f"task+{number}@test.planfix.com"
    assert call.get("messageId") == result["message"]["message_id"]
    task = api(live_server, "GET", f"/api/v1/tasks/{number}")
    assert task["chat_id"] == "wa-777"
    assert task["contact"]["contact_id"] == "contact-9"
    assert task["contact"]["phone"] == "79990001122"
    assert [m["text"] for m in task["messages"]] == ["Your order is ready"]
    assert task["messages"][0]["delivery_state"] == "delivered"
    # The chat now works like any other: the customer's answer lands in the same task.
    assert customer_writes(live_server, integration, "wa-777") == number


def test_first_message_refused_leaves_no_task(
    live_server: LiveServer, stub: IntegrationStub
) -> None:
    integration = add_integration(live_server, stub.url)
    stub.then(lambda call: json_answer({"chatId": "", "contactId": "c"}))

    result = api(
        live_server,
        "POST",
        "/api/v1/first-messages",
        {"integration": integration["id"], "contactPhone": "7900", "message": "Hi"},
    )

    assert (result["task"], result["chatId"], result["contactId"]) == (None, None, None)
    assert result["delivery"]["state"] == "failed"
    assert result["delivery"]["outcome"] == "chatId is empty: the integration must assign the chat"
    assert result["message"]["delivery_state"] == "failed"
    assert api(live_server, "GET", f"/api/v1/tasks?integration={integration['id']}") == []


def _status(status: int, body: Any) -> Any:
    return lambda call: json_answer(body, status)


def _late(behaviour: Any, seconds: float = 1.0) -> Any:
    def answer(call: Call) -> Any:
        time.sleep(seconds)
        return behaviour(call)

    return answer


BAD_ANSWERS = [
    pytest.param(
        lambda call: raw_answer("OK"), "200 but the body is not JSON: 'OK'", id="not-json"
    ),
    pytest.param(
        lambda call: raw_answer(""),
        "200 with an empty body: the contract expects JSON {chatId, contactId}",
        id="empty",
    ),
    pytest.param(
        lambda call: json_answer(["chat-9"]), "200 but the JSON is a list, not an object", id="list"
    ),
    pytest.param(
        lambda call: json_answer({"chatId": "chat-9"}),
        "the answer lacks contactId",
        id="no-contact",
    ),
    pytest.param(
        lambda call: json_answer({}), "the answer lacks chatId and contactId", id="no-keys"
    ),
    pytest.param(
        lambda call: json_answer({"chatId": "chat-9", "contactId": 57}),
        "contactId is a number (57), not a string",
        id="numeric-contact",
    ),
    pytest.param(
        lambda call: json_answer({"chatId": "other", "contactId": "u"}),
        "chatId 'other' is not the chatId sent ('chat-9')",
        id="other-chat",
    ),
    pytest.param(
        _status(400, {"error": "Invalid parameters"}),
        'HTTP 400, not 200: {"error": "Invalid parameters"}',
        id="400",
    ),
    pytest.param(
        _status(401, {"error": "Invalid token"}),
        'HTTP 401, not 200: {"error": "Invalid token"}',
        id="401",
    ),
    pytest.param(lambda call: raw_answer("", 500), "HTTP 500, not 200: (empty body)", id="500"),
    pytest.param(lambda call: raw_answer("busy", 503), "HTTP 503, not 200: busy", id="503"),
    # What a busy machine does to any case: the answer comes late, and is still judged.
    pytest.param(_late(_status(503, "busy")), 'HTTP 503, not 200: "busy"', id="503, late"),
    pytest.param(drop, "connection dropped before an answer", id="dropped"),
]


@pytest.mark.parametrize(("behaviour", "note"), BAD_ANSWERS)
def test_bad_answer_fails_with_its_note(
    live_server: LiveServer, stub: IntegrationStub, behaviour: Any, note: str
) -> None:
    # The stub answers at once; a generous timeout keeps a loaded machine from turning the
    # answer into a timeout (the timeout itself is the next test).
    integration = add_integration(live_server, stub.url, timeout=ANSWER_BUDGET)
    _assert_fails_with_note(live_server, stub, integration, behaviour, note)


def test_no_answer_within_the_timeout_fails_with_the_timeout_note(
    live_server: LiveServer, stub: IntegrationStub
) -> None:
    integration = add_integration(live_server, stub.url, timeout=0.3)
    _assert_fails_with_note(live_server, stub, integration, hang, "timeout: no answer within 0.3 s")


def _assert_fails_with_note(
    live_server: LiveServer,
    stub: IntegrationStub,
    integration: dict[str, Any],
    behaviour: Any,
    note: str,
) -> None:
    """A reply whose one delivery attempt meets `behaviour` fails with `note`, journaled."""
    number = customer_writes(live_server, integration, "chat-9")
    stub.then(behaviour)

    result = reply(live_server, number)

    delivery = result["delivery"]
    assert delivery["state"] == "failed"
    assert delivery["outcome"].startswith(note)
    assert result["message"]["delivery_state"] == "failed"
    assert result["message"]["delivery_note"] == delivery["outcome"]
    [entry] = [e for e in journal(live_server) if e["id"] in delivery["journal_ids"]]
    assert entry["notes"] == [{"code": "contract", "text": delivery["outcome"], "unknown": False}]
    assert len(stub.calls) == 1


def test_refused_connection_fails_with_its_note(live_server: LiveServer) -> None:
    integration = add_integration(live_server, refused_url())
    number = customer_writes(live_server, integration, "chat-r")

    delivery = reply(live_server, number)["delivery"]

    assert delivery["state"] == "failed"
    assert delivery["outcome"] == (
        "connection refused: nothing accepts connections at the integration URL"
    )
    assert delivery["answer"] is None
    entry = api(live_server, "GET", f"/api/v1/journal/{delivery['journal_ids'][0]}")
    assert entry["status"] is None
    assert entry["error"].startswith("refused")


def test_retries_follow_the_scaled_schedule_until_delivered(
    live_server: LiveServer, stub: IntegrationStub
) -> None:
    integration = add_integration(
        live_server, stub.url, retry={"enabled": True, "time_factor": 0.0001}
    )
    number = customer_writes(live_server, integration, "chat-5")
    stub.then(_status(500, {}), _status(503, {}))

    first = reply(live_server, number)["delivery"]

    assert first["state"] == "retrying"
    assert first["attempts"] == 1
    assert first["next_attempt_at"] is not None
    done = wait_until(
        lambda: (
            (d := api(live_server, "GET", f"/api/v1/deliveries/{first['id']}"))["state"]
            == "delivered"
            and d
        )
    )
    assert done["attempts"] == 3
    assert done["next_attempt_at"] is None
    assert len(done["journal_ids"]) == 3
    assert [e["status"] for e in journal(live_server, direction="to_chat")] == [500, 503, 200]
    # A retry is the same message: the integration can de-duplicate by messageId.
    assert len({c.get("messageId") for c in stub.calls}) == 1


def test_retries_stop_after_the_schedule(live_server: LiveServer, stub: IntegrationStub) -> None:
    integration = add_integration(
        live_server,
        stub.url,
        retry={"enabled": True, "schedule": [1, 2], "time_factor": 0.01},
    )
    number = customer_writes(live_server, integration, "chat-6")
    stub.default = _status(500, {})

    delivery = reply(live_server, number)["delivery"]

    done = wait_until(
        lambda: (
            (d := api(live_server, "GET", f"/api/v1/deliveries/{delivery['id']}"))["state"]
            == "failed"
            and d
        )
    )
    assert done["attempts"] == 3
    message = api(live_server, "GET", f"/api/v1/tasks/{number}")["messages"][-1]
    assert message["delivery_state"] == "failed"


def test_without_retry_policy_one_attempt_then_manual_redelivery(
    live_server: LiveServer, stub: IntegrationStub
) -> None:
    integration = add_integration(live_server, stub.url)
    number = customer_writes(live_server, integration, "chat-7")
    stub.then(_status(500, {"error": "boom"}))
    failed = reply(live_server, number)["delivery"]
    assert (failed["state"], failed["next_attempt_at"]) == ("failed", None)

    redelivered = api(live_server, "POST", f"/api/v1/deliveries/{failed['id']}/retry")

    assert (redelivered["state"], redelivered["attempts"]) == ("delivered", 2)
    assert len(redelivered["journal_ids"]) == 2
    assert stub.calls[0].form == stub.calls[1].form
    listed = api(live_server, "GET", f"/api/v1/deliveries?integration={integration['name']}")
    assert [d["id"] for d in listed] == [failed["id"]]
    message = api(live_server, "GET", f"/api/v1/tasks/{number}")["messages"][-1]
    assert message["delivery_state"] == "delivered"


def test_unknown_delivery_is_404(live_server: LiveServer) -> None:
    assert request_json("GET", live_server.url + "/api/v1/deliveries/999").status == 404
    assert request_json("POST", live_server.url + "/api/v1/deliveries/999/retry").status == 404


def test_a_hanging_integration_does_not_block_webchat_api(
    live_server: LiveServer, stub: IntegrationStub
) -> None:
    integration = add_integration(live_server, stub.url, timeout=30)
    number = customer_writes(live_server, integration, "chat-8")
    stub.default = hang

    queued = reply(live_server, number, wait=False)["delivery"]
    wait_until(lambda: stub.calls)

    # While the integration holds the delivery, Planfix's API keeps answering.
    for i in range(5):
        assert customer_writes(live_server, integration, f"other-{i}") > 0
    still = api(live_server, "GET", f"/api/v1/deliveries/{queued['id']}")
    assert still["state"] == "pending"
    assert still["attempts"] == 0
    stub.release.set()
    done = wait_until(
        lambda: (
            (d := api(live_server, "GET", f"/api/v1/deliveries/{queued['id']}"))["state"]
            == "delivered"
            and d
        )
    )
    assert done["attempts"] == 1


def test_deliveries_survive_a_restart(tmp_path: Path, stub: IntegrationStub) -> None:
    db = str(tmp_path / "sim.sqlite3")
    with LiveServer({"db": db}) as first:
        integration = add_integration(
            first, stub.url, retry={"enabled": True, "schedule": [2], "time_factor": 1.0}
        )
        number = customer_writes(first, integration, "chat-p")
        stub.then(_status(503, {}))
        queued = reply(first, number)["delivery"]
        assert queued["state"] == "retrying"
    first_stopped = time.monotonic()
    with LiveServer({"db": db}) as second:
        done = wait_until(
            lambda: (
                (d := api(second, "GET", f"/api/v1/deliveries/{queued['id']}"))["state"]
                == "delivered"
                and d
            )
        )
        second.check()
        assert background_errors(first) == background_errors(second) == []
    assert done["attempts"] == 2
    assert [c.get("chatId") for c in stub.calls] == ["chat-p", "chat-p"]
    assert stub.calls[1].at > first_stopped, "attempt 2 was made by the restarted process"


def test_two_processes_share_the_work_each_delivery_once(
    tmp_path: Path, stub: IntegrationStub
) -> None:
    db = str(tmp_path / "shared.sqlite3")
    with LiveServer({"db": db}) as one, LiveServer({"db": db}) as two:
        integration = add_integration(one, stub.url)
        number = customer_writes(one, integration, "chat-s")
        queued = [reply(server, number, wait=False)["delivery"]["id"] for server in (one, two) * 6]
        wait_until(
            lambda: all(
                api(one, "GET", f"/api/v1/deliveries/{i}")["state"] == "delivered" for i in queued
            )
        )
        one.check()
        two.check()
        assert background_errors(one) == background_errors(two) == []
    ids = [c.get("messageId") for c in stub.calls]
    assert len(ids) == 12
    assert len(set(ids)) == 12


def _calls_with(stub: IntegrationStub, key: str) -> list[Call]:
    return [c for c in stub.calls if c.get(key) is not None]


def test_delivery_events_report_the_outcome(live_server: LiveServer, stub: IntegrationStub) -> None:
    assert live_server.app is not None
    store = runtime(live_server.app).store
    integration = add_integration(live_server, stub.url)
    number = customer_writes(live_server, integration, "chat-e")
    stub.then(_status(500, {}))
    mark = store.last_event_id()

    failed = reply(live_server, number)["delivery"]

    events = [e for e in store.events_after(mark) if e.kind == "delivery"]
    assert [(e.data["id"], e.data["state"]) for e in events] == [(failed["id"], "failed")]
    assert events[0].data["outcome"] == failed["outcome"]
    assert _calls_with(stub, "messageId")


def test_tls_error_fails_with_its_note(live_server: LiveServer, stub: IntegrationStub) -> None:
    # The stub speaks plain HTTP: an https URL to it fails in the TLS handshake.
    integration = add_integration(live_server, stub.url.replace("http://", "https://"))
    number = customer_writes(live_server, integration, "chat-t")

    delivery = reply(live_server, number)["delivery"]

    assert delivery["state"] == "failed"
    assert delivery["outcome"].startswith("TLS error: ")
    entry = api(live_server, "GET", f"/api/v1/journal/{delivery['journal_ids'][0]}")
    assert entry["error"].startswith("tls: ")


def test_delivery_forms_mask_the_token_unless_revealed(
    live_server: LiveServer, stub: IntegrationStub
) -> None:
    integration = add_integration(live_server, stub.url)
    number = customer_writes(live_server, integration, "chat-m")
    delivery_id = reply(live_server, number)["delivery"]["id"]
    token = integration["token"]

    masked = api(live_server, "GET", f"/api/v1/deliveries/{delivery_id}")
    revealed = api(live_server, "GET", f"/api/v1/deliveries/{delivery_id}?reveal=1")

    assert ["token", f"{token[:4]}\u2026{token[-4:]}"] in masked["form"]
    assert ["token", token] in revealed["form"]
    assert token not in str(api(live_server, "GET", "/api/v1/deliveries"))


@pytest.mark.parametrize(
    ("attempts_done", "delay"),
    [(1, 900 * 0.5), (2, 1800 * 0.5), (3, 3600 * 0.5), (4, 3600 * 0.5), (5, None)],
)
def test_retry_schedule_is_planfix_automation_scaled(
    attempts_done: int, delay: float | None
) -> None:
    policy = Retry(enabled=True, time_factor=0.5)

    due = retry_at(policy, attempts_done, now=1000.0)

    assert due == (None if delay is None else 1000.0 + delay)


def test_no_retry_when_the_policy_is_off() -> None:
    assert retry_at(Retry(), 1, now=0.0) is None


def test_an_integration_answer_nested_past_the_parsers_limit_fails_the_delivery() -> None:
    deep = ("[" * 50_000 + "]" * 50_000).encode()
    verdict = check_answer("reply", "chat-1", Answer(200, deep, {}, 1.0))
    assert verdict.delivered is False
    assert "not JSON" in verdict.note
