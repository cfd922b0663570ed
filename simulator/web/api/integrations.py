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
    json_body,
    paged,
    resolve_integration,
)

bp = Blueprint("integrations", __name__, url_prefix="/api/v1")


@bp.get("/integrations")
def list_integrations() -> Response:
    """Every integration with its tokens and settings."""
    security.show_secrets()  # the tokens are what a caller comes here for
    return paged([integration_as_dict(i) for i in runtime().store.integrations()])


@bp.post("/integrations")
def create_integration() -> tuple[Response, int]:
    """Create an integration; tokens are generated when not given (isolation per test/CI job)."""
    security.show_secrets()  # the tokens are what a caller comes here for
    data = json_body(INTEGRATION_SCHEMA)
    created = runtime().store.add_integration(integration_from_mapping(data))
    return jsonify(integration_as_dict(created)), 201


@bp.get("/integrations/<ref>")
def get_integration(ref: str) -> Response:
    """One integration by id or name."""
    security.show_secrets()  # the tokens are what a caller comes here for
    found = resolve_integration(ref)
    assert found is not None  # noqa: S101 - a route segment is never empty
    return jsonify(integration_as_dict(found))


@bp.patch("/integrations/<ref>")
def update_integration(ref: str) -> Response:
    """Change some settings of an integration."""
    security.show_secrets()  # the tokens are what a caller comes here for
    found = resolve_integration(ref)
    assert found is not None  # noqa: S101 - a route segment is never empty
    data = json_body(INTEGRATION_SCHEMA)
    saved = runtime().store.save_integration(integration_from_mapping(data, found))
    return jsonify(integration_as_dict(saved))
