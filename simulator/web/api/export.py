"""`GET /api/v1/journal/export`: journal entries as a scenario YAML that replays them."""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, request

from simulator.errors import BadRequest
from simulator.runtime import runtime
from simulator.scenarios.export import export_scenario
from simulator.web.api.journal import journal_query
from simulator.web.declare import MAX_LIMIT, declare, query_param
from simulator.web.schemas import JOURNAL_FILTERS, STR

bp = Blueprint("scenario_export", __name__, url_prefix="/api/v1")


def _ids() -> list[int] | None:
    raw = request.args.get("ids")
    if not raw:
        return None
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    # isascii: int() takes other scripts' digits; the bound: SQLite's integers.
    if not all(p.isascii() and p.isdigit() and int(p) < 2**63 for p in parts):
        raise BadRequest("ids must be comma-separated integers")
    return [int(part) for part in parts]


@bp.get("/journal/export")
@declare(
    "Journal entries as a scenario YAML that replays them",
    # YAML parses to a mapping (clients such as Schemathesis parse it).
    {"type": "object", "description": "A scenario document (see `planfix-sim schema`)"},
    media="application/yaml",
    query=(
        *JOURNAL_FILTERS,
        query_param(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "The newest this many (default: every entry the journal keeps)",
        ),
        query_param(
            "ids",
            {
                "type": "string",
                "description": "comma-separated integers",
                # Ids of digits, between commas and spaces; none past SQLite's integers.
                "not": {
                    "anyOf": [
                        {"pattern": "[^0-9, ]"},
                        {"pattern": "[0-9] +[0-9]"},
                        {"pattern": "[0-9]{19}"},
                    ]
                },
            },
            "Only these ids (comma-separated)",
        ),
        query_param("name", STR, "The scenario's name"),
    ),
    errors=(404,),
)
def export() -> Response:
    """The journal's filters (plus `ids=1,2,3` and `name=`) → a replayable scenario, as YAML."""
    rt = runtime()
    query = journal_query()
    if "limit" not in request.args:
        # An export is the whole session the journal keeps (bounded by its bytes), not a page.
        query = replace(query, limit=rt.store.journal_bound)
    ids = _ids()
    if ids is not None:
        query = replace(query, ids=ids)
    entries = rt.store.journal(query)
    text = export_scenario(
        entries,
        integrations=rt.store.integrations(),
        employees=rt.store.employees(),
        name=request.args.get("name") or "exported session",
    )
    response = Response(text, mimetype="application/yaml")
    response.headers["Content-Disposition"] = 'inline; filename="scenario.yaml"'
    return response
