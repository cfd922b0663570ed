"""Schemathesis against /openapi.json with every check: the document and the server agree.

On `/api/v1` every check holds (schema-valid requests are accepted, schema-violating ones
refused, every answer has its declared shape). On the chat API every check but positive data
acceptance: Planfix answers 400 for an unknown task or contact, which no schema can foresee.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
import yaml
from flask.testing import FlaskClient
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


# Refusals that depend on state no schema can express count as accepting valid data for these
# operations: a second integration with a name or planfix_token already taken (400, pinned by a
# test of the control API), the last integration's deletion (409), and a retry while an attempt
# runs or of a delivered first message.
STATEFUL_400 = '["2xx", "3xx", "400", "401", "403", "404", "409"]'
CONFIG = schemathesis.config.SchemathesisConfig.from_str(
    f"""
[[operations]]
include-path = "/api/v1/integrations"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = {STATEFUL_400}

[[operations]]
include-path = "/api/v1/integrations/{{ref}}"
include-method = "DELETE"
checks.positive_data_acceptance.expected-statuses = {STATEFUL_400}

[[operations]]
include-path = "/api/v1/deliveries/{{delivery_id}}/retry"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = {STATEFUL_400}
"""
)
# An endless event stream and a long poll: covered by their own tests, not by fuzzing.
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG).exclude(
    path_regex=r"^/api/v1/(events|wait)$"
)
control_api = schema.exclude(path_regex=r"^/(webchat/api|chat/api|fake-chat/webhook)$")
chat_api = schema.exclude(path_regex=r"^/(api/v1/|openapi\.json)")


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


# Found by the fuzz above: URLs the declared pattern admits but urlsplit refuses.
@pytest.mark.parametrize("planfix_url", ["http://a]b/", "http://[:]/", "http://x[/"])
def test_a_planfix_url_urlsplit_refuses_is_a_reported_failure_not_a_500(
    client: FlaskClient, planfix_url: str
) -> None:
    sent = client.post(
        "/api/v1/chat/commands", json={"cmd": "getTask", "chatId": "c", "planfix_url": planfix_url}
    )
    assert sent.status_code == 200
    assert sent.get_json()["status"] is None
    assert "network" in sent.get_json()["error"]
