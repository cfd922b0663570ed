"""Control routes of the Planfix → integration side: replies, first messages, deliveries, faults."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from simulator import faults
from simulator.contract import Attachment, Integration
from simulator.errors import BadRequest
from simulator.planfix import delivery
from simulator.planfix.delivery import DeliveryWorker
from simulator.records import DeliveryRecord
from simulator.runtime import runtime
from simulator.web import security
from simulator.web.api.control import (
    integration_filter,
    paged,
    resolve_integration,
)
from simulator.web.declare import ID, MAX_LIMIT, declare, json_body, path_param, query_param
from simulator.web.schemas import (
    ATTACHMENTS_SCHEMA,
    INTEGRATION_FILTER,
    INTEGRATION_REF,
    NUMBER_PATH,
    REF,
    array_of,
)
from simulator.web.schemas import ref as named

bp = Blueprint("delivery_api", __name__, url_prefix="/api/v1")

REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "additionalProperties": False,
    "properties": {
        "message": {"type": "string"},
        "employee": {"type": "string"},
        "attachments": ATTACHMENTS_SCHEMA,
        "wait": {"type": "boolean"},
    },
}
FIRST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["integration", "contactPhone", "message"],
    "additionalProperties": False,
    "properties": {
        "integration": {**INTEGRATION_REF, "minLength": 1},
        "contactPhone": {"type": "string", "minLength": 1},
        "message": {"type": "string"},
        "employee": {"type": "string"},
        "channel": {"type": "string"},
        "providerId": {"type": "string", "minLength": 1},
        "attachments": ATTACHMENTS_SCHEMA,
        "wait": {"type": "boolean"},
    },
}
RETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"wait": {"type": "boolean"}},
}


DELIVERY_ID = path_param("delivery_id", ID)


def _attachments(data: dict[str, Any]) -> list[Attachment]:
    return [Attachment(a["name"], a["url"]) for a in data.get("attachments", [])]


def _worker() -> DeliveryWorker:
    return runtime().delivery


def _settle(found: DeliveryRecord, integration: Integration, wait: bool) -> DeliveryRecord:
    """Wake this process's worker or, with `wait`, run the attempt here (or wait for it)."""
    worker = _worker()
    if wait:
        done = worker.attempt_now(found.id)
        if done is not None:
            return done
    worker.wake()
    if not wait:
        return found
    # Another worker holds it (a retry already under way, another process): wait for that one.
    return delivery.wait_for_attempt(
        runtime().store, found.id, found.attempts, delivery.attempt_timeout(integration)
    )


@bp.post("/tasks/<int:number>/replies")
@declare(
    "Operator reply: Planfix's newMessage (reply variant) to the integration",
    named("Reply"),
    body=REPLY_SCHEMA,
    path=(NUMBER_PATH,),
    errors=(400, 404),
)
def reply(number: int) -> Response:
    """An operator replies in a task: Planfix's newMessage (reply variant) to the integration."""
    data = json_body()
    rt = runtime()
    message, queued = delivery.queue_reply(
        rt.store,
        rt.settings,
        number,
        text=data["message"],
        employee=data.get("employee"),
        attachments=_attachments(data),
    )
    integration = rt.store.integration(queued.integration_id)
    settled = _settle(queued, integration, data.get("wait", True))
    return jsonify(
        message=rt.store.message(message.pk).as_dict(),
        delivery=_shown(settled),
    )


@bp.post("/first-messages")
@declare(
    "First message to a contact's phone: the integration assigns chatId and contactId",
    named("FirstMessage"),
    body=FIRST_SCHEMA,
    errors=(400, 404),
)
def first_message() -> Response:
    """Write to a contact's phone (no chat yet): the integration must assign chatId/contactId."""
    data = json_body()
    rt = runtime()
    integration = resolve_integration(data["integration"])
    if integration is None:
        raise BadRequest("integration: required")
    message, queued = delivery.queue_first_message(
        rt.store,
        rt.settings,
        integration,
        contact_phone=data["contactPhone"],
        text=data["message"],
        employee=data.get("employee"),
        channel=data.get("channel"),
        attachments=_attachments(data),
        provider_id=data.get("providerId"),
    )
    settled = _settle(queued, integration, data.get("wait", True))
    chat_id = contact_id = None
    if settled.state == "delivered" and settled.answer is not None:
        answer = json.loads(settled.answer["body"])
        chat_id, contact_id = answer["chatId"], answer["contactId"]
    return jsonify(
        message=rt.store.message(message.pk).as_dict(),
        delivery=_shown(settled),
        task=settled.task_number if settled.state == "delivered" else None,
        chatId=chat_id,
        contactId=contact_id,
    )


def _shown(found: DeliveryRecord) -> dict[str, Any]:
    """A delivery's JSON; tokens in its form masked unless `?reveal=1` (as in the journal)."""
    shown = found.as_dict()
    shown["form"] = security.shown_form(shown["form"])
    return shown


@bp.get("/deliveries")
@declare(
    "Deliveries, newest first",
    array_of("Delivery"),
    query=(INTEGRATION_FILTER,),
    paged=True,
    errors=(404,),
)
def list_deliveries() -> Response:
    """Deliveries, newest first; `?integration=` filters, `?limit=` bounds."""
    found = runtime().store.deliveries(integration_filter(), MAX_LIMIT * 10)
    return paged([_shown(d) for d in found])


@bp.get("/deliveries/<int:delivery_id>")
@declare("One delivery", named("Delivery"), path=(DELIVERY_ID,), errors=(404,))
def get_delivery(delivery_id: int) -> Response:
    """One delivery with its attempts' journal ids."""
    return jsonify(_shown(runtime().store.delivery(delivery_id)))


@bp.post("/deliveries/<int:delivery_id>/retry")
@declare(
    "Redeliver by hand (same form and messageId)",
    named("Delivery"),
    body=RETRY_SCHEMA,
    path=(DELIVERY_ID,),
    errors=(400, 404),
)
def retry_delivery(delivery_id: int) -> Response:
    """Redeliver by hand (same form, same messageId); waits for the attempt unless wait=false."""
    data = json_body()
    store = runtime().store
    queued = store.request_retry(delivery_id)
    integration = store.integration(queued.integration_id)
    return jsonify(_shown(_settle(queued, integration, data.get("wait", True))))


# -- faults ------------------------------------------------------------------------------------


def _fault_view(integration: Integration) -> dict[str, Any]:
    plans = runtime().store.faults(integration.id)
    return {
        "integration_id": integration.id,
        **{
            side: faults.public_plan(plans[side]) if plans.get(side) else None
            for side in faults.SIDES
        },
    }


def _target(ref: str) -> Integration:
    found = resolve_integration(ref)
    assert found is not None  # noqa: S101 - a route segment is never empty
    return found


@bp.put("/integrations/<ref>/faults")
@declare(
    "Plan faults per side (a side given replaces its plan; null clears it)",
    named("Faults"),
    body=faults.FAULTS_BODY_SCHEMA,
    path=(REF,),
    errors=(400, 404),
)
def put_faults(ref: str) -> Response:
    """Plan faults per side; a side given replaces its plan (null clears it), others stay."""
    integration = _target(ref)
    data = json_body()
    store = runtime().store
    plans = store.faults(integration.id)
    for side in faults.SIDES:
        if side in data:
            spec = data[side]
            plans[side] = faults.new_plan(spec) if spec is not None else None
    store.set_faults(integration.id, {k: v for k, v in plans.items() if v})
    return jsonify(_fault_view(integration))


@bp.get("/integrations/<ref>/faults")
@declare("Planned faults and their counters", named("Faults"), path=(REF,), errors=(404,))
def get_faults(ref: str) -> Response:
    """The fault plans with their counters (calls seen, faults injected, remaining)."""
    return jsonify(_fault_view(_target(ref)))


@bp.delete("/integrations/<ref>/faults")
@declare(
    "Clear planned faults",
    named("Faults"),
    path=(REF,),
    query=(query_param("side", {"enum": list(faults.SIDES)}, "Only this side"),),
    errors=(400, 404),
)
def delete_faults(ref: str) -> Response:
    """Clear the fault plans: both sides, or `?side=planfix|fake_chat`."""
    integration = _target(ref)
    side = request.args.get("side")
    store = runtime().store
    plans = store.faults(integration.id)
    if side:
        if side not in faults.SIDES:
            raise BadRequest(f"side must be one of {', '.join(faults.SIDES)}")
        plans.pop(side, None)
    else:
        plans = {}
    store.set_faults(integration.id, plans)
    return jsonify(_fault_view(integration))
