"""The matching rules of `POST /api/v1/wait`: which journal entries a match accepts, and why not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.errors import BadRequest
from simulator.matching import Match, closest, differences, matches, score
from simulator.records import JournalEntry


def entry(entry_id: int = 7, **changes: Any) -> JournalEntry:
    """A journal entry of a customer message; keyword arguments replace its fields."""
    values: dict[str, Any] = {
        "id": entry_id,
        "ts": "2026-01-01T00:00:00.000Z",
        "integration_id": 1,
        "direction": "to_planfix",
        "party": "planfix",
        "method": "POST",
        "url": "/webchat/api",
        "cmd": "newMessage",
        "chat_id": "chat-1",
        "form": [
            ["cmd", "newMessage"],
            ["chatId", "chat-1"],
            ["message", "Hello"],
            ["attachments[url]", "https://a.example/1.png"],
            ["attachments[url]", "https://a.example/2.png"],
        ],
        "request_headers": {},
        "status": 200,
        "response_body": "",
        "duration_ms": 1.5,
        "notes": [],
        "fault": "",
        "error": "",
        "delivery_id": None,
    }
    values.update(changes)
    return JournalEntry(**values)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ({}, []),
        ({"direction": "to_planfix"}, []),
        ({"direction": "to_chat"}, ["direction: expected 'to_chat', got 'to_planfix'"]),
        ({"party": "planfix"}, []),
        ({"party": "fake_chat"}, ["party: expected 'fake_chat', got 'planfix'"]),
        ({"cmd": "newMessage"}, []),
        ({"cmd": "getTask"}, ["cmd: expected 'getTask', got 'newMessage'"]),
        ({"chatId": "chat-1"}, []),
        ({"chatId": "chat-2"}, ["chatId: expected 'chat-2', got 'chat-1'"]),
        ({"status": 200}, []),
        ({"status": 401}, ["status: expected 401, got 200"]),
        ({"integration": 1}, []),
        ({"integration": 2}, ["integration: expected 2, got 1"]),
        ({"fields": {"message": "Hello"}}, []),
        ({"fields": {"message": "hello"}}, ["fields.message: expected 'hello', got 'Hello'"]),
        ({"fields": {"title": "Order"}}, ["fields.title: expected 'Order', got absent"]),
        ({"fields": {"title": None}}, []),
        ({"fields": {"message": None}}, ["fields.message: expected absent, got 'Hello'"]),
        # A repeated key: a string matches any of its values, a list must match all in order.
        ({"fields": {"attachments[url]": "https://a.example/2.png"}}, []),
        (
            {
                "fields": {
                    "attachments[url]": ["https://a.example/1.png", "https://a.example/2.png"]
                }
            },
            [],
        ),
        (
            {"fields": {"attachments[url]": ["https://a.example/2.png"]}},
            [
                "fields.attachments[url]: expected ['https://a.example/2.png'], got "
                "['https://a.example/1.png', 'https://a.example/2.png']"
            ],
        ),
        (
            {"cmd": "getTask", "chatId": "chat-1", "fields": {"message": "Bye"}},
            [
                "cmd: expected 'getTask', got 'newMessage'",
                "fields.message: expected 'Bye', got 'Hello'",
            ],
        ),
    ],
)
def test_differences_name_each_unmet_criterion(wire: dict[str, Any], expected: list[str]) -> None:
    match = Match.from_wire(wire)
    assert differences(match, entry()) == expected
    assert matches(match, entry()) is (expected == [])
    assert score(match, entry()) == match.criteria - len(expected)


def test_json_form_of_an_entry_matches_like_the_record() -> None:
    record = entry(status=None, error="timeout: no answer within 10 s")
    match = Match.from_wire({"status": 200, "fields": {"message": "Hello"}})
    assert differences(match, record.as_dict()) == differences(match, record)
    assert differences(match, record) == ["status: expected 200, got None"]


def test_integration_resolved_by_the_caller_wins_over_the_wire_value() -> None:
    match = Match.from_wire({"integration": "second"}, integration_id=2)
    assert match.integration_id == 2
    assert differences(match, entry()) == ["integration: expected 2, got 1"]


def test_unknown_criterion_is_refused_rather_than_ignored() -> None:
    with pytest.raises(BadRequest, match="chat_id"):
        Match.from_wire({"chat_id": "chat-1"})


def test_as_dict_round_trips() -> None:
    wire = {
        "direction": "to_chat",
        "party": "fake_chat",
        "cmd": "newMessage",
        "chatId": "c",
        "status": 200,
        "integration": 3,
        "fields": {"message": "x", "title": None, "attachments[url]": ["u1", "u2"]},
    }
    assert Match.from_wire(wire).as_dict() == wire
    assert Match.from_wire(wire).criteria == 9


def test_closest_ranks_by_criteria_met_then_newest() -> None:
    match = Match.from_wire({"cmd": "newMessage", "chatId": "chat-9", "fields": {"message": "Hi"}})
    one = entry(1, cmd="getTask")  # chatId and message miss too: 0 met
    two = entry(2)  # cmd met
    three = entry(3, chat_id="chat-9")  # cmd and chatId met
    four = entry(4)  # cmd met, newer than two
    assert [e.id for e in closest(match, [one, two, three, four])] == [3, 4, 2, 1]
    assert [e.id for e in closest(match, [one, two, three, four], limit=2)] == [3, 4]


# -- properties ---------------------------------------------------------------------------

_text = st.text(min_size=0, max_size=12)
_keys = st.sampled_from(
    ["message", "chatId", "contactId", "title", "attachments[url]", "data_Order", "cmd"]
)


@st.composite
def entries(draw: st.DrawFn) -> JournalEntry:
    """Journal entries of any shape the store can hold."""
    return entry(
        draw(st.integers(1, 10**6)),
        integration_id=draw(st.none() | st.integers(1, 50)),
        direction=draw(st.sampled_from(["to_planfix", "to_chat"])),
        party=draw(st.sampled_from(["planfix", "fake_chat"])),
        cmd=draw(_text),
        chat_id=draw(_text),
        status=draw(st.none() | st.integers(100, 599)),
        form=draw(st.lists(st.tuples(_keys, _text).map(list), max_size=8)),
    )


def match_of(record: JournalEntry) -> Match:
    """The strictest match built from an entry's own values (every form key, all values)."""
    fields: dict[str, Any] = {}
    for key, value in record.form:
        fields.setdefault(key, []).append(value)
    wire: dict[str, Any] = {
        "direction": record.direction,
        "party": record.party,
        "cmd": record.cmd,
        "chatId": record.chat_id,
        "fields": fields,
    }
    if record.status is not None:
        wire["status"] = record.status
    return Match.from_wire(wire, integration_id=record.integration_id)


@settings(max_examples=200, deadline=None)
@given(entries())
def test_an_entry_matches_a_match_built_from_its_own_values(record: JournalEntry) -> None:
    match = match_of(record)
    assert differences(match, record) == []
    assert matches(match, record.as_dict())
    assert score(match, record) == match.criteria


@settings(max_examples=200, deadline=None)
@given(entries(), st.sampled_from(["cmd", "chatId", "direction", "party"]))
def test_changing_one_criterion_gives_exactly_one_difference(
    record: JournalEntry, criterion: str
) -> None:
    wire = match_of(record).as_dict()
    other = {"direction": "to_chat", "party": "fake_chat"}
    if criterion in other and wire[criterion] == other[criterion]:
        other = {"direction": "to_planfix", "party": "planfix"}
    wire[criterion] = other.get(criterion, str(wire[criterion]) + "~")
    found = differences(Match.from_wire(wire, integration_id=record.integration_id), record)
    assert len(found) == 1
    assert found[0].startswith(f"{criterion}: expected ")
