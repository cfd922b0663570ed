"""Typed errors: each wire error carries its HTTP status and the exact body Planfix sends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from werkzeug.wrappers import Response


class SimulatorError(Exception):
    """Base of every error the simulator turns into an HTTP answer."""

    status: ClassVar[int] = 400
    wire_text: ClassVar[str] = "Invalid parameters"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.wire_text)
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON body sent on the wire."""
        return {"error": self.wire_text}


class InvalidParameters(SimulatorError):
    """400 `{"error": "Invalid parameters"}`: a required field missing, empty or malformed."""


class MalformedRequest(InvalidParameters):
    """400: a request no route can read (a broken body, a bad method or path); see `route_error`."""


class InvalidToken(SimulatorError):
    """401 `{"error": "Invalid token"}`: the token is missing or matches no integration."""

    status = 401
    wire_text = "Invalid token"


class TaskNotFound(SimulatorError):
    """400 `{"error": "task not found"}`: getTask for a chat that has no task."""

    wire_text = "task not found"


class UnknownContact(SimulatorError):
    """400 `{"error": "unknown contact"}`: getContact for a contact never seen."""

    wire_text = "unknown contact"


class MethodNotAllowed(SimulatorError):
    """405: only POST reaches a command."""

    status = 405
    wire_text = "Method not allowed"


class PayloadTooLarge(SimulatorError):
    """413: the body is over the configured limit."""

    status = 413
    wire_text = "Request body too large"


class NotFound(SimulatorError):
    """404 from the control API: no such task, integration, delivery, …"""

    status = 404
    wire_text = "Not found"

    def body(self) -> dict[str, Any]:
        """Control-API errors also say what was not found."""
        return {"error": self.wire_text, "detail": self.detail} if self.detail else super().body()


class BadRequest(SimulatorError):
    """400 from the control API, with a reason a person can act on."""

    wire_text = "Bad request"

    def body(self) -> dict[str, Any]:
        """Control-API errors carry the reason."""
        return {"error": self.wire_text, "detail": self.detail}


class Conflict(BadRequest):
    """409 from the control API: the request is valid but the state forbids it now."""

    status = 409
    wire_text = "Conflict"


class Unauthorized(SimulatorError):
    """401 from the control API when an admin token is set and not given."""

    status = 401
    wire_text = "Admin token required"


class Forbidden(SimulatorError):
    """403: a state-changing request that did not come from the simulator's own pages."""

    status = 403
    wire_text = "Cross-site request refused"


class StorageUnavailable(SimulatorError):
    """503: the database cannot be written or trusted (disk full, I/O error, file gone, corrupt)."""

    status = 503
    wire_text = "Service unavailable"

    def body(self) -> dict[str, Any]:
        """The chat API answers the bare body (as its 503 fault does); the control API says why."""
        return {"error": self.wire_text, "detail": self.detail} if self.detail else super().body()


class InternalError(SimulatorError):
    """500: a bug; clients still get JSON, the traceback goes to the log."""

    status = 500
    wire_text = "Internal error"


def error_response(error: SimulatorError) -> Response:
    """The wire answer of a typed error: compact JSON and a newline, as Flask's jsonify."""
    text = json.dumps(error.body(), separators=(",", ":")) + "\n"
    response = Response(text, status=error.status, mimetype="application/json")
    if isinstance(error, MethodNotAllowed):
        response.headers["Allow"] = "POST"
    return response


class ConfigError(Exception):
    """A configuration or scenario file is invalid; the message names file, line and field."""

    def __init__(self, source: str, line: int | None, field: str, reason: str) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")
        self.source = source
        self.line = line
        self.field = field
        self.reason = reason

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        """Each problem on its own (a file with several problems raises `ConfigErrors`)."""
        return (self,)


class ConfigErrors(ConfigError):
    """Every problem of one file at once, sorted by line; one `file:line: field: reason` each."""

    def __init__(self, problems: Sequence[ConfigError]) -> None:
        first = problems[0]
        super().__init__(first.source, first.line, first.field, first.reason)
        self.args = ("\n".join(str(p) for p in problems),)
        self._problems = tuple(problems)

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        """Each problem on its own."""
        return self._problems


def raise_all(problems: Sequence[ConfigError]) -> None:
    """Raise the problems found (one ConfigError, or ConfigErrors for several); none: return."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigErrors(problems)
