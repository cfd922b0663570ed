"""The journal (`/api/v1/journal`): every exchange, paged, tokens masked unless revealed."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from simulator.runtime import runtime
from simulator.store import JournalQuery
from simulator.web import security
from simulator.web.api.control import (
    int_arg,
    integration_filter,
    page_cursor,
    page_limit,
    page_response,
)
from simulator.web.declare import declare, path_param
from simulator.web.schemas import (
    ID,
    JOURNAL_FILTERS,
    array_of,
)
from simulator.web.schemas import ref as named

bp = Blueprint("journal", __name__, url_prefix="/api/v1")


def journal_query() -> JournalQuery:
    """The journal filters of the query string, with its page (`limit`, `cursor`)."""
    return JournalQuery(
        integration_id=integration_filter(),
        cmd=request.args.get("cmd") or None,
        direction=request.args.get("direction") or None,
        status=int_arg("status"),
        since=int_arg("since"),
        before=page_cursor(),
        limit=page_limit(),
    )


@bp.get("/journal")
@declare(
    "Journal entries, oldest first",
    array_of("JournalEntry"),
    query=JOURNAL_FILTERS,
    paged=True,
    errors=(404,),
)
def journal() -> Response:
    """The newest entries, oldest first; filters: integration, cmd, direction, status, since.

    The next page holds the entries before this one's first (its cursor is that entry's id);
    with `since`, the oldest entries after it, and the next page follows on from the last.
    """
    query = journal_query()
    found = runtime().store.journal(query)
    # Tokens are masked unless asked for: journals end up in CI logs and screenshots.
    shown = [security.shown_entry(e.as_dict()) for e in found]
    full = len(found) == query.limit
    if query.since is not None and query.before is None:
        # Following: the next page is what came after this one's last entry.
        return page_response(shown, found[-1].id if full else None, param="since")
    return page_response(shown, found[0].id if full else None)


@bp.get("/journal/<int:entry_id>")
@declare(
    "One journal entry",
    named("JournalEntry"),
    path=(path_param("entry_id", ID),),
    errors=(404,),
)
def journal_entry(entry_id: int) -> Response:
    """One journal entry (tokens masked unless `?reveal=1`)."""
    return jsonify(security.shown_entry(runtime().store.journal_entry(entry_id).as_dict()))
