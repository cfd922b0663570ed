"""Expectations: a JSON subset with matchers (`$any`, `$regex`, `$type`, `$one_of`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}
MISSING = object()


@dataclass(frozen=True)
class Mismatch:
    """One place where the answer differs from the expectation."""

    path: str
    expected: Any
    actual: Any
    reason: str

    def __str__(self) -> str:
        return f"{self.path or '(whole)'}: {self.reason}"


@dataclass(frozen=True)
class Operator:
    """A matcher operator: the JSON Schema of its argument and how it tests a value."""

    schema: dict[str, Any]
    test: Callable[[Any, Any], str | None]  # (argument, actual) → why it does not match, or None


def _any(arg: Any, actual: Any) -> str | None:
    return None


def _regex(arg: Any, actual: Any) -> str | None:
    ok = re.search(str(arg), _as_text(actual)) is not None
    return None if ok else f"{actual!r} !~ /{arg}/"


def _type(arg: Any, actual: Any) -> str | None:
    return None if _type_ok(str(arg), actual) else f"{actual!r} is not {arg}"


def _one_of(arg: Any, actual: Any) -> str | None:
    options = list(arg)
    if any(not compare(option, actual) for option in options):
        return None
    return f"{actual!r} is none of {options!r}"


# The one list of operators: the scenario schema and the loader's checks read it too.
OPERATORS: dict[str, Operator] = {
    "$any": Operator({"const": True, "description": "any value (the key must be present)"}, _any),
    "$regex": Operator(
        {
            "type": "string",
            "description": "the value, as text, matches this regular expression (search)",
        },
        _regex,
    ),
    "$type": Operator({"enum": list(_TYPES)}, _type),
    "$one_of": Operator(
        {
            "type": "array",
            "minItems": 1,
            "description": "equal to one of these (each may be a matcher)",
        },
        _one_of,
    ),
}
MATCHER_KEYS = frozenset(OPERATORS)


def is_matcher(value: Any) -> bool:
    """Whether `value` is a matcher mapping rather than a literal."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in MATCHER_KEYS


def _type_ok(name: str, actual: Any) -> bool:
    if isinstance(actual, bool) and name in ("integer", "number"):
        return False  # JSON keeps booleans and numbers apart; Python does not
    return isinstance(actual, _TYPES[name])


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def _as_text(actual: Any) -> str:
    if isinstance(actual, bool):
        return "true" if actual else "false"
    return "" if actual is None else str(actual)


def compare(expected: Any, actual: Any, path: str = "") -> list[Mismatch]:
    """Every mismatch between an expectation and an answer (empty: it matches)."""
    if is_matcher(expected):
        key, arg = next(iter(expected.items()))
        if actual is MISSING:
            return [Mismatch(path, expected, None, "missing")]
        reason = OPERATORS[key].test(arg, actual)
        return [] if reason is None else [Mismatch(path, expected, actual, reason)]
    if actual is MISSING:
        return [Mismatch(path, expected, None, "missing")]
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [Mismatch(path, expected, actual, f"expected an object, got {actual!r}")]
        found: list[Mismatch] = []
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else str(key)
            found.extend(compare(value, actual.get(key, MISSING), sub))
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [Mismatch(path, expected, actual, f"expected a list, got {actual!r}")]
        if len(expected) != len(actual):
            reason = f"expected {len(expected)} items, got {len(actual)}"
            return [Mismatch(path, expected, actual, reason)]
        found = []
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            found.extend(compare(want, got, f"{path}[{index}]"))
        return found
    if _equal(expected, actual):
        return []
    return [Mismatch(path, expected, actual, f"expected {expected!r}, got {actual!r}")]


def project(expected: Any, actual: Any) -> Any:
    """`actual` cut down to what `expected` talks about, so a diff shows only relevant lines."""
    if is_matcher(expected) or actual is MISSING:
        return None if actual is MISSING else actual
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return {k: project(v, actual[k]) for k, v in expected.items() if k in actual}
    if isinstance(expected, list) and isinstance(actual, list):
        shared = [project(e, a) for e, a in zip(expected, actual, strict=False)]
        return shared + actual[len(expected) :]
    return actual
