"""`planfix-sim run --simulator-url` leaves the simulator's integrations as it found them.

Each scenario's integration is deleted when the scenario ends (passed or failed) unless `--keep`;
an integration it reused (`integration: {reuse: true, planfix_token: …}`) is never deleted.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.clients import ControlClient
from tests.conftest import PLANFIX_TOKEN
from tests.served import Served

# One scenario that passes and one that fails: both must clean up.
TWO_SCENARIOS = """
name: a scenario that passes
steps:
  - send: {cmd: newMessage, providerId: p, chatId: "c-{{ run_id }}", contactId: u,
           contactName: Ann, message: hi}
    expect: {status: 200}
---
name: a scenario that fails
steps:
  - send: {cmd: getTask, providerId: p, chatId: "never-{{ run_id }}"}
    expect: {status: 200}
"""

# What the README advises: the bot under test keeps the default integration's token.
REUSE_DEFAULT = f"""
name: against the default integration
integration:
  reuse: true
  planfix_token: "{PLANFIX_TOKEN}"
  faults: {{planfix: {{latency_ms: 1}}}}
steps:
  - send: {{cmd: newMessage, providerId: p, chatId: "r-{{{{ run_id }}}}", contactId: u,
           contactName: Ann, message: hi}}
    expect: {{status: 200}}
  - http: {{url: "{{{{ simulator_url }}}}/api/v1/integrations/{{{{ integration_id }}}}"}}
    expect: {{body: {{name: default}}}}
"""

FIXED_TOKEN_OF_DEFAULT = f"""
name: a fixed token someone else holds
integration:
  planfix_token: "{PLANFIX_TOKEN}"
steps:
  - send: {{cmd: getTask, providerId: p, chatId: c}}
"""


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One `planfix-sim serve` process for the module, as a user's running simulator."""
    server = Served()
    yield server
    server.stop()


@pytest.fixture
def control(served: Served) -> ControlClient:
    """The served simulator's control client."""
    return ControlClient(served.url)


def _run(
    served: Served, tmp_path: Path, text: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "scenarios.yaml"
    path.write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "simulator.cli", "run", str(path), "--simulator-url", served.url,
         *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def _names(control: ControlClient) -> list[str]:
    return sorted(i["name"] for i in control.integrations())


def test_three_runs_leave_the_integrations_as_they_were(
    served: Served, control: ControlClient, tmp_path: Path
) -> None:
    before = _names(control)

    codes = [_run(served, tmp_path, TWO_SCENARIOS).returncode for _ in range(3)]

    assert codes == [1, 1, 1]  # the failing scenario fails each time, and still cleans up
    assert _names(control) == before


def test_keep_leaves_each_scenarios_integration_to_inspect(
    served: Served, control: ControlClient, tmp_path: Path
) -> None:
    before = {i["id"] for i in control.integrations()}

    ran = _run(served, tmp_path, TWO_SCENARIOS, "--keep")

    kept = [i for i in control.integrations() if i["id"] not in before]
    assert ran.returncode == 1
    assert sorted(i["name"].rsplit("-", 1)[0] for i in kept) == [
        "scenario-a-scenario-that-fails",
        "scenario-a-scenario-that-passes",
    ]
    for item in kept:
        control.delete_integration(item["id"])


def test_reuse_runs_against_the_integration_holding_that_token_and_leaves_it_as_it_was(
    served: Served, control: ControlClient, tmp_path: Path
) -> None:
    before = control.integrations()
    default_faults = control.faults("default")

    ran = _run(served, tmp_path, REUSE_DEFAULT)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert control.integrations() == before  # not deleted, token not rotated, nothing added
    assert control.faults("default")["planfix"] == default_faults["planfix"]


def test_a_fixed_token_another_integration_holds_fails_setup_saying_what_to_do(
    served: Served, control: ControlClient, tmp_path: Path
) -> None:
    before = control.integrations()

    ran = _run(served, tmp_path, FIXED_TOKEN_OF_DEFAULT)

    assert ran.returncode == 1
    assert (
        "setup: planfix_token is the token of integration 'default' (id 1): to run against it,"
        " add `reuse: true` under `integration:`; or pick another planfix_token"
    ) in ran.stdout
    assert control.integrations() == before


@pytest.mark.parametrize(
    ("integration", "problem"),
    [
        ("{reuse: true}", "planfix_token"),
        ("{reuse: true, planfix_token: x, url: 'http://elsewhere.test/'}", "url"),
        ("{reuse: 'yes', planfix_token: x}", "reuse"),
    ],
)
def test_reuse_takes_a_planfix_token_and_no_settings(
    served: Served, tmp_path: Path, integration: str, problem: str
) -> None:
    text = f"name: n\nintegration: {integration}\nsteps:\n  - send: {{cmd: getTask}}\n"

    ran = _run(served, tmp_path, text)

    assert ran.returncode == 2
    assert problem in ran.stderr


def test_reuse_of_a_token_no_integration_holds_fails_setup(
    served: Served, control: ControlClient, tmp_path: Path
) -> None:
    text = REUSE_DEFAULT.replace(PLANFIX_TOKEN, "no-integration-holds-this")

    ran = _run(served, tmp_path, text)

    assert ran.returncode == 1
    assert (
        "setup: reuse: no integration has this planfix_token; leave out `reuse` to create one"
    ) in ran.stdout
