"""The simulated Planfix account: runs parsed chat-API commands against the store.

This is what every face shares: the HTTP endpoint, the control API, scenarios and tests call these
functions; none of them touches the store's tables directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.contract import (
    Command,
    GetContact,
    GetTask,
    Integration,
    MessageStatus,
    NewMessage,
    Note,
    UpdateContact,
    choose_author,
    strict_check,
)
from simulator.errors import InvalidParameters, TaskNotFound, UnknownContact
from simulator.planfix import lifecycle
from simulator.store import Store


@dataclass(frozen=True)
class Outcome:
    """What a command did, in Python terms; the HTTP layer turns it into the profile's body."""

    cmd: str
    notes: list[Note] = field(default_factory=list)
    task_number: int | None = None
    task_active: bool | None = None
    task_created: bool = False
    contact_number: int | None = None


def run(store: Store, integration: Integration, command: Command, notes: list[Note]) -> Outcome:
    """Execute one command for `integration`; raise the typed wire error when it fails."""
    if isinstance(command, NewMessage):
        author = None
        if command.is_echo:
            author, author_notes = choose_author(command.user_email, store.employees(), integration)
            notes = [*notes, *author_notes]
        filed = lifecycle.file_message(store, integration, command, author)
        return Outcome(
            "newMessage",
            [*notes, *filed.notes],
            task_number=filed.task_number,
            task_active=True,
            task_created=filed.task_created,
            contact_number=filed.contact_number,
        )
    if isinstance(command, GetTask):
        state = store.chat_task_state(integration.id, command.provider_id, command.chat_id)
        if state is None:
            raise TaskNotFound(f"no task for chat {command.chat_id!r}")
        number, active = state
        return Outcome("getTask", notes, task_number=number, task_active=active)
    if isinstance(command, GetContact):
        contact = store.contact(integration.id, command.provider_id, command.contact_id)
        if contact is None:
            raise UnknownContact(f"no contact {command.contact_id!r}")
        return Outcome("getContact", notes, contact_number=contact.number)
    if isinstance(command, UpdateContact):
        unknown = store.contact(integration.id, command.provider_id, command.contact.contact_id)
        if unknown is None:
            note = Note(
                "unknown-contact",
                f"updateContact for unknown contact {command.contact.contact_id!r}: created "
                "(Planfix's answer here is unknown)",
                unknown=True,
            )
            strict_check([note], integration.strict)
            notes = [*notes, note]
        updated = store.update_contact(integration.id, command, create_unknown=True)
        return Outcome("updateContact", notes, contact_number=updated.number if updated else None)
    if isinstance(command, MessageStatus):
        found = store.set_message_status(
            integration.id, command.message_id, command.status, command.status_text
        )
        if not found:
            note = Note(
                "unknown-message",
                f"messageStatus for unknown messageId {command.message_id!r}: ignored "
                "(Planfix's answer here is unknown)",
                unknown=True,
            )
            strict_check([note], integration.strict)
            notes = [*notes, note]
        return Outcome("messageStatus", notes)
    raise InvalidParameters(f"unsupported command {command!r}")
