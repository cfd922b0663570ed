"""What every control-API blueprint shares: JSON bodies, integration references and paging.

The control API (`/api/v1`: JSON for the sandbox UI, tests, scenarios and CI jobs) is one
blueprint module per resource next to this one: status (and reset), integrations, employees,
tasks, contacts, journal; deliveries and faults in outbound, events and waiting in events.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, jsonify, request

from simulator.contract import Integration
from simulator.errors import BadRequest, NotFound
from simulator.runtime import runtime
from simulator.web.declare import DEFAULT_LIMIT, MAX_LIMIT, json_body
from simulator.web.schemas import ATTACHMENTS_SCHEMA

# Shared by the resource modules and the fake chat's customer side.
__all__ = ["ATTACHMENTS_SCHEMA", "DEFAULT_LIMIT", "MAX_LIMIT", "json_body"]


def resolve_integration(ref: str | int | None) -> Integration | None:
    """An integration by id or name; None when `ref` is empty; NotFound when it matches none."""
    if ref is None or ref == "":
        return None
    store = runtime().store
    # isascii: str.isdigit() also holds for '²', which int() refuses.
    if isinstance(ref, int) or (str(ref).isascii() and str(ref).isdigit()):
        number = int(ref)
        if not 0 <= number < 2**63:  # beyond SQLite's integers: no such id
            raise NotFound(f"integration {ref!r}")
        return store.integration(number)
    found = store.integration_by_name(str(ref))
    if found is None:
        raise NotFound(f"integration {ref!r}")
    return found


def integration_filter() -> int | None:
    """The `?integration=` filter of list endpoints, as an id."""
    found = resolve_integration(request.args.get("integration"))
    return found.id if found else None


def int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not -(2**63) <= value < 2**63:  # SQLite refuses larger integers (a 500, not an answer)
        raise BadRequest(f"{name} is out of range")
    return value


# Every list endpoint answers one page: `limit` items (this default, at most the maximum) and,
# when more may follow, a `Link: <…>; rel="next"` header whose URL carries the `cursor`.


def page_limit() -> int:
    """The `?limit=` of a list endpoint: DEFAULT_LIMIT when absent, 1..MAX_LIMIT, else a 400."""
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT):
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def page_cursor() -> int | None:
    """The `?cursor=` of a list endpoint (from a previous page's next link), or None."""
    raw = request.args.get("cursor")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and int(raw) < 2**63):
        raise BadRequest("cursor must be the value of a previous page's next link")
    return int(raw)


def page_response(items: list[Any], next_cursor: int | None, param: str = "cursor") -> Response:
    """A page as JSON; a `Link` header names the next page when there is one."""
    response = jsonify(items)
    if next_cursor is not None:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != param]
        query = urlencode([*args, (param, str(next_cursor))])
        response.headers["Link"] = f'<{request.path}?{query}>; rel="next"'
    return response


def paged(items: list[Any]) -> Response:
    """One page of a whole list (the cursor is an offset into it)."""
    limit, start = page_limit(), page_cursor() or 0
    end = start + limit
    return page_response(items[start:end], end if end < len(items) else None)
