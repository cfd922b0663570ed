"""Journal entries → a scenario that replays them against a fresh simulator.

What replays: chat → Planfix requests (`send` steps with the recorded form, status and body) and
Planfix → chat deliveries (`reply` by chatId, or `first_message`; one step per delivery, however
many attempts it took). Tokens become the replaying integration's (`{{ planfix_token }}`); task
and contact numbers become type matchers; messageIds and chatIds that Planfix or the integration
assigned are saved from the step that produced them and used by later steps.

What does not: entries answered by an injected fault (the replay has no faults), requests that a
Planfix elsewhere sent to the fake chat, and requests without a command; the header of the export
lists each skipped entry and why.

Recorded values stay literal: every string the export did not write as a template on purpose is
emitted as `!literal "..."` when the templater would otherwise read it, and whatever goes into a
header comment is escaped onto its one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml

from simulator.clients.http import parse_json
from simulator.config.settings import FAKE_CHAT_URL, integration_as_dict
from simulator.contract import ATTACHMENT_NAME, ATTACHMENT_URL, Employee, Integration
from simulator.records import JournalEntry
from simulator.scenarios.templating import LITERAL_TAG, Literal, is_template

SCHEMA_URL = "./scenario.schema.json"  # written by `planfix-sim schema > scenario.schema.json`
# Keys whose numbers Planfix assigns: a fresh simulator numbers differently.
_ASSIGNED = frozenset({"number"})
# Form fields whose values Planfix or the integration handed out during the session.
_ASSIGNED_IDS = ("messageId", "chatId", "contactId")
# Send-step keys the runner reads as options: a recorded field of that name (or a repeated cmd
# or planfix_token, which the runner sends once) goes out as a verbatim `form` pair instead.
_SEND_OPTIONS = frozenset({"form", "data", "attachments", "content_type"})


class _Template(str):
    """A template the export writes on purpose (tokens, ids); every other string is recorded."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    """YAML's safe dumper, plus `Literal` as `!literal "..."`."""


def _represent_literal(dumper: yaml.SafeDumper, value: Literal) -> yaml.ScalarNode:
    # Double quotes show every escape (tabs, CR, NUL) and never fold a line break away.
    return dumper.represent_scalar(LITERAL_TAG, str(value), style='"')


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML folds a NEL (and other breaks YAML knows) inside plain and single-quoted scalars
    # into a space; double quotes escape them, so the value reads back byte-exact.
    style = None if value.isprintable() else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(Literal, _represent_literal)
_Dumper.add_representer(str, _represent_str)


def _recorded(value: Any) -> Any:
    """`value` with each recorded string that reads as a template marked `Literal`."""
    if isinstance(value, _Template):
        return str(value)
    if isinstance(value, str):
        return Literal(value) if is_template(value) else value
    if isinstance(value, list):
        return [_recorded(item) for item in value]
    if isinstance(value, dict):
        return {key: _recorded(item) for key, item in value.items()}
    return value


def _one_line(text: str) -> str:
    """`text` for a comment: backslashes, line breaks and other unprintables escaped."""
    return "".join(
        "\\\\" if c == "\\" else c if c.isprintable() else c.encode("unicode_escape").decode()
        for c in text
    )


@dataclass
class _Export:
    """The conversion's working state: steps so far, old value → template, skipped entries."""

    known_tokens: set[str]
    employees: Sequence[Employee]
    steps: list[dict[str, Any]] = field(default_factory=list)
    templates: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seen_deliveries: set[int] = field(default_factory=set)


def _loosen(value: Any, key: str = "") -> Any:
    """The recorded answer with assigned numbers (and JSON-in-a-string) turned into matchers."""
    if isinstance(value, dict):
        if any(str(k).startswith("$") for k in value):
            # `$` keys are matcher operators in a scenario: such an object cannot be written
            # literally, so the replay checks only that an object is there.
            return {"$type": "object"}
        return {k: _loosen(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_loosen(v) for v in value]
    if key in _ASSIGNED and isinstance(value, int) and not isinstance(value, bool):
        return {"$type": "integer"}
    if isinstance(value, str) and value.startswith("{"):
        return {"$type": "string"}  # the observed profile's JSON-encoded `data`
    return value


def _expect(status: int | None, body: str, assigned: Sequence[str] = ()) -> dict[str, Any]:
    expect: dict[str, Any] = {}
    if status is not None:
        expect["status"] = status
    if body == "":
        expect["empty"] = True
        return expect
    try:
        parsed = parse_json(body)
    except ValueError:
        expect["text"] = body
        return expect
    loose = _loosen(parsed)
    if isinstance(loose, dict):
        for key in assigned:
            if key in loose:
                loose[key] = {"$type": "string"}
    expect["body"] = loose
    return expect


def _send_step(state: _Export, entry: JournalEntry) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    # The replaying integration's token (the step's default) stands in for the first known one.
    stand_in = next(
        (
            index
            for index, (key, value) in enumerate(entry.form)
            if key == "planfix_token" and value in state.known_tokens
        ),
        None,
    )
    for index, (key, value) in enumerate(entry.form):
        if index == stand_in:
            continue
        if key == "token" and value in state.known_tokens:
            value = _Template("{{ planfix_token }}")
        elif key in _ASSIGNED_IDS:
            value = state.templates.get(value, value)
        taken = key in fields or (key == "planfix_token" and stand_in is not None)
        if key in _SEND_OPTIONS or (key in ("cmd", "planfix_token") and taken):
            fields.setdefault("form", []).append([key, value])
        elif key in fields:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        elif key in (ATTACHMENT_NAME, ATTACHMENT_URL):
            fields[key] = [value]
        else:
            fields[key] = value
    if stand_in is None:
        fields.setdefault("planfix_token", None)  # recorded without a token: leave it out
    step: dict[str, Any] = {"send": fields, "expect": _expect(entry.status, entry.response_body)}
    return step


def _attachments(form: Mapping[str, list[str]]) -> list[dict[str, str]]:
    names = form.get(ATTACHMENT_NAME, [])
    urls = form.get(ATTACHMENT_URL, [])
    return [{"name": n, "url": u} for n, u in zip(names, urls, strict=False)]


def _employee(state: _Export, form: Mapping[str, list[str]]) -> str | None:
    name = (form.get("userName") or [""])[0]
    last = (form.get("userLastName") or [""])[0]
    for employee in state.employees:
        if employee.name == name and employee.last_name == last:
            return employee.email
    return None


def _delivery_step(
    state: _Export, entry: JournalEntry, attempts: Sequence[JournalEntry]
) -> dict[str, Any]:
    form: dict[str, list[str]] = {}
    for key, value in entry.form:
        form.setdefault(key, []).append(value)
    first = "chatId" not in form
    number = len(state.steps) + 1
    body: dict[str, Any] = {}
    if first:
        body["contactPhone"] = form.get("contactPhone", [""])[0]
    else:
        chat = form["chatId"][0]
        body["chatId"] = state.templates.get(chat, chat)
        body["providerId"] = form.get("providerId", [""])[0]
    body["message"] = form.get("message", [""])[0]
    if first and form.get("channel"):
        body["channel"] = form["channel"][0]
    employee = _employee(state, form)
    if employee:
        body["employee"] = employee
    attachments = _attachments(form)
    if attachments:
        body["attachments"] = attachments
    answered = [a for a in attempts if not a.fault and a.status is not None] or [entry]
    final = answered[-1]
    step: dict[str, Any] = {"first_message" if first else "reply": body}
    if not final.fault and final.status is not None:
        step["expect"] = _expect(final.status, final.response_body, ("chatId", "contactId"))
    save: dict[str, str] = {}
    message_id = form.get("messageId", [""])[0]
    if message_id:
        save[f"message_{number}"] = _Template("{{ response.messageId }}")
        state.templates[message_id] = _Template(f"{{{{ message_{number} }}}}")
    if first:
        parsed = _json_or_none(final.response_body)
        for key, prefix in (("chatId", "chat"), ("contactId", "contact")):
            assigned = parsed.get(key) if isinstance(parsed, dict) else None
            if isinstance(assigned, str) and assigned:
                save[f"{prefix}_{number}"] = _Template(f"{{{{ response.{key} }}}}")
                state.templates[assigned] = _Template(f"{{{{ {prefix}_{number} }}}}")
    if save:
        step["save"] = save
    return step


def _started(entry: JournalEntry) -> tuple[datetime, int]:
    # Entries are journaled when answered; a delivery's answer may come after requests it caused
    # (the integration reporting messageStatus), so replay in order of start.
    ended = datetime.fromisoformat(entry.ts.replace("Z", "+00:00"))
    return ended - timedelta(milliseconds=entry.duration_ms), entry.id


def _json_or_none(text: str) -> Any:
    try:
        return parse_json(text)
    except ValueError:
        return None


def export_scenario(
    entries: Sequence[JournalEntry],
    *,
    integrations: Sequence[Integration],
    employees: Sequence[Employee],
    name: str = "exported session",
) -> str:
    """The YAML text of a scenario replaying `entries` (oldest first)."""
    state = _Export({i.planfix_token for i in integrations}, employees)
    by_delivery: dict[int, list[JournalEntry]] = {}
    for entry in entries:
        if entry.delivery_id is not None:
            by_delivery.setdefault(entry.delivery_id, []).append(entry)
    for entry in sorted(entries, key=_started):
        if entry.direction == "to_planfix":
            if entry.fault:
                state.skipped.append(f"#{entry.id}: answered by an injected fault ({entry.fault})")
            elif not entry.cmd and entry.method != "POST":
                state.skipped.append(f"#{entry.id}: {entry.method} carries no command")
            else:
                state.steps.append(_send_step(state, entry))
        elif entry.party == "planfix" and entry.delivery_id is not None:
            if entry.delivery_id in state.seen_deliveries:
                continue  # a retry of a delivery already replayed: the simulator retries itself
            state.seen_deliveries.add(entry.delivery_id)
            state.steps.append(_delivery_step(state, entry, by_delivery[entry.delivery_id]))
        else:
            state.skipped.append(
                f"#{entry.id}: {entry.direction} seen by {entry.party}: sent by another Planfix"
            )
    ids = [e.id for e in entries]
    scenario: dict[str, Any] = {
        "name": name or "exported session",  # the schema wants a name
        "description": (
            f"Exported from journal entries {min(ids)}..{max(ids)}." if ids else "Empty export."
        ),
    }
    used = {e.integration_id for e in entries if e.integration_id is not None}
    if len(used) == 1:
        source = next((i for i in integrations if i.id in used), None)
        if source is not None:
            settings = integration_as_dict(source)
            kept = ("profile", "strict", "task_fields", "options", "default_employee")
            scenario["integration"] = {k: settings[k] for k in kept if settings[k] is not None}
            if source.url != FAKE_CHAT_URL:
                state.skipped.insert(
                    0,
                    f"integration URL {source.url} not exported: replay with --integration-url",
                )
    scenario["steps"] = state.steps or [
        {
            "name": "nothing to replay",
            "http": {"url": _Template("{{ simulator_url }}/api/v1/status")},
        }
    ]
    header = [f"# yaml-language-server: $schema={SCHEMA_URL}"]
    header += [f"# not replayed: {_one_line(line)}" for line in state.skipped]
    text = yaml.dump(
        _recorded(scenario), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )
    return "\n".join(header) + "\n" + text
