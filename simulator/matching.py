"""Does a journal entry match what a test waits for? Pure functions, shared by every waiter.

`POST /api/v1/wait`, the pytest plugin and the scenario `await` step all ask the same question
and, when nothing matched, show the same near-miss diff, so the rules live here once.

A match is a set of criteria; each one present must hold:

- `direction` (`to_planfix` | `to_chat`), `party` (`planfix` | `fake_chat`), `cmd`, `chatId`,
  `status` (the HTTP status answered), `integration` (an id: the caller resolves names);
- `fields`: `{wireName: expected}` compared with the entry's form values. A string must be one
  of the key's values (repeated keys such as `attachments[url]` match any of theirs), a list
  must equal all of the key's values in order, and `null` means the key must be absent.

`differences(match, entry)` says, one line per unmet criterion, how the entry differs; an entry
matches when that list is empty. Entries are `JournalEntry` records or their JSON form
(`JournalEntry.as_dict()`, as `GET /api/v1/journal` returns them), so a client on the other side
of HTTP can use the same functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from simulator.errors import BadRequest
from simulator.records import JournalEntry

# The wire body of a match, as `POST /api/v1/wait` takes it (the view also checks types).
MATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "direction": {"enum": ["to_planfix", "to_chat"]},
        "party": {"enum": ["planfix", "fake_chat"]},
        "cmd": {"type": "string"},
        "chatId": {"type": "string"},
        "status": {"type": "integer"},
        "integration": {"type": ["string", "integer"]},
        "fields": {
            "type": "object",
            "additionalProperties": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "null"},
                    {"type": "array", "items": {"type": "string"}},
                ]
            },
        },
    },
}

# What `fields` may expect of one form key: a value, every value in order, or absence.
Expected = str | tuple[str, ...] | None
Entry = JournalEntry | Mapping[str, Any]
E = TypeVar("E", bound=JournalEntry | Mapping[str, Any])


@dataclass(frozen=True)
class Match:
    """Criteria a journal entry must meet; `None` (or no fields) means "any"."""

    direction: str | None = None
    party: str | None = None
    cmd: str | None = None
    chat_id: str | None = None
    status: int | None = None
    integration_id: int | None = None
    fields: tuple[tuple[str, Expected], ...] = ()

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], integration_id: int | None = None) -> Match:
        """Build from the JSON form; `integration_id` is `integration` already resolved."""
        unknown = set(data) - set(MATCH_SCHEMA["properties"])
        if unknown:
            raise BadRequest(f"match: unknown criteria {sorted(unknown)}")
        if integration_id is None and isinstance(data.get("integration"), int):
            integration_id = data["integration"]
        fields: list[tuple[str, Expected]] = []
        for key, value in (data.get("fields") or {}).items():
            if isinstance(value, list):
                fields.append((str(key), tuple(str(v) for v in value)))
            else:
                fields.append((str(key), None if value is None else str(value)))
        status = data.get("status")
        return cls(
            direction=data.get("direction"),
            party=data.get("party"),
            cmd=data.get("cmd"),
            chat_id=data.get("chatId"),
            status=None if status is None else int(status),
            integration_id=integration_id,
            fields=tuple(fields),
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (wire names), criteria that are set only."""
        out: dict[str, Any] = {}
        for key, value in (
            ("direction", self.direction),
            ("party", self.party),
            ("cmd", self.cmd),
            ("chatId", self.chat_id),
            ("status", self.status),
            ("integration", self.integration_id),
        ):
            if value is not None:
                out[key] = value
        if self.fields:
            out["fields"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.fields}
        return out

    @property
    def criteria(self) -> int:
        """How many criteria are set: the most an entry can satisfy."""
        plain = (
            self.direction,
            self.party,
            self.cmd,
            self.chat_id,
            self.status,
            self.integration_id,
        )
        return sum(v is not None for v in plain) + len(self.fields)


def _get(entry: Entry, name: str) -> Any:
    if isinstance(entry, JournalEntry):
        return getattr(entry, name)
    return entry.get(name)


def form_values(entry: Entry, key: str) -> list[str]:
    """Every value of `key` in the entry's form, in order."""
    form: Sequence[Sequence[str]] = _get(entry, "form") or ()
    return [str(pair[1]) for pair in form if len(pair) == 2 and pair[0] == key]


def _field_difference(key: str, expected: Expected, actual: list[str]) -> str | None:
    shown = "absent" if not actual else repr(actual[0]) if len(actual) == 1 else repr(actual)
    if expected is None:
        return None if not actual else f"fields.{key}: expected absent, got {shown}"
    if isinstance(expected, tuple):
        if list(expected) == actual:
            return None
        return f"fields.{key}: expected {list(expected)!r}, got {shown}"
    if expected in actual:
        return None
    return f"fields.{key}: expected {expected!r}, got {shown}"


def differences(match: Match, entry: Entry) -> list[str]:
    """How `entry` differs from `match`: one line per unmet criterion; empty when it matches."""
    found: list[str] = []
    for label, wanted, name in (
        ("direction", match.direction, "direction"),
        ("party", match.party, "party"),
        ("cmd", match.cmd, "cmd"),
        ("chatId", match.chat_id, "chat_id"),
        ("status", match.status, "status"),
        ("integration", match.integration_id, "integration_id"),
    ):
        if wanted is None:
            continue
        actual = _get(entry, name)
        if actual != wanted:
            found.append(f"{label}: expected {wanted!r}, got {actual!r}")
    for key, expected in match.fields:
        note = _field_difference(key, expected, form_values(entry, key))
        if note is not None:
            found.append(note)
    return found


def matches(match: Match, entry: Entry) -> bool:
    """Whether `entry` meets every criterion of `match`."""
    return not differences(match, entry)


def score(match: Match, entry: Entry) -> int:
    """How many of the match's criteria `entry` satisfies (ranks near misses)."""
    return match.criteria - len(differences(match, entry))


def closest(match: Match, entries: Sequence[E], limit: int = 5) -> list[E]:
    """The entries satisfying the most criteria, best first; among equals, the newest first."""
    ranked = sorted(entries, key=lambda e: (score(match, e), _get(e, "id") or 0), reverse=True)
    return list(ranked[: max(limit, 0)])
