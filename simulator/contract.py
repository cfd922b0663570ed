"""Pure rules of the Planfix chat API: what a form means, what is valid, what is noted.

Nothing here does I/O or knows about Flask: the HTTP layer hands in ordered form pairs and an
integration, and gets back a typed command (or a typed error) plus the contract notes to journal.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from simulator.errors import InvalidParameters

Profile = Literal["documented", "observed"]
PROFILES: tuple[Profile, ...] = ("documented", "observed")
STATUSES = ("error", "sent", "read")


@dataclass(frozen=True)
class Note:
    """A contract note attached to a journal entry.

    `unknown` marks places where Planfix's real behaviour is not known: strict mode refuses them.
    """

    code: str
    text: str
    unknown: bool = False

    def as_dict(self) -> dict[str, object]:
        """JSON form for the journal and the control API."""
        return {"code": self.code, "text": self.text, "unknown": self.unknown}


@dataclass(frozen=True)
class Form:
    """An ordered, multi-valued form: the pairs exactly as they came over the wire."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Form:
        """Build a form from any iterable of pairs."""
        return cls(tuple((str(k), str(v)) for k, v in pairs))

    def get(self, key: str) -> str | None:
        """The first value of `key`, or None."""
        for k, v in self.pairs:
            if k == key:
                return v
        return None

    def getlist(self, key: str) -> list[str]:
        """Every value of `key`, in order."""
        return [v for k, v in self.pairs if k == key]

    def names(self) -> list[str]:
        """Distinct keys in order of first appearance."""
        return list(dict.fromkeys(k for k, _ in self.pairs))

    def as_list(self) -> list[list[str]]:
        """JSON form: a list of [key, value] pairs."""
        return [[k, v] for k, v in self.pairs]


@dataclass(frozen=True)
class Options:
    """Per-integration switches for behaviour Planfix makes optional or leaves unknown."""

    new_task_when_closed: bool = True
    rename_task_on_title: bool = True


@dataclass(frozen=True)
class Retry:
    """Delivery retry policy: Planfix's documented automation schedule, scaled by `time_factor`."""

    enabled: bool = False
    schedule: tuple[float, ...] = (900.0, 1800.0, 3600.0, 3600.0)
    time_factor: float = 1.0


def new_token() -> str:
    """A fresh token for an integration (what the control API gives one created without)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Integration:
    """One chat integration as the Planfix admin set it up (an empty token: generate one)."""

    id: int
    name: str
    planfix_token: str
    token: str
    url: str
    profile: Profile = "documented"
    strict: bool = False
    task_fields: tuple[str, ...] = ()
    default_employee: str | None = None
    options: Options = field(default_factory=Options)
    timeout: float = 10.0
    retry: Retry = field(default_factory=Retry)


@dataclass(frozen=True)
class Employee:
    """A Planfix employee: the author of replies and echo messages."""

    id: int
    email: str
    name: str
    last_name: str = ""
    ico: str = ""


@dataclass(frozen=True)
class Attachment:
    """A file passed by link: the n-th name paired with the n-th url."""

    name: str
    url: str


@dataclass(frozen=True)
class ContactInfo:
    """Contact fields as sent; None means the field was absent or empty."""

    contact_id: str
    name: str | None = None
    last_name: str | None = None
    ico: str | None = None
    email: str | None = None
    phone: str | None = None
    data: str | None = None


@dataclass(frozen=True)
class NewMessage:
    """`newMessage` from the chat: a customer message, or an echo of the business's own."""

    provider_id: str
    chat_id: str
    message: str
    contact: ContactInfo
    channel: str | None = None
    title: str | None = None
    attachments: tuple[Attachment, ...] = ()
    is_echo: bool = False
    user_email: str | None = None
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GetTask:
    """`getTask`: the number of the chat's task."""

    provider_id: str
    chat_id: str


@dataclass(frozen=True)
class GetContact:
    """`getContact`: the Planfix number of a contact."""

    provider_id: str
    contact_id: str


@dataclass(frozen=True)
class UpdateContact:
    """`updateContact`: change a contact's fields."""

    provider_id: str
    contact: ContactInfo


@dataclass(frozen=True)
class MessageStatus:
    """`messageStatus`: delivery report for a message Planfix sent."""

    provider_id: str
    message_id: str
    status: str
    status_text: str | None = None


Command = NewMessage | GetTask | GetContact | UpdateContact | MessageStatus

CONTACT_FIELDS = (
    "contactName",
    "contactLastName",
    "contactIco",
    "contactEmail",
    "contactPhone",
    "contactData",
)
ATTACHMENT_NAME = "attachments[name]"
ATTACHMENT_URL = "attachments[url]"
DATA_PREFIX = "data_"

# Required and optional fields per command, exactly as CONTRACT.md lists them (token aside).
REQUIRED: dict[str, tuple[str, ...]] = {
    "newMessage": ("providerId", "chatId", "message", "contactId", "contactName"),
    "getTask": ("providerId", "chatId"),
    "getContact": ("providerId", "contactId"),
    "updateContact": ("providerId", "contactId", "contactName"),
    "messageStatus": ("providerId", "messageId", "messageStatus"),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "newMessage": (
        "channel",
        "title",
        *CONTACT_FIELDS[1:],
        ATTACHMENT_NAME,
        ATTACHMENT_URL,
        "isEcho",
        "userEmail",
    ),
    "getTask": (),
    "getContact": (),
    "updateContact": CONTACT_FIELDS[1:],
    "messageStatus": ("messageStatusText",),
}
COMMANDS = tuple(REQUIRED)
TOKEN_FIELD = "planfix_token"  # noqa: S105 - a field name, not a secret
ALT_TOKEN_FIELD = "token"  # noqa: S105 - a field name, not a secret
REPEATABLE = frozenset({ATTACHMENT_NAME, ATTACHMENT_URL})


def parse_is_echo(raw: str | None) -> bool:
    """Read `isEcho`: `1`/`true` and `0`/`false` (any case), empty or absent is false."""
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("1", "true"):
        return True
    if value in ("", "0", "false"):
        return False
    raise InvalidParameters(f"isEcho is not a boolean: {raw!r}")


def strict_check(notes: Sequence[Note], strict: bool) -> None:
    """In strict mode, refuse anything whose real Planfix behaviour is unknown."""
    if strict:
        for note in notes:
            if note.unknown:
                raise InvalidParameters(f"strict: {note.code}: {note.text}")


def _single(form: Form, key: str, profile: Profile, notes: list[Note]) -> str | None:
    """The value of a non-repeatable key, noting duplicates the way each profile sees them."""
    values = form.getlist(key)
    if len(values) > 1:
        same = all(v == values[0] for v in values)
        if same and profile == "observed":
            notes.append(Note("duplicate-key", f"{key} sent {len(values)} times (same value)"))
        else:
            detail = "same value" if same else "different values; the first is used"
            notes.append(
                Note(
                    "duplicate-key",
                    f"{key} sent {len(values)} times ({detail}): Planfix's handling is unknown",
                    unknown=True,
                )
            )
    if not values:
        return None
    return values[0]


def _optional(value: str | None) -> str | None:
    """Empty optional fields count as absent (clients in production send them empty)."""
    return value if value else None


def parse_command(cmd: str, form: Form, integration: Integration) -> tuple[Command, list[Note]]:
    """Validate a form for `cmd` and build its command; raise InvalidParameters when invalid."""
    if cmd not in REQUIRED:
        raise InvalidParameters(f"unknown cmd {cmd!r}")
    profile = integration.profile
    notes: list[Note] = []
    values: dict[str, str | None] = {}
    for key in (*REQUIRED[cmd], *OPTIONAL[cmd]):
        if key not in REPEATABLE:
            values[key] = _single(form, key, profile, notes)

    required = list(REQUIRED[cmd])
    if cmd == "newMessage" and profile == "observed" and not values.get("contactName"):
        required.remove("contactName")
        notes.append(Note("observed-form", "newMessage without contactName (observed profile)"))
    for key in required:
        if not values.get(key):
            raise InvalidParameters(f"{key} is missing or empty")
    provider_id = values["providerId"] or ""
    if "~" in provider_id:
        raise InvalidParameters("providerId must not contain '~'")

    known = {"cmd", TOKEN_FIELD, ALT_TOKEN_FIELD, *REQUIRED[cmd], *OPTIONAL[cmd]}
    for key in form.names():
        if key in known or (cmd == "newMessage" and key.startswith(DATA_PREFIX)):
            continue
        notes.append(Note("unlisted-field", f"{key} is not a {cmd} field; ignored"))

    command: Command
    if cmd == "newMessage":
        command = _new_message(form, values, integration, notes)
    elif cmd == "getTask":
        command = GetTask(provider_id, values["chatId"] or "")
    elif cmd == "getContact":
        command = GetContact(provider_id, values["contactId"] or "")
    elif cmd == "updateContact":
        command = UpdateContact(provider_id, _contact(values))
    else:
        raw_status = values["messageStatus"] or ""
        status = raw_status if raw_status in STATUSES else "sent"
        if status != raw_status:
            notes.append(Note("status-as-sent", f"messageStatus {raw_status!r} counts as 'sent'"))
        command = MessageStatus(
            provider_id, values["messageId"] or "", status, _optional(values["messageStatusText"])
        )
    return command, notes


def _contact(values: dict[str, str | None]) -> ContactInfo:
    return ContactInfo(
        contact_id=values["contactId"] or "",
        name=_optional(values.get("contactName")),
        last_name=_optional(values.get("contactLastName")),
        ico=_optional(values.get("contactIco")),
        email=_optional(values.get("contactEmail")),
        phone=_optional(values.get("contactPhone")),
        data=_optional(values.get("contactData")),
    )


def pair_attachments(names: Sequence[str], urls: Sequence[str]) -> tuple[list[Attachment], bool]:
    """Pair the n-th name with the n-th url; the flag says whether the counts matched."""
    count = max(len(names), len(urls))
    pairs = [
        Attachment(names[i] if i < len(names) else "", urls[i] if i < len(urls) else "")
        for i in range(count)
    ]
    return pairs, len(names) == len(urls)


def attachment_pairs(
    attachments: Iterable[Attachment | tuple[str, str] | Mapping[str, str]],
) -> list[tuple[str, str]]:
    """Attachments as sent on the wire: repeated un-indexed keys, n-th name with n-th url."""
    pairs: list[tuple[str, str]] = []
    for item in attachments:
        if isinstance(item, Attachment):
            name, url = item.name, item.url
        elif isinstance(item, Mapping):
            name, url = item["name"], item["url"]
        else:
            name, url = item
        pairs += [(ATTACHMENT_NAME, name), (ATTACHMENT_URL, url)]
    return pairs


def _new_message(
    form: Form, values: dict[str, str | None], integration: Integration, notes: list[Note]
) -> NewMessage:
    names, urls = form.getlist(ATTACHMENT_NAME), form.getlist(ATTACHMENT_URL)
    attachments, matched = pair_attachments(names, urls)
    if not matched:
        notes.append(
            Note(
                "attachment-count",
                f"{len(names)} attachments[name] but {len(urls)} attachments[url]: "
                "Planfix's pairing is unknown",
                unknown=True,
            )
        )
    fields: list[tuple[str, str]] = []
    for key, value in form.pairs:
        if not key.startswith(DATA_PREFIX):
            continue
        name = key[len(DATA_PREFIX) :]
        if name in integration.task_fields:
            fields.append((name, value))
        else:
            notes.append(
                Note(
                    "unknown-task-field",
                    f"{key}: the task template has no String field {name!r}; dropped",
                    unknown=True,
                )
            )
    return NewMessage(
        provider_id=values["providerId"] or "",
        chat_id=values["chatId"] or "",
        message=values["message"] or "",
        contact=_contact(values),
        channel=_optional(values.get("channel")),
        title=_optional(values.get("title")),
        attachments=tuple(attachments),
        is_echo=parse_is_echo(values.get("isEcho")),
        user_email=_optional(values.get("userEmail")),
        fields=tuple(fields),
    )


def contact_display_name(name: str | None, last_name: str | None, fallback: str) -> str:
    """How a contact is shown: first and last name, else the id it was sent with."""
    full = " ".join(part for part in (name, last_name) if part)
    return full or fallback


def default_task_title(contact_name: str) -> str:
    """The name of a task created without a `title`."""
    return f"Chat with {contact_name}"


def task_email(number: int, account: str, domain: str = "planfix.com") -> str:
    """The task's e-mail address: task+<number>@<account>.<domain>."""
    return f"task+{number}@{account}.{domain}"


@dataclass(frozen=True)
class HistoryLine:
    """One earlier message, as copied into a new task's description."""

    created_at: str
    author: str
    text: str


def history_description(task_number: int, lines: Sequence[HistoryLine]) -> str:
    """The description of a task opened after the chat's previous task closed."""
    head = f"Chat history (continued from task #{task_number}):"
    body = [f"[{line.created_at}] {line.author}: {line.text}" for line in lines]
    return "\n".join([head, *body])


def choose_author(
    email: str | None,
    employees: Sequence[Employee],
    integration: Integration,
) -> tuple[Employee | None, list[Note]]:
    """The author of a reply or an echo: `email`, else the integration's employee, else the owner.

    An e-mail no employee has is noted (`unknown-employee`) and the default is used; None only
    when the account has no employees.
    """
    notes: list[Note] = []
    by_email = {e.email.lower(): e for e in employees}
    if email:
        found = by_email.get(email.lower())
        if found:
            return found, notes
        notes.append(
            Note("unknown-employee", f"userEmail {email!r} is no employee; using the default")
        )
    if integration.default_employee:
        found = by_email.get(integration.default_employee.lower())
        if found:
            return found, notes
    # The employee who set the integration up: the account's first employee.
    return (employees[0] if employees else None), notes
