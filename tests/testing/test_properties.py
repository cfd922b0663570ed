"""Properties of `/webchat/api` over generated forms (Hypothesis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.runtime import runtime
from simulator.web.app import close_app, create_app
from tests.conftest import PLANFIX_TOKEN
from tests.planfix.test_chat_api import post

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)
provider = text.filter(lambda s: "~" not in s)
optional = st.one_of(st.none(), st.text(max_size=20))


@pytest.fixture(scope="module")
def shared_app() -> Iterator[Flask]:
    """One app for a whole property run: Hypothesis reuses it across examples."""
    app = create_app({"testing": True})
    yield app
    close_app(app)


@pytest.fixture
def shared_client(shared_app: Flask) -> FlaskClient:
    """A client of the module's shared app."""
    return shared_app.test_client()


@st.composite
def valid_new_message(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Any newMessage the docs call valid."""
    pairs = [
        ("cmd", "newMessage"),
        ("providerId", draw(provider)),
        ("chatId", draw(text)),
        ("planfix_token", PLANFIX_TOKEN),
        ("message", draw(text)),
        ("contactId", draw(text)),
        ("contactName", draw(text)),
    ]
    for key in ("channel", "title", "contactLastName", "contactEmail", "contactPhone", "userEmail"):
        value = draw(optional)
        if value is not None:
            pairs.append((key, value))
    for _ in range(draw(st.integers(0, 3))):
        pairs += [("attachments[name]", draw(text)), ("attachments[url]", draw(text))]
    if draw(st.booleans()):
        pairs.append(("isEcho", draw(st.sampled_from(["1", "0", "true", "false", "TRUE", ""]))))
    return draw(st.permutations(pairs))


@given(pairs=valid_new_message())
@PROPERTY_SETTINGS
def test_any_valid_new_message_is_accepted(
    shared_client: FlaskClient, pairs: list[tuple[str, str]]
) -> None:
    assert post(shared_client, pairs).status_code == 200


form_keys = st.sampled_from(
    [
        "cmd",
        "providerId",
        "chatId",
        "planfix_token",
        "token",
        "message",
        "contactId",
        "contactName",
        "messageId",
        "messageStatus",
        "isEcho",
        "attachments[name]",
        "attachments[url]",
        "data_x",
        "title",
    ]
)
form_values = st.one_of(
    st.sampled_from(
        ["newMessage", "getTask", "getContact", "updateContact", "messageStatus", PLANFIX_TOKEN]
    ),
    st.text(max_size=30),
)


@given(pairs=st.lists(st.tuples(form_keys, form_values), max_size=14))
@PROPERTY_SETTINGS
def test_any_form_gets_200_400_or_401_never_an_error(
    shared_client: FlaskClient, pairs: list[tuple[str, str]]
) -> None:
    response = post(shared_client, pairs)
    assert response.status_code in (200, 400, 401)
    if response.status_code != 200:
        assert response.get_json() in (
            {"error": "Invalid parameters"},
            {"error": "Invalid token"},
            {"error": "task not found"},
            {"error": "unknown contact"},
        )


@given(raw=st.binary(max_size=200))
@PROPERTY_SETTINGS
def test_any_bytes_get_a_json_answer_never_an_error(shared_client: FlaskClient, raw: bytes) -> None:
    response = shared_client.post(
        "/webchat/api", data=raw, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code in (200, 400, 401)


@given(
    chats=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=25),
    completes=st.sets(st.integers(0, 24)),
)
@PROPERTY_SETTINGS
def test_a_chat_keeps_its_task_number_until_completed(
    shared_app: Flask, chats: list[str], completes: set[int]
) -> None:
    client = shared_app.test_client()
    store = runtime(shared_app).store
    store.reset()
    current: dict[str, int] = {}
    seen: set[int] = set()
    for step, chat in enumerate(chats):
        pairs = [
            ("cmd", "newMessage"),
            ("providerId", "p"),
            ("chatId", chat),
            ("planfix_token", PLANFIX_TOKEN),
            ("message", f"m{step}"),
            ("contactId", chat),
            ("contactName", chat),
        ]
        assert post(client, pairs).status_code == 200
        task = store.chat_task(1, "p", chat)
        assert task is not None
        if chat in current:
            assert task.number == current[chat], "a chat's task changed while active"
        else:
            assert task.number not in seen, "a task number was reused"
        current[chat] = task.number
        seen.add(task.number)
        if step in completes:
            store.set_task_status(task.number, "completed")
            del current[chat]
