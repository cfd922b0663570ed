"""The typed clients: snake_case in, wire names on the wire, answers decoded; over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator.clients import (
    Answer,
    ControlClient,
    ControlError,
    Fault,
    PlanfixAnswer,
    PlanfixClient,
    WaitTimeout,
    send,
)
from simulator.serving.live import LiveServer


@pytest.fixture
def control(server: LiveServer) -> Iterator[ControlClient]:
    yield ControlClient(server.url)
    server.check()


@pytest.fixture
def planfix(control: ControlClient) -> PlanfixClient:
    """A client with a fresh integration of its own."""
    made = control.create_integration(task_fields=["utm_source"])
    return PlanfixClient(control.planfix_url, made["planfix_token"], provider_id="tg")


def last_form(control: ControlClient, token: str) -> list[list[str]]:
    [integration] = [i for i in control.integrations() if i["planfix_token"] == token]
    return control.journal(integration["id"], reveal=True)[-1]["form"]


def test_new_message_sends_wire_names_in_order(
    control: ControlClient, planfix: PlanfixClient
) -> None:
    answer = planfix.new_message(
        "chat-1",
        "user-1",
        "Hello 👋",
        "Ann",
        contact_phone="+100",
        attachments=[("a.png", "https://x/a"), {"name": "b.pdf", "url": "https://x/b"}],
        is_echo=False,
        data={"utm_source": "ads"},
    )
    assert answer.ok
    assert answer.body == ""
    assert last_form(control, planfix.planfix_token) == [
        ["cmd", "newMessage"],
        ["providerId", "tg"],
        ["planfix_token", planfix.planfix_token],
        ["chatId", "chat-1"],
        ["message", "Hello 👋"],
        ["contactId", "user-1"],
        ["contactName", "Ann"],
        ["contactPhone", "+100"],
        ["attachments[name]", "a.png"],
        ["attachments[url]", "https://x/a"],
        ["attachments[name]", "b.pdf"],
        ["attachments[url]", "https://x/b"],
        ["isEcho", "0"],
        ["data_utm_source", "ads"],
    ]


def test_get_task_and_get_contact_decode_the_number(planfix: PlanfixClient) -> None:
    planfix.new_message("chat-2", "user-2", "hi")
    task = planfix.get_task("chat-2")
    contact = planfix.get_contact("user-2")
    assert (task.status, task.data) == (200, {"number": task.number})
    assert isinstance(task.number, int)
    assert isinstance(contact.number, int)
    assert planfix.get_task("chat-2").number == task.number


def test_observed_profile_data_string_is_decoded(control: ControlClient) -> None:
    made = control.create_integration(profile="observed")
    client = PlanfixClient(control.planfix_url, made["planfix_token"])
    client.new_message("c", "c", "hi")
    task = client.get_task("c")
    assert isinstance(task.answer.json()["data"], str)  # on the wire: a JSON string
    assert task.number is not None
    assert task.status_is_active is True
    assert task.notes == ("data was a JSON string",)


def test_wire_errors_are_answers_not_exceptions(planfix: PlanfixClient) -> None:
    assert planfix.get_task("no-such-chat").error == "task not found"
    assert planfix.get_contact("nobody").error == "unknown contact"
    wrong = PlanfixClient(planfix.url, "wrong-token")
    answer = wrong.message_status("m1", "read")
    assert (answer.status, answer.error) == (401, "Invalid token")


def test_update_contact_and_message_status(control: ControlClient, planfix: PlanfixClient) -> None:
    planfix.new_message("chat-3", "user-3", "hi", "Bob")
    assert planfix.update_contact("user-3", "Robert", contact_email="r@example.com").ok
    [contact] = [c for c in control.contacts() if c["contact_id"] == "user-3"]
    assert (contact["name"], contact["email"]) == ("Robert", "r@example.com")
    assert planfix.message_status("no-such-message", "read", "seen").ok
    assert last_form(control, planfix.planfix_token)[-3:] == [
        ["messageId", "no-such-message"],
        ["messageStatus", "read"],
        ["messageStatusText", "seen"],
    ]


def test_network_failure_is_an_answer(planfix: PlanfixClient) -> None:
    dead = PlanfixClient("http://127.0.0.1:9/webchat/api", "t", timeout=2)
    answer = dead.get_task("c")
    assert isinstance(answer, PlanfixAnswer)
    assert answer.status is None
    assert answer.network_error.startswith(("refused", "network"))


def test_control_client_tasks_reply_inbox_and_journal(control: ControlClient) -> None:
    made = control.create_integration()
    client = PlanfixClient(control.planfix_url, made["planfix_token"])
    client.new_message("chat-4", "user-4", "where is my order?", "Ann")
    [task] = control.tasks(made["id"])
    assert task["chat_id"] == "chat-4"
    outcome = control.reply(task["number"], "on its way", attachments=[("t.pdf", "https://x/t")])
    assert outcome["delivery"]["state"] == "delivered"
    [inbox] = control.chat_inbox(made["id"], "chat-4")
    assert (inbox["message"], inbox["attachments"]) == (
        "on its way",
        [{"name": "t.pdf", "url": "https://x/t"}],
    )
    assert control.delivery(outcome["delivery"]["id"])["state"] == "delivered"
    directions = [e["direction"] for e in control.journal(made["id"])]
    assert directions[:2] == ["to_planfix", "to_chat"]
    assert control.journal(made["id"], direction="to_chat", limit=1)[0]["cmd"] == "newMessage"
    assert control.complete_task(task["number"])["status"] == "completed"
    assert control.reopen_task(task["number"])["status"] == "active"


def test_first_message_and_the_fake_chat_sending(control: ControlClient) -> None:
    made = control.create_integration()
    first = control.first_message(made["id"], "+15550002", "news")
    assert first["chatId"]
    assert first["task"] is not None
    sent = control.chat_message("chat-5", "user-5", "hi", integration=made["id"], title="Order")
    assert sent["status"] == 200
    assert ["title", "Order"] in sent["form"]
    [titled] = [t for t in control.tasks(made["id"]) if t["chat_id"] == "chat-5"]
    assert titled["title"] == "Order"


def test_wait_returns_the_entry_or_raises_with_the_closest(control: ControlClient) -> None:
    made = control.create_integration()
    PlanfixClient(control.planfix_url, made["planfix_token"]).new_message("c6", "u6", "hi")
    entry = control.wait(cmd="newMessage", integration=made["id"], since=0, chat_id="c6")
    assert entry["chat_id"] == "c6"
    with pytest.raises(WaitTimeout) as caught:
        control.wait(cmd="getTask", integration=made["id"], since=0, timeout=0.2)
    assert caught.value.status == 408
    # Closest first: the entry of this integration, differing only in cmd.
    assert caught.value.closest[0]["chat_id"] == "c6"


def test_faults_round_trip(control: ControlClient) -> None:
    made = control.create_integration()
    client = PlanfixClient(control.planfix_url, made["planfix_token"])
    control.set_faults(made["id"], planfix=Fault(status=503, count=1))
    assert client.get_task("x").status == 503
    assert client.get_task("x").status == 400  # the fault was for one call only
    control.clear_faults(made["id"])
    assert control.faults(made["id"])["planfix"] is None


def test_control_errors_carry_status_and_body(control: ControlClient) -> None:
    with pytest.raises(ControlError) as caught:
        control.task(987654)
    assert caught.value.status == 404
    assert caught.value.body["error"] == "Not found"
    with pytest.raises(ControlError) as bad:
        control.create_integration(profile="nonsense")
    assert bad.value.status == 400


def test_reset_forgets_one_integration(control: ControlClient) -> None:
    keep, drop = control.create_integration(), control.create_integration()
    for made in (keep, drop):
        PlanfixClient(control.planfix_url, made["planfix_token"]).new_message("c", "c", "x")
    control.reset(drop["id"])
    assert control.tasks(drop["id"]) == []
    assert len(control.tasks(keep["id"])) == 1


def test_one_transport(server: LiveServer) -> None:
    # The typed clients sit on `send`: the low-level API stays as it was.
    answer = send("GET", server.url + "/api/v1/status")
    assert answer.status == 200
    assert answer.json()["base_url"] == server.url


def test_admin_token_travels_as_a_bearer_header() -> None:
    with LiveServer({"testing": True, "admin_token": "let-me-in"}) as guarded:
        with pytest.raises(ControlError) as refused:
            ControlClient(guarded.url).integrations()
        assert refused.value.status == 401
        assert ControlClient(guarded.url, "let-me-in").integrations()[0]["name"] == "default"
        # The Planfix side stays open to integrations.
        token = ControlClient(guarded.url, "let-me-in").integrations()[0]["planfix_token"]
        assert PlanfixClient(guarded.url + "/webchat/api", token).get_task("none").status == 400


def test_journal_masks_tokens_unless_revealed(control: ControlClient) -> None:
    made = control.create_integration()
    PlanfixClient(control.planfix_url, made["planfix_token"]).get_task("c")
    masked = dict(control.journal(made["id"])[-1]["form"])
    revealed = dict(control.journal(made["id"], reveal=True)[-1]["form"])
    assert revealed["planfix_token"] == made["planfix_token"]
    assert masked["planfix_token"] != made["planfix_token"]


def test_send_never_raises_on_odd_urls(server: LiveServer) -> None:
    # Non-ASCII paths go out percent-encoded, as browsers send them; a bad host is an answer.
    assert send("GET", server.url + "/ünïcode").status == 404
    assert send("GET", "http://a..b/").error.startswith("network:")


def test_out_of_range_filters_are_refused_not_crashed(control: ControlClient) -> None:
    # Found by Schemathesis: SQLite cannot hold these numbers.
    with pytest.raises(ControlError) as caught:
        control.journal(since=10**20)
    assert caught.value.status == 400
    with pytest.raises(ControlError) as waited:
        control.wait(since=10**20, timeout=0)
    assert waited.value.status == 400


@pytest.mark.parametrize(
    "url",
    [
        "http://example.test:port/",  # a port that is not a number
        "http://\udb3b.test/",  # a lone surrogate: no IDNA form
        "https://L<\x15Iom/",  # a control character in the host
        "http://example.test/\x0e",  # a control character in the path
    ],
)
def test_a_url_no_request_can_carry_is_a_failure_value_not_an_exception(url: str) -> None:
    answer = send("GET", url, timeout=1)
    assert answer.status is None
    assert answer.error.startswith("network: ")


DEEP = "[" * 50_000 + "]" * 50_000


def test_an_answer_nested_past_the_parsers_limit_is_not_json_not_a_crash() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        Answer(200, DEEP.encode()).json()
    assert Answer(200, DEEP.encode()).json_or_none() is None
