"""Who may use the control API and UI (admin token), and how secrets look in the journal."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from flask import Flask, redirect, request
from werkzeug.wrappers import Response

from simulator.context import runtime
from simulator.errors import PayloadTooLarge, Unauthorized

# Integrations call these without any admin token: they stay open whatever the settings say.
OPEN_PREFIXES = ("/webchat/api", "/chat/api", "/fake-chat/")
COOKIE = "planfix_sim_admin"
QUERY_PARAM = "admin_token"
# Form fields (wire names) that carry secrets.
SECRET_FIELDS = frozenset({"planfix_token", "token"})
MASK = "\u2026"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def mask_secret(value: str) -> str:
    """`303cb962ac59075b964b07152d234b70` → `303c…4b70`; short values are hidden whole."""
    if len(value) < 12:
        return MASK if value else value
    return f"{value[:4]}{MASK}{value[-4:]}"


def mask_form(form: Sequence[Sequence[str]]) -> list[list[str]]:
    """A journal form (ordered [name, value] pairs) with secret values masked."""
    return [
        [name, mask_secret(value) if name in SECRET_FIELDS else value, *rest]
        for name, value, *rest in form
    ]


def mask_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A journal entry's JSON with its secret form values masked."""
    masked = dict(entry)
    form = masked.get("form")
    if isinstance(form, list):
        masked["form"] = mask_form(form)
    return masked


def _is_open(path: str) -> bool:
    return any(path == p or path.startswith(p) for p in OPEN_PREFIXES)


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


def register(app: Flask) -> None:
    """Install the body-limit and admin-token guards on `app`."""
    app.before_request(refuse_oversized_stream)
    app.before_request(require_admin)
