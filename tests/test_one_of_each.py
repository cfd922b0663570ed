"""One of each: attachment pairs, the author rule and the integration mapping live in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from simulator.contract import Employee, Integration, choose_author

PACKAGE = Path(__file__).resolve().parent.parent / "simulator"
NAME_KEYS = {"attachments[name]", "ATTACHMENT_NAME"}
URL_KEYS = {"attachments[url]", "ATTACHMENT_URL"}
# Forms that are broken on purpose (n names but m urls) are not pairs, so they may be built by hand.
DELIBERATELY_UNPAIRED = {"simulator/testing/strategies.py::invalid_command_cases"}


def _functions_building(test: object) -> set[str]:
    """`file::function` for every function whose body holds a node `test` accepts."""
    found: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef):
                continue
            if any(test(node) for node in ast.walk(func)):  # type: ignore[operator]
                found.add(f"{path.relative_to(PACKAGE.parent)}::{func.name}")
    return found


def _is_name_pair(node: ast.AST) -> bool:
    """A `(attachments[name] key, value)` tuple: one half of an attachment's wire pairs."""
    if not (isinstance(node, ast.Tuple) and len(node.elts) == 2):
        return False
    key, value = node.elts
    return _is_key(key, NAME_KEYS) and not _is_key(value, URL_KEYS)


def _is_key(node: ast.AST, keys: set[str]) -> bool:
    return (isinstance(node, ast.Constant) and node.value in keys) or (
        isinstance(node, ast.Name) and node.id in keys
    )


def test_attachment_pairs_are_built_by_one_helper() -> None:
    builders = _functions_building(_is_name_pair) - DELIBERATELY_UNPAIRED
    assert builders == {"simulator/contract.py::attachment_pairs"}


ANN = Employee(1, "ann@example.com", "Ann")
BOB = Employee(2, "bob@example.com", "Bob")
TEAM = [ANN, BOB]


def _integration(default_employee: str | None = None) -> Integration:
    return Integration(1, "i", "pt", "t", "http://127.0.0.1/", default_employee=default_employee)


@pytest.mark.parametrize(
    ("email", "employees", "default", "author", "noted"),
    [
        ("bob@example.com", TEAM, None, BOB, False),
        ("BOB@example.com", TEAM, "ann@example.com", BOB, False),
        (None, TEAM, "bob@example.com", BOB, False),
        (None, TEAM, "nobody@example.com", ANN, False),
        (None, TEAM, None, ANN, False),
        ("", TEAM, None, ANN, False),
        ("eve@example.com", TEAM, "bob@example.com", BOB, True),
        ("eve@example.com", TEAM, None, ANN, True),
        (None, [], None, None, False),
    ],
)
def test_one_rule_chooses_the_author_of_replies_and_echoes(
    email: str | None,
    employees: list[Employee],
    default: str | None,
    author: Employee | None,
    noted: bool,
) -> None:
    chosen, notes = choose_author(email, employees, _integration(default))
    assert chosen == author
    assert [n.code for n in notes] == (["unknown-employee"] if noted else [])


@pytest.mark.parametrize("duplicate", ["choose_employee", "choose_echo_author"])
def test_no_second_author_rule_remains(duplicate: str) -> None:
    assert not any(
        f"def {duplicate}(" in path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")
    )
