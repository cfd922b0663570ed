"""Contacts (`/api/v1/contacts`), newest first."""

from __future__ import annotations

from flask import Blueprint, Response

from simulator.runtime import runtime
from simulator.web.api.control import (
    integration_filter,
    paged,
)

bp = Blueprint("contacts", __name__, url_prefix="/api/v1")


@bp.get("/contacts")
def list_contacts() -> Response:
    """Contacts, newest first; `?integration=` filters."""
    return paged([c.as_dict() for c in runtime().store.contacts(integration_filter())])
