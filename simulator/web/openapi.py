"""`GET /openapi.json`: OpenAPI 3.1, generated from the routes' declarations.

The control API's operations come from each view's `@declare(...)` (found by walking the app's
URL map) and its answer shapes from `simulator.web.schemas`; the two wire endpoints that take
forms (`/webchat/api`, the fake chat's webhook) from the contract's field lists. Nothing here
repeats a schema a route validates with.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from simulator import __version__
from simulator.contract import COMMANDS, OPTIONAL, REQUIRED
from simulator.planfix.chat_api import API_PATHS
from simulator.web.declare import JSON, Declared, Schema, declare, operations
from simulator.web.schemas import SHAPES, STR, ref
from simulator.wire import WEBHOOK_PATH

bp = Blueprint("openapi", __name__)

ERRORS = {
    400: "Invalid request",
    401: "Admin token required",
    403: "Cross-site request refused",
    404: "Not found",
    409: "Refused in the current state (the reason says why)",
    413: "Request body too large",
    415: "The body is not application/json",
    503: "Busy or the database cannot be written",
}
MALFORMED = (
    "Malformed request: a control character in the path, a method outside RFC 9110's token "
    "grammar, a body that cannot be read (a broken chunk) or JSON nested too deeply"
)


def _error(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": ref("Error")}}}


def operation(found: Declared) -> Schema:
    """One OpenAPI operation from a route's declaration."""
    answer: Schema = {"description": found.summary}
    if found.answer is not None:
        answer["content"] = {found.media: {"schema": found.answer}}
    if found.paged:
        answer["headers"] = {
            "Link": {
                "description": 'The next page, as `<url>; rel="next"`; absent on the last page',
                "schema": STR,
            }
        }
    op: Schema = {"summary": found.summary, "responses": {str(found.status): answer}}
    if found.description:
        op["description"] = found.description
    params = [*found.path, *found.query]
    if params:
        op["parameters"] = params
    for code in found.errors:
        op["responses"][str(code)] = _error(ERRORS[code])
    for code, response in found.responses.items():
        op["responses"][str(code)] = response
    if found.query:
        op["responses"].setdefault("400", _error("Invalid query parameter"))
    if found.body is not None:
        op["requestBody"] = {
            # A body that requires a field cannot be left out; otherwise none means `{}`.
            "required": bool(found.body.get("required")),
            "content": {JSON: {"schema": found.body}},
        }
        op["responses"].setdefault("400", _error(ERRORS[400]))
        op["responses"]["415"] = _error(ERRORS[415])
    return op


def _command_form() -> Schema:
    fields = sorted({f for cmd in COMMANDS for f in (*REQUIRED[cmd], *OPTIONAL[cmd])})
    props: dict[str, Any] = {
        "cmd": {"type": "string", "enum": list(COMMANDS)},
        "planfix_token": STR,
    }
    for name in fields:
        props[name] = {"type": "array", "items": STR} if name.startswith("attachments[") else STR
    return {
        "type": "object",
        "properties": props,
        "additionalProperties": STR,
        "description": "Form fields; data_<field> fill task fields. Required fields depend on cmd.",
    }


def _planfix_operation() -> Schema:
    form = _command_form()
    return {
        "summary": "Planfix chat API: newMessage, getTask, getContact, updateContact, "
        "messageStatus",
        # Only POST is an operation: listing GET would tell clients (and Schemathesis) it works.
        "description": "Any other method answers 405 with `Allow: POST`.",
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": form},
                "multipart/form-data": {"schema": form},
            },
        },
        "responses": {
            "200": {
                "description": "OK: empty for newMessage/updateContact/messageStatus in the "
                'documented profile; {"data": …} for getTask/getContact',
                "content": {
                    JSON: {"schema": {"type": "object"}},
                    "text/plain": {"schema": {"type": "string", "maxLength": 0}},
                },
            },
            "400": _error("Invalid parameters / task not found / unknown contact"),
            "401": _error("Invalid token"),
            "413": _error(ERRORS[413]),
        },
    }


_WEBHOOK_FIELDS = (
    "cmd",
    "providerId",
    "chatId",
    "contactPhone",
    "channel",
    "token",
    "message",
    "messageId",
    "userName",
    "userLastName",
    "userIco",
    "taskEmail",
)


def _webhook_operation() -> Schema:
    form = {
        "type": "object",
        "required": ["cmd", "providerId", "token", "message"],
        "properties": {
            **dict.fromkeys(_WEBHOOK_FIELDS, STR),
            "attachments[name]": {"type": "array", "items": STR},
            "attachments[url]": {"type": "array", "items": STR},
        },
    }
    filed = {
        "type": "object",
        "required": ["chatId", "contactId"],
        "properties": {"chatId": STR, "contactId": STR},
    }
    return {
        "summary": "The fake third-party chat: Planfix's newMessage (both variants)",
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": form}},
        },
        "responses": {
            "200": {"description": "Filed", "content": {JSON: {"schema": filed}}},
            "400": _error("Invalid parameters"),
            "401": _error("Invalid token"),
        },
    }


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of `app`."""
    planfix = {"post": _planfix_operation()}
    paths: dict[str, Any] = dict.fromkeys(API_PATHS, planfix)
    paths[WEBHOOK_PATH] = {"post": _webhook_operation()}
    for path, method, found in operations(app):
        paths.setdefault(path, {})[method] = operation(found)
    # Any route refuses a request it cannot read, before routing or in the body read.
    for ops in paths.values():
        for op in ops.values():
            op["responses"].setdefault("400", _error(MALFORMED))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "planfix-simulator",
            "version": __version__,
            "description": "Planfix's chat API (/webchat/api) and the simulator's control API.",
        },
        "paths": paths,
        "components": {"schemas": SHAPES},
    }


@bp.get("/openapi.json")
@declare("This document", {"type": "object"}, masked=False)
def openapi_json() -> Response:
    """The OpenAPI 3.1 document."""
    return jsonify(build_spec(current_app))
