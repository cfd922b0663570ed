"""Reading request bodies as Planfix reads them: ordered form pairs, strictly decoded."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_content_length

from simulator.domain import Form, Note
from simulator.errors import InvalidParameters, PayloadTooLarge

_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
# The simulator marks its own outbound calls so that, when it calls itself, only the sender
# journals the exchange.
ORIGIN_HEADER = "X-Planfix-Sim-Origin"


def _unquote_strict(raw: bytes) -> str:
    """Percent-decode one form component; broken escapes and invalid UTF-8 are errors."""
    if b"%" not in raw:  # most fields: nothing to unescape
        return raw.replace(b"+", b" ").decode("utf-8", errors="strict")
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


def read_body(environ: Mapping[str, Any], limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes (chunked bodies included)."""
    stream = environ["wsgi.input"]
    length = get_content_length(environ)  # type: ignore[arg-type]
    if length is not None and length > limit:
        raise PayloadTooLarge(f"{length} bytes > {limit}")
    if length is None and not environ.get("wsgi.input_terminated"):
        return b""  # no length and a server that does not end the stream: no body (PEP 3333)
    try:
        # A chunked body is read one byte past the limit, to know whether it is over.
        data: bytes = stream.read(limit + 1 if length is None else length)
    except (OSError, ValueError) as exc:  # the server's read deadline, or a broken chunk
        raise InvalidParameters(f"the body could not be read: {exc or type(exc).__name__}") from exc
    if length is None and len(data) > limit:
        raise PayloadTooLarge(f"chunked body over {limit} bytes")
    if length is not None and len(data) < length:
        raise InvalidParameters(f"the body ended after {len(data)} of {length} bytes")
    return data


def parse_body(body: bytes, content_type: str) -> tuple[Form, list[Note]]:
    """The fields of a form, multipart or (noted) JSON body, in order."""
    notes: list[Note] = []
    mimetype, options = parse_options_header(content_type)
    mimetype = mimetype.lower()
    if mimetype == "multipart/form-data":
        parser = FormDataParser(max_form_memory_size=len(body) + 1)
        try:
            _, fields, files = parser.parse(io.BytesIO(body), mimetype, len(body), options)
        except RequestEntityTooLarge as exc:  # more parts than Werkzeug's limit
            raise PayloadTooLarge("too many multipart parts") from exc
        if files:
            notes.append(Note("file-upload", "uploaded files ignored: Planfix takes links"))
        return Form(tuple(fields.items(multi=True))), notes
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


def read_form(environ: Mapping[str, Any], limit: int) -> tuple[Form, list[Note]]:
    """The request's fields in order, read straight from the WSGI environ."""
    return parse_body(read_body(environ, limit), environ.get("CONTENT_TYPE", ""))


def header(environ: Mapping[str, Any], name: str) -> str | None:
    """A request header by name, read from the environ."""
    value: str | None = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return value


# Headers worth keeping in the journal, with their WSGI environ keys (read directly: going
# through `request.headers` costs a key translation per lookup, on every request).
_JOURNAL_HEADERS = (
    ("Content-Type", "CONTENT_TYPE"),
    ("Accept", "HTTP_ACCEPT"),
    ("User-Agent", "HTTP_USER_AGENT"),
    ("Content-Length", "CONTENT_LENGTH"),
)


def request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers worth keeping in the journal."""
    return {name: environ[key] for name, key in _JOURNAL_HEADERS if key in environ}
