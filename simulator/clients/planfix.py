"""A typed client for Planfix's chat API: the five commands the chat side sends to Planfix.

Works against the simulator and against any Planfix-compatible server. Arguments are snake_case;
the wire names (`chatId`, `planfix_token`, …) appear only where the form is built, here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.clients.http import Answer, parse_json, post_form
from simulator.contract import attachment_pairs

Pairs = list[tuple[str, str]]
AttachmentLike = tuple[str, str] | Mapping[str, str]

# Python name → wire name, for every field a chat sends to Planfix.
WIRE_NAMES: dict[str, str] = {
    "cmd": "cmd",
    "provider_id": "providerId",
    "chat_id": "chatId",
    "planfix_token": "planfix_token",
    "message": "message",
    "contact_id": "contactId",
    "contact_name": "contactName",
    "contact_last_name": "contactLastName",
    "contact_ico": "contactIco",
    "contact_email": "contactEmail",
    "contact_phone": "contactPhone",
    "contact_data": "contactData",
    "channel": "channel",
    "title": "title",
    "is_echo": "isEcho",
    "user_email": "userEmail",
    "message_id": "messageId",
    "message_status": "messageStatus",
    "message_status_text": "messageStatusText",
    # Planfix → chat fields, so matchers can name them in Python style too.
    "token": "token",
    "user_name": "userName",
    "user_last_name": "userLastName",
    "user_ico": "userIco",
    "task_email": "taskEmail",
}


def wire_name(name: str) -> str:
    """The wire name of a Python-style field name; wire names and unknown names pass unchanged."""
    return WIRE_NAMES.get(name, name)


def _optional(pairs: Pairs, **values: str | None) -> None:
    for name, value in values.items():
        if value is not None:
            pairs.append((wire_name(name), value))


@dataclass(frozen=True)
class PlanfixAnswer:
    """Planfix's answer to one command: status, body, and the decoded `data` when there is one."""

    cmd: str
    form: tuple[tuple[str, str], ...]
    answer: Answer
    data: Any = None
    error: str = ""  # the wire error text: "Invalid parameters", "Invalid token", …
    number: int | None = None  # getTask: the task number; getContact: the contact number
    status_is_active: bool | None = None  # getTask in the observed profile
    notes: tuple[str, ...] = field(default=())

    @property
    def status(self) -> int | None:
        """The HTTP status, or None when no answer came (see `network_error`)."""
        return self.answer.status

    @property
    def ok(self) -> bool:
        """Whether Planfix answered 200."""
        return self.answer.status == 200

    @property
    def body(self) -> str:
        """The answer's body as text."""
        return self.answer.text

    @property
    def network_error(self) -> str:
        """Why no answer came ("" when one did)."""
        return self.answer.error


def decode_answer(cmd: str, form: Sequence[tuple[str, str]], answer: Answer) -> PlanfixAnswer:
    """Read an answer the way a careful client does: `data` may be an object or a JSON string."""
    parsed = answer.json_or_none()
    error = ""
    data: Any = None
    number: int | None = None
    active: bool | None = None
    notes: list[str] = []
    if isinstance(parsed, dict):
        if isinstance(parsed.get("error"), str):
            error = parsed["error"]
        data = parsed.get("data")
        if isinstance(data, str):
            # Observed in the wild: `data` is a JSON document inside a string.
            try:
                data = parse_json(data)
                notes.append("data was a JSON string")
            except ValueError:
                notes.append("data is a string that is not JSON")
        if isinstance(data, dict):
            raw_number = data.get("number")
            if isinstance(raw_number, int) and not isinstance(raw_number, bool):
                number = raw_number
            raw_active = data.get("statusIsActive")
            if isinstance(raw_active, bool):
                active = raw_active
    return PlanfixAnswer(
        cmd=cmd,
        form=tuple(form),
        answer=answer,
        data=data,
        error=error,
        number=number,
        status_is_active=active,
        notes=tuple(notes),
    )


class PlanfixClient:
    """The chat side of the contract: one method per command, answers decoded, never raises."""

    def __init__(
        self,
        url: str,
        planfix_token: str,
        *,
        provider_id: str = "planfix-sim-client",
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.planfix_token = planfix_token
        self.provider_id = provider_id
        self.timeout = timeout
        self.headers = dict(headers or {})

    def _head(self, cmd: str, provider_id: str | None) -> Pairs:
        return [
            ("cmd", cmd),
            ("providerId", self.provider_id if provider_id is None else provider_id),
            ("planfix_token", self.planfix_token),
        ]

    def send_form(self, pairs: Sequence[tuple[str, str]]) -> PlanfixAnswer:
        """Post any form as it is (for malformed requests); the answer is decoded."""
        cmd = next((v for k, v in pairs if k == "cmd"), "")
        answer = post_form(self.url, pairs, timeout=self.timeout, headers=self.headers)
        return decode_answer(cmd, pairs, answer)

    def new_message(
        self,
        chat_id: str,
        contact_id: str,
        message: str,
        contact_name: str | None = None,
        *,
        channel: str | None = None,
        title: str | None = None,
        contact_last_name: str | None = None,
        contact_ico: str | None = None,
        contact_email: str | None = None,
        contact_phone: str | None = None,
        contact_data: str | None = None,
        attachments: Iterable[AttachmentLike] = (),
        is_echo: bool | None = None,
        user_email: str | None = None,
        data: Mapping[str, str] | None = None,
        extra: Iterable[tuple[str, str]] = (),
        provider_id: str | None = None,
    ) -> PlanfixAnswer:
        """`newMessage`: a customer message (or, with is_echo, the business's own) into a task.

        `contact_name` defaults to `contact_id`; `data` fills task fields (`data_<field>`).
        """
        pairs = self._head("newMessage", provider_id)
        pairs += [
            ("chatId", chat_id),
            ("message", message),
            ("contactId", contact_id),
            ("contactName", contact_id if contact_name is None else contact_name),
        ]
        _optional(
            pairs,
            channel=channel,
            title=title,
            contact_last_name=contact_last_name,
            contact_ico=contact_ico,
            contact_email=contact_email,
            contact_phone=contact_phone,
            contact_data=contact_data,
        )
        pairs += attachment_pairs(attachments)
        if is_echo is not None:
            pairs.append(("isEcho", "1" if is_echo else "0"))
        _optional(pairs, user_email=user_email)
        pairs += [(f"data_{name}", value) for name, value in (data or {}).items()]
        pairs += list(extra)
        return self.send_form(pairs)

    def get_task(self, chat_id: str, *, provider_id: str | None = None) -> PlanfixAnswer:
        """`getTask`: the number of the chat's task (`.number`)."""
        return self.send_form([*self._head("getTask", provider_id), ("chatId", chat_id)])

    def get_contact(self, contact_id: str, *, provider_id: str | None = None) -> PlanfixAnswer:
        """`getContact`: the Planfix number of a contact (`.number`)."""
        return self.send_form([*self._head("getContact", provider_id), ("contactId", contact_id)])

    def update_contact(
        self,
        contact_id: str,
        contact_name: str,
        *,
        contact_last_name: str | None = None,
        contact_ico: str | None = None,
        contact_email: str | None = None,
        contact_phone: str | None = None,
        contact_data: str | None = None,
        provider_id: str | None = None,
    ) -> PlanfixAnswer:
        """`updateContact`: change a contact's fields."""
        pairs = self._head("updateContact", provider_id)
        pairs += [("contactId", contact_id), ("contactName", contact_name)]
        _optional(
            pairs,
            contact_last_name=contact_last_name,
            contact_ico=contact_ico,
            contact_email=contact_email,
            contact_phone=contact_phone,
            contact_data=contact_data,
        )
        return self.send_form(pairs)

    def message_status(
        self,
        message_id: str,
        status: str,
        status_text: str | None = None,
        *,
        provider_id: str | None = None,
    ) -> PlanfixAnswer:
        """`messageStatus`: report delivery of a message Planfix sent (sent / read / error)."""
        pairs = self._head("messageStatus", provider_id)
        pairs += [("messageId", message_id), ("messageStatus", status)]
        _optional(pairs, message_status_text=status_text)
        return self.send_form(pairs)
