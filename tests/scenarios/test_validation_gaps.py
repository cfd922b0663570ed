"""Scenario validation: every problem of a file at once, at its own line, with a suggestion."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from simulator.errors import ConfigError
from simulator.scenarios.export import export_scenario
from simulator.scenarios.loader import load_file
from simulator.scenarios.matchers import OPERATORS
from simulator.scenarios.schema import scenario_schema
from tests.scenarios.test_scenarios import run_cli


def problems_of(tmp_path: Path, text: str) -> list[str]:
    """The `line: field: message` of every problem the loader reports (file name cut off)."""
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"{path}:") for line in lines), lines
    return [line.removeprefix(f"{path}:") for line in lines]


CASES = [
    pytest.param(
        """
        name: a typo in an operator
        steps:
          - send: {cmd: getTask, providerId: p, chatId: c}
            expect:
              body:
                chatId: {$regexp: "^c"}
        """,
        [
            "6: steps[0].expect.body.chatId.$regexp: unknown operator '$regexp';"
            " did you mean '$regex'?"
        ],
        id="regexp-is-a-near-miss-of-regex",
    ),
    pytest.param(
        """
        name: an unknown operator
        steps:
          - send: {cmd: getTask}
            expect: {text: {$between: [1, 2]}}
        """,
        [
            "4: steps[0].expect.text.$between: unknown operator '$between';"
            " the operators are $any, $one_of, $regex, $type"
        ],
        id="unknown-operator-lists-the-operators",
    ),
    pytest.param(
        """
        name: an operator inside one_of
        steps:
          - send: {cmd: getTask}
            expect:
              status: {$one_of: [200, {$typ: integer}]}
        """,
        [
            "5: steps[0].expect.status.$one_of[1].$typ: unknown operator '$typ';"
            " did you mean '$type'?"
        ],
        id="operators-are-checked-inside-one-of",
    ),
    pytest.param(
        """
        name: an operator with company
        steps:
          - send: {cmd: getTask}
            expect:
              body: {task: {$any: true, id: 3}}
        """,
        [
            "5: steps[0].expect.body.task: a matcher has exactly one key, the operator;"
            " found also 'id'"
        ],
        id="a-matcher-with-other-keys",
    ),
    pytest.param(
        """
        name: a wrong operator argument
        steps:
          - send: {cmd: getTask}
            expect:
              body:
                id:
                  $regex: 3
        """,
        ["7: steps[0].expect.body.id.$regex: 3 is not of type 'string'"],
        id="operator-argument-type-at-its-line",
    ),
    pytest.param(
        """
        name: a type name near miss
        steps:
          - send: {cmd: getTask}
            expect:
              body: {id: {$type: integr}}
        """,
        [
            "5: steps[0].expect.body.id.$type: 'integr' is not one of"
            " ['string', 'integer', 'number', 'boolean', 'null', 'object', 'array'];"
            " did you mean 'integer'?"
        ],
        id="enum-near-miss",
    ),
    pytest.param(
        """
        name: a status in words
        steps:
          - send: {cmd: getTask}
            expect:
              status: "two hundred"
        """,
        [
            "5: steps[0].expect.status: 'two hundred' is not an HTTP status"
            " (a number such as 200, or a {{ template }})"
        ],
        id="status-in-words",
    ),
    pytest.param(
        """
        name: an await status in words
        steps:
          - await:
              cmd: newMessage
              status: two hundred
        """,
        [
            "5: steps[0].await.status: 'two hundred' is not an HTTP status"
            " (a number such as 200, or a {{ template }})"
        ],
        id="await-status-in-words",
    ),
    pytest.param(
        """
        name: expect indented under send
        steps:
          - send:
              cmd: getTask
              expect: {status: 400}
        """,
        [
            "5: steps[0].send.expect: 'expect' belongs to the step, not to 'send';"
            " did you mean to indent it as far as 'send'?"
        ],
        id="expect-under-send",
    ),
    pytest.param(
        """
        name: save indented under reply
        steps:
          - reply:
              chatId: c
              message: hi
              save: {id: "{{ response.body.id }}"}
        """,
        [
            "6: steps[0].reply.save: 'save' belongs to the step, not to 'reply';"
            " did you mean to indent it as far as 'reply'?"
        ],
        id="save-under-reply",
    ),
    pytest.param(
        """
        name: an unknown top-level key
        descripton: what it does
        steps:
          - send: {cmd: getTask}
        """,
        ["2: descripton: unknown key 'descripton'; did you mean 'description'?"],
        id="unknown-top-level-key-at-its-line",
    ),
    pytest.param(
        """
        name: an unknown key far from anything
        steps:
          - send: {cmd: getTask}
        zzz: 1
        """,
        ["4: zzz: unknown key 'zzz'; the keys are description, integration, name, steps, vars"],
        id="unknown-top-level-key-lists-the-keys",
    ),
    pytest.param(
        """
        name: an unknown step kind
        steps:
          - sned: {cmd: getTask}
        """,
        ["3: steps[0].sned: unknown step key 'sned'; did you mean 'send'?"],
        id="unknown-step-kind-near-miss",
    ),
    pytest.param(
        """
        name: an unknown integration key
        integration:
          planfix_tokn: abc
        steps:
          - send: {cmd: getTask}
        """,
        ["3: integration.planfix_tokn: unknown key 'planfix_tokn'; did you mean 'planfix_token'?"],
        id="unknown-nested-key-near-miss",
    ),
    pytest.param(
        """
        name: a wrong type
        steps:
          - send: {cmd: getTask}
            expect:
              empty: 'yes'
        """,
        ["5: steps[0].expect.empty: 'yes' is not of type 'boolean'"],
        id="wrong-type-at-the-value",
    ),
    pytest.param(
        """
        name: every problem at once, by line
        descripton: x
        steps:
          - sned: {cmd: getTask}
          - send: {cmd: getTask}
            expect:
              status: "two hundred"
              body: {id: {$regexp: x}}
          - send:
              cmd: getTask
              expect: {}
        """,
        [
            "2: descripton: unknown key 'descripton'; did you mean 'description'?",
            "4: steps[0].sned: unknown step key 'sned'; did you mean 'send'?",
            "7: steps[1].expect.status: 'two hundred' is not an HTTP status"
            " (a number such as 200, or a {{ template }})",
            "8: steps[1].expect.body.id.$regexp: unknown operator '$regexp';"
            " did you mean '$regex'?",
            "11: steps[2].send.expect: 'expect' belongs to the step, not to 'send';"
            " did you mean to indent it as far as 'send'?",
        ],
        id="all-problems-sorted-by-line",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_a_bad_scenario_names_line_field_and_a_suggestion(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    assert problems_of(tmp_path, text) == [f"{line}" for line in expected]


@pytest.mark.parametrize(
    "status",
    ["200", "'404'", "'{{ code }}'", "{$one_of: [200, 201]}", "{$type: integer}", "{$any: true}"],
)
def test_a_status_may_be_a_number_a_template_or_a_matcher(tmp_path: Path, status: str) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "name: ok\nvars: {code: 400}\nsteps:\n  - send: {cmd: getTask}\n"
        f"    expect: {{status: {status}}}\n",
        encoding="utf-8",
    )
    assert load_file(path)[0].steps[0].expect["status"] is not None


def test_the_schema_and_the_matcher_share_one_operator_table() -> None:
    shipped = scenario_schema()["$defs"]["matcher"]["properties"]
    assert set(shipped) == set(OPERATORS)
    for name, operator in OPERATORS.items():
        assert shipped[name] == operator.schema


def test_run_prints_every_problem_of_an_invalid_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\ndescripton: y\nsteps:\n  - send: {cmd: getTask}\n"
        "    expect: {body: {id: {$regexp: a}}}\n",
        encoding="utf-8",
    )
    result = run_cli("run", str(bad))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"invalid: {bad}:2: descripton: unknown key 'descripton'; did you mean 'description'?",
        f"invalid: {bad}:5: steps[0].expect.body.id.$regexp: unknown operator '$regexp';"
        " did you mean '$regex'?",
    ]


@pytest.mark.parametrize(
    "answer",
    [
        '{"data": {"$ref": "#/x", "number": 3}}',
        '{"$regex": "looks like an operator"}',
        '[{"$type": "integer"}]',
    ],
)
def test_an_exported_answer_with_dollar_keys_is_still_a_valid_scenario(
    tmp_path: Path, answer: str
) -> None:
    from tests.test_hostile_export import _entry

    form = [["cmd", "getTask"], ["providerId", "p"], ["chatId", "c"]]
    text = export_scenario([_entry(1, form, response_body=answer)], integrations=[], employees=[])
    path = tmp_path / "exported.yaml"
    path.write_text(text, encoding="utf-8")
    (scenario,) = load_file(path)
    assert "{'$type': 'object'}" in str(scenario.steps[0].expect["body"])
