"""A typed client for the simulator's control API (`/api/v1`).

Every call goes through `simulator.clients.http.send` (the one HTTP client). Answers are the JSON
the API documents, typed as TypedDicts; a non-2xx answer or a network failure raises `ControlError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlencode

from simulator.clients.http import Answer, request_json
from simulator.clients.planfix import AttachmentLike, wire_name
from simulator.clients.shapes import (
    AttachmentJson,
    ChatSendJson,
    ContactJson,
    DeliveryAnswerJson,
    DeliveryJson,
    EmployeeJson,
    FakeChatJson,
    FaultPlanJson,
    FaultsJson,
    FirstMessageJson,
    InboxMessageJson,
    IntegrationJson,
    IntegrationOptionsJson,
    JournalEntryJson,
    MessageJson,
    ReplyJson,
    RetryJson,
    TaskDetailJson,
    TaskJson,
)

# The answer types are part of this client's interface (they live in shapes.py).
__all__ = [
    "AttachmentJson",
    "ChatSendJson",
    "ContactJson",
    "ControlClient",
    "ControlError",
    "DeliveryAnswerJson",
    "DeliveryJson",
    "EmployeeJson",
    "FakeChatJson",
    "Fault",
    "FaultPlanJson",
    "FaultsJson",
    "FirstMessageJson",
    "InboxMessageJson",
    "IntegrationJson",
    "IntegrationOptionsJson",
    "JournalEntryJson",
    "MessageJson",
    "ReplyJson",
    "RetryJson",
    "TaskDetailJson",
    "TaskJson",
    "WaitTimeout",
]


@dataclass(frozen=True)
class Fault:
    """A fault for one face: a status, a malformed body, latency or a dropped connection."""

    status: int | None = None
    malformed: bool = False
    latency_ms: int | None = None
    drop: bool = False
    count: int | None = None
    probability: float | None = None
    seed: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The control API's JSON form (unset fields left out)."""
        out: dict[str, Any] = {}
        for key in ("status", "latency_ms", "count", "probability", "seed"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.malformed:
            out["malformed"] = True
        if self.drop:
            out["drop"] = True
        return out


class ControlError(Exception):
    """The control API refused a call (non-2xx) or could not be reached."""

    def __init__(self, method: str, path: str, answer: Answer) -> None:
        self.method = method
        self.path = path
        self.answer = answer
        self.status = answer.status
        self.body: Any = answer.json_or_none()
        what = answer.error or f"{answer.status}: {answer.text[:500]}"
        super().__init__(f"{method} {path} → {what}")


class WaitTimeout(ControlError):
    """`wait` saw no matching exchange in time; `closest` holds the nearest entries."""

    @property
    def closest(self) -> list[JournalEntryJson]:
        """The entries that came closest to the match."""
        found = self.body.get("closest", []) if isinstance(self.body, dict) else []
        return cast(list[JournalEntryJson], found)


def _attachments(items: Iterable[AttachmentLike]) -> list[dict[str, str]]:
    return [
        {"name": a["name"], "url": a["url"]}
        if isinstance(a, Mapping)
        else {"name": a[0], "url": a[1]}
        for a in items
    ]


def _drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class ControlClient:
    """The control API of a running simulator, one method per route."""

    def __init__(
        self, base_url: str, admin_token: str | None = None, *, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.admin_token = admin_token
        self.timeout = timeout

    # -- plumbing ---------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        data: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One control-API call: the parsed JSON answer; ControlError when it is not a 2xx."""
        answer = self.raw(method, path, data, query=query, timeout=timeout)
        if answer.status is None or not 200 <= answer.status < 300:
            raise ControlError(method, path, answer)
        return answer.json_or_none()

    def raw(
        self,
        method: str,
        path: str,
        data: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """One control-API call, answer as it came (never raises)."""
        url = self.base_url + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params)
        headers = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}
        return request_json(
            method,
            url,
            data,
            timeout=self.timeout if timeout is None else timeout,
            headers=headers,
        )

    # -- the simulator ----------------------------------------------------------------------

    @property
    def planfix_url(self) -> str:
        """The Planfix endpoint of this simulator."""
        return self.base_url + "/webchat/api"

    def status(self) -> dict[str, Any]:
        """Version, endpoints and counts."""
        return cast(dict[str, Any], self.call("GET", "/api/v1/status"))

    def reset(self, integration: int | str | None = None) -> None:
        """Forget chats, tasks, contacts, messages and journal: all, or one integration's."""
        self.call("POST", "/api/v1/reset", query={"integration": integration})

    # -- integrations and employees ---------------------------------------------------------

    def integrations(self) -> list[IntegrationJson]:
        """Every integration."""
        return cast(list[IntegrationJson], self.call("GET", "/api/v1/integrations"))

    def integration(self, ref: int | str) -> IntegrationJson:
        """One integration by id or name."""
        return cast(IntegrationJson, self.call("GET", f"/api/v1/integrations/{_seg(ref)}"))

    def create_integration(self, **settings: Any) -> IntegrationJson:
        """Create an integration (own tokens, tasks and journal); unset tokens are generated."""
        return cast(IntegrationJson, self.call("POST", "/api/v1/integrations", settings))

    def update_integration(self, ref: int | str, **settings: Any) -> IntegrationJson:
        """Change some settings of an integration (url, token, profile, strict, …)."""
        path = f"/api/v1/integrations/{_seg(ref)}"
        return cast(IntegrationJson, self.call("PATCH", path, settings))

    def delete_integration(self, ref: int | str) -> None:
        """Delete an integration with its chats, tasks, messages, deliveries and journal."""
        self.call("DELETE", f"/api/v1/integrations/{_seg(ref)}")

    def employees(self) -> list[EmployeeJson]:
        """Employees who can reply."""
        return cast(list[EmployeeJson], self.call("GET", "/api/v1/employees"))

    def add_employee(
        self, email: str, name: str, last_name: str = "", ico: str = ""
    ) -> EmployeeJson:
        """Add an employee (or update the one with that e-mail)."""
        data = {"email": email, "name": name, "last_name": last_name, "ico": ico}
        return cast(EmployeeJson, self.call("POST", "/api/v1/employees", data))

    # -- tasks, contacts, journal -----------------------------------------------------------

    def tasks(self, integration: int | str | None = None) -> list[TaskJson]:
        """Tasks, most recently active first."""
        found = self.call("GET", "/api/v1/tasks", query={"integration": integration})
        return cast(list[TaskJson], found)

    def task(self, number: int) -> TaskDetailJson:
        """One task with its messages."""
        return cast(TaskDetailJson, self.call("GET", f"/api/v1/tasks/{number}"))

    def complete_task(self, number: int) -> TaskJson:
        """Complete a task: the chat's next message opens a new one (by default)."""
        return cast(TaskJson, self.call("POST", f"/api/v1/tasks/{number}/complete"))

    def reopen_task(self, number: int) -> TaskJson:
        """Make a completed task active again."""
        return cast(TaskJson, self.call("POST", f"/api/v1/tasks/{number}/reopen"))

    def read_task(self, number: int) -> TaskJson:
        """Clear a task's unread marker."""
        return cast(TaskJson, self.call("POST", f"/api/v1/tasks/{number}/read"))

    def contacts(self, integration: int | str | None = None) -> list[ContactJson]:
        """Contacts, newest first."""
        found = self.call("GET", "/api/v1/contacts", query={"integration": integration})
        return cast(list[ContactJson], found)

    def journal(
        self,
        integration: int | str | None = None,
        *,
        cmd: str | None = None,
        direction: str | None = None,
        status: int | None = None,
        since: int | None = None,
        limit: int | None = None,
        reveal: bool = False,
    ) -> list[JournalEntryJson]:
        """Journal entries, oldest first; tokens in forms are masked unless `reveal`."""
        query = _drop_none(
            integration=integration,
            cmd=cmd,
            direction=direction,
            status=status,
            since=since,
            limit=limit,
            reveal="1" if reveal else None,
        )
        return cast(list[JournalEntryJson], self.call("GET", "/api/v1/journal", query=query))

    def journal_entry(self, entry_id: int) -> JournalEntryJson:
        """One journal entry."""
        return cast(JournalEntryJson, self.call("GET", f"/api/v1/journal/{entry_id}"))

    # -- Planfix → chat ---------------------------------------------------------------------

    def reply(
        self,
        task: int,
        message: str,
        *,
        employee: str | None = None,
        attachments: Iterable[AttachmentLike] = (),
        wait: bool = True,
    ) -> ReplyJson:
        """An operator reply in a task, delivered to the integration's URL."""
        data = _drop_none(message=message, employee=employee, wait=wait)
        items = _attachments(attachments)
        if items:
            data["attachments"] = items
        return cast(ReplyJson, self.call("POST", f"/api/v1/tasks/{task}/replies", data))

    def first_message(
        self,
        integration: int | str,
        contact_phone: str,
        message: str,
        *,
        employee: str | None = None,
        channel: str | None = None,
        attachments: Iterable[AttachmentLike] = (),
    ) -> FirstMessageJson:
        """A first message to a contact by phone: the integration must assign the chat."""
        data = _drop_none(
            integration=integration,
            contactPhone=contact_phone,
            message=message,
            employee=employee,
            channel=channel,
        )
        items = _attachments(attachments)
        if items:
            data["attachments"] = items
        return cast(FirstMessageJson, self.call("POST", "/api/v1/first-messages", data))

    def deliveries(self, integration: int | str | None = None) -> list[DeliveryJson]:
        """Deliveries, with their outcomes."""
        found = self.call("GET", "/api/v1/deliveries", query={"integration": integration})
        return cast(list[DeliveryJson], found)

    def delivery(self, delivery_id: int) -> DeliveryJson:
        """One delivery."""
        return cast(DeliveryJson, self.call("GET", f"/api/v1/deliveries/{delivery_id}"))

    def retry_delivery(self, delivery_id: int) -> DeliveryJson:
        """Redeliver by hand."""
        path = f"/api/v1/deliveries/{delivery_id}/retry"
        return cast(DeliveryJson, self.call("POST", path))

    # -- the fake chat ----------------------------------------------------------------------

    def chat_inbox(
        self, integration: int | str | None = None, chat_id: str | None = None
    ) -> list[InboxMessageJson]:
        """What the fake chat received from Planfix."""
        query = _drop_none(integration=integration, chatId=chat_id)
        return cast(list[InboxMessageJson], self.call("GET", "/api/v1/chat/inbox", query=query))

    def chat_chats(self, integration: int | str | None = None) -> list[FakeChatJson]:
        """The chats the fake chat knows."""
        found = self.call("GET", "/api/v1/chat/chats", query={"integration": integration})
        return cast(list[FakeChatJson], found)

    def chat_message(
        self,
        chat_id: str,
        contact_id: str,
        message: str,
        contact_name: str | None = None,
        *,
        integration: int | str | None = None,
        attachments: Iterable[AttachmentLike] = (),
        data: Mapping[str, str] | None = None,
        planfix_url: str | None = None,
        planfix_token: str | None = None,
        **optional: str,
    ) -> ChatSendJson:
        """The fake chat posts a customer's `newMessage` to Planfix (this simulator by default).

        `optional` takes any optional newMessage field in snake_case (channel, title, is_echo, …).
        """
        body: dict[str, Any] = _drop_none(
            integration=integration,
            chatId=chat_id,
            contactId=contact_id,
            contactName=contact_id if contact_name is None else contact_name,
            message=message,
            planfix_url=planfix_url,
            planfix_token=planfix_token,
        )
        body.update({wire_name(k): v for k, v in optional.items()})
        items = _attachments(attachments)
        if items:
            body["attachments"] = items
        if data:
            body["data"] = dict(data)
        return cast(ChatSendJson, self.call("POST", "/api/v1/chat/messages", body))

    def chat_command(
        self,
        cmd: str,
        *,
        planfix_url: str | None = None,
        planfix_token: str | None = None,
        **fields: str,
    ) -> ChatSendJson:
        """The fake chat sends any of the five commands (fields in snake_case or wire names)."""
        body: dict[str, Any] = {"cmd": cmd}
        body.update({wire_name(k): v for k, v in fields.items()})
        body.update(_drop_none(planfix_url=planfix_url, planfix_token=planfix_token))
        return cast(ChatSendJson, self.call("POST", "/api/v1/chat/commands", body))

    # -- waiting and faults -----------------------------------------------------------------

    def wait(
        self,
        *,
        timeout: float = 10.0,
        since: int | None = None,
        direction: str | None = None,
        party: str | None = None,
        cmd: str | None = None,
        chat_id: str | None = None,
        status: int | None = None,
        integration: int | str | None = None,
        fields: Mapping[str, str | list[str] | None] | None = None,
        reveal: bool = False,
    ) -> JournalEntryJson:
        """Block until a matching exchange is journaled; WaitTimeout (with `closest`) if none."""
        match = _drop_none(
            direction=direction,
            party=party,
            cmd=cmd,
            chatId=chat_id,
            status=status,
            integration=integration,
        )
        if fields:
            match["fields"] = {wire_name(k): v for k, v in fields.items()}
        data = _drop_none(match=match, timeout=timeout, since=since)
        path = "/api/v1/wait?reveal=1" if reveal else "/api/v1/wait"
        answer = self.raw("POST", path, data, timeout=timeout + self.timeout)
        if answer.status == 408:
            raise WaitTimeout("POST", path, answer)
        if answer.status is None or not 200 <= answer.status < 300:
            raise ControlError("POST", path, answer)
        return cast(JournalEntryJson, answer.json())

    def faults(self, ref: int | str) -> FaultsJson:
        """The faults set on an integration."""
        path = f"/api/v1/integrations/{_seg(ref)}/faults"
        return cast(FaultsJson, self.call("GET", path))

    def set_faults(
        self, ref: int | str, *, planfix: Fault | None = None, fake_chat: Fault | None = None
    ) -> FaultsJson:
        """Inject faults on `/webchat/api` (planfix) and/or `/fake-chat/webhook` (fake_chat)."""
        data: dict[str, Any] = {}
        if planfix is not None:
            data["planfix"] = planfix.as_json()
        if fake_chat is not None:
            data["fake_chat"] = fake_chat.as_json()
        path = f"/api/v1/integrations/{_seg(ref)}/faults"
        return cast(FaultsJson, self.call("PUT", path, data))

    def clear_faults(self, ref: int | str) -> None:
        """Remove every fault of an integration."""
        self.call("DELETE", f"/api/v1/integrations/{_seg(ref)}/faults")


def _seg(ref: int | str) -> str:
    return quote(str(ref), safe="")
