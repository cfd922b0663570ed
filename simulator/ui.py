"""The browser sandbox's pages: server-rendered Jinja2, live through the SSE stream."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from simulator.context import runtime
from simulator.planfix_api import API_PATHS

bp = Blueprint("ui", __name__)


def own_url() -> str:
    """The simulator's URL as the browser sees it (the configured base URL when set)."""
    return runtime().base_url or request.host_url.rstrip("/")


@bp.get("/")
def index() -> str:
    """First page: how to point an integration at the simulator, and what it holds."""
    rt = runtime()
    base = own_url()
    return render_template(
        "index.html",
        base_url=base,
        endpoint=base + API_PATHS[0],
        webhook=base + "/fake-chat/webhook",
        integrations=rt.store.integrations(),
        tasks=rt.store.tasks()[:20],
    )
