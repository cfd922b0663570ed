"""Scenario files: YAML documents → checked `Scenario`s that remember file and line of each step."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simulator.config.yaml_source import (
    Located,
    Problem,
    load_documents,
    raise_problems,
    schema_problems,
    suggestion,
)
from simulator.errors import ConfigError
from simulator.scenarios.matchers import OPERATORS
from simulator.scenarios.schema import STEP_KINDS, scenario_schema
from simulator.scenarios.templating import LITERAL_TAG, Literal

SUFFIXES = (".yaml", ".yml")
STEP_OPTIONS = ("name", "expect", "save", "retry")
# Step keys that, indented under the step's kind, would silently become part of its body.
MISPLACEABLE = ("expect", "save", "retry")
# Schema checks that only say "none of the alternatives fit" (or name an extra key) above a path.
SUMMARY_CHECKS = ("oneOf", "anyOf", "unknown", "additionalProperties")


class ScenarioLoader(yaml.SafeLoader):
    """YAML's safe loader plus `!literal`, which marks a string the templater must not render."""


def _literal(loader: yaml.SafeLoader, node: yaml.Node) -> Literal:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"{LITERAL_TAG} marks a string, not a "
            + ("mapping" if isinstance(node, yaml.MappingNode) else "list"),
            node.start_mark,
        )
    return Literal(loader.construct_scalar(node))


ScenarioLoader.add_constructor(LITERAL_TAG, _literal)


@dataclass(frozen=True)
class Step:
    """One step: its kind, its (untemplated) body, and where it was written."""

    kind: str
    body: Any
    name: str
    expect: dict[str, Any]
    save: dict[str, str]
    source: str
    line: int
    index: int
    expect_line: int = 0
    retry_times: int = 0
    retry_delay: float = 0.0

    @property
    def where(self) -> str:
        """`file:line` of the step."""
        return f"{self.source}:{self.line}"

    @property
    def title(self) -> str:
        """What the report shows for this step, as written."""
        return self.title_for(self.body)

    def title_for(self, body: Any) -> str:
        """What the report shows for this step, given its (rendered) body."""
        if self.name:
            return self.name
        if not isinstance(body, dict):
            return f"{self.kind} {body}"
        if self.kind == "send":
            return f"send {body.get('cmd', '(no cmd)')}"
        if self.kind == "http":
            return f"http {str(body.get('method', 'GET')).upper()} {body.get('url', '')}"
        if self.kind == "await":
            what = " ".join(str(body[k]) for k in ("direction", "cmd", "chatId") if k in body)
            return f"await {what}".rstrip()
        if self.kind == "reply":
            return (
                f"reply in {'task ' + str(body['task']) if 'task' in body else body.get('chatId')}"
            )
        if self.kind == "first_message":
            return f"first_message to {body.get('contactPhone')}"
        return self.kind


@dataclass(frozen=True)
class Scenario:
    """A checked scenario document."""

    name: str
    description: str
    vars: dict[str, Any]
    integration: dict[str, Any]
    steps: tuple[Step, ...]
    source: str
    line: int
    document: int = 0

    @property
    def where(self) -> str:
        """`file:line` of the document."""
        return f"{self.source}:{self.line}"


def _step_kind_problems(doc: Located) -> list[Problem]:
    # The schema alone would report an unknown step as "not valid under any schema"; say it plainly.
    steps = doc.value.get("steps") if isinstance(doc.value, dict) else None
    if not isinstance(steps, list):
        return []
    found: list[Problem] = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        kinds = [k for k in step if k in STEP_KINDS]
        extra = [k for k in step if k not in (*STEP_KINDS, *STEP_OPTIONS)]
        path: tuple[str | int, ...] = ("steps", index)
        for key in extra:
            hint = suggestion(str(key), (*STEP_KINDS, *STEP_OPTIONS))
            found.append(
                Problem(
                    (*path, key),
                    f"unknown step key {key!r}"
                    + (hint or f"; a step is one of: {', '.join(STEP_KINDS)}"),
                )
            )
        if len(kinds) != 1 and not extra:
            reason = "no step kind" if not kinds else f"several step kinds ({', '.join(kinds)})"
            found.append(
                Problem(path, f"{reason}; a step has exactly one of: {', '.join(STEP_KINDS)}")
            )
        for kind in kinds:
            body = step[kind]
            # `expect:` indented one level too far lands in the step's body (a form field of send).
            for key in (k for k in MISPLACEABLE if isinstance(body, dict) and k in body):
                found.append(
                    Problem(
                        (*path, kind, key),
                        f"{key!r} belongs to the step, not to {kind!r};"
                        f" did you mean to indent it as far as {kind!r}?",
                    )
                )
        if isinstance(step.get("expect"), dict):
            found.extend(_operator_problems(step["expect"], (*path, "expect")))
    return found


def _operator_problems(value: Any, path: tuple[str | int, ...]) -> list[Problem]:
    """Matchers anywhere in an expectation: known operators, alone in their mapping, right args."""
    found: list[Problem] = []
    if isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_operator_problems(item, (*path, index)))
        return found
    if not isinstance(value, dict):
        return found
    operators = [k for k in value if isinstance(k, str) and k.startswith("$")]
    for key in operators:
        if key not in OPERATORS:
            hint = (
                suggestion(key, OPERATORS) or f"; the operators are {', '.join(sorted(OPERATORS))}"
            )
            found.append(Problem((*path, key), f"unknown operator {key!r}{hint}"))
    if operators and len(value) > 1:
        others = ", ".join(repr(k) for k in value if k not in operators[:1])
        found.append(
            Problem(path, f"a matcher has exactly one key, the operator; found also {others}")
        )
    elif len(operators) == 1 and operators[0] in OPERATORS:
        key = operators[0]
        for problem in schema_problems(value[key], OPERATORS[key].schema):
            found.append(Problem((*path, key, *problem.path), problem.message))
        if key == "$one_of" and isinstance(value[key], list):
            found.extend(_operator_problems(value[key], (*path, key)))
        return found
    if not operators:
        for key, item in value.items():
            found.extend(_operator_problems(item, (*path, key)))
    return found


def _covered(problem: Problem, mine: list[Problem]) -> bool:
    """Whether a schema problem only restates one the loader explained better."""
    for own in mine:
        if problem.path[: len(own.path)] == own.path:
            return True  # at or under the loader's problem
        if own.path[: len(problem.path)] == problem.path and problem.check in SUMMARY_CHECKS:
            return True  # a "not valid under any schema" above it
    return False


def check_document(doc: Located, document: int = 0) -> Scenario:
    """Validate one YAML document into a `Scenario`; ConfigError names file:line and field."""
    if not isinstance(doc.value, dict):
        raise ConfigError(doc.source, doc.start_line, "(top level)", "a scenario is a mapping")
    mine = _step_kind_problems(doc)
    theirs = [p for p in schema_problems(doc.value, scenario_schema()) if not _covered(p, mine)]
    raise_problems(doc, [*mine, *theirs])
    value: dict[str, Any] = doc.value
    steps = []
    for index, raw in enumerate(value["steps"]):
        kind = next(k for k in raw if k in STEP_KINDS)
        steps.append(
            Step(
                kind=kind,
                body=raw[kind],
                name=raw.get("name", ""),
                expect=dict(raw.get("expect") or {}),
                save=dict(raw.get("save") or {}),
                source=doc.source,
                line=doc.line(("steps", index)),
                index=index,
                expect_line=doc.line(("steps", index, "expect")),
                retry_times=int((raw.get("retry") or {}).get("times", 0)),
                retry_delay=float((raw.get("retry") or {}).get("delay", 0.5)),
            )
        )
    return Scenario(
        name=value["name"],
        description=value.get("description", ""),
        vars=dict(value.get("vars") or {}),
        integration=dict(value.get("integration") or {}),
        steps=tuple(steps),
        source=doc.source,
        line=doc.start_line,
        document=document,
    )


@dataclass(frozen=True)
class Document:
    """A document of a scenario file, before it is checked: what pytest turns into one item."""

    source: str
    index: int
    line: int
    located: Located | None = None
    error: ConfigError | None = None

    @property
    def name(self) -> str:
        """The scenario's name when it has one, else its position in the file."""
        value = self.located.value if self.located is not None else None
        if isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"]:
            return str(value["name"])
        return f"document {self.index + 1}"

    def check(self) -> Scenario:
        """The checked scenario, or the ConfigError that makes this document invalid."""
        if self.error is not None:
            raise self.error
        assert self.located is not None  # noqa: S101 - a Document has one or the other
        return check_document(self.located, self.index)


def read_documents(path: str | Path) -> list[Document]:
    """Every document of a file, unchecked; unreadable YAML becomes a Document with its error."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Document(source, 0, 1, error=ConfigError(source, None, "", f"cannot read: {exc}"))]
    found: list[Document] = []
    documents: Iterator[Located] = load_documents(text, source, ScenarioLoader)
    try:
        for located in documents:
            found.append(Document(source, len(found), located.start_line, located))
    except ConfigError as exc:
        found.append(Document(source, len(found), exc.line or 1, error=exc))
    if not found:
        found.append(
            Document(source, 0, 1, error=ConfigError(source, 1, "", "no scenario in file"))
        )
    return found


def load_file(path: str | Path) -> list[Scenario]:
    """Every scenario of a file, checked; the first invalid document raises ConfigError."""
    return [doc.check() for doc in read_documents(path)]


def scenario_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named on the command line, with directories expanded to their *.yaml/*.yml."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()))
        else:
            out.append(path)
    return out
