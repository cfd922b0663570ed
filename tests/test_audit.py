"""Checks that could not fail, made able to: the audit's defects, vacuous checks and mutants."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
import requests
import yaml
from flask.testing import FlaskClient

from simulator.clients.http import Answer, encode_form
from simulator.contract import (
    Attachment,
    Employee,
    Form,
    GetContact,
    GetTask,
    Integration,
    MessageStatus,
    NewMessage,
    Note,
    Options,
    Profile,
    choose_author,
    parse_command,
)
from simulator.errors import BadRequest, InvalidParameters, NotFound
from simulator.planfix import chat_api as planfix_api
from simulator.planfix import commands as account
from simulator.planfix import lifecycle
from simulator.planfix.commands import Outcome
from simulator.planfix.delivery import (
    Verdict,
    check_answer,
    first_form,
    outbound_author,
    reply_form,
)
from simulator.planfix.lifecycle import Filed
from simulator.records import MessageRecord
from simulator.scenarios.loader import load_file
from simulator.scenarios.results import ScenarioResult
from simulator.scenarios.runner import Runner, Targets
from simulator.serving.live import LiveServer
from simulator.store import Store
from simulator.web.app import close_app, create_app
from tests.conftest import CHAT_TOKEN, PLANFIX_TOKEN
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


# -- delivery verdicts: every way an answer can break the contract, note for note ----------

LONG = "x" * 250

VERDICTS = [
    pytest.param("reply", Answer(None, error="timeout: no answer within 0.3 s"),
                 Verdict(False, "timeout: no answer within 0.3 s"), id="timeout"),
    pytest.param("reply", Answer(None, error="refused: [Errno 111]"),
                 Verdict(False, "connection refused: nothing accepts connections at the "
                         "integration URL"), id="refused"),
    pytest.param("reply", Answer(None, error="reset: peer closed"),
                 Verdict(False, "connection dropped before an answer (peer closed)"), id="reset"),
    pytest.param("reply", Answer(None, error="tls: bad certificate"),
                 Verdict(False, "TLS error: bad certificate"), id="tls"),
    pytest.param("reply", Answer(None, error="network: unreachable"),
                 Verdict(False, "network error: unreachable"), id="other network error"),
    pytest.param("reply", Answer(None, error="odd"),
                 Verdict(False, "network error: odd"), id="network error without detail"),
    pytest.param("reply", Answer(503, b" busy \n"), Verdict(False, "HTTP 503, not 200: busy"),
                 id="not 200"),
    pytest.param("reply", Answer(500, b""), Verdict(False, "HTTP 500, not 200: (empty body)"),
                 id="not 200, empty"),
    pytest.param("reply", Answer(500, LONG.encode()),
                 Verdict(False, f"HTTP 500, not 200: {'x' * 200}…"), id="not 200, cut at 200"),
    pytest.param("reply", Answer(500, b"y" * 200),
                 Verdict(False, f"HTTP 500, not 200: {'y' * 200}"), id="not 200, 200 kept"),
    pytest.param("reply", Answer(200, b" \n"),
                 Verdict(False, "200 with an empty body: the contract expects JSON "
                         "{chatId, contactId}"), id="blank"),
    pytest.param("reply", Answer(200, b"OK"), Verdict(False, "200 but the body is not JSON: 'OK'"),
                 id="not JSON"),
    pytest.param("reply", Answer(200, b"\xff"),
                 Verdict(False, "200 but the body is not JSON: '\ufffd'"), id="not UTF-8"),
    pytest.param("reply", Answer(200, b"[1]"),
                 Verdict(False, "200 but the JSON is a list, not an object"), id="list"),
    pytest.param("reply", Answer(200, b"true"),
                 Verdict(False, "200 but the JSON is a boolean, not an object"), id="boolean"),
    pytest.param("reply", Answer(200, b"1.5"),
                 Verdict(False, "200 but the JSON is a number, not an object"), id="float"),
    pytest.param("reply", Answer(200, b"null"),
                 Verdict(False, "200 but the JSON is null, not an object"), id="null"),
    pytest.param("reply", Answer(200, b'"s"'),
                 Verdict(False, "200 but the JSON is str, not an object"), id="string"),
    pytest.param("reply", Answer(200, b"{}"),
                 Verdict(False, "the answer lacks chatId and contactId"), id="no keys"),
    pytest.param("reply", Answer(200, b'{"contactId": "u"}'),
                 Verdict(False, "the answer lacks chatId"), id="no chatId"),
    pytest.param("reply", Answer(200, b'{"chatId": "c-9"}'),
                 Verdict(False, "the answer lacks contactId"), id="no contactId"),
    pytest.param("reply", Answer(200, b'{"chatId": 9, "contactId": "u"}'),
                 Verdict(False, "chatId is a number (9), not a string"), id="numeric chatId"),
    pytest.param("reply", Answer(200, b'{"chatId": "c-9", "contactId": {}}'),
                 Verdict(False, "contactId is an object ({}), not a string"), id="object contact"),
    pytest.param("reply", Answer(200, b'{"chatId": "other", "contactId": "u"}'),
                 Verdict(False, "chatId 'other' is not the chatId sent ('c-9')"), id="other chat"),
    pytest.param("reply", Answer(200, b'{"chatId": "c-9", "contactId": ""}'),
                 Verdict(True, "", "c-9", ""), id="reply: the contact may be empty"),
    pytest.param("first", Answer(200, b'{"chatId": "new", "contactId": "u"}'),
                 Verdict(True, "", "new", "u"), id="first: any chat it assigns"),
    pytest.param("first", Answer(200, b'{"chatId": "", "contactId": "u"}'),
                 Verdict(False, "chatId is empty: the integration must assign the chat"),
                 id="first: no chat"),
    pytest.param("first", Answer(200, b'{"chatId": "new", "contactId": ""}'),
                 Verdict(False, "contactId is empty: the integration must assign the chat"),
                 id="first: no contact"),
]  # fmt: skip


@pytest.mark.parametrize(("variant", "answer", "verdict"), VERDICTS)
def test_each_answer_gets_its_exact_verdict(variant: str, answer: Answer, verdict: Verdict) -> None:
    assert check_answer(variant, "c-9" if variant == "reply" else None, answer) == verdict


# -- delivery forms: the wire names and their order (CONTRACT.md) --------------------------

AUTHOR = Employee(1, "ann@example.com", "Ann", "Lee", "https://x/ann.png")
OUTBOUND = Integration(1, "i", PLANFIX_TOKEN, "chat-token", "http://127.0.0.1:1/hook")


def outbound_message(*attachments: Attachment) -> MessageRecord:
    """An outbound message as the store keeps it."""
    return MessageRecord(
        1, 1014, 1, "out", "reply", "Hi!", "Ann Lee", AUTHOR.email, attachments, "m-1",
        "pending", "", "", "", "", "",
    )  # fmt: skip


AUTHOR_PAIRS = [("userName", "Ann"), ("userLastName", "Lee"), ("userIco", "https://x/ann.png")]
FILES = (Attachment("a.txt", "http://f/a"), Attachment("b.txt", "http://f/b"))
FILE_PAIRS = [
    ("attachments[name]", "a.txt"),
    ("attachments[url]", "http://f/a"),
    ("attachments[name]", "b.txt"),
    ("attachments[url]", "http://f/b"),
]


@pytest.mark.parametrize(
    ("channel", "files", "tail"),
    [
        pytest.param(None, (), [], id="no channel, no files"),
        pytest.param("whatsapp", FILES, [("channel", "whatsapp"), *FILE_PAIRS], id="both"),
    ],
)
def test_a_first_message_form_has_the_contract_names_in_order(
    channel: str | None, files: tuple[Attachment, ...], tail: list[tuple[str, str]]
) -> None:
    pairs = first_form(
        OUTBOUND, provider_id="wa", contact_phone="79051234567",
        message=outbound_message(*files), author=AUTHOR, email="task+1014@x", channel=channel,
    )  # fmt: skip
    assert pairs == [
        ("cmd", "newMessage"),
        ("providerId", "wa"),
        ("contactPhone", "79051234567"),
        ("token", "chat-token"),
        ("message", "Hi!"),
        ("messageId", "m-1"),
        *AUTHOR_PAIRS,
        ("taskEmail", "task+1014@x"),
        *tail,
    ]


@pytest.mark.parametrize(
    ("phone", "channel", "files", "tail"),
    [
        pytest.param(None, None, (), [], id="nothing optional"),
        pytest.param("", "", (), [], id="empty phone and channel are left out"),
        pytest.param(
            "7905", "tg", FILES, [("contactPhone", "7905"), ("channel", "tg"), *FILE_PAIRS],
            id="all of it",
        ),
    ],
)  # fmt: skip
def test_a_reply_form_has_the_contract_names_in_order(
    phone: str | None, channel: str | None, files: tuple[Attachment, ...], tail: list[Any]
) -> None:
    pairs = reply_form(
        OUTBOUND, provider_id="wa", chat_id="c-9", message=outbound_message(*files),
        author=AUTHOR, email="task+1014@x", contact_phone=phone, channel=channel,
    )  # fmt: skip
    assert pairs == [
        ("cmd", "newMessage"),
        ("providerId", "wa"),
        ("chatId", "c-9"),
        ("token", "chat-token"),
        ("message", "Hi!"),
        ("messageId", "m-1"),
        *AUTHOR_PAIRS,
        ("taskEmail", "task+1014@x"),
        *tail,
    ]


# -- authors: a reply's and an echo's, and the note when userEmail names nobody -------------

ANN = Employee(1, "Ann@Example.com", "Ann")
BOB = Employee(2, "bob@example.com", "Bob")
STAFF = [ANN, BOB]


def with_default(email: str | None) -> Integration:
    """The integration, naming `email` as its employee."""
    return Integration(1, "i", PLANFIX_TOKEN, "t", "u", default_employee=email)


UNKNOWN = Note("unknown-employee", "userEmail 'zed@x' is no employee; using the default")

ECHO_AUTHORS = [
    pytest.param("BOB@example.com", None, STAFF, BOB, [], id="userEmail, any case"),
    pytest.param(None, "bob@EXAMPLE.com", STAFF, BOB, [], id="the integration's employee"),
    pytest.param("", "bob@example.com", STAFF, BOB, [], id="empty userEmail: the default"),
    pytest.param("zed@x", "bob@example.com", STAFF, BOB, [UNKNOWN], id="unknown: noted"),
    pytest.param("zed@x", None, STAFF, ANN, [UNKNOWN], id="unknown, no default: the owner"),
    pytest.param(None, "nobody@x", STAFF, ANN, [], id="default names nobody: the owner"),
    pytest.param(None, None, [], None, [], id="no employees: no author"),
    pytest.param("zed@x", None, [], None, [UNKNOWN], id="no employees, unknown: noted"),
]


@pytest.mark.parametrize(("email", "default", "staff", "author", "notes"), ECHO_AUTHORS)
def test_an_echo_author_and_its_notes(
    email: str | None,
    default: str | None,
    staff: list[Employee],
    author: Employee | None,
    notes: list[Note],
) -> None:
    assert choose_author(email, staff, with_default(default)) == (author, notes)


class Staff:
    """The one store call outbound_author makes."""

    def __init__(self, employees: list[Employee]) -> None:
        self._employees = employees

    def employees(self) -> list[Employee]:
        """The account's employees, the owner first."""
        return self._employees


REPLY_AUTHORS = [
    pytest.param("BOB@example.com", None, STAFF, BOB, id="the e-mail asked for, any case"),
    pytest.param(None, "BOB@example.com", STAFF, BOB, id="the integration's employee"),
    pytest.param("", "bob@example.com", STAFF, BOB, id="empty e-mail: the integration's"),
    pytest.param(None, "nobody@x", STAFF, ANN, id="default names nobody: the owner"),
    pytest.param(None, None, STAFF, ANN, id="nothing named: the owner"),
]


@pytest.mark.parametrize(("email", "default", "staff", "author"), REPLY_AUTHORS)
def test_a_reply_author(
    email: str | None, default: str | None, staff: list[Employee], author: Employee
) -> None:
    store = cast(Store, Staff(staff))
    assert outbound_author(store, with_default(default), email) == author


@pytest.mark.parametrize(
    ("email", "staff", "error"),
    [
        pytest.param("zed@x", STAFF, "employee: no employee has the e-mail 'zed@x'", id="unknown"),
        pytest.param(None, [], "employee: the account has no employees", id="no employees"),
    ],
)
def test_a_reply_without_an_author_is_refused(
    email: str | None, staff: list[Employee], error: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        outbound_author(cast(Store, Staff(staff)), with_default(None), email)
    assert refused.value.detail == error


# -- the account's answer to each command, as a value (before HTTP) ------------------------


def run_command(store: Store, cmd: str, **fields: str) -> Outcome:
    """Parse and run `cmd` for the default integration, as /webchat/api does."""
    integration = store.integration_by_name("default")
    assert integration is not None
    command, notes = parse_command(cmd, Form.of(fields.items()), integration)
    return account.run(store, integration, command, notes)


CHAT = {"providerId": "wa", "chatId": "c-1", "planfix_token": PLANFIX_TOKEN}
CONTACT = {"providerId": "wa", "contactId": "u-1", "planfix_token": PLANFIX_TOKEN}
SAID = {**CHAT, "contactId": "u-1", "contactName": "Ann", "message": "hi"}


def unknown_note(code: str, text: str) -> Note:
    """A note on behaviour whose real Planfix answer is unknown."""
    return Note(code, f"{text} (Planfix's answer here is unknown)", unknown=True)


def test_each_command_has_its_outcome(store: Store) -> None:
    numbers = store.reserve_task_number(), store.reserve_task_number()
    first = run_command(store, "newMessage", **SAID)
    task = first.task_number
    assert task is not None
    assert task > max(numbers), "numbering goes on after reserved numbers"
    contact = first.contact_number
    assert first == Outcome("newMessage", [], task, True, True, contact)
    assert run_command(store, "newMessage", **SAID) == Outcome(
        "newMessage", [], task, True, False, contact
    )
    assert run_command(store, "getTask", **CHAT) == Outcome("getTask", [], task, True)
    assert run_command(store, "getContact", **CONTACT) == Outcome(
        "getContact", [], contact_number=contact
    )
    assert run_command(store, "updateContact", **CONTACT, contactName="Anna") == Outcome(
        "updateContact", [], contact_number=contact
    )
    created = run_command(
        store, "updateContact", **{**CONTACT, "contactId": "u-2"}, contactName="B"
    )
    assert created.notes == [
        unknown_note("unknown-contact", "updateContact for unknown contact 'u-2': created")
    ]
    assert created.contact_number not in (None, contact)
    status = {"providerId": "wa", "planfix_token": PLANFIX_TOKEN, "messageStatus": "read"}
    assert run_command(store, "messageStatus", **status, messageId="m-0") == Outcome(
        "messageStatus",
        [unknown_note("unknown-message", "messageStatus for unknown messageId 'm-0': ignored")],
    )


# -- the body of each answer, per profile ----------------------------------------------------

OBSERVED_DATA = Note("observed-answer", "data sent as a JSON string (observed profile)")
OBSERVED_EMPTY = Note(
    "observed-answer",
    "answered {} instead of an empty body (observed profile: the real body is unknown, "
    "clients parse it as JSON)",
)
ANSWERS = [
    pytest.param(Outcome("getTask", task_number=7, task_active=False), "documented",
                 "application/json", '{"data": {"number": 7}}', [], id="getTask"),
    pytest.param(Outcome("getTask", task_number=7, task_active=False), "observed",
                 "application/json", '{"data": "{\\"number\\":7,\\"statusIsActive\\":false}"}',
                 [OBSERVED_DATA], id="getTask, observed"),
    pytest.param(Outcome("getContact", contact_number=9), "documented",
                 "application/json", '{"data": {"number": 9}}', [], id="getContact"),
    pytest.param(Outcome("getContact", contact_number=9), "observed",
                 "application/json", '{"data": "{\\"number\\":9}"}', [OBSERVED_DATA],
                 id="getContact, observed"),
    pytest.param(Outcome("newMessage"), "documented", "text/plain; charset=utf-8", "", [],
                 id="newMessage"),
    pytest.param(Outcome("messageStatus"), "observed", "application/json", "{}",
                 [OBSERVED_EMPTY], id="messageStatus, observed"),
]  # fmt: skip


@pytest.mark.parametrize(("outcome", "profile", "content_type", "body", "notes"), ANSWERS)
def test_each_outcome_gets_its_body(
    outcome: Outcome, profile: Profile, content_type: str, body: str, notes: list[Note]
) -> None:
    response, said = planfix_api.answer(outcome, profile)
    assert (response.status_code, response.content_type) == (200, content_type)
    assert (response.get_data(as_text=True), said) == (body, notes)


@pytest.mark.parametrize(
    ("cmd", "fields"),
    [
        pytest.param("newMessage", SAID, id="newMessage"),
        pytest.param("getTask", CHAT, id="getTask"),
        pytest.param("getContact", CONTACT, id="getContact"),
        pytest.param("updateContact", {**CONTACT, "contactName": "Ann"}, id="updateContact"),
    ],
)
def test_a_form_note_stays_on_each_command_outcome(
    store: Store, cmd: str, fields: dict[str, str]
) -> None:
    run_command(store, "newMessage", **SAID)
    outcome = run_command(store, cmd, **fields, extra="1")
    assert outcome.notes == [Note("unlisted-field", f"extra is not a {cmd} field; ignored")]


# -- the task life cycle: what each step does to the chat, and the events it reports -------


def test_a_task_life_cycle_moves_the_chat_and_reports_each_step(store: Store) -> None:
    first = run_command(store, "newMessage", **SAID).task_number
    assert first is not None
    store.set_task_status(first, "completed")
    assert run_command(store, "getTask", **CHAT).task_active is False
    successor = run_command(store, "newMessage", **SAID).task_number
    store.set_task_status(first, "active")
    assert run_command(store, "getTask", **CHAT) == Outcome("getTask", [], first, True)
    store.set_task_status(first, "active")  # already active: no second event
    store.set_task_status(successor, "completed")  # not the chat's task: the chat stays
    store.set_task_status(successor, "completed")  # already completed: no second event
    assert run_command(store, "getTask", **CHAT) == Outcome("getTask", [], first, True)
    steps = [
        (e.integration_id, e.kind, e.data)
        for e in store.events_after(0)
        if e.kind.startswith("task.")
    ]
    created = {"title": "Chat with Ann", "chatId": "c-1"}
    assert steps == [
        (1, "task.created", {"number": first, **created, "previous": None}),
        (1, "task.completed", {"number": first}),
        (1, "task.created", {"number": successor, **created, "previous": first}),
        (1, "task.reopened", {"number": first}),
        (1, "task.completed", {"number": successor}),
    ]


def test_changing_the_status_of_a_task_that_does_not_exist_is_404(store: Store) -> None:
    with pytest.raises(NotFound) as missing:
        store.set_task_status(4242, "completed")
    assert missing.value.detail == "task 4242"


def test_a_chat_remembers_the_contact_that_opened_it(store: Store) -> None:
    run_command(store, "newMessage", **SAID)
    contact = store.contact(1, "wa", "u-1")
    assert contact is not None
    assert [(c.chat_id, c.contact_pk) for c in store.chats()] == [("c-1", contact.pk)]


# -- parsing: the exact notes each form gets, the command it builds, why it is refused -------

INTEGRATION = Integration(1, "default", PLANFIX_TOKEN, CHAT_TOKEN, "http://127.0.0.1:9/hook")
ANN_FORM = {"providerId": "wa", "chatId": "c-1", "contactId": "u-1", "contactName": "Ann"}
NO_NAME = {"providerId": "wa", "chatId": "c-1", "contactId": "u-1"}
Pairs = list[tuple[str, str]]


def form_of(fields: dict[str, str], *extra: tuple[str, str]) -> Form:
    """`fields` in order, then the `extra` pairs (repeated keys, added fields)."""
    return Form.of([*fields.items(), *extra])


def twice(key: str, first: str, second: str) -> Form:
    """A newMessage form that sends `key` twice."""
    fields = {**ANN_FORM, "message": "hi"}
    fields.pop(key, None)
    return form_of(fields, (key, first), (key, second))


def duplicate(key: str, detail: str) -> Note:
    """The note on a key sent twice whose handling by Planfix is unknown."""
    text = f"{key} sent 2 times ({detail}): Planfix's handling is unknown"
    return Note("duplicate-key", text, unknown=True)


STATUS = {"providerId": "wa", "messageId": "m-1"}
NOTED_FORMS = [
    pytest.param("observed", "newMessage", twice("chatId", "c-1", "c-1"),
                 [Note("duplicate-key", "chatId sent 2 times (same value)")],
                 id="observed: a key twice, same value"),
    pytest.param("documented", "newMessage", twice("chatId", "c-1", "c-1"),
                 [duplicate("chatId", "same value")], id="documented: a key twice, same value"),
    pytest.param("documented", "newMessage", twice("chatId", "c-1", "c-2"),
                 [duplicate("chatId", "different values; the first is used")],
                 id="documented: a key twice, different values"),
    pytest.param("observed", "newMessage", twice("chatId", "c-1", "c-2"),
                 [duplicate("chatId", "different values; the first is used")],
                 id="observed: a key twice, different values"),
    pytest.param("observed", "newMessage", form_of({**NO_NAME, "message": "hi"}),
                 [Note("observed-form", "newMessage without contactName (observed profile)")],
                 id="observed: no contactName"),
    pytest.param("observed", "newMessage", form_of({**ANN_FORM, "message": "hi"}), [],
                 id="observed: with contactName"),
    pytest.param("documented", "newMessage", form_of({**ANN_FORM, "message": "hi"}, ("extra", "1")),
                 [Note("unlisted-field", "extra is not a newMessage field; ignored")],
                 id="newMessage: an unlisted field after listed ones"),
    pytest.param("documented", "messageStatus",
                 form_of(STATUS, ("messageStatus", "delivered")),
                 [Note("status-as-sent", "messageStatus 'delivered' counts as 'sent'")],
                 id="messageStatus: an unknown status"),
    pytest.param("documented", "messageStatus", form_of(STATUS, ("messageStatus", "read")), [],
                 id="messageStatus: a known status"),
    pytest.param("documented", "newMessage",
                 form_of({**ANN_FORM, "message": "hi"}, ("attachments[name]", "a.txt"),
                         ("attachments[name]", "b.txt"), ("attachments[url]", "http://f/a")),
                 [Note("attachment-count", "2 attachments[name] but 1 attachments[url]: "
                       "Planfix's pairing is unknown", unknown=True)],
                 id="newMessage: more attachment names than urls"),
    pytest.param("documented", "newMessage",
                 form_of({**ANN_FORM, "message": "hi"}, ("data_utm", "ad")),
                 [Note("unknown-task-field",
                       "data_utm: the task template has no String field 'utm'; dropped",
                       unknown=True)],
                 id="newMessage: a data_ field the template lacks"),
]  # fmt: skip


@pytest.mark.parametrize(("profile", "cmd", "form", "notes"), NOTED_FORMS)
def test_each_form_gets_its_exact_notes(
    profile: Profile, cmd: str, form: Form, notes: list[Note]
) -> None:
    _, said = parse_command(cmd, form, replace(INTEGRATION, profile=profile))
    assert said == notes


BUILT = [
    pytest.param("getTask", {"providerId": "wa", "chatId": "c-1"}, GetTask("wa", "c-1"),
                 id="getTask"),
    pytest.param("getContact", {"providerId": "wa", "contactId": "u-1"},
                 GetContact("wa", "u-1"), id="getContact"),
    pytest.param("messageStatus", {**STATUS, "messageStatus": "read"},
                 MessageStatus("wa", "m-1", "read", None), id="messageStatus"),
    pytest.param("messageStatus", {**STATUS, "messageStatus": "oops", "messageStatusText": "x"},
                 MessageStatus("wa", "m-1", "sent", "x"), id="messageStatus, unknown status"),
]  # fmt: skip


@pytest.mark.parametrize(("cmd", "fields", "command"), BUILT)
def test_each_form_builds_its_command(cmd: str, fields: dict[str, str], command: object) -> None:
    built, _ = parse_command(cmd, form_of(fields), INTEGRATION)
    assert built == command


@pytest.mark.parametrize(
    ("cmd", "fields", "error"),
    [
        pytest.param("bogus", {}, "unknown cmd 'bogus'", id="unknown cmd"),
        pytest.param(
            "getTask",
            {"providerId": "w~a", "chatId": "c-1"},
            "providerId must not contain '~'",
            id="providerId with ~",
        ),
    ],
)
def test_a_refused_form_says_why(cmd: str, fields: dict[str, str], error: str) -> None:
    with pytest.raises(InvalidParameters) as refused:
        parse_command(cmd, form_of(fields), INTEGRATION)
    assert refused.value.detail == error


# -- the token: which field counts, what the journal says, planned faults --------------------

TOKEN_FIELD_NOTE = {
    "code": "token-field",
    "text": "token sent as 'token', not 'planfix_token': the general rules page allows it, "
    "every example uses planfix_token",
    "unknown": True,
}
GET_TASK = [("cmd", "getTask"), ("providerId", "wa"), ("chatId", "c-1")]


@pytest.mark.parametrize(
    ("tokens", "status", "notes", "error"),
    [
        pytest.param(
            [("planfix_token", PLANFIX_TOKEN), ("token", "other")],
            400,
            [],
            "no task for chat 'c-1'",
            id="planfix_token wins over token",
        ),
        pytest.param(
            [("token", PLANFIX_TOKEN)],
            400,
            [TOKEN_FIELD_NOTE],
            "no task for chat 'c-1'",
            id="token only",
        ),
        pytest.param([], 401, [], "planfix_token is missing", id="no token"),
        pytest.param(
            [("planfix_token", "f" * 32)], 401, [], "no integration has it", id="unknown token"
        ),
    ],
)
def test_each_token_form_is_journaled_with_its_notes_and_error(
    client: FlaskClient,
    store: Store,
    tokens: Pairs,
    status: int,
    notes: list[dict[str, Any]],
    error: str,
) -> None:
    assert post(client, [*GET_TASK, *tokens]).status_code == status
    [entry] = store.journal()
    assert (entry.status, entry.notes, entry.error) == (status, notes, error)


def test_a_strict_integration_refuses_the_token_field_before_checking_parameters(
    client: FlaskClient, store: Store
) -> None:
    integration = store.integration_by_name("default")
    assert integration is not None
    store.save_integration(replace(integration, strict=True))
    form = [("cmd", "getTask"), ("providerId", "wa"), ("token", PLANFIX_TOKEN)]  # no chatId
    assert post(client, form).status_code == 400
    [entry] = store.journal()
    assert entry.error == f"strict: token-field: {TOKEN_FIELD_NOTE['text']}"


def test_a_planned_fault_answers_the_next_call(client: FlaskClient) -> None:
    planned = client.put(
        "/api/v1/integrations/default/faults", json={"planfix": {"status": 503, "count": 1}}
    )
    assert planned.status_code == 200
    form = [*GET_TASK, ("planfix_token", PLANFIX_TOKEN)]
    assert post(client, form).status_code == 503
    assert post(client, form).status_code == 400  # the one use is spent: task not found


# -- filing a message: its task, its author, the task's title, fields and history ----------


def file(store: Store, integration: Integration, author: Employee | None = None,
         **fields: str) -> Filed:  # fmt: skip
    """Parse a newMessage (Ann says hi in chat c-1 unless `fields` change it) and file it."""
    said = {**ANN_FORM, "message": "hi", **fields}
    command, _ = parse_command("newMessage", form_of(said), integration)
    assert isinstance(command, NewMessage)
    return lifecycle.file_message(store, integration, command, author)


@pytest.fixture
def default(store: Store) -> Integration:
    """The store's default integration, with the template's String fields a, b and c."""
    integration = store.integration_by_name("default")
    assert integration is not None
    return replace(integration, task_fields=("a", "b", "c"))


BO = Employee(5, "bo@example.com", "Bo", "Li")
AUTHORS = [
    pytest.param({}, None, ("in", "customer", "Ann", "", ""), id="customer"),
    pytest.param({"channel": "wa-biz"}, None, ("in", "customer", "Ann", "", "wa-biz"),
                 id="customer, with a channel"),
    pytest.param({"isEcho": "1"}, None, ("in", "echo", "Integration owner", "", ""),
                 id="echo without an author"),
    pytest.param({"isEcho": "1"}, BO, ("in", "echo", "Bo Li", "bo@example.com", ""),
                 id="echo by an employee"),
    pytest.param({"isEcho": "1"}, Employee(6, "x@example.com", ""),
                 ("in", "echo", "x@example.com", "x@example.com", ""),
                 id="echo by an employee without a name"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "author", "message"), AUTHORS)
def test_a_filed_message_has_its_direction_kind_author_and_channel(
    store: Store,
    default: Integration,
    fields: dict[str, str],
    author: Employee | None,
    message: tuple[str, ...],
) -> None:
    filed = file(store, default, author, **fields)
    got = store.message(filed.message_pk)
    assert (got.direction, got.kind, got.author, got.employee_email, got.channel) == message


def test_filing_reports_the_task_the_message_and_the_contact(
    store: Store, default: Integration
) -> None:
    first = file(store, default)
    contact = store.contact(default.id, "wa", "u-1")
    assert contact is not None
    assert first == Filed(first.task_number, True, first.message_pk, contact.number, [])
    second = file(store, default, message="again")
    assert second == Filed(first.task_number, False, second.message_pk, contact.number, [])
    assert [m.text for m in store.messages(first.task_number)] == ["hi", "again"]
    assert store.message(second.message_pk).text == "again"
    assert store.task(first.task_number).description == ""


def test_a_message_after_the_task_closed_opens_a_task_with_the_history(
    store: Store, default: Integration
) -> None:
    first = file(store, default, data_a="1")
    store.set_task_status(first.task_number, "completed")
    second = file(store, default, data_b="2")
    assert (second.task_created, second.notes) == (True, [])
    task = store.task(second.task_number)
    assert task.title == "Chat with Ann"
    assert task.description.startswith(
        f"Chat history (continued from task #{first.task_number}):\n"
    )
    assert task.fields == {"b": "2"}, "a new task starts without the old task's fields"


def test_a_message_after_the_task_closed_stays_there_when_the_option_is_off(
    store: Store, default: Integration
) -> None:
    integration = replace(default, options=Options(new_task_when_closed=False))
    first = file(store, integration)
    store.set_task_status(first.task_number, "completed")
    second = file(store, integration)
    text = f"task {first.task_number} is completed; filed there (new_task_when_closed is off)"
    assert second == Filed(
        first.task_number,
        False,
        second.message_pk,
        first.contact_number,
        [Note("closed-task", text)],
    )


def test_data_fields_add_up_over_the_messages_of_a_task(store: Store, default: Integration) -> None:
    first = file(store, default, data_a="1")
    file(store, default, data_b="2")
    file(store, default, data_a="3")
    assert store.task(first.task_number).fields == {"a": "3", "b": "2"}


def test_a_new_title_renames_the_task_and_says_so(store: Store, default: Integration) -> None:
    first = file(store, default, title="Order 1")
    start = store.last_event_id()
    renamed = file(store, default, title="Order 2")
    text = (
        "title renamed the task (observed behaviour; the docs only say a title names new "
        "tasks; option rename_task_on_title)"
    )
    assert renamed.notes == [Note("task-renamed", text)]
    assert store.task(first.task_number).title == "Order 2"
    events = [
        (e.integration_id, e.kind, e.data)
        for e in store.events_after(start)
        if e.kind.startswith("task.")
    ]
    renaming = {"number": first.task_number, "title": "Order 2"}
    assert events == [(default.id, "task.renamed", renaming)]
