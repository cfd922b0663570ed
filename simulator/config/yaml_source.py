"""YAML loading that remembers where each value came from, so errors name file, line and field."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError

from simulator.errors import ConfigError, raise_all

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Located:
    """A loaded YAML document with the line of every key and item in it."""

    value: Any
    source: str
    lines: dict[Path, int] = field(default_factory=dict)
    start_line: int = 1

    def line(self, path: Sequence[str | int]) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        current: Path = tuple(path)
        while current:
            if current in self.lines:
                return self.lines[current]
            current = current[:-1]
        return self.start_line


def dotted(path: Sequence[str | int]) -> str:
    """`("integrations", 0, "profile")` → `integrations[0].profile`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _collect(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _collect(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _collect(item, (*path, index), lines)


def _yaml_error(source: str, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    line = mark.line + 1 if mark is not None else None
    return ConfigError(source, line, "", f"invalid YAML: {problem}")


def load_documents(
    text: str, source: str, loader_class: type[yaml.SafeLoader] = yaml.SafeLoader
) -> Iterator[Located]:
    """Every document of a YAML stream, safely loaded, with line numbers."""
    try:
        for node in yaml.compose_all(text, Loader=loader_class):
            if node is None:
                continue
            loader = loader_class("")
            value = loader.construct_document(node)
            lines: dict[Path, int] = {}
            _collect(node, (), lines)
            yield Located(value, source, lines, node.start_mark.line + 1)
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from exc


def load_one(text: str, source: str) -> Located:
    """A single-document YAML file (an empty file is an empty mapping)."""
    docs = list(load_documents(text, source))
    if not docs:
        return Located({}, source)
    if len(docs) > 1:
        raise ConfigError(source, docs[1].start_line, "", "expected one YAML document")
    return docs[0]


def suggestion(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` for a near miss among `choices`, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a document: where (a path), what, and which check found it."""

    path: Path
    message: str
    check: str = ""

    def error(self, doc: Located) -> ConfigError:
        """The problem as `file:line: field: message`."""
        return ConfigError(
            doc.source, doc.line(self.path), dotted(self.path) or "(top level)", self.message
        )


def _unknown_keys(error: ValidationError) -> list[Problem]:
    known = dict(error.schema.get("properties", {})) if isinstance(error.schema, dict) else {}
    patterns = error.schema.get("patternProperties", {}) if isinstance(error.schema, dict) else {}
    found = []
    for key in error.instance:
        if key in known or any(re.search(p, str(key)) for p in patterns):
            continue
        hint = suggestion(str(key), known) or f"; the keys are {', '.join(sorted(known))}"
        found.append(Problem((*error.absolute_path, key), f"unknown key {key!r}{hint}", "unknown"))
    return found


def _specific(error: ValidationError) -> ValidationError:
    # For oneOf/anyOf the deepest sub-error says what is really wrong; among equals, the branch
    # whose type fits the value (a pattern it misses says more than "is not of type 'integer'").
    while error.context:
        error = sorted(
            error.context, key=lambda e: (-len(list(e.absolute_path)), e.validator == "type")
        )[0]
    return error


def _message(error: ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "pattern" and "description" in schema:
        return f"{error.instance!r} is not {schema['description']}"
    if error.validator == "enum" and isinstance(error.instance, str):
        return str(error.message) + suggestion(error.instance, [str(v) for v in schema["enum"]])
    return str(error.message)


def schema_problems(value: Any, schema: Mapping[str, Any]) -> list[Problem]:
    """Every problem JSON Schema finds in `value`, each at its own path."""
    found: list[Problem] = []
    for error in Draft202012Validator(schema).iter_errors(value):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            found.extend(_unknown_keys(error))
            continue
        specific = _specific(error)
        path = tuple(specific.absolute_path)  # context errors hold paths relative to their parent
        found.append(Problem(path, _message(specific), str(error.validator)))
    return found


def raise_problems(doc: Located, problems: Iterable[Problem]) -> None:
    """Raise every problem at once, sorted by line (ConfigErrors), or return when there is none."""
    errors = {(e.line, e.field, e.reason): e for e in (p.error(doc) for p in problems)}
    raise_all([errors[key] for key in sorted(errors, key=lambda k: (k[0] or 0, k[1], k[2]))])


def validate(doc: Located, schema: Mapping[str, Any]) -> None:
    """Check `doc` against a JSON Schema; every error names its line and field."""
    raise_problems(doc, schema_problems(doc.value, schema))
