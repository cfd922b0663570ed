"""The browser sandbox: server-rendered page shells whose scripts call the public `/api/v1`.

The pages hold no private state: everything they show is fetched from the control API and kept
live through the SSE stream (`/api/v1/events`), like Mailpit's UI calls the API its tests use.
Scripts and styles are files in `templates/ui/`, served by `asset()` from the same origin, so
the pages can carry a Content-Security-Policy that forbids inline script.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, render_template, request

from simulator.contract import PROFILES
from simulator.errors import NotFound
from simulator.masking import SECRET_PARAMS, mask_text
from simulator.planfix.chat_api import API_PATHS
from simulator.runtime import runtime

bp = Blueprint("ui", __name__)

# Exact file names only: the asset route never joins a user-supplied path.
ASSETS = {
    "app.css": "text/css; charset=utf-8",
    "common.js": "text/javascript; charset=utf-8",
    "sandbox.js": "text/javascript; charset=utf-8",
    "journal.js": "text/javascript; charset=utf-8",
    "settings.js": "text/javascript; charset=utf-8",
}

# Same-origin scripts and styles only; fetch/EventSource to the simulator itself; no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def own_url() -> str:
    """The simulator's URL as the browser sees it (the configured base URL when set)."""
    return runtime().base_url or request.host_url.rstrip("/")


def _page(template: str, active: str, *, allow_all: bool = False) -> str:
    rt = runtime()
    base = own_url()
    integrations = rt.store.integrations()
    first = integrations[0] if integrations else None
    # Where replies go, as the how-to line shows it: secrets in its query string masked.
    reply_url = (
        mask_text(first.url.replace("{base_url}", base), (first.token, first.planfix_token))
        if first
        else ""
    )
    return render_template(
        template,
        active=active,
        base_url=base,
        endpoint=base + API_PATHS[0],
        first=first,
        reply_url=reply_url,
        integrations=integrations,
        profiles=PROFILES,
        account=rt.settings.account,
        allow_all=allow_all,
        # The page masks URLs it shows by the server's list of secret query parameters.
        secret_params=" ".join(SECRET_PARAMS),
    )


@bp.get("/")
def sandbox() -> str:
    """Operator (Planfix) and customer (fake chat) side by side, with the one-line how-to."""
    return _page("sandbox.html", "sandbox")


@bp.get("/journal")
def journal() -> str:
    """Every exchange in both directions, filterable, copyable as curl, exportable."""
    return _page("journal.html", "journal", allow_all=True)


@bp.get("/settings")
def settings() -> str:
    """Integrations, employees, faults and reset."""
    return _page("settings.html", "settings")


@bp.get("/ui/<name>")
def asset(name: str) -> Response:
    """A script or stylesheet of the pages, read from `templates/ui/`."""
    mimetype = ASSETS.get(name)
    if mimetype is None or current_app.template_folder is None:
        raise NotFound(f"asset {name}")
    path = Path(str(current_app.root_path), str(current_app.template_folder), "ui", name)
    response = Response(path.read_bytes(), content_type=mimetype)
    # Served from the package: revalidate so an upgraded simulator never runs stale scripts.
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.after_request
def security_headers(response: Response) -> Response:
    """Every page and asset: strict CSP, no sniffing, no referrer leaks, no framing."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response
