"""Pure rules of the domain, without HTTP."""

from __future__ import annotations

import pytest

from simulator.contract import (
    Attachment,
    Form,
    HistoryLine,
    Integration,
    NewMessage,
    history_description,
    pair_attachments,
    parse_command,
    parse_is_echo,
    task_email,
)
from simulator.errors import InvalidParameters

INTEGRATION = Integration(1, "default", "pt", "ct", "http://x", task_fields=("utm_source",))


@pytest.mark.parametrize(
    ("raw", "value"),
    [(None, False), ("", False), ("0", False), ("false", False), ("1", True), ("TRUE", True)],
)
def test_is_echo_encodings(raw: str | None, value: bool) -> None:
    assert parse_is_echo(raw) is value


@pytest.mark.parametrize("raw", ["yes", "2", "on", "truthy"])
def test_is_echo_rejects_the_rest(raw: str) -> None:
    with pytest.raises(InvalidParameters):
        parse_is_echo(raw)


@pytest.mark.parametrize(
    ("names", "urls", "pairs", "matched"),
    [
        ([], [], [], True),
        (["a"], ["u"], [Attachment("a", "u")], True),
        (["a", "b"], ["u"], [Attachment("a", "u"), Attachment("b", "")], False),
        ([], ["u"], [Attachment("", "u")], False),
        # Several pairs: the n-th name goes with the n-th url, never another one.
        (["a", "b"], ["u", "v"], [Attachment("a", "u"), Attachment("b", "v")], True),
        (
            ["a", "b", "c"],
            ["u", "v"],
            [Attachment("a", "u"), Attachment("b", "v"), Attachment("c", "")],
            False,
        ),
    ],
)
def test_attachments_pair_in_order(
    names: list[str], urls: list[str], pairs: list[Attachment], matched: bool
) -> None:
    assert pair_attachments(names, urls) == (pairs, matched)


def test_a_new_message_form_becomes_a_command_with_wire_names_left_behind() -> None:
    form = Form.of(
        [
            ("cmd", "newMessage"),
            ("providerId", "p"),
            ("chatId", "c"),
            ("message", "hi"),
            ("contactId", "7"),
            ("contactName", "Ivan"),
            ("isEcho", "1"),
            ("userEmail", "a@b.c"),
            ("data_utm_source", "ads"),
            ("channel", ""),
        ]
    )
    command, notes = parse_command("newMessage", form, INTEGRATION)
    assert isinstance(command, NewMessage)
    assert (command.chat_id, command.contact.contact_id, command.is_echo) == ("c", "7", True)
    assert command.fields == (("utm_source", "ads"),)
    assert command.channel is None, "an empty optional field counts as absent"
    assert notes == []


def test_task_email_and_history() -> None:
    assert task_email(1014, "test") == "task+1014@test.planfix.com"
    assert task_email(7, "acme", "planfix.ru") == "task+7@acme.planfix.ru"
    text = history_description(1000, [HistoryLine("t1", "Ivan", "hello")])
    assert text.splitlines() == ["Chat history (continued from task #1000):", "[t1] Ivan: hello"]
