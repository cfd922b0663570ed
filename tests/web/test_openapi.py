"""`/openapi.json` stays true: every route is described, and nothing described is gone."""

from __future__ import annotations

import re
import typing

import pytest
from flask import Flask
from flask.testing import FlaskClient

from simulator.clients import shapes
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
