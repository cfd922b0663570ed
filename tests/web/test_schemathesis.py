"""Schemathesis against /openapi.json with every check: the document and the server agree.

On `/api/v1` every check holds (schema-valid requests are accepted, schema-violating ones
refused, every answer has its declared shape). On the chat API every check but positive data
acceptance: Planfix answers 400 for an unknown task or contact, which no schema can foresee.
"""

from __future__ import annotations

from typing import Any

import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.core import media_types

from simulator.scenarios.loader import ScenarioLoader
from simulator.serving.live import LiveServer
from simulator.web.app import close_app, create_app
from simulator.web.openapi import build_spec


def _document() -> dict[str, Any]:
    """The document the server serves (built here so pytest collects one test per operation)."""
    app = create_app({"testing": True})
    try:
        return build_spec(app)
    finally:
        close_app(app)


# An endless event stream and a long poll: covered by their own tests, not by fuzzing.
schema = schemathesis.openapi.from_dict(_document()).exclude(path_regex=r"^/api/v1/(events|wait)$")
control_api = schema.include(path_regex=r"^/(api/v1/|openapi\.json)")
chat_api = schema.include(path_regex=r"^/(webchat|chat)/api$")


# Every YAML media type: Schemathesis picks the first deserializer of the family that matches.
@schemathesis.deserializer(*media_types.YAML_MEDIA_TYPES)
def scenario_yaml(ctx: schemathesis.DeserializationContext, response: Any) -> Any:
    """The export is a scenario file: its `!literal` tag is read the way scenarios read it."""
    return yaml.load(response.content, Loader=ScenarioLoader)  # noqa: S506 (a safe loader)


FUZZ = settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@control_api.parametrize()
@FUZZ
def test_the_control_api_passes_every_check(case: schemathesis.Case, server: LiveServer) -> None:
    case.call_and_validate(base_url=server.url, timeout=10)
    server.check()


@chat_api.parametrize()
@FUZZ
def test_the_chat_api_passes_every_check_but_positive_acceptance(
    case: schemathesis.Case, server: LiveServer
) -> None:
    case.call_and_validate(
        base_url=server.url, timeout=10, excluded_checks=[checks.positive_data_acceptance]
    )
    server.check()
