"""Checks that could not fail, made able to: the audit's defects, vacuous checks and mutants."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from simulator.scenarios.loader import load_file
from simulator.scenarios.runner import Runner, ScenarioResult, Targets
from simulator.server import LiveServer
from tests.served import Served


def run_scenario(server: LiveServer, tmp_path: Path, text: str) -> ScenarioResult:
    """Run the one scenario of `text` against `server`."""
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    [scenario] = load_file(path)
    return Runner(Targets(simulator_url=server.url)).run(scenario)


# -- bug 1: `notes` on send steps read the journal masked, so they never saw their entry ------

SEND_NOTES = """
name: notes of a send step
steps:
  - send:
      cmd: newMessage
      providerId: demo
      chatId: c-1
      contactId: c-1
      contactName: Ann
      message: hi
      content_type: {content_type}
    expect: {{status: 200, notes: {notes}}}
"""

# text/plain is read as a form with a `content-type` note; the form type has no note.
NOTES_ON_SEND = [
    pytest.param("text/plain", "none", False, id="a note fails notes: none"),
    pytest.param("text/plain", "[content-type]", True, id="the expected note passes"),
    pytest.param("text/plain", "[json-body]", False, id="a missing note fails"),
    pytest.param("application/x-www-form-urlencoded", "none", True, id="no note passes none"),
    pytest.param("application/x-www-form-urlencoded", "[content-type]", False, id="no note fails"),
]


@pytest.mark.parametrize(("content_type", "notes", "passes"), NOTES_ON_SEND)
def test_notes_on_a_send_step_are_the_journal_entry_of_that_request(
    live_server: LiveServer, tmp_path: Path, content_type: str, notes: str, passes: bool
) -> None:
    text = SEND_NOTES.format(content_type=content_type, notes=notes)
    result = run_scenario(live_server, tmp_path, text)
    assert result.ok is passes, result.steps[-1].mismatches


# -- bug 2: a restart with --db reverted what a user changed on a configured integration ------

EDITS = {"url": "http://127.0.0.1:9/hook?secret=S", "timeout": 3.5, "strict": True}


def integration_named(served: Served, name: str) -> dict[str, Any]:
    """The integration of that name, as the control API shows it."""
    answer = requests.get(f"{served.url}/api/v1/integrations/{name}", timeout=30)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def restarted(db: Path, *args: str) -> Served:
    """A second `serve` on the same database."""
    return Served("--db", str(db), *args)


@pytest.mark.slow
def test_a_restart_keeps_what_a_user_changed_on_a_configured_integration(tmp_path: Path) -> None:
    db = tmp_path / "kept.sqlite3"
    first = Served("--db", str(db))
    try:
        changed = requests.patch(f"{first.url}/api/v1/integrations/default", json=EDITS, timeout=30)
        assert changed.status_code == 200, changed.text
    finally:
        assert first.stop() == 0
    second = restarted(db)
    try:
        kept = integration_named(second, "default")
    finally:
        second.stop()
    assert {key: kept[key] for key in EDITS} == EDITS


@pytest.mark.slow
def test_a_changed_configuration_file_wins_over_the_stored_integration(tmp_path: Path) -> None:
    db = tmp_path / "kept.sqlite3"
    config = tmp_path / "sim.yaml"
    declared = {"name": "shop", "planfix_token": "a" * 32, "token": "b" * 32, "timeout": 2.0}
    config.write_text(yaml.safe_dump({"integrations": [declared]}), encoding="utf-8")
    first = Served("--db", str(db), "--config", str(config))
    try:
        changed = requests.patch(f"{first.url}/api/v1/integrations/shop", json=EDITS, timeout=30)
        assert changed.status_code == 200, changed.text
    finally:
        assert first.stop() == 0
    # The file itself changed: its declaration is applied again, edits to other fields lost.
    config.write_text(
        yaml.safe_dump({"integrations": [{**declared, "timeout": 7.0}]}), encoding="utf-8"
    )
    second = restarted(db, "--config", str(config))
    try:
        applied = integration_named(second, "shop")
    finally:
        second.stop()
    assert (applied["timeout"], applied["strict"]) == (7.0, False)
