"""The simulator itself: `GET /api/v1/status` (where it is, what it serves) and `POST /reset`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from simulator import __version__
from simulator.planfix.chat_api import API_PATHS
from simulator.runtime import runtime
from simulator.web.api.control import (
    resolve_integration,
)
from simulator.web.declare import declare, json_body
from simulator.web.schemas import (
    INTEGRATION_FILTER,
    INTEGRATION_REF,
)
from simulator.web.schemas import ref as named

bp = Blueprint("status", __name__, url_prefix="/api/v1")


@bp.get("/status")
@declare("Where the simulator is and what it serves", named("Status"))
def status() -> Response:
    """Where the simulator is and what it serves."""
    rt = runtime()
    return jsonify(
        version=__version__,
        base_url=rt.base_url,
        planfix_endpoints=[rt.base_url + p for p in API_PATHS],
        fake_chat_webhook=rt.base_url + "/fake-chat/webhook",
        account=rt.settings.account,
        counts=rt.store.counts(),
    )


RESET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"integration": INTEGRATION_REF},
}


@bp.post("/reset")
@declare(
    "Forget state: all, or one integration's",
    named("Reset"),
    body=RESET_SCHEMA,
    query=(INTEGRATION_FILTER,),
    errors=(400, 404),
)
def reset() -> Response:
    """Forget chats, tasks, contacts, messages and journal: all, or of `?integration=`."""
    body = json_body()  # checked even when the query names the integration
    ref = request.args.get("integration") or body.get("integration")
    target = resolve_integration(ref)
    runtime().store.reset(target.id if target else None)
    return jsonify(reset=True, integration=target.id if target else None)
