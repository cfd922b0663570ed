"""The control API (`/api/v1`): JSON for the sandbox UI, tests, scenarios and CI jobs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request

from simulator import __version__
from simulator.config.settings import (
    EMPLOYEE_SCHEMA,
    INTEGRATION_SCHEMA,
    integration_as_dict,
    integration_from_mapping,
)
from simulator.contract import Employee, Integration
from simulator.errors import BadRequest, NotFound
from simulator.planfix.chat_api import API_PATHS
from simulator.runtime import runtime
from simulator.store.db import JournalQuery
from simulator.web import security
from simulator.web.declare import declare, json_body, path_param
from simulator.web.schemas import (
    ATTACHMENTS_SCHEMA,
    DEFAULT_LIMIT,
    ID,
    INTEGRATION_FILTER,
    INTEGRATION_REF,
    JOURNAL_FILTERS,
    MAX_LIMIT,
    NUMBER_PATH,
    REF,
    array_of,
)
from simulator.web.schemas import ref as named

__all__ = ["ATTACHMENTS_SCHEMA", "DEFAULT_LIMIT", "MAX_LIMIT", "json_body"]

bp = Blueprint("control_api", __name__, url_prefix="/api/v1")


def resolve_integration(ref: str | int | None) -> Integration | None:
    """An integration by id or name; None when `ref` is empty; NotFound when it matches none."""
    if ref is None or ref == "":
        return None
    store = runtime().store
    # isascii: str.isdigit() also holds for '²', which int() refuses.
    if isinstance(ref, int) or (str(ref).isascii() and str(ref).isdigit()):
        number = int(ref)
        if not 0 <= number < 2**63:  # beyond SQLite's integers: no such id
            raise NotFound(f"integration {ref!r}")
        return store.integration(number)
    found = store.integration_by_name(str(ref))
    if found is None:
        raise NotFound(f"integration {ref!r}")
    return found


def integration_filter() -> int | None:
    """The `?integration=` filter of list endpoints, as an id."""
    found = resolve_integration(request.args.get("integration"))
    return found.id if found else None


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not -(2**63) <= value < 2**63:  # SQLite refuses larger integers (a 500, not an answer)
        raise BadRequest(f"{name} is out of range")
    return value


# Every list endpoint answers one page: `limit` items (DEFAULT_LIMIT, at most MAX_LIMIT) and,
# when more may follow, a `Link: <…>; rel="next"` header whose URL carries the `cursor`.


def page_limit() -> int:
    """The `?limit=` of a list endpoint: DEFAULT_LIMIT when absent, 1..MAX_LIMIT, else a 400."""
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT):
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def page_cursor() -> int | None:
    """The `?cursor=` of a list endpoint (from a previous page's next link), or None."""
    raw = request.args.get("cursor")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and int(raw) < 2**63):
        raise BadRequest("cursor must be the value of a previous page's next link")
    return int(raw)


def page_response(items: list[Any], next_cursor: int | None, param: str = "cursor") -> Response:
    """A page as JSON; a `Link` header names the next page when there is one."""
    response = jsonify(items)
    if next_cursor is not None:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != param]
        query = urlencode([*args, (param, str(next_cursor))])
        response.headers["Link"] = f'<{request.path}?{query}>; rel="next"'
    return response


def paged(items: list[Any]) -> Response:
    """One page of a whole list (the cursor is an offset into it)."""
    limit, start = page_limit(), page_cursor() or 0
    end = start + limit
    return page_response(items[start:end], end if end < len(items) else None)


@bp.get("/status")
@declare("Where the simulator is and what it serves", named("Status"))
def status() -> Response:
    """Where the simulator is and what it serves."""
    rt = runtime()
    return jsonify(
        version=__version__,
        base_url=rt.base_url,
        planfix_endpoints=[rt.base_url + p for p in API_PATHS],
        fake_chat_webhook=rt.base_url + "/fake-chat/webhook",
        account=rt.settings.account,
        counts=rt.store.counts(),
    )


@bp.get("/integrations")
@declare("List integrations", array_of("Integration"), paged=True)
def list_integrations() -> Response:
    """Every integration with its tokens and settings."""
    security.show_secrets()  # the tokens are what a caller comes here for
    return paged([integration_as_dict(i) for i in runtime().store.integrations()])


@bp.post("/integrations")
@declare(
    "Create an integration (tokens generated when absent)",
    named("Integration"),
    status=201,
    body=INTEGRATION_SCHEMA,
    errors=(400,),
)
def create_integration() -> tuple[Response, int]:
    """Create an integration; tokens are generated when not given (isolation per test/CI job)."""
    security.show_secrets()  # the tokens are what a caller comes here for
    data = json_body()
    created = runtime().store.add_integration(integration_from_mapping(data))
    return jsonify(integration_as_dict(created)), 201


@bp.get("/integrations/<ref>")
@declare("One integration by id or name", named("Integration"), path=(REF,), errors=(404,))
def get_integration(ref: str) -> Response:
    """One integration by id or name."""
    security.show_secrets()  # the tokens are what a caller comes here for
    found = resolve_integration(ref)
    assert found is not None  # noqa: S101 - a route segment is never empty
    return jsonify(integration_as_dict(found))


@bp.patch("/integrations/<ref>")
@declare(
    "Change an integration's settings",
    named("Integration"),
    body=INTEGRATION_SCHEMA,
    path=(REF,),
    errors=(400, 404),
)
def update_integration(ref: str) -> Response:
    """Change some settings of an integration."""
    security.show_secrets()  # the tokens are what a caller comes here for
    found = resolve_integration(ref)
    assert found is not None  # noqa: S101 - a route segment is never empty
    data = json_body()
    saved = runtime().store.save_integration(integration_from_mapping(data, found))
    return jsonify(integration_as_dict(saved))


@bp.get("/employees")
@declare("List employees", array_of("Employee"), paged=True)
def list_employees() -> Response:
    """Employees who can reply and author echo messages."""
    return paged([_employee(e) for e in runtime().store.employees()])


@bp.post("/employees")
@declare(
    "Add or update an employee",
    named("Employee"),
    status=201,
    body=EMPLOYEE_SCHEMA,
    errors=(400,),
)
def add_employee() -> tuple[Response, int]:
    """Add an employee (or update the one with that e-mail)."""
    data = json_body()
    saved = runtime().store.add_employee(
        Employee(0, data["email"], data["name"], data.get("last_name", ""), data.get("ico", ""))
    )
    return jsonify(_employee(saved)), 201


def _employee(e: Employee) -> dict[str, Any]:
    return {"id": e.id, "email": e.email, "name": e.name, "last_name": e.last_name, "ico": e.ico}


@bp.get("/tasks")
@declare("List tasks", array_of("Task"), query=(INTEGRATION_FILTER,), paged=True, errors=(404,))
def list_tasks() -> Response:
    """Tasks, most recently active first; `?integration=` filters."""
    return paged([t.as_dict() for t in runtime().store.tasks(integration_filter())])


def task_detail(number: int) -> dict[str, Any]:
    """A task with its thread: what the task page and `GET /tasks/<n>` show."""
    store = runtime().store
    task = store.task(number).as_dict()
    task["messages"] = [m.as_dict() for m in store.messages(number)]
    return task


@bp.get("/tasks/<int:number>")
@declare("A task with its messages", named("TaskDetail"), path=(NUMBER_PATH,), errors=(404,))
def get_task(number: int) -> Response:
    """One task with messages, fields and contact."""
    return jsonify(task_detail(number))


@bp.post("/tasks/<int:number>/complete")
@declare("Complete a task", named("Task"), path=(NUMBER_PATH,), errors=(404,))
def complete_task(number: int) -> Response:
    """Complete a task: with new_task_when_closed the chat's next message opens a new one."""
    return jsonify(runtime().store.set_task_status(number, "completed").as_dict())


@bp.post("/tasks/<int:number>/reopen")
@declare("Reopen a task", named("Task"), path=(NUMBER_PATH,), errors=(404,))
def reopen_task(number: int) -> Response:
    """Make a completed task active again (and the chat's task)."""
    return jsonify(runtime().store.set_task_status(number, "active").as_dict())


@bp.post("/tasks/<int:number>/read")
@declare("Mark a task's messages read", named("Task"), path=(NUMBER_PATH,), errors=(404,))
def read_task(number: int) -> Response:
    """The operator has seen the task: clears its unread marker."""
    runtime().store.mark_read(number)
    return jsonify(runtime().store.task(number).as_dict())


@bp.get("/contacts")
@declare(
    "List contacts", array_of("Contact"), query=(INTEGRATION_FILTER,), paged=True, errors=(404,)
)
def list_contacts() -> Response:
    """Contacts, newest first; `?integration=` filters."""
    return paged([c.as_dict() for c in runtime().store.contacts(integration_filter())])


def journal_query() -> JournalQuery:
    """The journal filters of the query string, with its page (`limit`, `cursor`)."""
    return JournalQuery(
        integration_id=integration_filter(),
        cmd=request.args.get("cmd") or None,
        direction=request.args.get("direction") or None,
        status=_int_arg("status"),
        since=_int_arg("since"),
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


RESET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"integration": INTEGRATION_REF},
}


@bp.post("/reset")
@declare(
    "Forget state: all, or one integration's",
    named("Reset"),
    body=RESET_SCHEMA,
    query=(INTEGRATION_FILTER,),
    errors=(400, 404),
)
def reset() -> Response:
    """Forget chats, tasks, contacts, messages and journal: all, or of `?integration=`."""
    body = json_body()  # checked even when the query names the integration
    ref = request.args.get("integration") or body.get("integration")
    target = resolve_integration(ref)
    runtime().store.reset(target.id if target else None)
    return jsonify(reset=True, integration=target.id if target else None)
