"""Scenario building blocks as rules: matchers, templates, step titles and loading."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from simulator.errors import ConfigError
from simulator.scenarios.loader import load_file, read_documents
from simulator.scenarios.matchers import compare, project
from simulator.scenarios.runner import Runner, Targets
from simulator.scenarios.templating import Renderer, TemplateFailure
from simulator.serving.live import LiveServer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=10,
)


@pytest.mark.parametrize(
    ("expected", "actual", "reasons"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, []),
        ({"a": 1}, {"a": 2}, ["a: expected 1, got 2"]),
        ({"a": 1}, {}, ["a: missing"]),
        ({"a": {"b": "x"}}, {"a": {"b": "x", "c": 1}}, []),
        ([1, 2], [1, 2], []),
        ([1, 2], [1, 2, 3], ["(whole): expected 2 items, got 3"]),
        ([{"a": 1}], [{"a": 1, "b": 0}], []),
        ({"a": {"$any": True}}, {"a": None}, []),
        ({"a": {"$any": True}}, {}, ["a: missing"]),
        ({"n": {"$type": "integer"}}, {"n": 1014}, []),
        ({"n": {"$type": "integer"}}, {"n": True}, ["n: True is not integer"]),
        ({"n": {"$type": "integer"}}, {"n": "1014"}, ["n: '1014' is not integer"]),
        ({"s": {"$regex": "^fc-"}}, {"s": "fc-12"}, []),
        ({"s": {"$regex": "^fc-"}}, {"s": "x"}, ["s: 'x' !~ /^fc-/"]),
        ({"s": {"$regex": "^10"}}, {"s": 1014}, []),
        ({"v": {"$one_of": ["sent", "read"]}}, {"v": "read"}, []),
        ({"v": {"$one_of": ["sent", {"$regex": "^r"}]}}, {"v": "rd"}, []),
        ({"v": {"$one_of": ["sent", "read"]}}, {"v": "error"}, ["v: 'error' is none of"]),
        (1, True, ["(whole): expected 1, got True"]),
        (False, 0, ["(whole): expected False, got 0"]),
        ({"a": 1}, [1], ["(whole): expected an object, got [1]"]),
        ("", "", []),
    ],
)
def test_compare_is_a_json_subset_with_matchers(
    expected: Any, actual: Any, reasons: list[str]
) -> None:
    found = [str(m) for m in compare(expected, actual)]
    assert len(found) == len(reasons)
    for got, want in zip(found, reasons, strict=True):
        assert got.startswith(want)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_every_value_matches_itself_and_any(value: Any) -> None:
    assert compare(value, value) == []
    assert compare({"$any": True}, value) == []


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_projection_keeps_the_verdict(expected: Any, actual: Any) -> None:
    # The diff shows the projected answer: it must fail exactly where the real answer fails.
    assert [m.path for m in compare(expected, project(expected, actual))] == [
        m.path for m in compare(expected, actual)
    ]


def test_a_lone_expression_keeps_its_type() -> None:
    render = Renderer()
    scope = {"task": 1014, "body": {"data": '{"number": 7}'}, "env": {"HOME": "/root"}}
    assert render.text("{{ task }}", scope) == 1014
    assert render.text("task {{ task }}", scope) == "task 1014"
    assert render.text("{{ (body.data | from_json).number }}", scope) == 7
    assert render.value({"a": ["{{ task }}", "x"]}, scope) == {"a": [1014, "x"]}
    assert render.text("{{ env.HOME }}/x", scope) == "/root/x"
    assert render.text("no template", scope) == "no template"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ missing }}", "'missing' is undefined"),
        ("a {{ missing }} b", "'missing' is undefined"),
        ("{{ task.nope }}", "has no attribute 'nope'"),
        ("{{ ''.__class__.__mro__ }}", "unsafe"),
        ("{{ unclosed", "unexpected end of template"),
    ],
)
def test_templates_are_strict_and_sandboxed(template: str, reason: str) -> None:
    with pytest.raises(TemplateFailure, match=reason):
        Renderer().text(template, {"task": 1014})


def test_steps_know_their_lines_and_titles(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: one\nsteps:\n  - send: {cmd: getTask}\n  - name: named\n    http: {url: x}\n"
        "    expect: {status: 200}\n---\nname: two\nsteps:\n  - await: {cmd: getTask}\n",
        encoding="utf-8",
    )
    one, two = load_file(path)
    assert [(s.line, s.title, s.expect_line) for s in one.steps] == [
        (3, "send getTask", 3),
        (4, "named", 6),
    ]
    assert (two.line, two.steps[0].line, two.steps[0].title) == (8, 10, "await getTask")


def test_a_broken_document_spoils_only_what_follows_it(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: ok\nsteps: [{http: {url: x}}]\n---\nname: [\n", encoding="utf-8")
    first, broken = read_documents(path)
    assert first.check().name == "ok"
    with pytest.raises(ConfigError, match="invalid YAML"):
        broken.check()


@pytest.fixture
def counter() -> Iterator[tuple[str, list[int]]]:
    """An HTTP endpoint answering how many times it was called: something that settles."""
    calls: list[int] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        calls.append(1)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"calls": len(calls)}).encode()]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", calls
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.mark.parametrize(("times", "passes", "calls_made"), [(5, True, 3), (1, False, 2)])
def test_retry_runs_a_step_again_while_it_fails(
    tmp_path: Path,
    live_server: LiveServer,
    counter: tuple[str, list[int]],
    times: int,
    passes: bool,
    calls_made: int,
) -> None:
    url, calls = counter
    path = tmp_path / "retry.yaml"
    path.write_text(
        f"name: settles\nsteps:\n  - http: {{url: '{url}'}}\n"
        f"    expect: {{body: {{calls: 3}}}}\n    retry: {{times: {times}, delay: 0}}\n",
        encoding="utf-8",
    )
    [scenario] = load_file(path)
    result = Runner(Targets(live_server.url)).run(scenario)
    assert result.ok is passes
    assert len(calls) == calls_made
    if not passes:
        assert result.failed_step is not None
        assert [str(m) for m in result.failed_step.mismatches] == ["body.calls: expected 3, got 2"]
