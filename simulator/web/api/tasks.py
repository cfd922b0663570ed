"""Tasks (`/api/v1/tasks`): list, detail with messages, complete, reopen, mark read."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from simulator.runtime import runtime
from simulator.web.api.control import (
    integration_filter,
    paged,
)
from simulator.web.declare import declare
from simulator.web.schemas import (
    INTEGRATION_FILTER,
    NUMBER_PATH,
    array_of,
)
from simulator.web.schemas import ref as named

bp = Blueprint("tasks", __name__, url_prefix="/api/v1")


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
