"""Reading request bodies as Planfix reads them: ordered form pairs, strictly decoded."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from typing import Any

from gunicorn.http.errors import ParseException  # type: ignore[import-untyped]
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_content_length

from simulator.contract import Form, Note
from simulator.errors import InvalidParameters, MalformedRequest, PayloadTooLarge

_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
# The simulator marks its own outbound calls so that, when it calls itself, only the sender
# journals the exchange.
ORIGIN_HEADER = "X-Planfix-Sim-Origin"
# The fake chat's webhook: like Planfix's paths, it answers bad input with a wire body.
WEBHOOK_PATH = "/fake-chat/webhook"

# RFC 9110 5.6.2: a method is a token. Anything else is refused before it is journaled, so a
# method never carries spaces, quotes of other kinds or control characters into the journal.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_TCHAR = re.compile(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What servers raise when a body cannot be read: a timeout or a vanished client (OSError),
# a broken chunk in Werkzeug's server (ValueError, OSError) or in gunicorn's (ParseException).
_READ_ERRORS = (OSError, ValueError, ParseException)
_DETAIL_MAX = 200
# No body the simulator takes nests past a handful of levels.
MAX_JSON_DEPTH = 32


def malformed_request_line(environ: Mapping[str, Any]) -> MalformedRequest | None:
    """Why the method or path cannot be served (not a token; a control character), or None."""
    method = environ.get("REQUEST_METHOD", "")
    if not _TOKEN.fullmatch(method):
        return MalformedRequest(f"the method {safe_method(method)} is not an HTTP token")
    if _CONTROL.search(environ.get("PATH_INFO", "")):
        return MalformedRequest("the path holds a line break or another control character")
    return None


def safe_method(method: str) -> str:
    """The method as the journal keeps it: every byte outside RFC 9110's tchar %-escaped."""
    return _NOT_TCHAR.sub(lambda m: "".join(f"%{b:02X}" for b in _wire_bytes(m.group())), method)


def _wire_bytes(text: str) -> bytes:
    # WSGI carries request-line bytes as latin-1 characters; anything beyond is UTF-8.
    return b"".join(c.encode("latin-1") if ord(c) < 256 else c.encode("utf-8") for c in text)


class GuardedInput:
    """A WSGI input stream whose read errors become the route's 400 (`MalformedRequest`)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def _guard(self, read: Any, *args: Any) -> Any:
        try:
            return read(*args)
        except _READ_ERRORS as exc:
            reason = (str(exc) or type(exc).__name__)[:_DETAIL_MAX]
            raise MalformedRequest(f"the body could not be read: {reason}") from exc

    def read(self, *args: Any) -> bytes:
        """`read([size])` of the server's stream."""
        data: bytes = self._guard(self.stream.read, *args)
        return data

    def readline(self, *args: Any) -> bytes:
        """`readline([size])` of the server's stream."""
        data: bytes = self._guard(self.stream.readline, *args)
        return data

    def readlines(self, *args: Any) -> list[bytes]:
        """`readlines([hint])` of the server's stream."""
        lines: list[bytes] = self._guard(self.stream.readlines, *args)
        return lines

    def __iter__(self) -> GuardedInput:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def guard_input(environ: dict[str, Any]) -> GuardedInput:
    """Wrap the environ's `wsgi.input` in a `GuardedInput` (once) and return it."""
    stream = environ["wsgi.input"]
    if not isinstance(stream, GuardedInput):
        stream = environ["wsgi.input"] = GuardedInput(stream)
    return stream


def decode_json(data: str | bytes) -> Any:
    """A JSON request body; ValueError when it is not JSON, 400 when nested too deeply."""
    try:
        value = json.loads(data)
    except RecursionError as exc:  # past the parser's own limit
        raise MalformedRequest(f"the JSON body is nested over {MAX_JSON_DEPTH} levels") from exc
    if _depth_over(value, MAX_JSON_DEPTH):
        # Schema checks and error messages recurse through what they check: refuse it first.
        raise MalformedRequest(f"the JSON body is nested over {MAX_JSON_DEPTH} levels")
    return value


def _depth_over(value: Any, limit: int) -> bool:
    """Whether `value` nests lists and objects more than `limit` deep (without recursing)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


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
        data: Any = decode_json(body.decode("utf-8"))
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


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes (chunked bodies included)."""
    stream = guard_input(environ)  # a broken body (chunk, deadline) is a 400
    length = get_content_length(environ)
    if length is not None and length > limit:
        raise PayloadTooLarge(f"{length} bytes > {limit}")
    if length is None and not environ.get("wsgi.input_terminated"):
        return b""  # no length and a server that does not end the stream: no body (PEP 3333)
    # A chunked body is read one byte past the limit, to know whether it is over.
    data = stream.read(limit + 1 if length is None else length)
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


def read_form(environ: dict[str, Any], limit: int) -> tuple[Form, list[Note]]:
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
