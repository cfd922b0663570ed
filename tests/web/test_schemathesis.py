"""Schemathesis against /openapi.json: no server errors, and every answer conforms to the spec."""

from __future__ import annotations

from typing import Any

import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.core import media_types

from simulator.scenarios.loader import ScenarioLoader
from simulator.serving.live import LiveServer
from simulator.web.openapi import build_spec

# The document the server serves is built by this function; loading it here lets pytest
# collect one test per operation before the server starts.
schema = schemathesis.openapi.from_dict(build_spec()).exclude(
    # An endless event stream and a long poll: covered by their own tests, not by fuzzing.
    path_regex=r"^/api/v1/(events|wait)$",
)


# Every YAML media type: Schemathesis picks the first deserializer of the family that matches.
@schemathesis.deserializer(*media_types.YAML_MEDIA_TYPES)
def scenario_yaml(ctx: schemathesis.DeserializationContext, response: Any) -> Any:
    """The export is a scenario file: its `!literal` tag is read the way scenarios read it."""
    return yaml.load(response.content, Loader=ScenarioLoader)  # noqa: S506 (a safe loader)


# No server errors, and answers (status, content type, headers, body) as documented. Whether a
# request is accepted depends on state the spec cannot express (a valid token, an existing task),
# so Schemathesis's positive-acceptance / negative-rejection checks are not part of the promise.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_spec(case: schemathesis.Case, server: LiveServer) -> None:
    case.call_and_validate(base_url=server.url, timeout=10, checks=CHECKS)
    server.check()
