"""Checks that could not fail, made able to: the audit's defects, vacuous checks and mutants."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from simulator.scenarios.loader import load_file
from simulator.scenarios.runner import Runner, ScenarioResult, Targets
from simulator.server import LiveServer


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
