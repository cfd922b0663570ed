"""A Hypothesis state machine over the HTTP API: chats, messages, completes and contacts.

Invariants: task numbers are unique and stable per chat, a completed task's chat gets a new
number, contacts keep theirs, the journal counts every request, and nothing answers a 5xx.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from simulator.clients import ControlClient, PlanfixAnswer, PlanfixClient
from simulator.serving.live import LiveServer
from simulator.testing.strategies import non_empty_texts

CHATS = st.sampled_from(["chat-a", "chat-b", "chat-c", "42"])
CONTACTS = st.sampled_from(["ann", "bob", "42"])


class ChatApi(RuleBasedStateMachine):
    """One fresh integration per run; the model is what a chat should see."""

    base_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.control = ControlClient(self.base_url)
        made = self.control.create_integration()
        self.integration = made["id"]
        self.planfix = PlanfixClient(self.control.planfix_url, made["planfix_token"])
        self.requests = 0
        self.task_of: dict[str, int] = {}  # chat → its current task
        self.completed: set[int] = set()
        self.numbers: set[int] = set()  # every task number handed out
        self.contact_numbers: dict[str, int] = {}

    def _sent(self, answer: PlanfixAnswer) -> PlanfixAnswer:
        self.requests += 1
        assert answer.status is not None, answer.network_error
        assert answer.status < 500, answer.body
        return answer

    def _learn_contact(self, contact: str) -> None:
        number = self._sent(self.planfix.get_contact(contact)).number
        assert number is not None
        known = self.contact_numbers.setdefault(contact, number)
        assert number == known, f"contact {contact} changed number {known} → {number}"

    @rule(chat=CHATS, contact=CONTACTS, text=non_empty_texts(80))
    def customer_writes(self, chat: str, contact: str, text: str) -> None:
        assert self._sent(self.planfix.new_message(chat, contact, text)).ok
        number = self._sent(self.planfix.get_task(chat)).number
        assert number is not None
        previous = self.task_of.get(chat)
        if previous is not None and previous not in self.completed:
            assert number == previous, "an active chat keeps its task"
        else:
            assert number not in self.numbers, "a new task gets a number never used"
            self.numbers.add(number)
        self.task_of[chat] = number
        self._learn_contact(contact)

    @precondition(lambda self: any(n not in self.completed for n in self.task_of.values()))
    @rule(data=st.data())
    def operator_completes(self, data: st.DataObject) -> None:
        active = sorted(n for n in self.task_of.values() if n not in self.completed)
        number = data.draw(st.sampled_from(active))
        assert self.control.complete_task(number)["status"] == "completed"
        self.completed.add(number)

    @rule(chat=CHATS)
    def chat_asks_for_its_task(self, chat: str) -> None:
        answer = self._sent(self.planfix.get_task(chat))
        if chat in self.task_of:
            assert answer.number == self.task_of[chat]
        else:
            assert (answer.status, answer.error) == (400, "task not found")

    @rule(contact=CONTACTS)
    def chat_asks_for_a_contact(self, contact: str) -> None:
        answer = self._sent(self.planfix.get_contact(contact))
        if contact in self.contact_numbers:
            assert answer.number == self.contact_numbers[contact]
        else:
            assert (answer.status, answer.error) == (400, "unknown contact")

    @rule(contact=CONTACTS, name=non_empty_texts(40))
    def chat_renames_a_contact(self, contact: str, name: str) -> None:
        assert self._sent(self.planfix.update_contact(contact, name)).ok
        # Unknown contacts are created (default mode); known ones keep their number.
        self._learn_contact(contact)

    @invariant()
    def journal_counts_every_request(self) -> None:
        entries = self.control.journal(self.integration, direction="to_planfix")
        assert len(entries) == self.requests
        assert all(e["status"] is not None and e["status"] < 500 for e in entries)

    @invariant()
    def tasks_and_contacts_match_the_model(self) -> None:
        tasks = self.control.tasks(self.integration)
        assert sorted(t["number"] for t in tasks) == sorted(self.numbers)
        assert {t["number"] for t in tasks if t["status"] == "completed"} == self.completed
        contacts = self.control.contacts(self.integration)
        assert {c["contact_id"]: c["number"] for c in contacts} == self.contact_numbers


def test_the_api_keeps_its_numbering_promises(server: LiveServer) -> None:
    ChatApi.base_url = server.url
    run_state_machine_as_test(
        ChatApi,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    server.check()
