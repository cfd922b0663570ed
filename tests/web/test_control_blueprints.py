"""The control API is one thin blueprint module per resource: its name says where a route lives."""

from __future__ import annotations

import pytest
from flask import Flask

ROUTES = [
    ("GET", "/api/v1/status", "status"),
    ("POST", "/api/v1/reset", "status"),
    ("GET", "/api/v1/integrations", "integrations"),
    ("POST", "/api/v1/integrations", "integrations"),
    ("GET", "/api/v1/integrations/<ref>", "integrations"),
    ("PATCH", "/api/v1/integrations/<ref>", "integrations"),
    ("DELETE", "/api/v1/integrations/<ref>", "integrations"),
    ("GET", "/api/v1/employees", "employees"),
    ("POST", "/api/v1/employees", "employees"),
    ("GET", "/api/v1/tasks", "tasks"),
    ("GET", "/api/v1/tasks/<int:number>", "tasks"),
    ("POST", "/api/v1/tasks/<int:number>/complete", "tasks"),
    ("POST", "/api/v1/tasks/<int:number>/reopen", "tasks"),
    ("POST", "/api/v1/tasks/<int:number>/read", "tasks"),
    ("GET", "/api/v1/contacts", "contacts"),
    ("GET", "/api/v1/journal", "journal"),
    ("GET", "/api/v1/journal/<int:entry_id>", "journal"),
]


@pytest.mark.parametrize(("method", "rule", "module"), ROUTES)
def test_each_route_lives_in_its_resource_module(
    app: Flask, method: str, rule: str, module: str
) -> None:
    [found] = [r for r in app.url_map.iter_rules() if r.rule == rule and method in r.methods]
    view = app.view_functions[found.endpoint]
    assert view.__module__ == f"simulator.web.api.{module}"
