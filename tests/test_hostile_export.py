"""Exported scenarios replay what was recorded, byte for byte, and nothing else.

Every recorded value is written as a literal (`!literal` when the templater would otherwise read
it), and every value that lands in a header comment stays on that one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.config.yaml_source import load_documents
from simulator.errors import ConfigError
from simulator.records import JournalEntry
from simulator.scenarios.export import export_scenario
from simulator.scenarios.loader import ScenarioLoader, check_document, load_file
from simulator.scenarios.templating import Literal, Renderer
from tests.conftest import PLANFIX_TOKEN
from tests.served import Served

SECRET = "s3cr3t-value-that-must-never-travel"

# Each value is something the templater, YAML, or a comment would otherwise interpret.
HOSTILE = {
    "jinja expression": "{{ env.SECRET }}",
    "jinja expression padded": "  {{ env.SECRET }}  ",
    "jinja statement": "{% for x in range(3) %}{{ env.SECRET }}{% endfor %}",
    "jinja comment": "before{# hidden #}after",
    "raw block": "{% raw %}{{ env.SECRET }}{% endraw %}{{ env.SECRET }}",
    "lone braces": "{ { }} {{ {%",
    "document marker": "one\n---\nname: injected\nsteps: []\n...\n",
    "CRLF and CR": "one\r\ntwo\rthree\r\n",
    "YAML yes": "yes",
    "YAML null": "~",
    "YAML python tag": "!!python/object/apply:os.system ['id']",
    "YAML literal tag": "!literal {{ env.SECRET }}",
    "tabs": "\tcol\tcol\t",
    "NUL": "before\x00after",
    "Unicode line breaks": "a\u2028b\u2029c\x85d\x0be\x0cf",
    "quotes and backslashes": " 'q' \"dq\" \\n \\x00 ",
}
VALUES = list(HOSTILE.values())


def _by_key(pairs: list[list[str]]) -> dict[str, list[str]]:
    """Form pairs as key → values in order, without the token (the replay has its own)."""
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        if key != "planfix_token":
            out.setdefault(key, []).append(value)
    return out


def _journal(url: str, **query: str) -> list[dict[str, Any]]:
    # A whole session: the journal's largest page (the default page is 100 entries).
    params = {"reveal": "1", "limit": "1000", **query}
    answer = requests.get(url + "/api/v1/journal", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()
    return entries


def _documents(text: str) -> int:
    """How many YAML documents `text` holds (composing needs no constructors for tags)."""
    return len(list(yaml.compose_all(text, Loader=yaml.SafeLoader)))


@pytest.fixture(scope="module")
def recorded() -> Iterator[Served]:
    """A simulator that records the hostile session."""
    served = Served()
    yield served
    served.stop()


# -- over real HTTP: record, export, replay ------------------------------------------------------


def _record_hostile_session(url: str) -> None:
    for index, value in enumerate(VALUES):
        form = [
            ("cmd", "newMessage"),
            ("providerId", "hostile"),
            ("chatId", f"{index}:{value}"),
            ("planfix_token", PLANFIX_TOKEN),
            ("message", value),
            ("contactId", f"u{index}"),
            ("contactName", value),
            ("title", value),
            ("data_note", value),
            ("attachments[name]", value),
            ("attachments[url]", f"https://example.test/{index}"),
        ]
        answer = requests.post(url + "/webchat/api", data=form, timeout=30)
        assert answer.status_code == 200, (value, answer.text)
    tasks = requests.get(url + "/api/v1/tasks", timeout=30).json()
    for task, value in zip(sorted(t["number"] for t in tasks), VALUES, strict=False):
        reply = requests.post(
            url + f"/api/v1/tasks/{task}/replies", json={"message": value}, timeout=60
        )
        assert reply.status_code == 200, reply.text
    first = requests.post(
        url + "/api/v1/first-messages",
        json={"integration": "default", "contactPhone": "+15550199", "message": VALUES[0]},
        timeout=60,
    )
    assert first.status_code == 200, first.text


def _arrived(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, list[str]]]]:
    """What reached each side: the chat's requests to Planfix and Planfix's deliveries."""
    return {
        "to_planfix": [
            _by_key(e["form"])
            for e in entries
            if e["direction"] == "to_planfix" and e["cmd"] == "newMessage"
        ],
        "to_chat": [
            {"message": _by_key(e["form"])["message"]}
            for e in entries
            if e["direction"] == "to_chat" and e["party"] == "planfix"
        ],
    }


def test_hostile_values_export_as_one_document_and_replay_byte_exact(
    recorded: Served, tmp_path: Path
) -> None:
    _record_hostile_session(recorded.url)
    source = _journal(recorded.url, integration="default")
    export = requests.get(
        recorded.url + "/api/v1/journal/export", params={"integration": "default"}, timeout=30
    )
    assert export.status_code == 200, export.text
    assert _documents(export.text) == 1
    path = tmp_path / "hostile.yaml"
    path.write_text(export.text, encoding="utf-8")
    [scenario] = load_file(path)
    kinds = [step.kind for step in scenario.steps]
    assert (kinds.count("reply"), kinds.count("first_message")) == (len(VALUES), 1)

    fresh = Served()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "simulator.cli", "run", str(path), "--simulator-url", fresh.url],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "SECRET": SECRET},
            check=False,
        )
        replayed = _journal(fresh.url)
    finally:
        fresh.stop()
    assert run.returncode == 0, export.text + run.stdout + run.stderr
    assert SECRET not in json.dumps(replayed, ensure_ascii=False)
    assert SECRET not in run.stdout + run.stderr
    want, got = _arrived(source), _arrived(replayed)
    assert len(want["to_planfix"]) == len(VALUES)
    assert len(want["to_chat"]) == len(VALUES) + 1
    assert got == want


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://127.0.0.1:9/hook\n---\nname: injected\nsteps: []\n", "plain"),
        ("http://127.0.0.1:9/hook\r---\rname: injected", "evil\n---\nname: x"),
        ("http://127.0.0.1:9/hook\u2028---\u2028name: injected", "evil\u2029"),
        ("http://127.0.0.1:9/hook\x85name: injected\x00\x1b[2J", "evil\x85"),
    ],
    ids=["LF", "CR", "LINE SEPARATOR", "NEL NUL ESC"],
)
def test_an_integration_url_stays_on_its_comment_line(
    recorded: Served, tmp_path: Path, url: str, name: str
) -> None:
    created = requests.post(
        recorded.url + "/api/v1/integrations",
        json={"name": name + os.urandom(4).hex(), "url": url},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    integration = created.json()
    answer = requests.post(
        recorded.url + "/webchat/api",
        data={
            "cmd": "getTask",
            "providerId": "p",
            "chatId": "c",
            "planfix_token": integration["planfix_token"],
        },
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    text = requests.get(
        recorded.url + "/api/v1/journal/export",
        params={"integration": str(integration["id"])},
        timeout=30,
    ).text
    assert _documents(text) == 1
    header = text[: text.index("\nname: ")].split("\n")
    assert all(line.startswith("# ") for line in header), header
    assert any("integration URL http://127.0.0.1:9/hook" in line for line in header), header
    path = tmp_path / "one.yaml"
    path.write_text(text, encoding="utf-8")
    [scenario] = load_file(path)
    assert scenario.name == "exported session"
    assert [step.kind for step in scenario.steps] == ["send"]


# -- in-process: the literal marker ----------------------------------------------------------------


def _load(text: str) -> Any:
    [doc] = list(load_documents(text, "test.yaml", ScenarioLoader))
    return check_document(doc)


def test_a_literal_tagged_value_is_sent_as_written() -> None:
    scenario = _load(
        """
        name: literal
        steps:
          - send: {cmd: newMessage, message: !literal "{{ env.SECRET }}", title: "{{ 1 + 1 }}"}
        """.replace("\n        ", "\n")
    )
    body = Renderer().value(scenario.steps[0].body, {"env": {"SECRET": SECRET}})
    assert body == {"cmd": "newMessage", "message": "{{ env.SECRET }}", "title": 2}


def test_literal_marks_strings_only() -> None:
    with pytest.raises(ConfigError, match="!literal marks a string, not a mapping") as raised:
        _load("name: x\nsteps:\n  - send: !literal {cmd: getTask}\n")
    assert raised.value.line == 3


# -- in-process property: export → load → render gives back every recorded value ------------------

_HOSTILE_ALPHABET = st.sampled_from(
    [*"{}%#-.~!&*|>'\"\\:, \t\n\r\x00\x0b\x0c\x1b", "\x85", "\u2028", "\u2029", "\ufeff", "é", "ы"]
)
_TEXT = st.text(
    st.one_of(_HOSTILE_ALPHABET, st.characters(blacklist_categories=("Cs",))), max_size=40
) | st.sampled_from(VALUES)
_KEYS = (
    "providerId",
    "chatId",
    "message",
    "contactName",
    "title",
    "data_note",
    "attachments[name]",
)


def _entry(entry_id: int, form: list[list[str]], **fields: Any) -> JournalEntry:
    base: dict[str, Any] = {
        "id": entry_id,
        "ts": f"2026-01-01T00:00:{entry_id:02d}.000Z",
        "integration_id": 1,
        "direction": "to_planfix",
        "party": "planfix",
        "method": "POST",
        "url": "/webchat/api",
        "cmd": "newMessage",
        "chat_id": "",
        "form": form,
        "request_headers": {},
        "status": 200,
        "response_body": "",
        "duration_ms": 0.0,
        "notes": [],
        "fault": "",
        "error": "",
        "delivery_id": None,
    }
    return JournalEntry(**{**base, **fields})


def _sent_pairs(body: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in body.items():
        if key != "planfix_token":
            out[key] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return out


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(values=st.lists(_TEXT, min_size=len(_KEYS) + 2, max_size=len(_KEYS) + 2))
def test_export_then_load_renders_every_recorded_value_unchanged(values: list[str]) -> None:
    send_form = [["cmd", "newMessage"], *([k, v] for k, v in zip(_KEYS, values, strict=False))]
    answer, reply = values[-2], values[-1]
    entries = [
        _entry(1, send_form, status=400, response_body=answer),
        _entry(
            2,
            [
                ["cmd", "newMessage"],
                ["providerId", "p"],
                ["chatId", "c"],
                ["token", "t"],
                ["message", reply],
                ["messageId", "m1"],
            ],
            direction="to_chat",
            delivery_id=1,
            status=200,
            response_body="{}",
        ),
    ]
    text = export_scenario(entries, integrations=[], employees=[], name=values[0])
    assert _documents(text) == 1
    scenario = _load(text)
    render = Renderer()
    variables = {"env": {"SECRET": SECRET}, "planfix_token": "tok"}
    send, delivery = scenario.steps
    assert _sent_pairs(render.value(send.body, variables)) == _by_key(send_form)
    expect = render.value(send.expect, variables)
    if "text" in expect:  # an answer that parses as JSON is expected as a (loosened) body
        assert expect["text"] == answer
    assert render.value(delivery.body, variables)["message"] == reply
    assert scenario.name == (values[0] or "exported session")


def test_literal_is_a_plain_string_to_everything_else() -> None:
    value = Literal("{{ x }}")
    assert value == "{{ x }}"
    assert json.dumps({"v": value}) == '{"v": "{{ x }}"}'


# -- recorded field names that are also send-step options ------------------------------------------


def test_recorded_fields_named_like_step_options_replay_as_sent(
    recorded: Served, tmp_path: Path
) -> None:
    created = requests.post(
        recorded.url + "/api/v1/integrations", json={"name": "options-as-fields"}, timeout=30
    ).json()
    form = [
        ("cmd", "newMessage"),
        ("providerId", "p"),
        ("chatId", "options"),
        ("planfix_token", created["planfix_token"]),
        ("message", "hi"),
        ("contactId", "u"),
        ("contactName", "U"),
        ("data", "{{ env.SECRET }}"),
        ("form", "f"),
        ("attachments", "a"),
        ("content_type", "text/plain"),
        ("cmd", "getTask"),
    ]
    answer = requests.post(recorded.url + "/webchat/api", data=form, timeout=30)
    assert answer.status_code == 200, answer.text
    source = _journal(recorded.url, integration=str(created["id"]))
    text = requests.get(
        recorded.url + "/api/v1/journal/export",
        params={"integration": str(created["id"])},
        timeout=30,
    ).text
    path = tmp_path / "options.yaml"
    path.write_text(text, encoding="utf-8")
    mark = _journal(recorded.url, limit="1")[-1]["id"]
    run = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "run", str(path), "--simulator-url", recorded.url],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SECRET": SECRET},
        check=False,
    )
    assert run.returncode == 0, text + run.stdout + run.stderr
    replayed = [
        e for e in _journal(recorded.url, since=str(mark)) if e["direction"] == "to_planfix"
    ]
    assert [_by_key(e["form"]) for e in replayed] == [_by_key(source[0]["form"])]
