"""Deleting an integration (`DELETE /api/v1/integrations/<ref>`), over real HTTP and the client.

What goes with it, in one transaction: its contacts, chats, tasks, messages, deliveries and the
fake chat's inbox and chats; its journal entries stay as history. Other integrations keep all of
theirs. The last integration stays.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from simulator.clients import ControlClient, ControlError
from tests.served import Served


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """`planfix-sim serve` as a real process (several workers), for the whole module."""
    server = Served()
    yield server
    server.stop()


@pytest.fixture
def control(served: Served) -> ControlClient:
    """The typed control client of the served simulator."""
    return ControlClient(served.url)


def _new(control: ControlClient, prefix: str = "doomed") -> dict[str, Any]:
    return dict(control.create_integration(name=f"{prefix}-{secrets.token_hex(4)}"))


def _chat(served: Served, integration: dict[str, Any], chat: str) -> None:
    """One customer message in `chat` and an operator reply that the fake chat receives."""
    form = {
        "cmd": "newMessage",
        "providerId": "p",
        "chatId": chat,
        "planfix_token": integration["planfix_token"],
        "message": "hello",
        "contactId": chat,
        "contactName": "Ann",
    }
    assert requests.post(served.api, data=form, timeout=30).status_code == 200
    control = ControlClient(served.url)
    [task] = [t for t in control.tasks(integration["id"]) if t["chat_id"] == chat]
    reply = control.reply(task["number"], "hi back")
    assert reply["delivery"]["state"] == "delivered"


def _owned(control: ControlClient, integration_id: int) -> dict[str, int]:
    """How many rows of each kind an integration owns, read through the unfiltered lists."""
    lists: dict[str, list[Any]] = {
        "tasks": list(control.tasks()),
        "contacts": list(control.contacts()),
        "journal": list(control.journal(limit=1000)),
        "deliveries": list(control.deliveries()),
        "inbox": list(control.chat_inbox()),
        "fake chats": list(control.chat_chats()),
    }
    return {k: sum(1 for i in v if i["integration_id"] == integration_id) for k, v in lists.items()}


def test_delete_answers_204_and_the_integration_is_gone(control: ControlClient) -> None:
    doomed = _new(control)

    answer = requests.delete(f"{control.base_url}/api/v1/integrations/{doomed['id']}", timeout=30)

    assert (answer.status_code, answer.content) == (204, b"")
    assert doomed["id"] not in [i["id"] for i in control.integrations()]
    with pytest.raises(ControlError) as gone:
        control.integration(doomed["id"])
    assert gone.value.answer.status == 404


def test_the_client_deletes_by_id_or_by_name(control: ControlClient) -> None:
    by_id, by_name = _new(control), _new(control)

    control.delete_integration(by_id["id"])
    control.delete_integration(by_name["name"])

    left = {i["id"] for i in control.integrations()}
    assert not left & {by_id["id"], by_name["id"]}


def test_deleting_takes_its_chats_tasks_deliveries_and_inbox_keeps_its_journal_and_the_others(
    served: Served, control: ControlClient
) -> None:
    doomed, kept = _new(control), _new(control, "kept")
    _chat(served, doomed, "c-doomed")
    _chat(served, kept, "c-kept")
    doomed_before, kept_before = _owned(control, doomed["id"]), _owned(control, kept["id"])
    assert all(doomed_before.values())

    control.delete_integration(doomed["id"])

    assert _owned(control, doomed["id"]) == {
        **dict.fromkeys(doomed_before, 0),
        "journal": doomed_before["journal"],  # history: kept, marked with the id
    }
    assert _owned(control, kept["id"]) == kept_before


def test_a_new_delivery_never_shows_the_journal_of_a_deleted_integrations_delivery(
    served: Served, control: ControlClient
) -> None:
    doomed = _new(control)
    _chat(served, doomed, "c-old")  # its delivery has the highest id
    control.delete_integration(doomed["id"])
    fresh = _new(control, "fresh")

    _chat(served, fresh, "c-new")

    [delivery] = control.deliveries(fresh["id"])
    shown = [control.journal_entry(i)["integration_id"] for i in delivery["journal_ids"]]
    assert shown == [fresh["id"]]


def test_a_deleted_integrations_planfix_token_is_refused_by_every_worker(
    served: Served, control: ControlClient
) -> None:
    doomed = _new(control)
    form = {"cmd": "getTask", "providerId": "p", "chatId": "c", "planfix_token": ""}
    form["planfix_token"] = doomed["planfix_token"]
    # Each worker caches the integrations: warm every cache with the token first.
    assert {requests.post(served.api, data=form, timeout=30).status_code for _ in range(8)} == {400}

    control.delete_integration(doomed["id"])

    answers = [requests.post(served.api, data=form, timeout=30) for _ in range(8)]
    assert {(a.status_code, a.text.strip()) for a in answers} == {
        (401, '{"error":"Invalid token"}')
    }


def test_a_deleted_integrations_name_and_planfix_token_can_be_taken_again(
    control: ControlClient,
) -> None:
    doomed = _new(control)
    control.delete_integration(doomed["id"])

    again = control.create_integration(name=doomed["name"], planfix_token=doomed["planfix_token"])

    assert again["id"] != doomed["id"]


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("999999", "no integration has this id"),
        ("no-such-integration", "no integration has this name"),
        ("99999999999999999999", "beyond SQLite's integers"),
    ],
)
def test_deleting_what_does_not_exist_is_a_404_with_a_reason(
    control: ControlClient, ref: str, why: str
) -> None:
    answer = requests.delete(f"{control.base_url}/api/v1/integrations/{ref}", timeout=30)

    assert answer.status_code == 404, why
    assert answer.json()["error"] == "Not found"
    assert ref in answer.json()["detail"]


def test_deleting_twice_is_a_404_the_second_time(control: ControlClient) -> None:
    doomed = _new(control)
    control.delete_integration(doomed["id"])

    with pytest.raises(ControlError) as again:
        control.delete_integration(doomed["id"])

    assert again.value.answer.status == 404


def test_the_last_integration_is_kept_with_a_409_that_says_why(client: FlaskClient) -> None:
    [only] = client.get("/api/v1/integrations").get_json()

    answer = client.delete(f"/api/v1/integrations/{only['id']}")

    assert answer.status_code == 409
    assert "last integration" in answer.get_json()["detail"]
    assert [i["id"] for i in client.get("/api/v1/integrations").get_json()] == [only["id"]]


def test_the_default_integration_may_be_deleted_while_another_exists(
    client: FlaskClient,
) -> None:
    client.post("/api/v1/integrations", json={"name": "other"})

    answer = client.delete("/api/v1/integrations/default")

    assert answer.status_code == 204
    assert [i["name"] for i in client.get("/api/v1/integrations").get_json()] == ["other"]


def test_deletion_is_declared_in_openapi_with_its_answers(control: ControlClient) -> None:
    spec = requests.get(f"{control.base_url}/openapi.json", timeout=30).json()

    operation = spec["paths"]["/api/v1/integrations/{ref}"]["delete"]

    assert set(operation["responses"]) >= {"204", "404", "409"}


@pytest.mark.parametrize("named", ["planfix_token", "name"])
def test_a_clashing_integration_is_refused_with_what_to_do(
    control: ControlClient, named: str
) -> None:
    taken = _new(control)
    settings = {"name": f"fresh-{secrets.token_hex(4)}", named: taken[named]}

    with pytest.raises(ControlError) as refused:
        control.create_integration(**settings)

    assert refused.value.answer.status == 400
    detail = refused.value.answer.json_or_none()["detail"]
    assert detail == (
        f"an integration with this {named} exists ({taken['name']!r}, id {taken['id']}):"
        f" reuse it, or pick another {named}"
    )
