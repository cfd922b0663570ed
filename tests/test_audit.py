"""Checks that could not fail, made able to: the audit's defects, vacuous checks and mutants."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from flask.testing import FlaskClient

from simulator.clients.http import Answer, encode_form
from simulator.contract import Integration
from simulator.planfix.delivery import check_answer
from simulator.scenarios.loader import load_file
from simulator.scenarios.results import ScenarioResult
from simulator.scenarios.runner import Runner, Targets
from simulator.serving.live import LiveServer
from simulator.store.db import Store
from simulator.web.app import close_app, create_app
from tests.conftest import PLANFIX_TOKEN
from tests.planfix.test_chat_api import INVALID, post
from tests.served import Served


def run_scenario(server: LiveServer, tmp_path: Path, text: str) -> ScenarioResult:
    """Run the one scenario of `text` against `server`."""
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    [scenario] = load_file(path)
    return Runner(Targets(simulator_url=server.url)).run(scenario)


# -- bug 1: `notes` on send steps read the journal masked, so they never saw their entry ------

SEND_NOTES = """
name: notes of a send step
steps:
  - send:
      cmd: newMessage
      providerId: demo
      chatId: c-1
      contactId: c-1
      contactName: Ann
      message: hi
      content_type: {content_type}
    expect: {{status: 200, notes: {notes}}}
"""

# text/plain is read as a form with a `content-type` note; the form type has no note.
NOTES_ON_SEND = [
    pytest.param("text/plain", "none", False, id="a note fails notes: none"),
    pytest.param("text/plain", "[content-type]", True, id="the expected note passes"),
    pytest.param("text/plain", "[json-body]", False, id="a missing note fails"),
    pytest.param("application/x-www-form-urlencoded", "none", True, id="no note passes none"),
    pytest.param("application/x-www-form-urlencoded", "[content-type]", False, id="no note fails"),
]


@pytest.mark.parametrize(("content_type", "notes", "passes"), NOTES_ON_SEND)
def test_notes_on_a_send_step_are_the_journal_entry_of_that_request(
    live_server: LiveServer, tmp_path: Path, content_type: str, notes: str, passes: bool
) -> None:
    text = SEND_NOTES.format(content_type=content_type, notes=notes)
    result = run_scenario(live_server, tmp_path, text)
    assert result.ok is passes, result.steps[-1].mismatches


# -- bug 2: a restart with --db reverted what a user changed on a configured integration ------

EDITS = {"url": "http://127.0.0.1:9/hook?secret=S", "timeout": 3.5, "strict": True}


def integration_named(served: Served, name: str) -> dict[str, Any]:
    """The integration of that name, as the control API shows it."""
    answer = requests.get(f"{served.url}/api/v1/integrations/{name}", timeout=30)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def restarted(db: Path, *args: str) -> Served:
    """A second `serve` on the same database."""
    return Served("--db", str(db), *args)


@pytest.mark.slow
def test_a_restart_keeps_what_a_user_changed_on_a_configured_integration(tmp_path: Path) -> None:
    db = tmp_path / "kept.sqlite3"
    first = Served("--db", str(db))
    try:
        changed = requests.patch(f"{first.url}/api/v1/integrations/default", json=EDITS, timeout=30)
        assert changed.status_code == 200, changed.text
    finally:
        assert first.stop() == 0
    second = restarted(db)
    try:
        kept = integration_named(second, "default")
    finally:
        second.stop()
    assert {key: kept[key] for key in EDITS} == EDITS


@pytest.mark.slow
def test_a_changed_configuration_file_wins_over_the_stored_integration(tmp_path: Path) -> None:
    db = tmp_path / "kept.sqlite3"
    config = tmp_path / "sim.yaml"
    declared = {"name": "shop", "planfix_token": "a" * 32, "token": "b" * 32, "timeout": 2.0}
    config.write_text(yaml.safe_dump({"integrations": [declared]}), encoding="utf-8")
    first = Served("--db", str(db), "--config", str(config))
    try:
        changed = requests.patch(f"{first.url}/api/v1/integrations/shop", json=EDITS, timeout=30)
        assert changed.status_code == 200, changed.text
    finally:
        assert first.stop() == 0
    # The file itself changed: its declaration is applied again, edits to other fields lost.
    config.write_text(
        yaml.safe_dump({"integrations": [{**declared, "timeout": 7.0}]}), encoding="utf-8"
    )
    second = restarted(db, "--config", str(config))
    try:
        applied = integration_named(second, "shop")
    finally:
        second.stop()
    assert (applied["timeout"], applied["strict"]) == (7.0, False)


# -- bug 3: the check order, every adjacent pair ----------------------------------------------
# method → size → body (decodable) → cmd → token → parameters → command. Each row breaks
# exactly the two checks of one pair, everything else valid; the earlier check must answer.

BIG = "x" * 1_100_000  # over the default max_body_bytes (1 MiB)
WRONG_TOKEN = "0" * 32


def order_form(**changes: str | None) -> bytes:
    """A valid getTask of a known chat, with fields changed (None: left out), form-encoded."""
    fields: dict[str, str | None] = {
        "cmd": "getTask",
        "providerId": "superchat",
        "planfix_token": PLANFIX_TOKEN,
        "chatId": "chat-1",
    }
    fields.update(changes)
    return encode_form([(k, v) for k, v in fields.items() if v is not None])


NEW_MESSAGE = [
    ("providerId", "superchat"),
    ("planfix_token", PLANFIX_TOKEN),
    ("chatId", "chat-1"),
    ("message", "Hi"),
    ("contactId", "c-1"),
    ("contactName", "Ivan"),
]

UNDECODABLE = b"&message=%zz"  # a broken percent escape: the body cannot be read as a form

CHECK_ORDER = [
    pytest.param(
        "GET",
        order_form(padding=BIG),
        405,
        {"error": "Method not allowed"},
        "GET is not",
        id="method before size",
    ),
    pytest.param(
        "POST",
        order_form(padding=BIG) + UNDECODABLE,
        413,
        None,
        "bytes >",
        id="size before body",
    ),
    pytest.param(
        "POST",
        order_form(cmd="nope") + UNDECODABLE,
        400,
        INVALID,
        "percent-encoding",
        id="body before cmd",
    ),
    pytest.param(
        "POST",
        order_form(planfix_token=WRONG_TOKEN) + UNDECODABLE,
        400,
        INVALID,
        "percent-encoding",
        id="body before token (the README's former place)",
    ),
    pytest.param(
        "POST",
        order_form(cmd="nope", planfix_token=WRONG_TOKEN),
        400,
        INVALID,
        "unknown cmd",
        id="cmd before token",
    ),
    pytest.param(
        "POST",
        order_form(planfix_token=WRONG_TOKEN, chatId=None),
        401,
        {"error": "Invalid token"},
        "no integration",
        id="token before parameters",
    ),
    pytest.param(
        "POST",
        order_form(providerId=None, chatId="unknown"),
        400,
        INVALID,
        "providerId",
        id="parameters before command",
    ),
]


@pytest.mark.parametrize(("method", "body", "status", "answer", "why"), CHECK_ORDER)
def test_each_check_answers_before_the_next_one(
    client: FlaskClient,
    method: str,
    body: bytes,
    status: int,
    answer: dict[str, str] | None,
    why: str,
) -> None:
    post(client, [("cmd", "newMessage"), *NEW_MESSAGE])  # chat-1 has a task
    response = client.open(
        "/webchat/api",
        method=method,
        data=body,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == status
    if answer is not None:
        assert response.get_json() == answer
    [entry] = client.get("/api/v1/journal?limit=1").get_json()
    assert why in entry["error"]


# -- a step without an expected status must succeed --------------------------------------------

NO_STATUS = """
name: a step that expects no status
steps:
  - http: {{method: POST, url: "{{{{ simulator_url }}}}/api/v1/tasks/{task}/complete"}}
{expect}
"""

STEPS_WITHOUT_STATUS = [
    pytest.param("999999", "", False, id="no expect: a 404 fails"),
    pytest.param("999999", "    expect: {body: {error: {$any: true}}}", False, id="body only: 4xx"),
    pytest.param("999999", "    expect: {status: 404}", True, id="an expected 404 passes"),
]


@pytest.mark.parametrize(("task", "expect", "passes"), STEPS_WITHOUT_STATUS)
def test_a_step_without_an_expected_status_requires_a_2xx(
    live_server: LiveServer, tmp_path: Path, task: str, expect: str, passes: bool
) -> None:
    result = run_scenario(live_server, tmp_path, NO_STATUS.format(task=task, expect=expect))
    assert result.ok is passes, result.steps[-1]


def test_a_step_without_expect_passes_on_a_2xx(live_server: LiveServer, tmp_path: Path) -> None:
    text = """
    name: a working step
    steps:
      - send: {cmd: newMessage, providerId: d, chatId: c, contactId: c, contactName: A, message: hi}
    """
    assert run_scenario(live_server, tmp_path, text).ok


# -- the browser tests: a missing declared dependency is an install error, not a skip ---------


def test_a_missing_playwright_package_fails_the_browser_tests_outside_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import conftest

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setitem(sys.modules, "playwright", None)  # None: the import raises ImportError
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    with pytest.raises(pytest.fail.Exception, match="playwright package is not installed"):
        conftest.sync_playwright_or_fail()


# -- delivery claims: leases are reclaimed, and nothing is claimed before it is due ----------


class Clock:
    """A settable clock for the store: time moves only when the test says."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[Store, Clock, int]]:
    """A store on a fake clock, an integration (timeout 2 s) and one delivery due at once."""
    clock = Clock(1_000_000.0)
    store = Store(str(tmp_path / "claims.sqlite3"), clock=clock)
    made = store.add_integration(
        Integration(0, "claims", "p" * 32, "t" * 32, "http://127.0.0.1:9/", timeout=2.0)
    )
    queued = store.queue_delivery(
        made.id, variant="reply", form=[("cmd", "newMessage")], message_pk=0, task_number=None
    )
    yield store, clock, queued.id
    store.close()


def test_a_lease_held_by_a_dead_worker_is_reclaimed_once_it_ends(
    clocked: tuple[Store, Clock, int],
) -> None:
    store, clock, delivery = clocked
    assert store.claim_deliveries("killed", 10) == [delivery]
    assert store.claim_deliveries("restarted", 10) == [], "a live lease is not taken over"
    clock.now += 30 + 2 + 1  # the margin, the integration's timeout, and a second
    assert store.claim_deliveries("restarted", 10) == [delivery]


@pytest.mark.parametrize(
    ("offset", "claimed"),
    [
        pytest.param(-1.0, False, id="a second before it is due: not claimed"),
        pytest.param(0.0, True, id="due: claimed"),
    ],
)
def test_a_delivery_is_not_claimed_before_its_next_attempt(
    clocked: tuple[Store, Clock, int], offset: float, claimed: bool
) -> None:
    store, clock, delivery = clocked  # queued due at the clock's time
    clock.now += offset
    assert store.claim_deliveries("w", 10) == ([delivery] if claimed else [])


# -- delivery verdicts: a first message needs both ids assigned ----------------------------

FIRST_ANSWERS = [
    pytest.param(b'{"chatId": "c-1", "contactId": "u-1"}', True, "", id="both assigned"),
    pytest.param(
        b'{"chatId": "c-1", "contactId": ""}', False, "contactId is empty", id="no contact"
    ),
    pytest.param(b'{"chatId": "", "contactId": "u-1"}', False, "chatId is empty", id="no chat"),
]


@pytest.mark.parametrize(("body", "delivered", "note"), FIRST_ANSWERS)
def test_a_first_message_answer_must_assign_chat_and_contact(
    body: bytes, delivered: bool, note: str
) -> None:
    verdict = check_answer("first", None, Answer(200, body))
    assert (verdict.delivered, verdict.note.split(":")[0]) == (delivered, note)


# -- /webchat/api outside testing mode: a bug is a JSON 500 and a journal entry ---------------


def test_a_crash_outside_testing_mode_answers_json_500_and_is_journaled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(*args: object) -> None:
        raise RuntimeError("a planted bug")

    app = create_app({"testing": False})
    try:
        monkeypatch.setattr("simulator.planfix.commands.run", crash)
        response = post(app.test_client(), [("cmd", "newMessage"), *NEW_MESSAGE])
        assert response.status_code == 500
        assert response.get_json() == {"error": "Internal error"}
        [entry] = app.test_client().get("/api/v1/journal?limit=1").get_json()
        assert (entry["status"], entry["error"]) == (500, "internal error: RuntimeError")
    finally:
        close_app(app)
