"""Each control-API route declares its body, query and answer once; validation and OpenAPI read it.

`@declare(...)` sits under the route decorator. The query parameters it names are checked before
the view runs (a value outside its schema is a 400); `json_body()` checks the body against the
declared body schema; `simulator.web.openapi` walks the app's URL map and writes each operation
from the same declaration; tests validate every answer against the declared answer schema.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, request
from jsonschema import Draft202012Validator

from simulator.errors import BadRequest
from simulator.wire import decode_json

JSON = "application/json"
Schema = dict[str, Any]
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Declared:
    """One operation: what it takes and what it answers."""

    summary: str
    answer: Schema | None
    status: int = 200
    body: Schema | None = None
    query: tuple[Schema, ...] = ()
    errors: tuple[int, ...] = ()
    description: str = ""
    media: str = JSON
    paged: bool = False
    path: tuple[Schema, ...] = ()
    # Answers beyond the success and the standard errors: status → OpenAPI response object.
    responses: dict[int, Schema] = field(default_factory=dict)


_DECLARED: dict[Callable[..., Any], Declared] = {}


def declare(
    summary: str,
    answer: Schema | None,
    *,
    status: int = 200,
    body: Schema | None = None,
    query: tuple[Schema, ...] = (),
    errors: tuple[int, ...] = (),
    description: str = "",
    media: str = JSON,
    paged: bool = False,
    path: tuple[Schema, ...] = (),
    responses: dict[int, Schema] | None = None,
    masked: bool = True,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a view's operation; its query parameters are checked before it runs.

    A `masked` operation (every /api/v1 answer) takes `reveal`; a `paged` one `limit`, `cursor`.
    """
    declared = Declared(
        summary,
        answer,
        status,
        body,
        (*query, *(PAGE if paged else ()), *((REVEAL,) if masked else ())),
        errors,
        description,
        media,
        paged,
        path,
        responses or {},
    )

    def mark(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            check_query(declared.query)
            return view(*args, **kwargs)

        _DECLARED[checked] = declared
        return checked

    return mark


def declared(view: Callable[..., Any]) -> Declared | None:
    """The declaration of a view function, if it has one."""
    return _DECLARED.get(view)


def operations(app: Flask) -> Iterator[tuple[str, str, Declared]]:
    """(OpenAPI path, method, declaration) of every declared route of `app`."""
    for rule in app.url_map.iter_rules():
        found = declared(app.view_functions[rule.endpoint])
        if found is None:
            continue
        path = openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield path, method.lower(), found


def openapi_path(rule: str) -> str:
    """A werkzeug rule (`/tasks/<int:number>`) in OpenAPI's syntax (`/tasks/{number}`)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def current() -> Declared | None:
    """The declaration of the view answering this request."""
    if request.endpoint is None:
        return None
    return declared(current_app.view_functions[request.endpoint])


def problem(schema: Schema, data: Any) -> str | None:
    """Why `data` does not fit `schema` (the first error, worded for a person), or None."""
    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: e.message)
    if not errors:
        return None
    first = errors[0]
    where = ".".join(str(p) for p in first.path) or "body"
    # A pattern's regex tells a person little; its schema's description says what fits.
    described = first.schema.get("description") if first.validator == "pattern" else None
    reason = f"must be {described}" if isinstance(described, str) else first.message
    return f"{where}: {reason}"


def json_body(schema: Schema | None = None) -> dict[str, Any]:
    """The request's JSON object (empty when there is no body), checked against its schema.

    The schema is the route's declared body unless one is given.
    """
    if schema is None:
        found = current()
        schema = found.body if found else None
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
        reason = problem(schema, data)
        if reason is not None:
            raise BadRequest(reason)
    result: dict[str, Any] = data
    return result


# Page sizes of every list endpoint (see control.paged): this default, at most the maximum.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# SQLite's integers: a larger id cannot even be compared (a 500, not an answer).
MAX_ID = 2**63 - 1
ID: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID}


def query_param(
    name: str, schema: Schema, description: str, *, empty_is_absent: bool = True
) -> Schema:
    """An optional query parameter (an empty value counts as absent unless told otherwise)."""
    param: Schema = {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }
    if empty_is_absent:
        param["allowEmptyValue"] = True
    return param


def path_param(name: str, schema: Schema) -> Schema:
    """A path segment."""
    return {"name": name, "in": "path", "required": True, "schema": schema}


def check_query(params: tuple[Schema, ...]) -> None:
    """Each declared query parameter given fits its schema (read as the schema's type), else 400."""
    for param in params:
        if param["in"] != "query":
            continue
        name = param["name"]
        raw = request.args.get(name)
        if raw is None or (raw == "" and param.get("allowEmptyValue")):
            continue
        schema = param["schema"]
        value = _typed(raw, schema.get("type"))
        reason = f"must be {_KINDS[schema['type']]}" if value is None else problem(schema, value)
        if reason is None:
            continue
        # A schema's description says what fits in words; its keywords say it to machines.
        described = schema.get("description")
        if isinstance(described, str):
            raise BadRequest(f"{name} must be {described}")
        raise BadRequest(f"{name}: {reason.removeprefix('body: ')}")


_KINDS = {"integer": "an integer", "number": "a number"}


def _typed(raw: str, kind: Any) -> Any:
    """A query string value as the schema's type; None when it is not one."""
    if kind == "integer":
        digits = raw[1:] if raw[:1] == "-" else raw
        # isascii: int() also takes other scripts' digits, which no client means.
        return int(raw) if digits.isascii() and digits.isdigit() else None
    if kind == "number":
        try:
            value = float(raw)
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    return raw


REVEAL = query_param(
    "reveal",
    {"type": "string", "enum": ["1", "true", "0", "false"]},
    "`1` or `true`: show planfix_token/token values unmasked",
)
PAGE = (
    query_param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        f"Page size: {DEFAULT_LIMIT} unless given, at most {MAX_LIMIT}; out of range is a 400",
    ),
    query_param(
        "cursor",
        {**ID, "description": "the value of a previous page's next link"},
        'Where the page starts: copy it from the previous page\'s `Link: <…>; rel="next"`',
    ),
)
