"""Planfix's task life cycle: which task a chat's message goes to, and what filing it changes.

The rules live here; the store only reads and writes rows. Each function runs its steps in one
store transaction, so a message and the contact, chat and task it created commit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.contract import (
    ContactInfo,
    Employee,
    Integration,
    NewMessage,
    Note,
    contact_display_name,
    default_task_title,
    history_description,
)
from simulator.records import ChatRecord, ContactRecord, DeliveryRecord
from simulator.store import AttemptResult, Store, TaskHead

# The echo author when no employee matches and the integration names none.
OWNER = "Integration owner"


@dataclass(frozen=True)
class Conversation:
    """A chat's contact, the chat, and the task its next message goes to."""

    contact: ContactRecord
    chat: ChatRecord
    task_number: int
    created: bool  # the task was opened just now
    current: TaskHead | None  # the chat's task as it was (None when the chat had none)
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class Filed:
    """What `newMessage` did: where the message went and what it created."""

    task_number: int
    task_created: bool
    message_pk: int
    contact_number: int
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class FirstChat:
    """The chat a first message opened: what the integration assigned, what Planfix knew."""

    provider_id: str
    chat_id: str
    contact: ContactInfo
    channel: str | None
    title: str


def open_conversation(
    store: Store,
    integration_id: int,
    *,
    provider_id: str,
    chat_id: str,
    contact: ContactInfo,
    channel: str | None,
    title: str | None,
    new_task_when_closed: bool,
    number: int | None = None,
) -> Conversation:
    """Find or create the contact, ensure the chat, take its active task or open a new one.

    The one way into a chat (newMessage and a delivered first message). A chat without a task
    gets one; a completed task is followed by a new one that carries the chat's history, unless
    `new_task_when_closed` is off (then the message joins it, with a note). A new task is titled
    `title`, else after the contact, and takes the reserved `number` when one is given.
    """
    found = store.find_or_add_contact(integration_id, provider_id, contact)
    chat = store.ensure_chat(integration_id, provider_id, chat_id, channel, found.pk)
    display = contact_display_name(found.name, found.last_name, found.contact_id)
    current = None if chat.task_number is None else store.task_head(chat.task_number)
    if current is not None and current.status == "active":
        return Conversation(found, chat, current.number, False, current)
    if current is not None and not new_task_when_closed:
        note = Note(
            "closed-task",
            f"task {current.number} is {current.status}; filed there (new_task_when_closed is off)",
        )
        return Conversation(found, chat, current.number, False, current, [note])
    description = (
        "" if current is None else history_description(current.number, store.chat_history(chat.pk))
    )
    opened = store.open_task(
        integration_id,
        chat,
        title=title or default_task_title(display),
        description=description,
        previous=None if current is None else current.number,
        number=number,
    )
    return Conversation(found, chat, opened, True, current)


def file_message(
    store: Store, integration: Integration, command: NewMessage, author: Employee | None
) -> Filed:
    """newMessage: file the message in its chat's task, creating contact, chat and task."""
    options = integration.options
    with store.transaction():
        where = open_conversation(
            store,
            integration.id,
            provider_id=command.provider_id,
            chat_id=command.chat_id,
            contact=command.contact,
            channel=command.channel,
            title=command.title,
            new_task_when_closed=options.new_task_when_closed,
        )
        notes = list(where.notes)
        current = where.current
        renamed = (
            not where.created
            and current is not None
            and bool(command.title)
            and current.title != command.title
            and options.rename_task_on_title
        )
        if renamed:
            store.rename_task(integration.id, where.task_number, command.title or "")
            notes.append(
                Note(
                    "task-renamed",
                    "title renamed the task (observed behaviour; the docs only say a "
                    "title names new tasks; option rename_task_on_title)",
                )
            )
        if command.fields:
            # A task opened just now has no fields yet.
            fields = {} if where.created or current is None else dict(current.fields)
            fields.update(dict(command.fields))
            store.set_task_fields(where.task_number, fields)
        contact = where.contact
        if command.is_echo:
            kind = "echo"
            name = (
                contact_display_name(author.name, author.last_name, author.email)
                if author
                else OWNER
            )
            email = author.email if author else ""
        else:
            kind = "customer"
            name = contact_display_name(contact.name, contact.last_name, contact.contact_id)
            email = ""
        pk = store.add_inbound(
            where.task_number,
            integration.id,
            kind=kind,
            text=command.message,
            author=name,
            employee_email=email,
            attachments=command.attachments,
            channel=command.channel or "",
        )
    return Filed(where.task_number, where.created, pk, contact.number, notes)


def finish_attempt(
    store: Store,
    delivery_id: int,
    worker: str,
    result: AttemptResult,
    first_chat: FirstChat | None = None,
) -> DeliveryRecord | None:
    """Record a delivery attempt; a delivered first message opens its chat and moves there."""
    if not (result.delivered and first_chat is not None):
        return store.finish_attempt(delivery_id, worker, result)
    with store.transaction():
        claim = store.held_claim(delivery_id, worker)
        if claim is None:
            return None  # another worker took it over: it records the outcome
        where = open_conversation(
            store,
            claim.integration_id,
            provider_id=first_chat.provider_id,
            chat_id=first_chat.chat_id,
            contact=first_chat.contact,
            channel=first_chat.channel,
            title=first_chat.title,
            new_task_when_closed=True,  # a first message always opens a task of its own
            number=claim.task_number,  # the number its taskEmail named
        )
        if claim.message_pk is not None:
            store.place_message(claim.message_pk, where.task_number)
        return store.finish_attempt(delivery_id, worker, result, where.task_number)
