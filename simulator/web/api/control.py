"""What every control-API blueprint shares: JSON bodies, integration references and paging.

The control API (`/api/v1`: JSON for the sandbox UI, tests, scenarios and CI jobs) is one
blueprint module per resource next to this one: status (and reset), integrations, employees,
tasks, contacts, journal; deliveries and faults in outbound, events and waiting in events.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, jsonify, request
from jsonschema import Draft202012Validator

from simulator.contract import Integration
from simulator.errors import BadRequest, NotFound
from simulator.runtime import runtime
from simulator.wire import decode_json

# Attachments in control-API bodies: [{name, url}], paired as Planfix pairs them on the wire.
ATTACHMENTS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "url"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "url": {"type": "string"}},
    },
}


def json_body(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request's JSON object (empty when there is no body), checked against `schema`."""
    body = request.get_data(cache=True)
    if not body:
        data: Any = {}
    else:
        try:
            data = decode_json(body)  # nested past the parser: the route's 400, in one place
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
    if schema is not None:
        errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: e.message)
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.path) or "body"
            # A pattern's regex tells a person little; its schema's description says what fits.
            described = first.schema.get("description") if first.validator == "pattern" else None
            reason = f"must be {described}" if isinstance(described, str) else first.message
            raise BadRequest(f"{where}: {reason}")
    result: dict[str, Any] = data
    return result


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
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


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
