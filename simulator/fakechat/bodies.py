"""The JSON bodies of the fake chat's control routes (`/api/v1/chat/messages`, `/commands`)."""

from __future__ import annotations

from typing import Any

from simulator.config.settings import HTTP_URL_SCHEMA
from simulator.contract import CONTACT_FIELDS, TOKEN_FIELD
from simulator.web.schemas import ATTACHMENTS_SCHEMA, INTEGRATION_REF

_SCALAR = {"type": ["string", "number", "boolean"]}
# newMessage's fields in the documentation's order; anything else given is sent after them.
MESSAGE_FIELDS = (
    "providerId",
    "channel",
    "chatId",
    TOKEN_FIELD,
    "message",
    "title",
    "contactId",
    *CONTACT_FIELDS,
)
OWN_KEYS = ("integration", "planfix_url", "data", "attachments", "isEcho", "userEmail")
MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "integration": INTEGRATION_REF,
        "planfix_url": HTTP_URL_SCHEMA,
        **{name: {"type": ["string", "null"]} for name in MESSAGE_FIELDS},
        "isEcho": {"type": ["string", "boolean", "integer"]},
        "userEmail": {"type": "string"},
        "data": {"type": "object", "additionalProperties": {"type": "string"}},
        "attachments": ATTACHMENTS_SCHEMA,
    },
    "additionalProperties": {"oneOf": [_SCALAR, {"type": "null"}]},
}
COMMAND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["cmd"],
    "properties": {
        "cmd": {"type": "string"},
        "integration": INTEGRATION_REF,
        "planfix_url": HTTP_URL_SCHEMA,
        "attachments": ATTACHMENTS_SCHEMA,
    },
    "additionalProperties": {
        "oneOf": [_SCALAR, {"type": "null"}, {"type": "array", "items": _SCALAR}]
    },
}
