"""The simulator itself: `GET /api/v1/status` (where it is, what it serves) and `POST /reset`."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from simulator import __version__
from simulator.planfix.chat_api import API_PATHS
from simulator.runtime import runtime
from simulator.web.api.control import (
    json_body,
    resolve_integration,
)

bp = Blueprint("status", __name__, url_prefix="/api/v1")


@bp.get("/status")
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


@bp.post("/reset")
def reset() -> Response:
    """Forget chats, tasks, contacts, messages and journal: all, or of `?integration=`."""
    ref = request.args.get("integration") or json_body().get("integration")
    target = resolve_integration(ref)
    runtime().store.reset(target.id if target else None)
    return jsonify(reset=True, integration=target.id if target else None)
