"""The control API's answer shapes and shared parameters, each declared once as JSON Schema.

Routes name these in `@declare(...)`; `/openapi.json` publishes them under components/schemas;
tests validate every answer against them and check the typed client's TypedDicts against them.
An answer shape lists every key the API sends (all required, nothing else), so a record's
`as_dict` that gains or loses a key fails the tests instead of drifting.
"""

from __future__ import annotations

from typing import Any

from simulator.config.settings import INTEGRATION_SCHEMA
from simulator.faults import FAULT_SCHEMA, SIDES
from simulator.web.declare import (
    DEFAULT_LIMIT,
    ID,
    MAX_ID,
    MAX_LIMIT,
    PAGE,
    REVEAL,
    Schema,
    path_param,
    query_param,
)

__all__ = ["DEFAULT_LIMIT", "ID", "MAX_LIMIT", "PAGE", "REVEAL"]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
NUMBER: Schema = {"type": "number"}
FORM: Schema = {"type": "array", "items": {"type": "array", "items": STR}}


def ref(name: str) -> Schema:
    """A reference to a declared shape (resolved by `/openapi.json`'s components)."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """The schema, or null."""
    return {"oneOf": [schema, {"type": "null"}]}


def shape(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> Schema:
    """An answer object: exactly these keys, all present except `optional`."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [k for k in properties if k not in optional],
        "properties": properties,
    }


def array_of(name: str) -> Schema:
    """A list of a declared shape."""
    return {"type": "array", "items": ref(name)}


ATTACHMENT = shape({"name": STR, "url": STR})
# Attachments in control-API bodies: [{name, url}], paired as Planfix pairs them on the wire.
ATTACHMENTS_SCHEMA: Schema = {"type": "array", "items": ATTACHMENT}
# An integration given by id or name in a body.
INTEGRATION_REF: Schema = {"type": ["string", "integer"]}

_INTEGRATION_SETTINGS = INTEGRATION_SCHEMA["properties"]

FAULT_PLAN = shape(
    {
        **FAULT_SCHEMA["properties"],
        "calls": INT,
        "injected": INT,
        "remaining": INT,
    },
    optional=(*FAULT_SCHEMA["properties"], "remaining"),
)
FAULT_PLAN["required"] = ["calls", "injected"]

SHAPES: dict[str, Schema] = {
    "Error": shape({"error": STR, "detail": STR}, optional=("detail",)),
    "Status": shape(
        {
            "version": STR,
            "base_url": STR,
            "planfix_endpoints": {"type": "array", "items": STR},
            "fake_chat_webhook": STR,
            "account": STR,
            "counts": {"type": "object", "additionalProperties": INT},
        }
    ),
    "Integration": shape(
        {
            "id": INT,
            "name": STR,
            "planfix_token": STR,
            "token": STR,
            "url": STR,
            "profile": _INTEGRATION_SETTINGS["profile"],
            "strict": BOOL,
            "task_fields": {"type": "array", "items": STR},
            "default_employee": {"type": ["string", "null"]},
            "options": shape(
                {"new_task_when_closed": BOOL, "rename_task_on_title": BOOL},
            ),
            "timeout": NUMBER,
            "retry": shape(
                {
                    "enabled": BOOL,
                    "schedule": {"type": "array", "items": NUMBER},
                    "time_factor": NUMBER,
                }
            ),
        }
    ),
    "Employee": shape({"id": INT, "email": STR, "name": STR, "last_name": STR, "ico": STR}),
    "Contact": shape(
        {
            "integration_id": INT,
            "provider_id": STR,
            "contact_id": STR,
            "number": INT,
            "name": STR,
            "last_name": STR,
            "ico": STR,
            "email": STR,
            "phone": STR,
            "data": STR,
            "created_at": STR,
            "updated_at": STR,
        }
    ),
    "Attachment": ATTACHMENT,
    "Message": shape(
        {
            "id": INT,
            "task_number": INT,
            "integration_id": INT,
            "direction": {"enum": ["in", "out"]},
            "kind": {"enum": ["customer", "echo", "reply", "first"]},
            "text": STR,
            "author": STR,
            "employee_email": STR,
            "attachments": array_of("Attachment"),
            "message_id": STR,
            "delivery_state": STR,
            "delivery_note": STR,
            "status": STR,
            "status_text": STR,
            "channel": STR,
            "created_at": STR,
        }
    ),
}
_TASK: dict[str, Any] = {
    "number": INT,
    "integration_id": INT,
    "provider_id": STR,
    "chat_id": STR,
    "channel": STR,
    "title": STR,
    "description": STR,
    "status": {"enum": ["active", "completed"]},
    "fields": {"type": "object", "additionalProperties": STR},
    "contact": nullable(ref("Contact")),
    "created_at": STR,
    "updated_at": STR,
    "previous_number": {"type": ["integer", "null"]},
    "message_count": INT,
    "unread": INT,
    "last_message": STR,
    "last_message_at": STR,
}
_WIRE_NAMES = (
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
SHAPES.update(
    {
        "Task": shape(_TASK),
        "TaskDetail": shape({**_TASK, "messages": array_of("Message")}),
        "JournalEntry": shape(
            {
                "id": INT,
                "ts": STR,
                "integration_id": {"type": ["integer", "null"]},
                "direction": {"enum": ["to_planfix", "to_chat"]},
                "party": {"enum": ["planfix", "fake_chat"]},
                "method": STR,
                "url": STR,
                "cmd": STR,
                "chat_id": STR,
                "form": FORM,
                "request_headers": {"type": "object", "additionalProperties": STR},
                "status": {"type": ["integer", "null"]},
                "response_body": STR,
                "duration_ms": NUMBER,
                "notes": {"type": "array", "items": {"type": "object"}},
                "fault": STR,
                "error": STR,
                "delivery_id": {"type": ["integer", "null"]},
            }
        ),
        "Event": shape(
            {
                "id": INT,
                "ts": STR,
                "integration_id": {"type": ["integer", "null"]},
                "kind": STR,
                "data": {"type": "object"},
            }
        ),
        "DeliveryAnswer": shape({"status": INT, "body": STR}),
        "Delivery": shape(
            {
                "id": INT,
                "integration_id": INT,
                "variant": {"enum": ["reply", "first"]},
                "state": {"enum": ["pending", "retrying", "delivered", "failed"]},
                "attempts": INT,
                "next_attempt_at": {"type": ["string", "null"]},
                "message_id": {"type": ["integer", "null"], "description": "The Message's id"},
                "task_number": {"type": ["integer", "null"]},
                "outcome": {"type": "string", "description": "Contract note; empty if delivered"},
                "answer": nullable(ref("DeliveryAnswer")),
                "journal_ids": {"type": "array", "items": INT},
                "form": FORM,
                "created_at": STR,
                "updated_at": STR,
            }
        ),
        "Reply": shape({"message": ref("Message"), "delivery": ref("Delivery")}),
        "FirstMessage": shape(
            {
                "message": nullable(ref("Message")),
                "delivery": ref("Delivery"),
                "task": {"type": ["integer", "null"]},
                "chatId": {"type": ["string", "null"]},
                "contactId": {"type": ["string", "null"]},
            }
        ),
        "InboxItem": shape(
            {
                "id": INT,
                "ts": STR,
                "integration_id": INT,
                "variant": {"enum": ["reply", "first"]},
                **dict.fromkeys(_WIRE_NAMES, STR),
                "attachments": array_of("Attachment"),
            }
        ),
        "FakeChat": shape(
            {
                "integration_id": INT,
                **{
                    name: STR
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
            }
        ),
        "ChatSend": {
            **shape(
                {
                    "status": {"type": ["integer", "null"]},
                    "body": STR,
                    "json": {},
                    "duration_ms": NUMBER,
                    "form": FORM,
                    "error": STR,
                }
            ),
            "description": "What Planfix answered the fake chat",
        },
        "FaultPlan": FAULT_PLAN,
        "Faults": shape(
            {"integration_id": INT, **{side: nullable(ref("FaultPlan")) for side in SIDES}}
        ),
        "Reset": shape({"reset": BOOL, "integration": {"type": ["integer", "null"]}}),
        "EventStats": shape({"pid": INT, "streams": INT, "waits": INT}),
        "WaitTimedOut": shape(
            {
                "error": {"const": "Timed out"},
                "closest": {"type": "array", "maxItems": 5, "items": ref("JournalEntry")},
                "differences": {
                    "type": "array",
                    "items": {"type": "array", "items": STR},
                    "description": "For each closest entry, how it differs from the match",
                },
                "detail": STR,
            },
            optional=("detail",),
        ),
    }
)


# -- parameters shared by routes ----------------------------------------------------------------

INTEGRATION_FILTER = query_param(
    "integration", {"type": "string"}, "Integration id or name: only its records"
)
JOURNAL_FILTERS = (
    INTEGRATION_FILTER,
    query_param("cmd", STR, "Only this cmd"),
    query_param("direction", {"enum": ["to_planfix", "to_chat"]}, "Only this direction"),
    query_param(
        "status", {"type": "integer", "minimum": -MAX_ID, "maximum": MAX_ID}, "Only this status"
    ),
    query_param("since", ID, "Only entries after this id"),
)
# Path segments: no control characters (the server refuses those in any path before routing).
REF = path_param(
    "ref", {"type": "string", "minLength": 1, "not": {"pattern": "[\\x00-\\x1f\\x7f]"}}
)
NUMBER_PATH = path_param("number", ID)
