"""YAML loading that remembers where each value came from, so errors name file, line and field."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from simulator.errors import ConfigError

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


def validate(doc: Located, schema: Mapping[str, Any]) -> None:
    """Check `doc` against a JSON Schema; the first error names its line and field."""
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc.value), key=lambda e: (list(e.path), e.message))
    if not errors:
        return
    error = errors[0]
    # For oneOf/anyOf the most specific sub-error says what is really wrong.
    while error.context:
        error = sorted(error.context, key=lambda e: -len(list(e.path)))[0]
    path = list(error.absolute_path)  # context errors hold paths relative to their parent
    raise ConfigError(doc.source, doc.line(path), dotted(path) or "(top level)", error.message)
