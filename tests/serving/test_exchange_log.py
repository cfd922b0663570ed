"""`planfix-sim serve` prints one line per exchange on stderr, in both directions, tokens masked.

Over real HTTP against the real server: each request carries a unique marker in its path
(query string or webhook path), so each test finds the line of its own exchange.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from logging import ERROR, INFO, WARNING
from typing import Any

import pytest
import requests

from simulator.planfix.exchange_log import level_of, reason
from simulator.store import ExchangeRecord
from tests.chat_stub import IntegrationStub, raw_answer, refused_url
from tests.conftest import CHAT_TOKEN, PLANFIX_TOKEN
from tests.served import Served, new_message

pytestmark = pytest.mark.slow

# `2026-12-04T21:30:01.123Z  in  POST /webchat/api  newMessage  200  3.1 ms  integration=default`
LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)  (?P<direction>in|out)  "
    r"(?P<method>[A-Z]+) (?P<path>\S+)  (?P<cmd>\S+)  (?P<status>\d{3}|-)  "
    r"(?P<duration>\d+\.\d) ms  integration=(?P<integration>\S+)(?:  error: (?P<error>.+))?$"
)
JSON_FIELDS = {"time", "level", "direction", "method", "path", "cmd", "status", "duration_ms"}
QUERY_SECRET = "query-secret-7f3a9c"


def marker() -> str:
    """A value unique to one exchange, carried in its path."""
    return uuid.uuid4().hex[:12]


def one_line(served: Served, mark: str) -> str:
    """The single log line of the exchange marked `mark`."""
    found = served.log_lines(mark)
    assert len(found) == 1, found or served.log[-20:]
    return found[0]


def parsed(line: str) -> dict[str, str | None]:
    """A text-format line's fields; fails the test if the line does not have the format."""
    match = LINE.match(line)
    assert match, line
    return match.groupdict()


def call(served: Served, form: dict[str, str], mark: str) -> requests.Response:
    """POST a form to the chat API under a path unique to this call."""
    return requests.post(f"{served.api}?case={mark}", data=form, timeout=30)


def deliver(served: Served, url: str) -> None:
    """Point the default integration at `url` and send it an operator reply."""
    chat = marker()
    assert call(served, new_message(chat, "hello"), chat).status_code == 200
    control = served.url + "/api/v1"
    assert requests.patch(f"{control}/integrations/default", json={"url": url}, timeout=30).ok
    task = requests.post(served.api, data=_get_task(chat), timeout=30).json()["data"]["number"]
    answer = requests.post(f"{control}/tasks/{task}/replies", json={"message": "Hi!"}, timeout=30)
    assert answer.ok, answer.text


def journaled(served: Served, text: str, timeout: float = 30) -> None:
    """Wait until the journal holds an exchange whose entry mentions `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        journal = requests.get(served.url + "/api/v1/journal?direction=to_chat", timeout=30)
        if text in journal.text:
            return
        time.sleep(0.05)
    raise AssertionError(f"no journal entry mentions {text!r}")


def closed_port_url(mark: str) -> str:
    """An integration URL where nothing listens, with a secret in its query string."""
    return f"{refused_url()}-{mark}?secret={QUERY_SECRET}"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One server with the default log settings for the tests that do not change it."""
    running = Served()
    yield running
    running.stop()


def _wrong_token(chat: str) -> dict[str, str]:
    return {**new_message(chat, "hello"), "planfix_token": "0" * 32}


def _missing_parameters(chat: str) -> dict[str, str]:
    return {"cmd": "newMessage", "providerId": "rel", "chatId": chat, **_token()}


def _get_task(chat: str) -> dict[str, str]:
    return {"cmd": "getTask", "providerId": "rel", "chatId": chat, **_token()}


def _token() -> dict[str, str]:
    return {"planfix_token": PLANFIX_TOKEN}


@pytest.mark.parametrize(
    ("form", "status", "cmd", "integration", "has_error"),
    [
        pytest.param(lambda c: new_message(c, "hi"), 200, "newMessage", "default", False, id="200"),
        pytest.param(_wrong_token, 401, "newMessage", "-", True, id="401-wrong-token"),
        pytest.param(_missing_parameters, 400, "newMessage", "default", True, id="400-params"),
        pytest.param(_get_task, 400, "getTask", "default", True, id="400-task-not-found"),
    ],
)
def test_each_exchange_prints_one_line_with_its_fields(
    served: Served, form: Any, status: int, cmd: str, integration: str, has_error: bool
) -> None:
    mark = marker()
    assert call(served, form(mark), mark).status_code == status
    fields = parsed(one_line(served, mark))
    assert fields["direction"] == "in"
    assert (fields["method"], fields["path"]) == ("POST", f"/webchat/api?case={mark}")
    assert (fields["cmd"], fields["status"]) == (cmd, str(status))
    assert fields["integration"] == integration
    assert bool(fields["error"]) == has_error


def test_a_5xx_answer_prints_a_line_with_its_reason(served: Served) -> None:
    faults = f"{served.url}/api/v1/integrations/default/faults"
    assert requests.put(faults, json={"planfix": {"status": 503, "count": 1}}, timeout=30).ok
    mark = marker()
    assert call(served, new_message(mark, "hi"), mark).status_code == 503
    fields = parsed(one_line(served, mark))
    assert (fields["status"], fields["integration"]) == ("503", "default")
    assert "status=503" in (fields["error"] or "")


def test_a_failed_delivery_prints_its_reason(served: Served) -> None:
    mark = marker()
    deliver(served, closed_port_url(mark))
    fields = parsed(one_line(served, mark))
    assert (fields["direction"], fields["method"], fields["cmd"]) == ("out", "POST", "newMessage")
    assert (fields["status"], fields["integration"]) == ("-", "default")
    assert "connection refused" in (fields["error"] or "")


def test_a_delivery_answered_404_prints_the_status_and_reason(served: Served) -> None:
    mark = marker()
    deliver(served, f"{served.url}/no-such-hook-{mark}")
    fields = parsed(one_line(served, mark))
    assert (fields["direction"], fields["status"]) == ("out", "404")
    assert "HTTP 404" in (fields["error"] or "")


def test_pages_and_the_control_api_print_nothing(served: Served) -> None:
    mark = marker()
    assert requests.get(f"{served.url}/api/v1/status?case={mark}", timeout=30).ok
    assert requests.get(f"{served.url}/?case={mark}", timeout=30).ok
    # The line of a later exchange proves the server has written what it would.
    assert call(served, new_message(mark, "hi"), "after-" + mark).ok
    one_line(served, "after-" + mark)
    assert not [line for line in served.log if f"case={mark}" in line]


def test_tokens_never_appear_in_the_log() -> None:
    served = Served()
    try:
        mark = marker()
        # Secrets in a query string, by name; the chat token in a webhook's path, by value.
        query = f"planfix_token={PLANFIX_TOKEN}&token={CHAT_TOKEN}&case={mark}"
        assert requests.post(f"{served.api}?{query}", data=new_message(mark, "hi"), timeout=30).ok
        one_line(served, mark)
        deliver(served, closed_port_url(mark).replace("?", f"/{CHAT_TOKEN}?"))
        one_line(served, f"-{mark}/")
    finally:
        served.stop()
    for secret in (PLANFIX_TOKEN, CHAT_TOKEN, QUERY_SECRET):
        assert secret not in served.stderr


def test_an_answer_body_can_neither_forge_a_line_nor_show_a_token(served: Served) -> None:
    mark = marker()
    forged = f"2026-12-04T21:30:01.123Z  in  POST /webchat/api  forged-{mark}"
    stub = IntegrationStub(default=lambda _: raw_answer(f"oops {CHAT_TOKEN}\n{forged}", 500))
    try:
        deliver(served, f"{stub.url}/hook-{mark}")
        line = one_line(served, f"hook-{mark}")
    finally:
        stub.stop()
    assert (parsed(line)["status"], parsed(line)["direction"]) == ("500", "out")
    assert "\\n2026-12-04" in line  # the body's newline, written as two characters
    assert not [logged for logged in served.log if logged.startswith(forged[:30])]
    assert CHAT_TOKEN not in line


def test_quiet_prints_failures_only() -> None:
    served = Served("--quiet")
    try:
        ok, bad = marker(), marker()
        assert call(served, new_message(ok, "hi"), ok).status_code == 200
        assert call(served, _wrong_token(bad), bad).status_code == 401
        failed = marker()
        deliver(served, closed_port_url(failed))
        assert "connection refused" in one_line(served, failed)
    finally:
        served.stop()
    assert ok not in served.stderr
    assert bad not in served.stderr
    assert "  in  " not in served.stderr  # nor the newMessage and getTask of `deliver`


def test_log_level_error_prints_errors_but_not_warnings() -> None:
    served = Served("--log-level", "error")
    try:
        answered_404, refused = marker(), marker()
        deliver(served, f"{served.url}/no-such-hook-{answered_404}")
        journaled(served, answered_404)
        deliver(served, closed_port_url(refused))
        assert "connection refused" in one_line(served, refused)
    finally:
        served.stop()
    assert answered_404 not in served.stderr


def test_log_level_debug_adds_a_line_per_page_and_control_api_request() -> None:
    served = Served("--log-level", "debug")
    try:
        mark = marker()
        page = requests.get(f"{served.url}/?admin_token={QUERY_SECRET}&case={mark}", timeout=30)
        assert page.ok
        fields = parsed(one_line(served, mark))
        missing = requests.get(f"{served.url}/api/v1/nothing-here?case=s{mark}", timeout=30)
        assert missing.status_code == 404
        refused = parsed(one_line(served, f"s{mark}"))
    finally:
        served.stop()
    assert (fields["direction"], fields["method"], fields["cmd"]) == ("in", "GET", "-")
    assert fields["path"] is not None
    assert fields["path"].startswith("/?admin_token=")
    assert fields["path"].endswith(f"&case={mark}")
    assert (refused["path"], refused["status"]) == (f"/api/v1/nothing-here?case=s{mark}", "404")
    assert QUERY_SECRET not in served.stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(("--log-format", "json"), {}, id="flag"),
        pytest.param((), {"SIMULATOR_LOG_FORMAT": "json"}, id="environment"),
    ],
)
def test_json_format_prints_one_object_per_line_with_the_fields(
    args: tuple[str, ...], env: dict[str, str]
) -> None:
    served = Served(*args, env=env)
    try:
        ok, failed = marker(), marker()
        assert call(served, new_message(ok, "hi"), ok).status_code == 200
        entry = json.loads(one_line(served, ok))
        deliver(served, closed_port_url(failed))
        failure = json.loads(one_line(served, failed))
    finally:
        served.stop()
    assert entry.keys() >= JSON_FIELDS
    assert entry["direction"] == "in"
    assert (entry["method"], entry["path"]) == ("POST", f"/webchat/api?case={ok}")
    assert (entry["cmd"], entry["status"], entry["integration"]) == ("newMessage", 200, "default")
    assert entry["level"] == "info"
    assert isinstance(entry["duration_ms"], float)
    assert (failure["direction"], failure["status"], failure["level"]) == ("out", None, "error")
    assert "connection refused" in failure["error"]
    for line in served.log:
        if line.startswith("{"):
            json.loads(line)


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        pytest.param(("--log-level", "loud"), {}, ("loud", "debug"), id="flag"),
        pytest.param((), {"SIMULATOR_LOG_LEVEL": "loud"}, ("loud", "debug"), id="env-level"),
        pytest.param((), {"SIMULATOR_LOG_FORMAT": "xml"}, ("xml", "json"), id="env-format"),
    ],
)
def test_a_bad_log_setting_is_refused_with_one_line_naming_the_choices(
    args: tuple[str, ...], env: dict[str, str], named: tuple[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert all(word in done.stderr for word in named), done.stderr


def _record(direction: str, party: str, status: int | None, **more: Any) -> ExchangeRecord:
    return ExchangeRecord(direction, party, "POST", "/webchat/api", status=status, **more)


REFUSED_NOTE = {"code": "contract", "text": "connection refused: nothing accepts connections"}
BAD_JSON_NOTE = {"code": "contract", "text": "200 but the body is not JSON: 'ok'"}


@pytest.mark.parametrize(
    ("record", "level", "why"),
    [
        pytest.param(_record("to_planfix", "planfix", 200), INFO, "", id="in-200"),
        pytest.param(
            _record("to_planfix", "planfix", 401, error="no integration has it"),
            INFO,
            "no integration has it",
            id="in-401-the-callers-fault",
        ),
        pytest.param(
            _record("to_planfix", "planfix", 503, fault="status=503"),
            ERROR,
            "fault status=503",
            id="in-5xx",
        ),
        pytest.param(
            _record("to_planfix", "planfix", None, error="connection dropped (fault)"),
            ERROR,
            "connection dropped (fault)",
            id="in-no-answer",
        ),
        pytest.param(_record("to_chat", "fake_chat", 400), INFO, "", id="fake-chat-webhook-400"),
        pytest.param(_record("to_chat", "planfix", 200), INFO, "", id="delivered"),
        pytest.param(
            _record("to_chat", "planfix", 200, notes=[BAD_JSON_NOTE]),
            WARNING,
            BAD_JSON_NOTE["text"],
            id="delivery-200-against-the-contract",
        ),
        pytest.param(_record("to_chat", "planfix", 404), WARNING, "", id="delivery-404"),
        pytest.param(
            _record("to_chat", "planfix", None, error="refused: [Errno 111]", notes=[REFUSED_NOTE]),
            ERROR,
            REFUSED_NOTE["text"],
            id="delivery-refused-says-why-in-words",
        ),
        pytest.param(_record("to_planfix", "fake_chat", 401), WARNING, "", id="fake-chat-sent-401"),
    ],
)
def test_each_exchange_is_logged_at_its_level_with_its_reason(
    record: ExchangeRecord, level: int, why: str
) -> None:
    assert (level_of(record), reason(record)) == (level, why)


def test_a_server_whose_stderr_nobody_reads_still_answers() -> None:
    # 2000 lines are far more than a pipe holds (64 KiB): writing them in the request would
    # block; they wait for the writer thread instead, and past its bound are dropped.
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        while not url:
            line = proc.stdout.readline()
            assert line, "serve exited before printing its URL"
            found = re.search(r"serving on (\S+)", line)
            url = found.group(1) if found else ""
        session = requests.Session()
        form = new_message("unread", "hello")
        statuses = {
            session.post(url + "/webchat/api", data=form, timeout=10).status_code
            for _ in range(2000)
        }
        assert statuses == {200}
    finally:
        os.killpg(proc.pid, 9)
        proc.communicate(timeout=30)
