"""`/openapi.json` stays true: every route is described, and nothing described is gone."""

from __future__ import annotations

import json
import re
import typing
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from simulator.clients import shapes
from simulator.serving.live import LiveServer
from simulator.web.declare import declared
from simulator.web.schemas import SHAPES

# Pages for people, not API: the UI's own routes are not part of the OpenAPI document.
NOT_API = re.compile(r"^/($|ui/|static/|assets/|operator|customer|journal$|settings|tasks/|chat/)")


def flask_routes(app: Flask) -> set[tuple[str, str]]:
    """(path in OpenAPI syntax, method) for every API rule of the app."""
    routes = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        if NOT_API.match(path) and not path.startswith("/api/"):
            continue
        for method in rule.methods or ():
            if method in ("HEAD", "OPTIONS"):
                continue
            routes.add((path, method.lower()))
    return routes


def test_every_api_route_is_described_and_nothing_more(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    routes = {r for r in flask_routes(app) if not r[0].startswith(("/webchat/", "/chat/"))}
    described_api = {d for d in described if not d[0].startswith(("/webchat/", "/chat/"))}
    assert routes - described_api == set(), "routes missing from /openapi.json"
    assert described_api - routes == set(), "described routes that do not exist"
    for path in ("/webchat/api", "/chat/api"):
        assert "post" in spec["paths"][path]


def test_every_reference_resolves(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', str(spec).replace("'", '"')))
    assert refs, "the document uses references"
    assert refs <= set(spec["components"]["schemas"])


# The typed client's answer types, each against the shape the API declares for it.
TYPED = {
    "IntegrationJson": "Integration",
    "EmployeeJson": "Employee",
    "ContactJson": "Contact",
    "AttachmentJson": "Attachment",
    "MessageJson": "Message",
    "TaskJson": "Task",
    "TaskDetailJson": "TaskDetail",
    "JournalEntryJson": "JournalEntry",
    "DeliveryAnswerJson": "DeliveryAnswer",
    "DeliveryJson": "Delivery",
    "ReplyJson": "Reply",
    "FirstMessageJson": "FirstMessage",
    "InboxMessageJson": "InboxItem",
    "FakeChatJson": "FakeChat",
    "ChatSendJson": "ChatSend",
    "FaultsJson": "Faults",
}


@pytest.mark.parametrize(("typed", "shape"), TYPED.items())
def test_the_typed_client_has_the_keys_the_api_declares(typed: str, shape: str) -> None:
    declared = SHAPES[shape]
    found = getattr(shapes, typed)
    assert set(typing.get_type_hints(found)) == set(declared["properties"])
    assert found.__required_keys__ == frozenset(declared["required"])


def _answer_schema(app: Flask, method: str, path: str, status: int) -> dict[str, object]:
    """What the route's declaration promises for this status (an Error for other statuses)."""
    endpoint, _ = app.url_map.bind("localhost").match(path.split("?")[0], method)
    found = declared(app.view_functions[endpoint])
    assert found is not None, f"{method} {path} is not declared"
    shape = found.answer if status == found.status else {"$ref": "#/components/schemas/Error"}
    assert shape is not None
    # The references point into components/schemas; the answer schema is the document's root.
    return {**shape, "components": {"schemas": SHAPES}}


def test_every_answer_of_a_session_has_its_declared_shape(app: Flask) -> None:
    server = LiveServer({"testing": True}).start()
    seen: list[str] = []

    def call(method: str, path: str, body: object = None) -> Any:
        answer = requests.request(method, server.url + path, json=body, timeout=30)
        schema = _answer_schema(app, method, path, answer.status_code)
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(answer.json())]
        assert errors == [], f"{method} {path} → {answer.status_code}: {errors}"
        seen.append(f"{method} {path.split('?')[0]}")
        return answer.json()

    try:
        url = "{base_url}/fake-chat/webhook"
        call("POST", "/api/v1/integrations", {"name": "shapes", "url": url, "strict": True})
        call("PATCH", "/api/v1/integrations/shapes", {"task_fields": ["utm_source"]})
        call("POST", "/api/v1/employees", {"email": "op@example.com", "name": "Op"})
        pair = [{"name": "a.png", "url": "https://example.com/a.png"}]
        message = {
            "integration": "shapes",
            "chatId": "c1",
            "contactId": "u1",
            "message": "hi",
            "contactName": "U",
        }
        call("POST", "/api/v1/chat/messages", {**message, "attachments": pair})
        call("POST", "/api/v1/chat/messages", {**message, "data": {"utm_source": "ad"}})
        call(
            "POST",
            "/api/v1/chat/commands",
            {"integration": "shapes", "cmd": "getTask", "chatId": "c1"},
        )
        [task] = call("GET", "/api/v1/tasks?integration=shapes")
        number = task["number"]
        call("POST", f"/api/v1/tasks/{number}/replies", {"message": "hello", "attachments": pair})
        call(
            "POST",
            "/api/v1/first-messages",
            {"integration": "shapes", "contactPhone": "+1", "message": "x"},
        )
        for path in (
            "/api/v1/status",
            "/api/v1/integrations",
            "/api/v1/integrations/shapes",
            "/api/v1/employees",
            f"/api/v1/tasks/{number}",
            "/api/v1/contacts",
            "/api/v1/journal?reveal=1",
            "/api/v1/deliveries",
            "/api/v1/chat/inbox",
            "/api/v1/chat/chats",
            "/api/v1/events/stats",
            "/api/v1/integrations/shapes/faults",
        ):
            call("GET", path)
        entry = call("GET", "/api/v1/journal?limit=1")[0]
        call("GET", f"/api/v1/journal/{entry['id']}")
        delivery = call("GET", "/api/v1/deliveries?limit=1")[0]
        call("GET", f"/api/v1/deliveries/{delivery['id']}")
        call("POST", f"/api/v1/deliveries/{delivery['id']}/retry", {"wait": True})
        plan = {"status": 503, "count": 2, "probability": 0.5}
        call("PUT", "/api/v1/integrations/shapes/faults", {"planfix": plan})
        call("DELETE", "/api/v1/integrations/shapes/faults?side=planfix")
        for step in ("complete", "reopen", "read"):
            call("POST", f"/api/v1/tasks/{number}/{step}")
        call("GET", "/api/v1/tasks/999999")  # an error answer has its shape too
        # Every event of the session, as the stream sends it, is an Event.
        events = _events(server.url)
        event_schema = {**SHAPES["Event"], "components": {"schemas": SHAPES}}
        assert events, "the session made events"
        for event in events:
            assert list(Draft202012Validator(event_schema).iter_errors(event)) == [], event
        call("POST", "/api/v1/reset?integration=shapes")
    finally:
        server.stop()
    server.check()
    assert len(set(seen)) >= 28


def _events(base_url: str) -> list[Any]:
    """Every stored event from the SSE stream, read until the first keep-alive after them."""
    found = []
    url = base_url + "/api/v1/events?last_event_id=0&ping=0.2"
    with requests.get(url, stream=True, timeout=30) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                found.append(json.loads(line[len("data: ") :]))
            elif line == ": ping":
                break
    return found
