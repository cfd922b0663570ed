"""`planfix-sim run`'s progress output: whole JSON values only, and counts that read right."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from simulator.scenarios.loader import Step
from simulator.scenarios.report import clip_line, count, step_line
from tests.scenarios.test_scenarios import run_cli

MATCH = {
    "integration": 7,
    "direction": "to_chat",
    "cmd": "newMessage",
    "chatId": "a-chat-with-a-rather-long-identifier",
    "fields": {"message": "hello there", "userName": "Customer"},
}
TIMEOUT_ERROR = f"nothing matched {json.dumps(MATCH)} within 10 s; closest:\n    #3 ..."


def json_parts_are_whole(line: str) -> bool:
    """Every `{`/`[` opened in `line` is closed again (a cut value ends in `…}` or `…]`)."""
    depth = 0
    in_string = False
    escaped = False
    for char in line:
        if in_string:
            escaped = not escaped and char == "\\"
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"' and depth:
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return depth == 0 and not in_string


def a_step() -> Step:
    return Step("await", {"cmd": "newMessage"}, "", {}, {}, "s.yaml", 3, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("answered 200", "answered 200", id="short-text-unchanged"),
        pytest.param("first line\nsecond line", "first line", id="first-line-only"),
        pytest.param(
            TIMEOUT_ERROR,
            'nothing matched {"integration": 7, …} within 10 s; closest:',
            id="json-cut-at-a-whole-value",
        ),
        pytest.param(
            "word " * 30,
            "word " * 16 + "…",
            id="plain-text-cut-at-a-word",
        ),
    ],
)
def test_clip_line_keeps_whole_values_and_marks_the_cut(text: str, expected: str) -> None:
    clipped = clip_line(text, 80)
    assert clipped == expected
    assert json_parts_are_whole(clipped)


def test_a_timed_out_await_step_line_is_not_cut_mid_json() -> None:
    from simulator.scenarios.results import StepResult

    line = step_line(StepResult(a_step(), False, 10_000.0, error=TIMEOUT_ERROR))
    assert json_parts_are_whole(line)
    assert "within 10 s" in line
    assert "…" in line


@pytest.mark.parametrize(
    ("number", "expected"),
    [(0, "0 steps"), (1, "1 step"), (2, "2 steps"), (11, "11 steps")],
)
def test_count_pluralises(number: int, expected: str) -> None:
    assert count(number, "step") == expected


def test_run_prints_one_step_and_a_whole_json_timeout(tmp_path: Path) -> None:
    path = tmp_path / "timeout.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: an await that times out
            steps:
              - await:
                  direction: to_chat
                  cmd: newMessage
                  chatId: a-chat-that-never-gets-a-reply-at-all
                  timeout: 0.3
            """
        ).lstrip(),
        encoding="utf-8",
    )
    result = run_cli("run", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    step = next(line for line in result.stdout.splitlines() if "FAIL" in line)
    assert json_parts_are_whole(step), step
    assert "within 0.3 s" in step
    assert re.search(r"0 passed, 1 failed; 1 step in ", result.stdout), result.stdout
    assert "1 steps" not in result.stdout


def test_a_passing_one_step_scenario_says_1_step(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(
        "name: one step\nsteps:\n  - send: {cmd: getTask, providerId: p, chatId: nobody}\n"
        "    expect: {status: 400}\n",
        encoding="utf-8",
    )
    result = run_cli("run", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed (1 step," in result.stdout
    assert "1 passed, 0 failed; 1 step in " in result.stdout
