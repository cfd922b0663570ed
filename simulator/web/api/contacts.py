"""Contacts (`/api/v1/contacts`), newest first."""

from __future__ import annotations

from flask import Blueprint, Response

from simulator.runtime import runtime
from simulator.web.api.control import (
    integration_filter,
    paged,
)
from simulator.web.declare import declare
from simulator.web.schemas import (
    INTEGRATION_FILTER,
    array_of,
)

bp = Blueprint("contacts", __name__, url_prefix="/api/v1")


@bp.get("/contacts")
@declare(
    "List contacts", array_of("Contact"), query=(INTEGRATION_FILTER,), paged=True, errors=(404,)
)
def list_contacts() -> Response:
    """Contacts, newest first; `?integration=` filters."""
    return paged([c.as_dict() for c in runtime().store.contacts(integration_filter())])
