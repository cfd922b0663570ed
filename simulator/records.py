"""Read-only records the store hands out; each knows its JSON form for the control API."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from simulator.contract import Attachment


@dataclass(frozen=True)
class ContactRecord:
    """A contact as Planfix keeps it."""

    pk: int
    integration_id: int
    provider_id: str
    contact_id: str
    number: int
    name: str
    last_name: str
    ico: str
    email: str
    phone: str
    data: str
    created_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        out = asdict(self)
        del out["pk"]
        return out


@dataclass(frozen=True)
class MessageRecord:
    """A message in a task's thread, in either direction."""

    pk: int
    task_number: int
    integration_id: int
    direction: str  # "in": chat → Planfix; "out": Planfix → chat
    kind: str  # customer | echo | reply | first
    text: str
    author: str
    employee_email: str
    attachments: tuple[Attachment, ...]
    message_id: str  # Planfix's messageId, for outbound messages
    delivery_state: str  # pending | delivered | failed ("" for inbound)
    delivery_note: str
    status: str  # sent | read | error, reported by messageStatus
    status_text: str
    channel: str
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        out = asdict(self)
        out["id"] = out.pop("pk")
        out["attachments"] = [asdict(a) for a in self.attachments]
        return out


@dataclass(frozen=True)
class ChatRecord:
    """A chat of the third-party side: providerId + chatId within an integration."""

    pk: int
    integration_id: int
    provider_id: str
    chat_id: str
    channel: str
    contact_pk: int | None
    task_number: int | None


@dataclass(frozen=True)
class TaskRecord:
    """A Planfix task holding a chat's conversation."""

    number: int
    integration_id: int
    chat_pk: int
    provider_id: str
    chat_id: str
    channel: str
    title: str
    description: str
    status: str  # active | completed
    fields: dict[str, str]
    contact: ContactRecord | None
    created_at: str
    updated_at: str
    previous_number: int | None
    message_count: int
    unread: int
    last_message: str
    last_message_at: str

    @property
    def is_active(self) -> bool:
        """Whether the task still takes messages."""
        return self.status == "active"

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        out = asdict(self)
        del out["chat_pk"]
        out["contact"] = self.contact.as_dict() if self.contact else None
        return out


@dataclass(frozen=True)
class JournalEntry:
    """One exchange on the wire, in either direction, with its contract notes."""

    id: int
    ts: str
    integration_id: int | None
    direction: str  # to_planfix | to_chat
    party: str  # which role of the simulator saw it: planfix | fake_chat
    method: str
    url: str
    cmd: str
    chat_id: str
    form: list[list[str]]
    request_headers: dict[str, str]
    status: int | None
    response_body: str
    duration_ms: float
    notes: list[dict[str, Any]]
    fault: str
    error: str
    delivery_id: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """A change in the simulator, as streamed to SSE clients."""

    id: int
    ts: str
    integration_id: int | None
    kind: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


# -- delivery and fake chat (issue 3) ---------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRecord:
    """One Planfix → integration `newMessage` and the fate of its attempts."""

    id: int
    integration_id: int
    variant: str  # reply | first
    state: str  # pending | retrying | delivered | failed
    attempts: int
    next_attempt_at: str | None  # ISO time of the next automatic attempt
    message_pk: int | None
    task_number: int | None
    outcome: str  # the contract note of the last attempt; "" when delivered
    answer: dict[str, Any] | None  # {status, body} of the last attempt; None: no answer
    form: list[list[str]]
    journal_ids: list[int]
    created_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form (`message_id` is the Message's id)."""
        return {
            "id": self.id,
            "integration_id": self.integration_id,
            "variant": self.variant,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "message_id": self.message_pk,
            "task_number": self.task_number,
            "outcome": self.outcome,
            "answer": self.answer,
            "journal_ids": list(self.journal_ids),
            "form": [list(p) for p in self.form],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class InboxItem:
    """A message the fake chat's customer received from Planfix."""

    id: int
    ts: str
    integration_id: int
    variant: str  # reply | first
    provider_id: str
    chat_id: str
    contact_id: str
    contact_phone: str
    channel: str
    message: str
    message_id: str
    user_name: str
    user_last_name: str
    user_ico: str
    task_email: str
    attachments: tuple[Attachment, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON form: protocol fields keep their wire names."""
        return {
            "id": self.id,
            "ts": self.ts,
            "integration_id": self.integration_id,
            "variant": self.variant,
            "providerId": self.provider_id,
            "chatId": self.chat_id,
            "contactId": self.contact_id,
            "contactPhone": self.contact_phone,
            "channel": self.channel,
            "message": self.message,
            "messageId": self.message_id,
            "userName": self.user_name,
            "userLastName": self.user_last_name,
            "userIco": self.user_ico,
            "taskEmail": self.task_email,
            "attachments": [asdict(a) for a in self.attachments],
        }


@dataclass(frozen=True)
class FakeChat:
    """A chat the fake third-party chat knows: its customer and where it lives."""

    integration_id: int
    provider_id: str
    chat_id: str
    contact_id: str
    contact_name: str
    contact_phone: str
    channel: str
    created_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form: protocol fields keep their wire names."""
        return {
            "integration_id": self.integration_id,
            "providerId": self.provider_id,
            "chatId": self.chat_id,
            "contactId": self.contact_id,
            "contactName": self.contact_name,
            "contactPhone": self.contact_phone,
            "channel": self.channel,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
