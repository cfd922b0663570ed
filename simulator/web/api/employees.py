"""Employees (`/api/v1/employees`): who replies and authors echo messages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from simulator.config.settings import (
    EMPLOYEE_SCHEMA,
)
from simulator.contract import Employee
from simulator.runtime import runtime
from simulator.web.api.control import (
    paged,
)
from simulator.web.declare import declare, json_body
from simulator.web.schemas import (
    array_of,
)
from simulator.web.schemas import ref as named

bp = Blueprint("employees", __name__, url_prefix="/api/v1")


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
