"""The control API (`/api/v1`) for Planfix-side state: integrations, tasks, journal, reset."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.conftest import CHAT_TOKEN, PLANFIX_TOKEN
from tests.planfix.test_chat_api import form, new_message, post


def test_the_default_integration_is_listed_with_its_tokens(client: FlaskClient) -> None:
    (default,) = client.get("/api/v1/integrations").get_json()
    assert (default["name"], default["planfix_token"], default["token"]) == (
        "default",
        PLANFIX_TOKEN,
        CHAT_TOKEN,
    )


def test_creating_an_integration_generates_fresh_tokens(client: FlaskClient) -> None:
    first = client.post("/api/v1/integrations", json={})
    second = client.post("/api/v1/integrations", json={"profile": "observed"})
    assert (first.status_code, second.status_code) == (201, 201)
    a, b = first.get_json(), second.get_json()
    assert a["planfix_token"] != b["planfix_token"]
    assert len(a["planfix_token"]) == 32
    assert b["profile"] == "observed"
    token_form = [(k, b["planfix_token"] if k == "planfix_token" else v) for k, v in new_message()]
    assert post(client, token_form).get_json() == {}, "observed profile answers JSON"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"profile": "loose"}, "profile"),
        ({"strict": "yes"}, "strict"),
        ({"name": "default"}, "exists"),
        ({"planfix_token": PLANFIX_TOKEN}, "exists"),
        ({"options": {"typo": True}}, "typo"),
        ([], "JSON object"),
    ],
)
def test_a_bad_integration_is_refused_with_a_reason(
    client: FlaskClient, body: object, detail: str
) -> None:
    response = client.post("/api/v1/integrations", json=body)
    assert response.status_code == 400
    assert detail in response.get_json()["detail"]


def test_an_integration_can_be_changed(client: FlaskClient) -> None:
    changed = client.patch(
        "/api/v1/integrations/1", json={"url": "http://127.0.0.1:9/hook", "timeout": 2}
    ).get_json()
    assert (changed["url"], changed["timeout"], changed["name"]) == (
        "http://127.0.0.1:9/hook",
        2.0,
        "default",
    )
    assert client.get("/api/v1/integrations/default").get_json() == changed


def test_a_task_shows_messages_fields_and_contact(client: FlaskClient) -> None:
    client.patch("/api/v1/integrations/default", json={"task_fields": ["utm_source"]})
    post(client, new_message(data_utm_source="ads", contactEmail="i@x.io"))
    task = client.get("/api/v1/tasks/1000").get_json()
    assert task["fields"] == {"utm_source": "ads"}
    assert task["contact"]["email"] == "i@x.io"
    assert [m["text"] for m in task["messages"]] == ["Hi"]
    assert task["unread"] == 1
    assert client.post("/api/v1/tasks/1000/read").get_json()["unread"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tasks/4242",
        "/api/v1/integrations/4242",
        "/api/v1/integrations/nope",
        "/api/v1/journal/4242",
        "/api/v1/tasks?integration=nope",
    ],
)
def test_unknown_things_are_404_json(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not found"


def test_complete_unknown_task_is_404(client: FlaskClient) -> None:
    assert client.post("/api/v1/tasks/4242/complete").status_code == 404


def test_journal_filters(client: FlaskClient) -> None:
    post(client, new_message())
    post(client, form("getTask", chatId="chat-1"))
    post(client, form("getTask", chatId="nope"))
    entries = client.get("/api/v1/journal").get_json()
    assert [e["cmd"] for e in entries] == ["newMessage", "getTask", "getTask"]
    assert len(client.get("/api/v1/journal?cmd=getTask").get_json()) == 2
    assert len(client.get("/api/v1/journal?status=400").get_json()) == 1
    since = entries[0]["id"]
    assert [e["id"] for e in client.get(f"/api/v1/journal?since={since}").get_json()] == [
        e["id"] for e in entries[1:]
    ]
    assert len(client.get("/api/v1/journal?direction=to_chat").get_json()) == 0
    assert len(client.get("/api/v1/journal?limit=1").get_json()) == 1
    assert client.get("/api/v1/journal?since=abc").status_code == 400


def test_cross_site_state_changes_are_refused(client: FlaskClient) -> None:
    refused = client.post(
        "/api/v1/reset", headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.test"}
    )
    assert refused.status_code == 403
    refused = client.post("/api/v1/reset", headers={"Origin": "https://evil.test"})
    assert refused.status_code == 403
    allowed = client.post("/api/v1/reset", headers={"Sec-Fetch-Site": "same-origin"})
    assert allowed.status_code == 200
    # Integrations are called from anywhere: the chat API never refuses by origin.
    chat = post(client, new_message())
    assert chat.status_code == 200


def test_status_says_where_the_endpoints_are(client: FlaskClient) -> None:
    status = client.get("/api/v1/status").get_json()
    assert status["planfix_endpoints"][0].endswith("/webchat/api")
    assert status["counts"]["integrations"] == 1
