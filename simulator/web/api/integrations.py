"""Integrations (`/api/v1/integrations`): tokens and settings, created per test or CI job."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from simulator.config.settings import (
    INTEGRATION_SCHEMA,
    integration_as_dict,
    integration_from_mapping,
)
from simulator.runtime import runtime
from simulator.web import security
from simulator.web.api.control import (
    paged,
    resolve_integration,
)
from simulator.web.declare import declare, json_body
from simulator.web.schemas import (
    REF,
    array_of,
)
from simulator.web.schemas import ref as named

bp = Blueprint("integrations", __name__, url_prefix="/api/v1")


@bp.get("/integrations")
@declare("List integrations", array_of("Integration"), paged=True)
def list_integrations() -> Response:
    """Every integration with its tokens and settings."""
    security.show_secrets()  # the tokens are what a caller comes here for
    return paged([integration_as_dict(i) for i in runtime().store.integrations()])


@bp.post("/integrations")
@declare(
    "Create an integration (tokens generated when absent)",
    named("Integration"),
    status=201,
    body=INTEGRATION_SCHEMA,
    errors=(400,),
)
def create_integration() -> tuple[Response, int]:
    """Create an integration; tokens are generated when not given (isolation per test/CI job)."""
    security.show_secrets()  # the tokens are what a caller comes here for
    data = json_body()
    created = runtime().store.add_integration(integration_from_mapping(data))
    return jsonify(integration_as_dict(created)), 201


@bp.get("/integrations/<ref>")
@declare("One integration by id or name", named("Integration"), path=(REF,), errors=(404,))
def get_integration(ref: str) -> Response:
    """One integration by id or name."""
    security.show_secrets()  # the tokens are what a caller comes here for
    found = resolve_integration(ref)
    assert found is not None  # noqa: S101 - a route segment is never empty
    return jsonify(integration_as_dict(found))


@bp.patch("/integrations/<ref>")
@declare(
    "Change an integration's settings",
    named("Integration"),
    body=INTEGRATION_SCHEMA,
    path=(REF,),
    errors=(400, 404),
)
def update_integration(ref: str) -> Response:
    """Change some settings of an integration."""
    security.show_secrets()  # the tokens are what a caller comes here for
    found = resolve_integration(ref)
    assert found is not None  # noqa: S101 - a route segment is never empty
    data = json_body()
    saved = runtime().store.save_integration(integration_from_mapping(data, found))
    return jsonify(integration_as_dict(saved))


@bp.delete("/integrations/<ref>")
@declare(
    "Delete an integration with its contacts, chats, tasks, messages and deliveries",
    None,
    status=204,
    path=(REF,),
    errors=(404, 409),
    description="In one transaction: its contacts, chats, tasks, messages, deliveries and the"
    " fake chat's inbox and chats go. Its journal entries stay as history (their"
    " `integration_id` is never given to another integration; their `delivery_id` is cleared)"
    " until the journal's bounds drop them. Any integration may go, `default` too, but not the"
    " last one (409).",
)
def delete_integration(ref: str) -> tuple[str, int]:
    """Delete an integration and what it owns (its journal stays); 409 for the last one."""
    found = resolve_integration(ref)
    assert found is not None  # noqa: S101 - a route segment is never empty
    runtime().store.delete_integration(found.id)
    return "", 204
