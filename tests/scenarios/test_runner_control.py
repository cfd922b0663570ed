"""The scenario runner makes its control calls through the typed control client."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.clients.control import ControlClient
from simulator.scenarios.loader import load_file
from simulator.scenarios.runner import Runner, Targets
from simulator.serving.live import LiveServer

SCENARIO = """
name: every kind of control call
vars:
  chat: "chat-{{ run_id }}"
integration:
  faults: {planfix: {latency_ms: 1}}
steps:
  - send: {cmd: newMessage, providerId: demo, chatId: "{{ chat }}", contactId: c, contactName: C,
           message: hi}
    expect: {notes: none}
  - await: {direction: to_planfix, cmd: newMessage, chatId: "{{ chat }}"}
  - reply: {chatId: "{{ chat }}", message: hello}
    expect: {notes: none}
  - first_message: {contactPhone: "+100", message: hi}
  - faults: "off"
  - name: a refused control call fails the step with its exchange in the report
    reply: {task: 999999, message: nobody}
"""


@pytest.fixture
def control_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(method, path) of every call made through ControlClient."""
    calls: list[tuple[str, str]] = []
    real = ControlClient.raw

    def spy(self: ControlClient, method: str, path: str, *args: object, **kwargs: object) -> object:
        calls.append((method, path))
        return real(self, method, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ControlClient, "raw", spy)
    return calls


def test_the_runner_calls_the_control_api_through_the_control_client(
    tmp_path: Path, live_server: LiveServer, control_calls: list[tuple[str, str]]
) -> None:
    path = tmp_path / "calls.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    [scenario] = load_file(path)
    result = Runner(Targets(live_server.url)).run(scenario)

    assert [s.ok for s in result.steps] == [True, True, True, True, True, False]
    routes = {(method, path.split("/")[3]) for method, path in control_calls}
    assert routes >= {
        ("POST", "integrations"),
        ("PUT", "integrations"),
        ("GET", "journal"),
        ("POST", "wait"),
        ("GET", "tasks"),
        ("POST", "tasks"),
        ("POST", "first-messages"),
        ("DELETE", "integrations"),
    }
    failed = result.failed_step
    assert failed is not None
    assert failed.error.startswith("POST /api/v1/tasks/999999/replies: answered 404")
    assert [(e.method, e.status) for e in failed.exchanges] == [("POST", 404)]
