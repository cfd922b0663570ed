"""The control API's answers as TypedDicts, key for key the shapes `simulator.web.schemas` declares.

A test checks each against its declared shape, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Required, TypedDict


class IntegrationOptionsJson(TypedDict):
    """Planfix options of an integration."""

    new_task_when_closed: bool
    rename_task_on_title: bool


class RetryJson(TypedDict):
    """How Planfix retries a failed delivery to the integration."""

    enabled: bool
    schedule: list[float]
    time_factor: float


class EmployeeJson(TypedDict):
    """An employee who can reply and author echo messages."""

    id: int
    email: str
    name: str
    last_name: str
    ico: str


class FakeChatJson(TypedDict):
    """A chat the fake chat knows."""

    integration_id: int
    providerId: str
    chatId: str
    contactId: str
    contactName: str
    contactPhone: str
    channel: str
    created_at: str
    updated_at: str


class FaultPlanJson(TypedDict, total=False):
    """A planned fault with its counters (calls seen, faults injected, remaining)."""

    status: int
    malformed: bool
    latency_ms: int
    drop: bool
    count: int
    probability: float
    seed: int
    calls: Required[int]
    injected: Required[int]
    remaining: int


class FaultsJson(TypedDict):
    """The fault plans of an integration, per side."""

    integration_id: int
    planfix: FaultPlanJson | None
    fake_chat: FaultPlanJson | None


class IntegrationJson(TypedDict):
    """An integration as the control API shows it."""

    id: int
    name: str
    planfix_token: str
    token: str
    url: str
    profile: str
    strict: bool
    task_fields: list[str]
    default_employee: str | None
    options: IntegrationOptionsJson
    timeout: float
    retry: RetryJson


class ContactJson(TypedDict):
    """A Planfix contact."""

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


class AttachmentJson(TypedDict):
    """A file passed by link."""

    name: str
    url: str


class MessageJson(TypedDict):
    """A message in a task's thread."""

    id: int
    task_number: int
    integration_id: int
    direction: str
    kind: str
    text: str
    author: str
    employee_email: str
    attachments: list[AttachmentJson]
    message_id: str
    delivery_state: str
    delivery_note: str
    status: str
    status_text: str
    channel: str
    created_at: str


class TaskJson(TypedDict):
    """A Planfix task holding a chat's conversation."""

    number: int
    integration_id: int
    provider_id: str
    chat_id: str
    channel: str
    title: str
    description: str
    status: str
    fields: dict[str, str]
    contact: ContactJson | None
    created_at: str
    updated_at: str
    previous_number: int | None
    message_count: int
    unread: int
    last_message: str
    last_message_at: str


class TaskDetailJson(TaskJson):
    """A task with its thread."""

    messages: list[MessageJson]


class JournalEntryJson(TypedDict):
    """One exchange on the wire."""

    id: int
    ts: str
    integration_id: int | None
    direction: str
    party: str
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


class DeliveryAnswerJson(TypedDict):
    """What the integration answered to a delivery."""

    status: int
    body: str


class DeliveryJson(TypedDict):
    """One Planfix → integration delivery and its outcome."""

    id: int
    integration_id: int
    variant: str
    state: str
    attempts: int
    next_attempt_at: str | None
    message_id: int | None  # the MessageJson id of the message delivered
    task_number: int | None
    outcome: str
    answer: DeliveryAnswerJson | None
    journal_ids: list[int]
    form: list[list[str]]
    created_at: str
    updated_at: str


class ReplyJson(TypedDict):
    """`POST /tasks/<n>/replies`: the message and its delivery."""

    message: MessageJson
    delivery: DeliveryJson


class FirstMessageJson(TypedDict):
    """`POST /first-messages`: the delivery, and the chat the integration assigned."""

    message: MessageJson | None
    delivery: DeliveryJson
    task: int | None
    chatId: str | None
    contactId: str | None


class InboxMessageJson(TypedDict):
    """A message the fake chat received from Planfix."""

    id: int
    ts: str
    integration_id: int
    variant: str
    providerId: str
    chatId: str
    contactId: str
    contactPhone: str
    channel: str
    message: str
    messageId: str
    userName: str
    userLastName: str
    userIco: str
    taskEmail: str
    attachments: list[AttachmentJson]


class ChatSendJson(TypedDict):
    """What Planfix answered to a message the fake chat sent."""

    status: int | None
    body: str
    json: Any
    duration_ms: float
    form: list[list[str]]
    error: str
