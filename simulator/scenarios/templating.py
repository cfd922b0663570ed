"""Jinja2 over scenario values: sandboxed, strict about undefined names, native when whole."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

# "{{ expr }}" alone keeps the expression's type (a task number stays an integer); anything
# else renders to text.
_WHOLE = re.compile(r"^\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}$", re.DOTALL)
LITERAL_TAG = "!literal"


class Literal(str):
    """A scenario string used exactly as written, never rendered (YAML `!literal "..."`)."""

    __slots__ = ()


def is_template(text: str) -> bool:
    """Whether the renderer reads `text` as a template (a recorded value then needs `!literal`)."""
    return "{" in text and not isinstance(text, Literal)


class TemplateFailure(Exception):
    """A template could not be rendered (undefined variable, syntax, sandbox refusal)."""


def _from_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def make_environment() -> SandboxedEnvironment:
    """The sandboxed environment every scenario string renders in."""
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters["from_json"] = _from_json
    env.filters["to_json"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env


class Renderer:
    """Renders strings, and strings nested in lists and mappings, over a set of variables."""

    def __init__(self, env: SandboxedEnvironment | None = None) -> None:
        self.env = env or make_environment()

    def text(self, template: str, variables: Mapping[str, Any]) -> Any:
        """Render one string; a lone `{{ expr }}` returns the expression's value itself."""
        if not is_template(template):
            return str(template)
        try:
            whole = _WHOLE.match(template.strip())
            if whole:
                value = self.env.compile_expression(whole["expr"], undefined_to_none=False)(
                    **variables
                )
                if isinstance(value, Undefined):
                    str(value)  # raises UndefinedError naming the variable
                return value
            return self.env.from_string(template).render(**variables)
        except TemplateError as exc:
            raise TemplateFailure(f"{template!r}: {exc.message or exc}") from exc

    def value(self, value: Any, variables: Mapping[str, Any]) -> Any:
        """Render every string inside `value` (keys stay as written)."""
        if isinstance(value, str):
            return self.text(value, variables)
        if isinstance(value, list):
            return [self.value(item, variables) for item in value]
        if isinstance(value, dict):
            return {key: self.value(item, variables) for key, item in value.items()}
        return value
