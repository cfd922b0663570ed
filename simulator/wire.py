"""Reading request bodies as Planfix reads them: ordered form pairs, strictly decoded."""

from __future__ import annotations

import json
import re
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

from simulator.domain import Form, Note
from simulator.errors import InvalidParameters, PayloadTooLarge

_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
# The simulator marks its own outbound calls so that, when it calls itself, only the sender
# journals the exchange.
ORIGIN_HEADER = "X-Planfix-Sim-Origin"


def _unquote_strict(raw: bytes) -> str:
    """Percent-decode one form component; broken escapes and invalid UTF-8 are errors."""
    if _BAD_PERCENT.search(raw):
        raise InvalidParameters("broken percent-encoding")
    decoded = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"+", b" "))
    return decoded.decode("utf-8", errors="strict")


def parse_urlencoded(body: bytes) -> Form:
    """Parse `application/x-www-form-urlencoded` keeping every pair in order."""
    pairs: list[tuple[str, str]] = []
    try:
        for chunk in body.split(b"&"):
            if not chunk:
                continue
            key, _, value = chunk.partition(b"=")
            pairs.append((_unquote_strict(key), _unquote_strict(value)))
    except UnicodeDecodeError as exc:
        raise InvalidParameters("body is not valid UTF-8") from exc
    return Form(tuple(pairs))


def _json_pairs(body: bytes) -> Form:
    try:
        data: Any = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidParameters("body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise InvalidParameters("JSON body is not an object")
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool):
                text = "true" if item else "false"
            elif item is None:
                text = ""
            elif isinstance(item, str | int | float):
                text = str(item)
            else:
                raise InvalidParameters(f"JSON field {key!r} is not a scalar")
            pairs.append((str(key), text))
    return Form(tuple(pairs))


def read_form(request: Request) -> tuple[Form, list[Note]]:
    """The request's fields in order, from a form, multipart or (noted) JSON body."""
    notes: list[Note] = []
    mimetype = request.mimetype
    try:
        if mimetype == "multipart/form-data":
            pairs = [(k, v) for k, v in request.form.items(multi=True)]
            if request.files:
                notes.append(Note("file-upload", "uploaded files ignored: Planfix takes links"))
            return Form(tuple(pairs)), notes
        body = request.get_data(cache=True)
    except RequestEntityTooLarge as exc:
        raise PayloadTooLarge() from exc
    if mimetype == "application/json":
        notes.append(
            Note("json-body", "JSON request body: whether Planfix accepts it is unknown", True)
        )
        return _json_pairs(body), notes
    if mimetype not in ("application/x-www-form-urlencoded", ""):
        notes.append(
            Note(
                "content-type",
                f"Content-Type {mimetype!r} read as a form: Planfix's handling is unknown",
                True,
            )
        )
    return parse_urlencoded(body), notes


# Headers worth keeping in the journal, with their WSGI environ keys (read directly: going
# through `request.headers` costs a key translation per lookup, on every request).
_JOURNAL_HEADERS = (
    ("Content-Type", "CONTENT_TYPE"),
    ("Accept", "HTTP_ACCEPT"),
    ("User-Agent", "HTTP_USER_AGENT"),
    ("Content-Length", "CONTENT_LENGTH"),
)


def request_headers(request: Request) -> dict[str, str]:
    """The request headers worth keeping in the journal."""
    environ = request.environ
    return {name: environ[key] for name, key in _JOURNAL_HEADERS if key in environ}
