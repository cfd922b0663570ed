"""The JSON Schema of scenario files: shipped in the package, printed by `planfix-sim schema`."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from simulator.scenarios.matchers import OPERATORS

SCHEMA_FILE = "scenario.schema.json"
STEP_KINDS = ("send", "reply", "first_message", "await", "http", "faults")


@cache
def scenario_schema() -> dict[str, Any]:
    """The schema, loaded once from the package data."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    # The operators are declared once, in the matcher's table; the schema takes them from there.
    schema["$defs"]["matcher"]["properties"] = {
        name: dict(operator.schema) for name, operator in OPERATORS.items()
    }
    return schema


def schema_text() -> str:
    """The schema as the JSON text editors read."""
    return json.dumps(scenario_schema(), indent=2) + "\n"
