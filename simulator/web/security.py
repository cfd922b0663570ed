"""Who may use the control API and UI (admin token), and how secrets look in the journal."""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, current_app, g, redirect, request
from werkzeug.wrappers import Response

from simulator.errors import Forbidden, PayloadTooLarge, SimulatorError, Unauthorized
from simulator.masking import (
    QUERY_SECRET,
    SECRET_FIELDS,
    mask_form,
    mask_output,
    mask_text,
)
from simulator.runtime import runtime

if TYPE_CHECKING:
    from simulator.store import Store

# Integrations call these without any admin token: they stay open whatever the settings say.
OPEN_PREFIXES = ("/webchat/api", "/chat/api", "/fake-chat/")
COOKIE = "planfix_sim_admin"
QUERY_PARAM = "admin_token"
MASKED_TYPES = frozenset({"application/json", "application/yaml"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# SSE streams and waits hold a server thread for minutes; the server tells each worker its
# thread count, and this many threads stay free for /webchat/api and the control API.
LONG_PATHS = frozenset({"/api/v1/events", "/api/v1/wait"})
THREADS_ENV = "PLANFIX_SIM_THREADS"
RESERVED_THREADS = 8
LONG_SLOTS = "planfix_simulator.long_slots"


def revealed() -> bool:
    """Whether this request asked to see secrets unmasked (`?reveal=1`)."""
    return request.args.get("reveal") in ("1", "true")


def shown_form(form: Sequence[Sequence[str]]) -> list[list[str]]:
    """A form as this request may see it: secrets masked unless `?reveal=1`."""
    return [list(pair) for pair in form] if revealed() else mask_form(form)


def shown_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A journal entry's JSON as this request may see it: masked unless `?reveal=1`."""
    return dict(entry) if revealed() else mask_entry(entry)


def mask_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A journal entry's JSON with its secret form values and URL parameters masked."""
    masked: dict[str, Any] = mask_output(entry)
    return masked


def known_secrets(store: Store) -> frozenset[str]:
    """The values masked wherever they appear: every integration's tokens."""
    return store.secret_values()


def show_secrets() -> None:
    """This view shows secrets on purpose (an integration's own tokens): its answer is kept."""
    g.show_secrets = True


def mask_response(response: Response) -> Response:
    """After each request: a control-API answer (JSON, error, export) with its secrets masked."""
    if (
        not request.path.startswith("/api/v1/")
        or response.is_streamed
        or response.mimetype not in MASKED_TYPES
        or g.get("show_secrets")
        or revealed()
    ):
        return response
    text = response.get_data(as_text=True)
    secrets = known_secrets(runtime().store)
    admin = runtime().settings.admin_token
    if admin:
        secrets = secrets | {admin}
    if not _may_hold_secret(text, secrets):
        return response  # the common case: no parse, no copy
    if response.mimetype == "application/json":
        try:
            data = json.loads(text)
        except ValueError:
            response.set_data(mask_text(text, secrets))
            return response
        response.set_data(current_app.json.dumps(mask_output(data, secrets)) + "\n")
    else:
        response.set_data(mask_text(text, secrets))
    return response


def _may_hold_secret(text: str, secrets: Collection[str]) -> bool:
    if any(f'"{name}"' in text for name in SECRET_FIELDS) or QUERY_SECRET.search(text):
        return True
    # In JSON text a value may be escaped (non-ASCII as \uXXXX): look for that spelling too.
    return any(s in text or json.dumps(s)[1:-1] in text for s in secrets)


def _is_open(path: str) -> bool:
    return any(path == p or path.startswith(p) for p in OPEN_PREFIXES)


def refuse_cross_site() -> None:
    """Before each request: a state change from a browser must come from our own pages."""
    # Browsers send Sec-Fetch-Site/Origin; curl and test clients send neither and pass.
    # Integrations call the open paths from anywhere.
    if request.method not in BODY_METHODS or _is_open(request.path):
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden(f"Sec-Fetch-Site: {site}")
    origin = request.headers.get("Origin")
    if origin == "null":
        # An opaque origin (sandboxed frame, data: page, file:): never one of our pages.
        raise Forbidden("Origin: null")
    if site is None and origin:
        host = origin.split("://", 1)[-1]
        if host != request.host:
            raise Forbidden(f"Origin {origin} is not {request.host}")


class UnsupportedMediaType(SimulatorError):
    """415: a control-API body that is not JSON (what an HTML form can send cross-site)."""

    status = 415
    wire_text = "Unsupported media type"

    def body(self) -> dict[str, Any]:
        """The error and what to send instead."""
        return {"error": self.wire_text, "detail": self.detail}


def refuse_non_json_body() -> None:
    """Before each request: a control route reads its body as JSON only if it says it is JSON."""
    if (
        request.method not in BODY_METHODS
        or _is_open(request.path)
        or request.url_rule is None  # no such route: its 404/405 says more
        or request.is_json
        or not request.get_data(cache=True)
    ):
        return
    raise UnsupportedMediaType(
        f"Content-Type {request.mimetype or '(none)'}: send the body as application/json"
    )


class HostNotAllowed(SimulatorError):
    """403: the Host header names a site this simulator does not serve (DNS rebinding)."""

    status = 403
    wire_text = "Host not allowed"

    def body(self) -> dict[str, Any]:
        """The error and how to serve that name on purpose."""
        return {"error": self.wire_text, "detail": self.detail}


ALLOWED_HOSTS = "planfix_simulator.allowed_hosts"
_NOT_IN_HOST = frozenset("/?#@\\ \t")


def host_name(host: str) -> str | None:
    """The name in a Host value, lower case, without port or IPv6 brackets; None if malformed."""
    if not host or _NOT_IN_HOST.intersection(host):
        return None
    try:
        parts = urlsplit("//" + host)
        _ = parts.port  # a port that is not a number raises
    except ValueError:
        return None
    return parts.hostname or None


def allowed_hosts(base_url: str, extra: Sequence[str]) -> frozenset[str]:
    """The names the simulator answers to besides loopback: base_url's host and `extra`."""
    names = {urlsplit(base_url).hostname or ""} if base_url else set()
    names.update(host_name(h) or "" if h != "*" else "*" for h in extra)
    names.discard("")
    return frozenset(names)


def is_allowed_host(name: str, allowed: frozenset[str]) -> bool:
    """Whether the simulator answers to `name`: loopback, a listed name, or anything with "*"."""
    if name == "localhost" or name in allowed or "*" in allowed:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback  # any 127.x, ::1
    except ValueError:
        return False


def refuse_foreign_host() -> None:
    """Before each request: pages, control API and events answer only their own names."""
    # A page on evil.test whose name is re-bound to 127.0.0.1 is "same-origin" with its own
    # requests here: only the Host header still says which site the browser thinks it is on.
    # Integrations (open paths) are called by any name a container network gives us.
    raw = request.environ.get("HTTP_HOST")
    if raw is None or _is_open(request.path):
        return  # no Host (HTTP/1.0): no browser sends that
    allowed: frozenset[str] = current_app.extensions.get(ALLOWED_HOSTS, frozenset())
    name = host_name(raw)
    if name is not None and is_allowed_host(name, allowed):
        return
    shown = raw[:100]
    hint = name or "NAME"
    raise HostNotAllowed(
        f"Host {shown!r} is not a name this simulator serves; to serve it, start it with "
        f"--allowed-host {hint} (or SIMULATOR_ALLOWED_HOSTS / allowed_hosts)"
    )


def _matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def require_admin() -> Response | None:
    """Before each request: with an admin token set, the control API and UI need it."""
    expected = runtime().settings.admin_token
    if not expected or _is_open(request.path):
        return None
    offered = request.args.get(QUERY_PARAM)
    if offered is not None and request.method == "GET" and _matches(offered, expected):
        # Visiting any page once with ?admin_token=… leaves a cookie, so the browser UI works;
        # the redirect drops the token from the address bar and history.
        args = [(k, v) for k, v in request.args.items(multi=True) if k != QUERY_PARAM]
        query = urlencode(args)
        target = request.path + (f"?{query}" if query else "")
        response = redirect(target, code=303)
        response.set_cookie(COOKIE, expected, httponly=True, samesite="Strict")
        return response
    if _matches(_bearer(), expected) or _matches(request.cookies.get(COOKIE), expected):
        return None
    raise Unauthorized("send Authorization: Bearer <admin token>, or visit /?admin_token=…")


def refuse_oversized_stream() -> None:
    """Before each request: a body without Content-Length (chunked) over the limit is a 413."""
    limit = request.max_content_length
    if limit is None or request.content_length is not None or request.method not in BODY_METHODS:
        return
    # Werkzeug stops reading such a body at the limit without saying so, which would hand a
    # truncated form to the views; read it here and look one byte past the limit.
    data = request.get_data(cache=True)
    if len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise PayloadTooLarge(f"chunked body over {limit} bytes")


class TooBusy(SimulatorError):
    """503: every thread this worker may give to long-lived requests is taken."""

    status = 503
    wire_text = "Too many open event streams and waits"


@dataclass(frozen=True)
class LongRequestSlots:
    """How many SSE streams and waits one worker serves at once (the rest answer 503)."""

    capacity: int
    semaphore: threading.BoundedSemaphore


def long_request_capacity(environ: Mapping[str, str]) -> int | None:
    """Slots for long requests: the worker's threads minus those kept for short requests."""
    raw = environ.get(THREADS_ENV, "")
    if not raw.isdigit():
        return None  # a server with a thread per connection (the test server): no limit
    return max(1, int(raw) - RESERVED_THREADS)


def _take_long_slot() -> None:
    slots: LongRequestSlots | None = current_app.extensions.get(LONG_SLOTS)
    if slots is None or request.path not in LONG_PATHS:
        return
    if not slots.semaphore.acquire(blocking=False):
        raise TooBusy(f"{slots.capacity} long-lived requests already open in this worker")
    g.long_slot = slots


def _give_back_on_close(response: Response) -> Response:
    slots: LongRequestSlots | None = g.pop("long_slot", None)
    if slots is not None:
        # A stream holds its slot until the server closes the response (client gone or done).
        response.call_on_close(slots.semaphore.release)
    return response


def _give_back_on_error(error: BaseException | None) -> None:
    slots: LongRequestSlots | None = g.pop("long_slot", None)
    if slots is not None:
        slots.semaphore.release()


def register(app: Flask) -> None:
    """Install the host, body-limit, admin-token, cross-site, JSON and long-request guards."""
    settings = runtime(app).settings
    app.extensions[ALLOWED_HOSTS] = allowed_hosts(settings.base_url, settings.allowed_hosts)
    app.before_request(refuse_foreign_host)
    app.before_request(refuse_oversized_stream)
    app.before_request(require_admin)
    app.before_request(refuse_cross_site)
    app.after_request(mask_response)
    app.before_request(refuse_non_json_body)
    capacity = long_request_capacity(os.environ)
    if capacity is not None:
        app.extensions[LONG_SLOTS] = LongRequestSlots(
            capacity, threading.BoundedSemaphore(capacity)
        )
        app.before_request(_take_long_slot)
        app.after_request(_give_back_on_close)
        app.teardown_request(_give_back_on_error)
