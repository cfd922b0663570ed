"""The simulator fuzzed with its own public strategies: every request gets its labelled answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from simulator.clients.control import ControlClient
from simulator.clients.http import post_form
from simulator.clients.planfix import PlanfixClient
from simulator.serving.live import LiveServer
from simulator.testing.strategies import (
    INVALID_PARAMETERS,
    INVALID_TOKEN,
    Case,
    command_cases,
    first_message_forms,
    invalid_command_cases,
    new_message_forms,
    reply_forms,
    valid_command_cases,
    webhook_cases,
)

TOKEN = "strategies-default-token"
STRICT_TOKEN = "strategies-strict-token"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """One simulator for the module, with a default and a strict integration of known tokens."""
    live = LiveServer({"testing": True}).start()
    control = ControlClient(live.url)
    control.create_integration(planfix_token=TOKEN)
    control.create_integration(planfix_token=STRICT_TOKEN, strict=True)
    yield live
    live.stop()
    live.check()


def answer_to(server: LiveServer, case: Case) -> tuple[int | None, str]:
    """Send the case's setup, then the case; its status and wire error text."""
    client = PlanfixClient(server.url + "/webchat/api", "unused")
    for form in case.setup:
        assert client.send_form(form).status == 200
    got = client.send_form(case.form)
    server.check()
    return got.status, got.error


@FUZZ
@given(case=command_cases(TOKEN))
def test_every_request_gets_its_labelled_answer(server: LiveServer, case: Case) -> None:
    status, error = answer_to(server, case)
    assert status in case.statuses, case.label
    assert error == case.error, case.label


@settings(FUZZ, max_examples=30)
@given(case=valid_command_cases(STRICT_TOKEN))
def test_strict_mode_answers_as_labelled(server: LiveServer, case: Case) -> None:
    status, _ = answer_to(server, case)
    assert status in case.accepted(strict=True), case.label


@settings(max_examples=100, deadline=None, database=None)
@given(form=new_message_forms("t"))
def test_valid_new_messages_respect_the_domain_rules(form: tuple[tuple[str, str], ...]) -> None:
    values = dict(form)
    for key in ("providerId", "chatId", "message", "contactId", "contactName"):
        assert values[key], key
    assert "~" not in values["providerId"]
    names = [v for k, v in form if k == "attachments[name]"]
    urls = [v for k, v in form if k == "attachments[url]"]
    assert len(names) == len(urls)


@settings(max_examples=100, deadline=None, database=None)
@given(case=invalid_command_cases("t", max_body_bytes=None))
def test_invalid_cases_carry_the_wire_error(case: Case) -> None:
    assert "body over" not in case.label  # no oversize without a limit
    if case.statuses == (401,):
        assert case.error == INVALID_TOKEN
    elif case.statuses == (400,):
        assert case.error == INVALID_PARAMETERS
    else:  # the attachment-count case: accepted unless strict
        assert case.statuses == (200,)
        assert case.strict_statuses == (400,)


@settings(max_examples=50, deadline=None, database=None)
@given(reply=reply_forms("tok"), first=first_message_forms("tok"))
def test_planfix_to_chat_variants(
    reply: tuple[tuple[str, str], ...], first: tuple[tuple[str, str], ...]
) -> None:
    assert dict(reply)["chatId"]
    assert "chatId" not in dict(first)
    assert dict(first)["contactPhone"]
    for form in (reply, first):
        assert dict(form)["token"] == "tok"
        assert dict(form)["cmd"] == "newMessage"


@settings(FUZZ, max_examples=40)
@given(case=webhook_cases("202cb962ac59075b964b07152d234b70"))
def test_the_fake_chat_answers_webhook_cases_as_labelled(server: LiveServer, case: Case) -> None:
    got = post_form(server.url + "/fake-chat/webhook", case.form)
    server.check()
    assert got.status in case.statuses, case.label
    if case.valid:
        body = got.json()
        assert isinstance(body["contactId"], str)
        if case.get("chatId") is not None:
            assert body["chatId"] == case.get("chatId")
