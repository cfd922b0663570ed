"""YAML scenarios: the CLI's verdicts and exit codes, reports, pytest items, targets, recording."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from simulator.cli import main
from simulator.clients import http as client
from simulator.scenarios.loader import load_file
from simulator.scenarios.schema import scenario_schema
from simulator.serving.live import LiveServer
from tests.conftest import CHAT_TOKEN, PLANFIX_TOKEN

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "scenarios"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`planfix-sim ARGS` in a child process, as CI runs it."""
    return subprocess.run(
        [sys.executable, "-m", "simulator.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


GOOD = """
name: getTask of an unknown chat
steps:
  - send: {cmd: getTask, providerId: demo, chatId: nobody}
    expect:
      status: 400
      body: {error: task not found}
"""

WRONG = """
name: expects the wrong answer
steps:
  - send: {cmd: getTask, providerId: demo, chatId: nobody}
    expect:
      status: 200
      body: {data: {number: {$type: integer}}}
"""


# -- the command line ------------------------------------------------------------------------


def test_the_examples_pass_from_the_command_line() -> None:
    result = run_cli("run", "scenarios/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout
    files = sorted(EXAMPLES.glob("*.yaml"))
    scenarios = [s for f in files for s in load_file(f)]
    assert f"{len(scenarios)} passed" in result.stdout
    assert result.stdout.count("  ok ") == sum(len(s.steps) for s in scenarios)


def test_every_example_declares_the_schema_for_editors() -> None:
    for path in EXAMPLES.glob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == (
            "# yaml-language-server: $schema=../simulator/scenarios/scenario.schema.json"
        ), path


def test_a_wrong_expectation_exits_1_with_a_diff_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "wrong.yaml", WRONG)
    result = run_cli("run", str(path))
    assert result.returncode == 1
    out = result.stdout
    assert f"{path}:3: step 1 (send getTask) of 'expects the wrong answer' failed" in out
    assert f"(expect: {path}:4)" in out
    assert "status: expected 200, got 400" in out
    assert "--- expected" in out
    assert "+++ actual" in out
    assert '-  "status": 200' in out
    assert '+  "status": 400' in out
    assert "request: POST http://127.0.0.1:" in out
    assert "cmd=getTask&planfix_token=" in out
    assert 'answer: 400 {"error":"task not found"}' in out
    assert f"FAILED {path}:1 expects the wrong answer" in out


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        pytest.param("name: x\nsteps: [\n", 3, "invalid YAML", id="bad-yaml"),
        pytest.param(
            "name: x\nsteps:\n  - send: {cmd: getTask}\n  - sned: {cmd: getTask}\n",
            4,
            "steps[1].sned: unknown step key 'sned'",
            id="unknown-step",
        ),
        pytest.param(
            "name: x\nsteps:\n  - send: {cmd: getTask}\n    expect:\n      empty: 'yes'\n",
            5,
            "steps[0].expect.empty: 'yes' is not of type 'boolean'",
            id="wrong-type",
        ),
        pytest.param(
            "name: x\nsteps:\n  - reply: {message: hi}\n",
            3,
            "steps[0].reply",
            id="reply-without-task-or-chat",
        ),
        pytest.param("name: x\n", 1, "(top level): 'steps' is a required property", id="no-steps"),
        pytest.param("- just\n- a list\n", 1, "a scenario is a mapping", id="not-a-mapping"),
        pytest.param(
            "name: x\nsteps:\n  - name: two kinds\n    send: {}\n    http: {url: x}\n",
            3,
            "steps[0]: several step kinds",
            id="two-kinds",
        ),
    ],
)
def test_a_malformed_file_exits_2_naming_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str
) -> None:
    good = write(tmp_path, "a_good.yaml", GOOD)
    bad = write(tmp_path, "bad.yaml", text)
    result = run_cli("run", str(good), str(bad))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"invalid: {bad}:{line}: " in result.stderr
    assert field in result.stderr
    assert result.stdout == ""  # nothing runs while a file is invalid


def test_an_undefined_variable_fails_the_step_that_uses_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "undefined.yaml",
        """
        name: typo in a variable
        vars: {chat: c1}
        steps:
          - send: {cmd: getTask, providerId: demo, chatId: "{{ chta }}"}
        """,
    )
    result = run_cli("run", str(path))
    assert result.returncode == 1
    assert f"{path}:4: step 1 (send getTask) of 'typo in a variable' failed" in result.stdout
    assert "'chta' is undefined" in result.stdout


def test_schema_subcommand_prints_the_shipped_schema() -> None:
    result = run_cli("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == scenario_schema()
    assert scenario_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_scenario_integration_settings_track_the_control_api() -> None:
    from simulator.config.settings import _INTEGRATION_PROPERTIES

    shipped = scenario_schema()["properties"]["integration"]["properties"]
    expected = {k: v for k, v in _INTEGRATION_PROPERTIES.items() if k != "name"}
    runner_only = ("faults", "reuse")  # what the runner does with the integration, not settings
    assert {k: v for k, v in shipped.items() if k not in runner_only} == expected


# -- JUnit XML -------------------------------------------------------------------------------


def test_junit_xml_has_the_elements_and_attributes_junit_requires(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD + "---\n" + WRONG.replace("expects", "also expects"))
    write(tmp_path, "b.yaml", WRONG)
    report = tmp_path / "junit.xml"
    result = run_cli("run", str(tmp_path), "--junit", str(report))
    assert result.returncode == 1
    root = ET.parse(report).getroot()  # noqa: S314 - the report this test just wrote
    # The JUnit schema (jenkins junit-10.xsd): testsuites > testsuite(name, tests, failures,
    # errors, time) > testcase(name, classname, time) > failure(message, type) | error.
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "2", "0")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    for suite in suites:
        for attribute in ("name", "tests", "failures", "errors", "time"):
            assert suite.get(attribute) is not None, attribute
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases)
        assert int(suite.get("failures", "")) == len(
            [c for c in cases if c.find("failure") is not None]
        )
        assert float(suite.get("time", "")) >= 0
        for case in cases:
            assert case.get("name")
            assert case.get("classname") == suite.get("name")
            assert float(case.get("time", "")) >= 0
    failure = suites[1].find("testcase/failure")
    assert failure is not None
    assert failure.get("type") == "mismatch"
    assert "status: expected 200, got 400" in (failure.get("message") or "")
    assert f"{tmp_path / 'b.yaml'}:3: step 1" in (failure.text or "")
    passing, failing = suites[0].findall("testcase")
    assert passing.get("name") == "getTask of an unknown chat"
    assert passing.find("failure") is None
    assert failing.find("failure") is not None


def test_junit_xml_reports_an_invalid_file_as_an_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "name: x\nsteps: 3\n")
    report = tmp_path / "junit.xml"
    result = run_cli("run", str(bad), "--junit", str(report))
    assert result.returncode == 2
    root = ET.parse(report).getroot()  # noqa: S314 - the report this test just wrote
    assert (root.get("tests"), root.get("errors")) == ("1", "1")
    error = root.find("testsuite/testcase/error")
    assert error is not None
    assert f"{bad}:2: steps: 3 is not of type 'array'" in (error.get("message") or "")


# -- pytest ----------------------------------------------------------------------------------


def test_pytest_collects_one_item_per_scenario_and_a_bad_file_fails_only_itself(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(
        ".yaml", good=GOOD + "---\n" + GOOD.replace("getTask of", "again, getTask of")
    )
    pytester.makefile(".yaml", wrong=WRONG)
    pytester.makefile(".yaml", broken="name: x\nsteps: [\n")
    pytester.makefile(".yaml", mixed=GOOD + "---\nname: invalid\nsteps:\n  - sned: {}\n")
    result = pytester.runpytest("-p", "simulator.testing.scenario_items", "-v")
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*good.yaml::getTask of an unknown chat PASSED*",
            "*good.yaml::again, getTask of an unknown chat PASSED*",
            "*mixed.yaml::getTask of an unknown chat PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(["*broken.yaml:2: invalid YAML*"])
    lines = (pytester.path / "mixed.yaml").read_text().splitlines()
    sned = next(n for n, line in enumerate(lines, 1) if "sned" in line)
    result.stdout.fnmatch_lines([f"*mixed.yaml:{sned}: steps[[]0[]].sned: unknown step key*"])
    result.stdout.fnmatch_lines(["*wrong.yaml:3: step 1 (send getTask)*failed*"])


@pytest.mark.parametrize("option", ["--simulator-url", "--planfix-sim-url"])
def test_pytest_takes_the_same_target_options(
    pytester: pytest.Pytester, live_server: LiveServer, option: str
) -> None:
    pytester.makefile(
        ".yaml",
        target="""
        name: the journal of the given simulator sees the step
        steps:
          - send: {cmd: getTask, providerId: demo, chatId: from-pytest}
            expect: {status: 400}
        """,
    )
    result = pytester.runpytest(
        "-p", "simulator.testing.scenario_items", f"{option}={live_server.url}"
    )
    result.assert_outcomes(passed=1)
    journal = client.request_json("GET", live_server.url + "/api/v1/journal?cmd=getTask").json()
    assert [e["chat_id"] for e in journal] == ["from-pytest"]


# -- an integration under test ---------------------------------------------------------------


class Bridge:
    """A small integration: bridges a fake chat platform (JSON webhook) and Planfix."""

    def __init__(self, planfix_url: str, planfix_token: str, token: str) -> None:
        self.planfix_url = planfix_url
        self.planfix_token = planfix_token
        self.token = token
        self.sent: list[dict[str, str]] = []  # what the platform's users received
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/platform/webhook":  # a platform user wrote
            data = request.get_json()
            answer = client.post_form(
                self.planfix_url,
                [
                    ("cmd", "newMessage"),
                    ("providerId", "bridge"),
                    ("planfix_token", self.planfix_token),
                    ("chatId", data["user"]),
                    ("contactId", data["user"]),
                    ("contactName", data["name"]),
                    ("message", data["text"]),
                ],
            )
            body: Any = {"forwarded": answer.status}
        elif request.path == "/planfix":  # Planfix delivers an operator's message
            if request.form.get("token") != self.token:
                response = Response(json.dumps({"error": "Invalid token"}), 401)
                return response(environ, start_response)
            chat = request.form["chatId"]
            self.sent.append({"chatId": chat, "message": request.form["message"]})
            body = {"chatId": chat, "contactId": chat}
        elif request.path == "/platform/sent":
            body = [m for m in self.sent if m["chatId"] == request.args.get("chatId")]
        else:
            return Response("not found", 404)(environ, start_response)
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)

    def start(self) -> Bridge:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


BRIDGE_PLANFIX_TOKEN = "b" * 32
BRIDGE_TOKEN = "c" * 32


@pytest.fixture
def bridge(live_server: LiveServer) -> Iterator[Bridge]:
    """The integration under test, pointed at the live simulator."""
    found = Bridge(live_server.url + "/webchat/api", BRIDGE_PLANFIX_TOKEN, BRIDGE_TOKEN).start()
    yield found
    found.stop()


BRIDGE_SCENARIO = """
name: the bridge carries messages both ways
integration:
  planfix_token: "{{ env.BRIDGE_PLANFIX_TOKEN }}"
  token: "{{ env.BRIDGE_TOKEN }}"
vars:
  bridge: "{{ env.BRIDGE_URL }}"
  user: "user-{{ run_id }}"
steps:
  - name: a platform user writes to the business
    http:
      method: POST
      url: "{{ bridge }}/platform/webhook"
      json: {user: "{{ user }}", name: Pat, text: hello from the platform}
    expect: {status: 200, body: {forwarded: 200}}
  - name: the integration passed it on to Planfix
    await: {direction: to_planfix, cmd: newMessage, chatId: "{{ user }}"}
    expect:
      status: 200
      form: {providerId: bridge, contactName: Pat, message: hello from the platform}
      notes: none
  - reply: {chatId: "{{ user }}", message: hello from Planfix}
    expect:
      status: 200
      body: {chatId: "{{ user }}", contactId: "{{ user }}"}
      delivery: {state: delivered}
      notes: none
  - name: the platform user got the operator's answer
    http: {url: "{{ bridge }}/platform/sent?chatId={{ user }}"}
    expect:
      body: [{chatId: "{{ user }}", message: hello from Planfix}]
"""


def test_a_scenario_drives_an_integration_under_test(
    tmp_path: Path,
    bridge: Bridge,
    live_server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BRIDGE_URL", bridge.url)
    monkeypatch.setenv("BRIDGE_PLANFIX_TOKEN", BRIDGE_PLANFIX_TOKEN)
    monkeypatch.setenv("BRIDGE_TOKEN", BRIDGE_TOKEN)
    path = write(tmp_path, "bridge.yaml", BRIDGE_SCENARIO)
    args = ["run", str(path), "--simulator-url", live_server.url]
    code = main([*args, "--integration-url", bridge.url + "/planfix"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert bridge.sent == [{"chatId": bridge.sent[0]["chatId"], "message": "hello from Planfix"}]
    # Run again: the fixed tokens were released, so the same file passes twice in a row.
    assert main([*args, "--integration-url", bridge.url + "/planfix"]) == 0, capsys.readouterr()
    # Without --integration-url the reply goes to the fake chat, and the bridge never sees it.
    assert main(args) == 1
    assert "bridge carries messages both ways" in capsys.readouterr().out
    assert len(bridge.sent) == 2


# -- record → export → replay ----------------------------------------------------------------


def _session(url: str) -> None:
    """A sandbox session on the default integration: both directions, a few errors."""

    def send(**fields: str) -> None:
        answer = client.post_form(
            url + "/webchat/api", [("planfix_token", PLANFIX_TOKEN), *fields.items()]
        )
        assert answer.status is not None

    base = {"providerId": "demo", "chatId": "c-1", "contactId": "c-1", "contactName": "Rita"}
    send(cmd="newMessage", message="hi", **base)
    send(cmd="getTask", providerId="demo", chatId="c-1")
    send(cmd="getContact", providerId="demo", contactId="c-1")
    send(cmd="getTask", providerId="demo", chatId="nobody")
    task = client.request_json("GET", url + "/api/v1/tasks").json()[0]["number"]
    reply = client.request_json(
        "POST", url + f"/api/v1/tasks/{task}/replies", {"message": "Hello Rita"}
    ).json()
    send(
        cmd="messageStatus",
        providerId="demo",
        messageId=reply["message"]["message_id"],
        messageStatus="read",
    )
    send(cmd="updateContact", providerId="demo", contactId="c-1", contactName="Rita R")
    first = client.request_json(
        "POST",
        url + "/api/v1/first-messages",
        {"integration": "default", "contactPhone": "+15550199", "message": "Your order"},
    ).json()
    send(
        cmd="newMessage",
        providerId="fakechat",
        chatId=first["chatId"],
        contactId=first["contactId"],
        contactName="Sam",
        message="thanks",
    )
    answer = client.post_form(url + "/webchat/api", [("cmd", "getTask"), ("planfix_token", "x")])
    assert answer.status == 401


def test_an_exported_session_replays_against_a_fresh_simulator(
    tmp_path: Path, live_server: LiveServer
) -> None:
    _session(live_server.url)
    answer = client.send("GET", live_server.url + "/api/v1/journal/export?name=recorded")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/yaml")
    text = answer.text
    assert PLANFIX_TOKEN not in text  # the old session's token does not leak into the replay
    assert CHAT_TOKEN not in text
    path = tmp_path / "recorded.yaml"
    path.write_text(text, encoding="utf-8")
    [scenario] = load_file(path)
    kinds = [s.kind for s in scenario.steps]
    assert kinds.count("reply") == 1
    assert kinds.count("first_message") == 1
    assert "send" in kinds
    result = run_cli("run", str(path))
    assert result.returncode == 0, text + result.stdout + result.stderr
    assert "1 passed, 0 failed" in result.stdout


def test_export_templates_what_the_old_session_assigned(live_server: LiveServer) -> None:
    _session(live_server.url)
    text = client.send("GET", live_server.url + "/api/v1/journal/export").text
    doc = yaml.safe_load(text)
    steps = doc["steps"]
    reply = next(i for i, s in enumerate(steps) if "reply" in s)
    assert steps[reply]["reply"]["chatId"] == "c-1"
    saved = next(iter(steps[reply]["save"]))
    status = next(s for s in steps if s.get("send", {}).get("cmd") == "messageStatus")
    assert status["send"]["messageId"] == f"{{{{ {saved} }}}}"
    get_task = next(
        s
        for s in steps
        if s.get("send", {}).get("chatId") == "c-1" and s["send"]["cmd"] == "getTask"
    )
    assert get_task["expect"] == {"status": 200, "body": {"data": {"number": {"$type": "integer"}}}}
    first = next(s for s in steps if "first_message" in s)
    assert {"{{ response.chatId }}", "{{ response.contactId }}"} <= set(first["save"].values())
    answer = next(s for s in steps if s.get("send", {}).get("providerId") == "fakechat")
    assert answer["send"]["chatId"].startswith("{{ chat_")
    assert answer["send"]["contactId"].startswith("{{ contact_")
    # Found by its token, not as the last step: the fake chat reports messageStatus from its
    # own thread, so a status step can be journaled after it.
    bad_token = next(s for s in steps if s.get("send", {}).get("planfix_token") == "x")
    assert bad_token["send"]["planfix_token"] == "x"  # a wrong token stays as recorded
    assert bad_token["expect"]["status"] == 401


def test_export_by_ids_and_refuses_bad_ids(live_server: LiveServer) -> None:
    _session(live_server.url)
    journal = client.request_json("GET", live_server.url + "/api/v1/journal").json()
    first_two = ",".join(str(e["id"]) for e in journal[:2])
    text = client.send("GET", live_server.url + f"/api/v1/journal/export?ids={first_two}").text
    assert len(yaml.safe_load(text)["steps"]) == 2
    for ids in ("1,x", "-1", "4²", "99999999999999999999"):
        bad = client.send("GET", live_server.url + f"/api/v1/journal/export?ids={quote(ids)}")
        assert bad.status == 400, ids
        assert bad.json()["detail"] == "ids must be comma-separated integers"


def test_planfix_url_sends_the_chat_side_to_another_planfix(
    tmp_path: Path, live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "elsewhere.yaml",
        """
        name: the same checks against another Planfix
        steps:
          - send: {cmd: newMessage, providerId: demo, chatId: far, contactId: far,
                   contactName: Una, message: hi}
            expect: {status: 200, notes: none}
          - send: {cmd: getTask, providerId: demo, chatId: far}
            expect: {status: 200, body: {data: {number: {$type: integer}}}}
        """,
    )
    elsewhere = live_server.url + "/webchat/api"
    code = main(["run", str(path), "--planfix-url", elsewhere, "--planfix-token", PLANFIX_TOKEN])
    assert code == 0, capsys.readouterr().out
    journal = client.request_json("GET", live_server.url + "/api/v1/journal").json()
    assert [(e["cmd"], e["chat_id"], e["status"]) for e in journal] == [
        ("newMessage", "far", 200),
        ("getTask", "far", 200),
    ]
    # Without the token the other Planfix refuses, and the scenario says so.
    assert main(["run", str(path), "--planfix-url", elsewhere]) == 1
    assert "status: expected 200, got 401" in capsys.readouterr().out
