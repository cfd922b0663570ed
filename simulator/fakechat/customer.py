"""The fake chat's customer side (`/api/v1/chat/…`): post `newMessage` or any command to Planfix.

This simulator's own `/webchat/api` by default, or any other Planfix URL; also the customers'
inbox and the chats the fake chat knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, jsonify, request

from simulator.clients.http import Answer, post_form
from simulator.contract import (
    TOKEN_FIELD,
    Form,
    Integration,
    attachment_pairs,
)
from simulator.errors import BadRequest
from simulator.fakechat.bodies import COMMAND_SCHEMA, MESSAGE_FIELDS, MESSAGE_SCHEMA, OWN_KEYS
from simulator.fakechat.reporter import SEND_TIMEOUT
from simulator.planfix.delivery import DEFAULT_PROVIDER_ID, send_marked
from simulator.planfix.exchange import exchange
from simulator.records import FakeChat
from simulator.runtime import runtime
from simulator.web.api.control import integration_filter, paged, resolve_integration
from simulator.web.declare import declare, json_body, query_param
from simulator.web.schemas import INTEGRATION_FILTER, array_of
from simulator.web.schemas import ref as named

bp = Blueprint("fake_chat_customer", __name__)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _integration(data: dict[str, Any]) -> Integration:
    found = resolve_integration(data.get("integration"))
    if found is not None:
        return found
    every = runtime().store.integrations()
    if not every:
        raise BadRequest("integration: the simulator has no integration")
    return every[0]


def _defaults(data: dict[str, Any], integration: Integration) -> dict[str, Any]:
    """providerId and planfix_token filled in unless given (null leaves a field out)."""
    return {"providerId": DEFAULT_PROVIDER_ID, TOKEN_FIELD: integration.planfix_token, **data}


def message_form(data: dict[str, Any], integration: Integration) -> list[tuple[str, str]]:
    """A customer's `newMessage` form from the control API's JSON."""
    values = _defaults(data, integration)
    pairs: list[tuple[str, str]] = [("cmd", "newMessage")]
    for name in MESSAGE_FIELDS:
        if values.get(name) is not None:
            pairs.append((name, _text(values[name])))
    pairs += attachment_pairs(values.get("attachments", []))
    for name in ("isEcho", "userEmail"):
        if values.get(name) is not None:
            pairs.append((name, _text(values[name])))
    for name, value in values.get("data", {}).items():
        pairs.append((f"data_{name}", value))
    for name, value in values.items():
        if name not in (*MESSAGE_FIELDS, *OWN_KEYS, "cmd") and value is not None:
            pairs.append((name, _text(value)))
    return pairs


def command_form(data: dict[str, Any], integration: Integration) -> list[tuple[str, str]]:
    """Any command's form: cmd, providerId, planfix_token, then the fields in the order given."""
    values = _defaults(data, integration)
    pairs: list[tuple[str, str]] = [("cmd", str(values["cmd"]))]
    for name in ("providerId", TOKEN_FIELD):
        if values.get(name) is not None:
            pairs.append((name, _text(values[name])))
    for name, value in values.items():
        if name in ("cmd", "providerId", TOKEN_FIELD, "integration", "planfix_url"):
            continue
        if name == "attachments":
            pairs += attachment_pairs(value)
        elif isinstance(value, list):
            pairs += [(name, _text(v)) for v in value]
        elif value is not None:
            pairs.append((name, _text(value)))
    return pairs


def send_to_planfix(
    integration: Integration, pairs: Sequence[tuple[str, str]], planfix_url: str | None
) -> Answer:
    """Post a form to this simulator's Planfix (which journals it) or to `planfix_url`."""
    # Calls to another Planfix are journaled here, as the fake chat's.
    rt = runtime()
    if not planfix_url:
        return post_form(rt.base_url + "/webchat/api", pairs, timeout=SEND_TIMEOUT)
    sent = send_marked(rt.store, planfix_url, pairs, SEND_TIMEOUT)
    rt.store.record(
        exchange(
            "to_planfix",
            "fake_chat",
            "POST",
            planfix_url,
            Form.of(pairs),
            status=sent.answer.status,
            body=sent.answer.text,
            duration_ms=sent.answer.duration_ms,
            headers=sent.headers,
            fault=sent.fault,
            error=sent.answer.error,
            integration_id=integration.id,
        )
    )
    return sent.answer


def _sent(answer: Answer, pairs: Sequence[tuple[str, str]]) -> Response:
    return jsonify(
        status=answer.status,
        body=answer.text,
        json=answer.json_or_none(),
        duration_ms=round(answer.duration_ms, 3),
        form=[list(p) for p in pairs],
        error=answer.error,
    )


@bp.post("/api/v1/chat/messages")
@declare(
    "The fake chat's customer sends newMessage to Planfix (this simulator or planfix_url)",
    named("ChatSend"),
    body=MESSAGE_SCHEMA,
    errors=(400, 404),
)
def customer_message() -> Response:
    """The fake chat's customer writes: `newMessage` to Planfix; the answer as it came."""
    data = json_body()
    integration = _integration(data)
    pairs = message_form(data, integration)
    form = Form.of(pairs)
    if form.get("chatId"):
        runtime().store.note_fake_chat(
            FakeChat(
                integration.id,
                form.get("providerId") or "",
                form.get("chatId") or "",
                form.get("contactId") or "",
                " ".join(v for v in (form.get("contactName"), form.get("contactLastName")) if v),
                form.get("contactPhone") or "",
                form.get("channel") or "",
                "",
                "",
            )
        )
    return _sent(send_to_planfix(integration, pairs, data.get("planfix_url")), pairs)


@bp.post("/api/v1/chat/commands")
@declare(
    "The fake chat sends any command to Planfix",
    named("ChatSend"),
    body=COMMAND_SCHEMA,
    errors=(400, 404),
)
def customer_command() -> Response:
    """Send any command (getTask, getContact, updateContact, messageStatus, …) to Planfix."""
    data = json_body()
    integration = _integration(data)
    pairs = command_form(data, integration)
    return _sent(send_to_planfix(integration, pairs, data.get("planfix_url")), pairs)


@bp.get("/api/v1/chat/inbox")
@declare(
    "Messages the fake chat's customers received",
    array_of("InboxItem"),
    query=(INTEGRATION_FILTER, query_param("chatId", {"type": "string"}, "Only this chat")),
    paged=True,
    errors=(404,),
)
def inbox() -> Response:
    """What the fake chat's customers received; `?integration=`, `?chatId=` filter."""
    items = runtime().store.inbox(integration_filter(), request.args.get("chatId") or None)
    return paged([i.as_dict() for i in items])


@bp.get("/api/v1/chat/chats")
@declare(
    "Chats the fake chat knows",
    array_of("FakeChat"),
    query=(INTEGRATION_FILTER,),
    paged=True,
    errors=(404,),
)
def chats() -> Response:
    """Chats the fake chat knows; `?integration=` filters."""
    return paged([c.as_dict() for c in runtime().store.fake_chats(integration_filter())])
