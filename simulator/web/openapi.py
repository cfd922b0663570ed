"""`GET /openapi.json`: OpenAPI 3.1 for `/webchat/api` and the control API.

A test walks the app's URL map and fails when a route is missing here (or described but gone).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from simulator import __version__
from simulator.config.settings import HTTP_URL_SCHEMA, INTEGRATION_URL_SCHEMA
from simulator.contract import COMMANDS, OPTIONAL, REQUIRED
from simulator.web.api.control import DEFAULT_LIMIT, MAX_LIMIT

bp = Blueprint("openapi", __name__)

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema or {}}}}


MALFORMED = (
    "Malformed request: a control character in the path, a method outside RFC 9110's token "
    "grammar, a body that cannot be read (a broken chunk) or JSON nested too deeply"
)


def _error(description: str) -> dict[str, Any]:
    return _json_response(description, _ref("Error"))


def _op(
    summary: str,
    ok: dict[str, Any] | None = None,
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    status: str = "200",
    errors: tuple[str, ...] = ("404",),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {status: _json_response(summary, ok)},
    }
    descriptions = {
        "400": "Invalid request",
        "401": "Admin token required",
        "403": "Cross-site request refused",
        "404": "Not found",
        "408": "Timed out",
    }
    for code in errors:
        op["responses"][code] = _error(descriptions[code])
    if body is not None:
        op["requestBody"] = {"required": False, "content": {JSON: {"schema": body}}}
        op["responses"]["415"] = _error("The body is not application/json")
    if params:
        op["parameters"] = params
    return op


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


INTEGRATION_FILTER = _query(
    "integration", {"type": "string"}, "Integration id or name: only its records"
)
NUMBER = _path("number", {"type": "integer"})
REVEAL = _query(
    "reveal", {"type": "string", "enum": ["1", "true"]}, "Show planfix_token/token values unmasked"
)
BUSY = "503"
# The list endpoints: each answers one page (see control_api.paged).
LIST_PATHS = (
    "/api/v1/integrations",
    "/api/v1/employees",
    "/api/v1/tasks",
    "/api/v1/contacts",
    "/api/v1/journal",
    "/api/v1/deliveries",
    "/api/v1/chat/inbox",
    "/api/v1/chat/chats",
)
PAGE_PARAMS = [
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        f"Page size: {DEFAULT_LIMIT} unless given, at most {MAX_LIMIT}; out of range is a 400",
    ),
    _query(
        "cursor",
        {"type": "integer", "minimum": 0},
        'Where the page starts: copy it from the previous page\'s `Link: <…>; rel="next"`',
    ),
]


def _add_paging(op: dict[str, Any]) -> None:
    """A list operation's page: `limit` and `cursor`, the next page's `Link`, the 400."""
    op["parameters"] = [*op.get("parameters", []), *PAGE_PARAMS]
    op["responses"]["200"]["headers"] = {
        "Link": {
            "description": 'The next page, as `<url>; rel="next"`; absent on the last page',
            "schema": {"type": "string"},
        }
    }
    op["responses"].setdefault("400", _error("Invalid request (limit or cursor)"))


REF = _path("ref", {"type": "string"})


def _command_form() -> dict[str, Any]:
    fields = sorted({f for cmd in COMMANDS for f in (*REQUIRED[cmd], *OPTIONAL[cmd])})
    props: dict[str, Any] = {
        "cmd": {"type": "string", "enum": list(COMMANDS)},
        "planfix_token": {"type": "string"},
    }
    for name in fields:
        props[name] = (
            {"type": "array", "items": {"type": "string"}}
            if name.startswith("attachments[")
            else {"type": "string"}
        )
    return {
        "type": "object",
        "properties": props,
        "additionalProperties": {"type": "string"},
        "description": "Form fields; data_<field> fill task fields. Required fields depend on cmd.",
    }


def _events_op() -> dict[str, Any]:
    from simulator.web.api.events import PING_SECONDS

    return {
        "summary": "Every change as Server-Sent Events",
        "description": "Frames `id: <event id>`, `event: <kind>`, `data: <Event JSON>`; a "
        "`: ping` comment every `ping` seconds. Without Last-Event-ID the stream starts at the "
        "newest event; `last_event_id=0` replays every stored event. With `integration`, its "
        "events and global ones (integration_id null) are sent.",
        "parameters": [
            INTEGRATION_FILTER,
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "integer", "minimum": 0},
                "description": "Resume after this event id (EventSource sends it on reconnect)",
            },
            _query(
                "last_event_id",
                {"type": "integer", "minimum": 0},
                "Resume after this event id (when the header cannot be set)",
            ),
            _query(
                "ping",
                {"type": "number", "minimum": 0.1, "maximum": 300, "default": PING_SECONDS},
                "Seconds between keep-alive comments",
            ),
        ],
        "responses": {
            "200": {
                "description": "An endless text/event-stream; each data line is an Event",
                "content": {
                    "text/event-stream": {
                        "schema": {"type": "string"},
                        "x-event-data": {
                            "type": "object",
                            "required": ["id", "ts", "kind", "data"],
                            "properties": {
                                "id": {"type": "integer"},
                                "ts": {"type": "string"},
                                "integration_id": {"type": ["integer", "null"]},
                                "kind": {"type": "string"},
                                "data": {"type": "object"},
                            },
                        },
                    }
                },
            },
            "400": _error("Bad Last-Event-ID or ping"),
            "404": _error("No such integration"),
            BUSY: _error("Every slot for long requests of this worker is taken"),
        },
    }


def _wait_op() -> dict[str, Any]:
    from simulator.web.api.events import WAIT_SCHEMA

    timed_out = {
        "type": "object",
        "required": ["error", "closest"],
        "properties": {
            "error": {"const": "Timed out"},
            "closest": {"type": "array", "maxItems": 5, "items": _ref("JournalEntry")},
            "differences": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "string"}},
                "description": "For each closest entry, how it differs from the match",
            },
        },
    }
    op = _op(
        "Wait until a matching exchange is journaled",
        _ref("JournalEntry"),
        body=WAIT_SCHEMA,
        params=[REVEAL],
        errors=("400", "404"),
    )
    op["description"] = (
        "Returns the first journal entry after `since` (default: the newest entry when the "
        "call starts) that meets every criterion of `match`; after `timeout` seconds (default "
        "10, max 300) answers 408 with the entries that came closest."
    )
    op["responses"]["408"] = _json_response("Nothing matched in time", timed_out)
    op["responses"][BUSY] = _error("Every slot for long requests of this worker is taken")
    return op


def build_spec() -> dict[str, Any]:
    """The OpenAPI document."""
    planfix_op = {
        "summary": "Planfix chat API: newMessage, getTask, getContact, updateContact, "
        "messageStatus",
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": _command_form()},
                "multipart/form-data": {"schema": _command_form()},
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
            "413": _error("Request body too large"),
        },
    }
    # Only POST is an operation: any other method answers 405 with `Allow: POST`, so listing
    # GET here would tell clients (and Schemathesis) that GET is supported.
    planfix_op["description"] = "Any other method answers 405 with `Allow: POST`."
    webchat = {"post": planfix_op}
    paths: dict[str, Any] = {
        "/webchat/api": webchat,
        "/chat/api": webchat,
        "/api/v1/status": {
            "get": _op("Where the simulator is and what it serves", {"type": "object"}, errors=())
        },
        "/api/v1/integrations": {
            "get": _op(
                "List integrations", {"type": "array", "items": _ref("Integration")}, errors=()
            ),
            "post": _op(
                "Create an integration (tokens generated when absent)",
                _ref("Integration"),
                body=_ref("IntegrationInput"),
                status="201",
                errors=("400",),
            ),
        },
        "/api/v1/integrations/{ref}": {
            "get": _op("One integration by id or name", _ref("Integration"), params=[REF]),
            "patch": _op(
                "Change an integration's settings",
                _ref("Integration"),
                body=_ref("IntegrationInput"),
                params=[REF],
                errors=("400", "404"),
            ),
        },
        "/api/v1/employees": {
            "get": _op("List employees", {"type": "array", "items": _ref("Employee")}, errors=()),
            "post": _op(
                "Add or update an employee",
                _ref("Employee"),
                body=_ref("EmployeeInput"),
                status="201",
                errors=("400",),
            ),
        },
        "/api/v1/tasks": {
            "get": _op(
                "List tasks", {"type": "array", "items": _ref("Task")}, params=[INTEGRATION_FILTER]
            ),
        },
        "/api/v1/tasks/{number}": {
            "get": _op("A task with its messages", _ref("TaskDetail"), params=[NUMBER]),
        },
        "/api/v1/tasks/{number}/complete": {
            "post": _op("Complete a task", _ref("Task"), params=[NUMBER]),
        },
        "/api/v1/tasks/{number}/reopen": {
            "post": _op("Reopen a task", _ref("Task"), params=[NUMBER]),
        },
        "/api/v1/tasks/{number}/read": {
            "post": _op("Mark a task's messages read", _ref("Task"), params=[NUMBER]),
        },
        "/api/v1/contacts": {
            "get": _op(
                "List contacts",
                {"type": "array", "items": _ref("Contact")},
                params=[INTEGRATION_FILTER],
            ),
        },
        "/api/v1/journal": {
            "get": _op(
                "Journal entries, oldest first",
                {"type": "array", "items": _ref("JournalEntry")},
                params=[
                    INTEGRATION_FILTER,
                    _query("cmd", {"type": "string"}, "Only this cmd"),
                    _query(
                        "direction",
                        {"type": "string", "enum": ["to_planfix", "to_chat"]},
                        "Only this direction",
                    ),
                    _query("status", {"type": "integer"}, "Only this HTTP status"),
                    _query("since", {"type": "integer"}, "Only entries after this id"),
                    REVEAL,
                ],
                errors=("400", "404"),
            ),
        },
        "/api/v1/journal/{entry_id}": {
            "get": _op(
                "One journal entry",
                _ref("JournalEntry"),
                params=[
                    _path("entry_id", {"type": "integer"}),
                    REVEAL,
                ],
            ),
        },
        "/api/v1/journal/export": {
            "get": {
                "summary": "Journal entries as a scenario YAML that replays them",
                "parameters": [
                    INTEGRATION_FILTER,
                    _query("cmd", {"type": "string"}, "Only this cmd"),
                    _query(
                        "direction",
                        {"type": "string", "enum": ["to_planfix", "to_chat"]},
                        "Only this direction",
                    ),
                    _query("status", {"type": "integer"}, "Only this HTTP status"),
                    _query("since", {"type": "integer"}, "Only entries after this id"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        f"The newest this many (default {DEFAULT_LIMIT})",
                    ),
                    _query("ids", {"type": "string"}, "Only these ids (comma-separated)"),
                    _query("name", {"type": "string"}, "The scenario's name"),
                ],
                "responses": {
                    "200": {
                        "description": "A scenario document (see `planfix-sim schema`)",
                        # YAML parses to a mapping (clients such as Schemathesis parse it).
                        "content": {"application/yaml": {"schema": {"type": "object"}}},
                    },
                    "400": _error("Invalid request"),
                    "404": _error("Not found"),
                },
            },
        },
        "/api/v1/reset": {
            "post": _op(
                "Forget state: all, or one integration's",
                {"type": "object"},
                body={
                    "type": "object",
                    "properties": {"integration": {"type": ["string", "integer"]}},
                },
                params=[INTEGRATION_FILTER],
                errors=("400", "404"),
            ),
        },
        "/api/v1/events": {"get": _events_op()},
        "/api/v1/events/stats": {
            "get": _op(
                "Open SSE streams and pending waits of the answering worker process",
                {
                    "type": "object",
                    "properties": {
                        "pid": {"type": "integer"},
                        "streams": {"type": "integer"},
                        "waits": {"type": "integer"},
                    },
                },
                errors=(),
            )
        },
        "/api/v1/wait": {"post": _wait_op()},
        **_delivery_paths(),
        "/openapi.json": {"get": _op("This document", {"type": "object"}, errors=())},
    }
    for path in LIST_PATHS:
        _add_paging(paths[path]["get"])
    # Any route refuses a request it cannot read, before routing or in the body read.
    for operations in paths.values():
        for op in operations.values():
            op["responses"].setdefault("400", _error(MALFORMED))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "planfix-simulator",
            "version": __version__,
            "description": "Planfix's chat API (/webchat/api) and the simulator's control API.",
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }


_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": _STR, "detail": _STR},
    },
    "IntegrationInput": {
        "type": "object",
        "properties": {
            "name": _STR,
            "planfix_token": _STR,
            "token": _STR,
            "url": INTEGRATION_URL_SCHEMA,
            "profile": {"enum": ["documented", "observed"]},
            "strict": _BOOL,
            "task_fields": {"type": "array", "items": _STR},
            "default_employee": {"type": ["string", "null"]},
            "options": {"type": "object"},
            "timeout": {"type": "number"},
            "retry": {"type": "object"},
        },
    },
    "Integration": {
        "type": "object",
        "required": ["id", "name", "planfix_token", "token", "url", "profile", "strict"],
        "properties": {
            "id": _INT,
            "name": _STR,
            "planfix_token": _STR,
            "token": _STR,
            "url": _STR,
            "profile": _STR,
            "strict": _BOOL,
            "task_fields": {"type": "array", "items": _STR},
            "default_employee": {"type": ["string", "null"]},
            "options": {"type": "object"},
            "timeout": {"type": "number"},
            "retry": {"type": "object"},
        },
    },
    "EmployeeInput": {
        "type": "object",
        "required": ["email", "name"],
        "properties": {"email": _STR, "name": _STR, "last_name": _STR, "ico": _STR},
    },
    "Employee": {
        "type": "object",
        "properties": {"id": _INT, "email": _STR, "name": _STR, "last_name": _STR, "ico": _STR},
    },
    "Contact": {
        "type": "object",
        "required": ["number", "contact_id", "provider_id"],
        "properties": {
            "integration_id": _INT,
            "provider_id": _STR,
            "contact_id": _STR,
            "number": _INT,
            "name": _STR,
            "last_name": _STR,
            "ico": _STR,
            "email": _STR,
            "phone": _STR,
            "data": _STR,
            "created_at": _STR,
            "updated_at": _STR,
        },
    },
    "Message": {
        "type": "object",
        "required": ["id", "direction", "kind", "text"],
        "properties": {
            "id": _INT,
            "task_number": _INT,
            "integration_id": _INT,
            "direction": {"enum": ["in", "out"]},
            "kind": {"enum": ["customer", "echo", "reply", "first"]},
            "text": _STR,
            "author": _STR,
            "employee_email": _STR,
            "attachments": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": _STR, "url": _STR}},
            },
            "message_id": _STR,
            "delivery_state": _STR,
            "delivery_note": _STR,
            "status": _STR,
            "status_text": _STR,
            "channel": _STR,
            "created_at": _STR,
        },
    },
    "Task": {
        "type": "object",
        "required": ["number", "title", "status"],
        "properties": {
            "number": _INT,
            "integration_id": _INT,
            "provider_id": _STR,
            "chat_id": _STR,
            "channel": _STR,
            "title": _STR,
            "description": _STR,
            "status": {"enum": ["active", "completed"]},
            "fields": {"type": "object", "additionalProperties": _STR},
            "contact": {"oneOf": [_ref("Contact"), {"type": "null"}]},
            "created_at": _STR,
            "updated_at": _STR,
            "previous_number": {"type": ["integer", "null"]},
            "message_count": _INT,
            "unread": _INT,
            "last_message": _STR,
            "last_message_at": _STR,
        },
    },
    "TaskDetail": {
        "allOf": [
            _ref("Task"),
            {
                "type": "object",
                "properties": {"messages": {"type": "array", "items": _ref("Message")}},
            },
        ],
    },
    "JournalEntry": {
        "type": "object",
        "required": ["id", "ts", "direction", "method", "url", "status"],
        "properties": {
            "id": _INT,
            "ts": _STR,
            "integration_id": {"type": ["integer", "null"]},
            "direction": {"enum": ["to_planfix", "to_chat"]},
            "party": {"enum": ["planfix", "fake_chat"]},
            "method": _STR,
            "url": _STR,
            "cmd": _STR,
            "chat_id": _STR,
            "form": {"type": "array", "items": {"type": "array", "items": _STR}},
            "request_headers": {"type": "object"},
            "status": {"type": ["integer", "null"]},
            "response_body": _STR,
            "duration_ms": {"type": "number"},
            "notes": {"type": "array", "items": {"type": "object"}},
            "fault": _STR,
            "error": _STR,
            "delivery_id": {"type": ["integer", "null"]},
        },
    },
}


# -- delivery, fake chat, faults (issue 3) ------------------------------------------------------

_ATTACHMENTS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "url"],
        "properties": {"name": _STR, "url": _STR},
    },
}
_FAULT = {
    "type": "object",
    "properties": {
        "status": {"enum": [400, 401, 429, 500, 503]},
        "malformed": _BOOL,
        "latency_ms": {"type": "integer", "minimum": 0},
        "drop": _BOOL,
        "count": {"type": "integer", "minimum": 1},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "seed": _INT,
    },
}
_SENT = {
    "type": "object",
    "description": "What Planfix answered the fake chat",
    "properties": {
        "status": {"type": ["integer", "null"]},
        "body": _STR,
        "json": {},
        "duration_ms": {"type": "number"},
        "form": {"type": "array", "items": {"type": "array", "items": _STR}},
        "error": _STR,
    },
}
SCHEMAS.update(
    {
        "Delivery": {
            "type": "object",
            "required": ["id", "variant", "state", "attempts", "outcome"],
            "properties": {
                "id": _INT,
                "integration_id": _INT,
                "variant": {"enum": ["reply", "first"]},
                "state": {"enum": ["pending", "retrying", "delivered", "failed"]},
                "attempts": _INT,
                "next_attempt_at": {"type": ["string", "null"]},
                "message_id": {"type": ["integer", "null"], "description": "The Message's id"},
                "task_number": {"type": ["integer", "null"]},
                "outcome": {"type": "string", "description": "Contract note; empty if delivered"},
                "answer": {
                    "oneOf": [
                        {"type": "object", "properties": {"status": _INT, "body": _STR}},
                        {"type": "null"},
                    ]
                },
                "journal_ids": {"type": "array", "items": _INT},
                "form": {"type": "array", "items": {"type": "array", "items": _STR}},
                "created_at": _STR,
                "updated_at": _STR,
            },
        },
        "InboxItem": {
            "type": "object",
            "properties": {
                "id": _INT,
                "ts": _STR,
                "integration_id": _INT,
                "variant": {"enum": ["reply", "first"]},
                **{
                    name: _STR
                    for name in (
                        "providerId",
                        "chatId",
                        "contactId",
                        "contactPhone",
                        "channel",
                        "message",
                        "messageId",
                        "userName",
                        "userLastName",
                        "userIco",
                        "taskEmail",
                    )
                },
                "attachments": _ATTACHMENTS,
            },
        },
        "FakeChat": {
            "type": "object",
            "properties": {
                "integration_id": _INT,
                **{
                    name: _STR
                    for name in (
                        "providerId",
                        "chatId",
                        "contactId",
                        "contactName",
                        "contactPhone",
                        "channel",
                        "created_at",
                        "updated_at",
                    )
                },
            },
        },
        "Fault": _FAULT,
        "Faults": {
            "type": "object",
            "properties": {
                "integration_id": _INT,
                "planfix": {"oneOf": [_FAULT, {"type": "null"}]},
                "fake_chat": {"oneOf": [_FAULT, {"type": "null"}]},
            },
        },
    }
)


def _delivery_paths() -> dict[str, Any]:
    delivery_id = _path("delivery_id", {"type": "integer"})
    reveal = REVEAL
    faults_body = {
        "type": "object",
        "properties": {
            "planfix": {"oneOf": [_ref("Fault"), {"type": "null"}]},
            "fake_chat": {"oneOf": [_ref("Fault"), {"type": "null"}]},
        },
    }
    webhook_form = {
        "type": "object",
        "required": ["cmd", "providerId", "token", "message"],
        "properties": {
            **{
                name: _STR
                for name in (
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
            },
            "attachments[name]": {"type": "array", "items": _STR},
            "attachments[url]": {"type": "array", "items": _STR},
        },
    }
    return {
        "/api/v1/tasks/{number}/replies": {
            "post": _op(
                "Operator reply: Planfix's newMessage (reply variant) to the integration",
                {
                    "type": "object",
                    "properties": {"message": _ref("Message"), "delivery": _ref("Delivery")},
                },
                body={
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "message": _STR,
                        "employee": _STR,
                        "attachments": _ATTACHMENTS,
                        "wait": _BOOL,
                    },
                },
                params=[NUMBER],
                errors=("400", "404"),
            ),
        },
        "/api/v1/first-messages": {
            "post": _op(
                "First message to a contact's phone: the integration assigns chatId and contactId",
                {
                    "type": "object",
                    "properties": {
                        "message": {"oneOf": [_ref("Message"), {"type": "null"}]},
                        "delivery": _ref("Delivery"),
                        "task": {"type": ["integer", "null"]},
                        "chatId": {"type": ["string", "null"]},
                        "contactId": {"type": ["string", "null"]},
                    },
                },
                body={
                    "type": "object",
                    "required": ["integration", "contactPhone", "message"],
                    "properties": {
                        "integration": {"type": ["string", "integer"]},
                        "contactPhone": _STR,
                        "message": _STR,
                        "employee": _STR,
                        "channel": _STR,
                        "providerId": _STR,
                        "attachments": _ATTACHMENTS,
                        "wait": _BOOL,
                    },
                },
                errors=("400", "404"),
            ),
        },
        "/api/v1/deliveries": {
            "get": _op(
                "Deliveries, newest first",
                {"type": "array", "items": _ref("Delivery")},
                params=[
                    INTEGRATION_FILTER,
                    reveal,
                ],
                errors=("400", "404"),
            ),
        },
        "/api/v1/deliveries/{delivery_id}": {
            "get": _op("One delivery", _ref("Delivery"), params=[delivery_id, reveal]),
        },
        "/api/v1/deliveries/{delivery_id}/retry": {
            "post": _op(
                "Redeliver by hand (same form and messageId)",
                _ref("Delivery"),
                body={"type": "object", "properties": {"wait": _BOOL}},
                params=[delivery_id],
                errors=("400", "404"),
            ),
        },
        "/api/v1/integrations/{ref}/faults": {
            "get": _op("Planned faults and their counters", _ref("Faults"), params=[REF]),
            "put": _op(
                "Plan faults per side (a side given replaces its plan; null clears it)",
                _ref("Faults"),
                body=faults_body,
                params=[REF],
                errors=("400", "404"),
            ),
            "delete": _op(
                "Clear planned faults",
                _ref("Faults"),
                params=[
                    REF,
                    _query("side", {"enum": ["planfix", "fake_chat"]}, "Only this side"),
                ],
                errors=("400", "404"),
            ),
        },
        "/api/v1/chat/messages": {
            "post": _op(
                "The fake chat's customer sends newMessage to Planfix (this simulator or "
                "planfix_url)",
                _SENT,
                body={
                    "type": "object",
                    "properties": {
                        "integration": {"type": ["string", "integer"]},
                        "chatId": _STR,
                        "contactId": _STR,
                        "contactName": _STR,
                        "message": _STR,
                        "data": {"type": "object", "additionalProperties": _STR},
                        "attachments": _ATTACHMENTS,
                        "planfix_url": HTTP_URL_SCHEMA,
                        "planfix_token": _STR,
                    },
                    "additionalProperties": True,
                },
                errors=("400", "404"),
            ),
        },
        "/api/v1/chat/commands": {
            "post": _op(
                "The fake chat sends any command to Planfix",
                _SENT,
                body={
                    "type": "object",
                    "required": ["cmd"],
                    "properties": {
                        "cmd": _STR,
                        "integration": {"type": ["string", "integer"]},
                        "planfix_url": HTTP_URL_SCHEMA,
                        "planfix_token": _STR,
                    },
                    "additionalProperties": True,
                },
                errors=("400", "404"),
            ),
        },
        "/api/v1/chat/inbox": {
            "get": _op(
                "Messages the fake chat's customers received",
                {"type": "array", "items": _ref("InboxItem")},
                params=[INTEGRATION_FILTER, _query("chatId", _STR, "Only this chat")],
            ),
        },
        "/api/v1/chat/chats": {
            "get": _op(
                "Chats the fake chat knows",
                {"type": "array", "items": _ref("FakeChat")},
                params=[INTEGRATION_FILTER],
            ),
        },
        "/fake-chat/webhook": {
            "post": {
                "summary": "The fake third-party chat: Planfix's newMessage (both variants)",
                "requestBody": {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": webhook_form}},
                },
                "responses": {
                    "200": _json_response(
                        "Filed",
                        {
                            "type": "object",
                            "required": ["chatId", "contactId"],
                            "properties": {"chatId": _STR, "contactId": _STR},
                        },
                    ),
                    "400": _error("Invalid parameters"),
                    "401": _error("Invalid token"),
                },
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3.1 document."""
    return jsonify(build_spec())
