"""One of each: attachment pairs, the author rule and the integration mapping live in one place."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from simulator.contract import Employee, Form, Integration, Note, choose_author
from simulator.planfix.exchange import exchange

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


def _calls(name: str) -> set[str]:
    return _functions_building(
        lambda node: (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
        )
    )


def test_journal_entries_are_assembled_by_one_builder() -> None:
    assert _calls("ExchangeRecord") == {"simulator/planfix/exchange.py::exchange"}


FORM = Form((("cmd", "newMessage"), ("chatId", "c-1"), ("planfix_token", "secret")))


@pytest.mark.parametrize(
    ("given", "wanted"),
    [
        (
            {"status": 200, "body": "{}"},
            {"cmd": "newMessage", "chat_id": "c-1", "status": 200, "response_body": "{}"},
        ),
        ({"status": 200, "body": "{}", "chat_id": "c-9"}, {"chat_id": "c-9"}),
        (
            {"status": 200, "body": "{}", "dropped": True},
            {"status": None, "response_body": "", "error": "connection dropped (fault)"},
        ),
        ({"status": None, "error": "timeout: no answer"}, {"error": "timeout: no answer"}),
        (
            {"status": 200, "notes": [Note("contract", "odd")]},
            {"notes": [{"code": "contract", "text": "odd", "unknown": False}]},
        ),
    ],
)
def test_the_exchange_builder_reads_the_form_and_the_answer(
    given: dict[str, Any], wanted: dict[str, Any]
) -> None:
    built = exchange("to_chat", "planfix", "POST", "/hook", FORM, integration_id=1, **given)
    assert built.form == [["cmd", "newMessage"], ["chatId", "c-1"], ["planfix_token", "secret"]]
    assert {key: getattr(built, key) for key in wanted} == wanted
