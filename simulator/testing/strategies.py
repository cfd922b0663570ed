"""Hypothesis strategies for the chat API, in both directions.

Forms are tuples of (wire name, value) pairs in order, as they go over the wire. Every generated
request is a `Case` labelled with the answer it must get, so one property covers them all:
"each request gets one of `case.statuses`, and never a 5xx".

- chat → Planfix (`/webchat/api`): `command_cases(planfix_token)` (valid and invalid, all five
  commands); `valid_command_cases`, `invalid_command_cases`; per-command `*_forms`.
- Planfix → chat (the integration's webhook): `webhook_cases(token)`; `reply_forms`,
  `first_message_forms`.

Labels assume the simulator's defaults: the documented profile, strict mode off; `strict_statuses`
says how strict mode answers where it differs.
"""

from __future__ import annotations

import string
from functools import cache
from typing import Any

from hypothesis import strategies as st

from simulator.contract import COMMANDS, DATA_PREFIX, REQUIRED, attachment_pairs
from simulator.testing.cases import Case as Case  # re-exported: users import it from here
from simulator.testing.cases import Pairs as Pairs

INVALID_PARAMETERS = "Invalid parameters"
INVALID_TOKEN = "Invalid token"  # noqa: S105 - the wire error text, not a secret
TOO_LARGE = "Request body too large"


# -- text ----------------------------------------------------------------------------------------

SAMPLES = (
    "Hello! How much is delivery?",
    "Здравствуйте, заказ №1014 не пришёл",
    "مرحبا، أين طلبي؟",  # Arabic (RTL)
    "שלום, מה שלומך?",  # Hebrew (RTL)
    "こんにちは、注文について質問があります",
    "👋🏽 hi 🚚📦✅ 👨‍👩‍👧‍👦",
    "mixed: abc עברית 123 العربية",
    "line one\nline two\r\nline three\ttabbed",
    "<b>bold</b> & <script>alert(1)</script>",
    ">> quoted\nreply [ https://example.com/a?b=c&d=e ]",
    "100% + 50% = 150%; a=b&c=d",
    "e\u0301 combining, zero\u200bwidth, nbsp\u00a0here",
    " leading and trailing spaces ",
)

# Any character but lone surrogates (which cannot be UTF-8 encoded, so never reach the wire).
_CHARS = st.characters(exclude_categories=["Cs"])


@cache  # strategies are immutable: built once, drawn from many times
def texts(min_size: int = 0, max_size: int = 200) -> st.SearchStrategy[str]:
    """Realistic text: samples in many scripts, emoji and RTL, and arbitrary unicode."""
    arbitrary = st.text(_CHARS, min_size=min_size, max_size=max_size)
    fitting = [s for s in SAMPLES if min_size <= len(s) <= max_size]
    # Arbitrary text first: shrinking goes to the first branch, and a minimal request should
    # carry "0", not a long sample sentence.
    return st.one_of(arbitrary, st.sampled_from(fitting)) if fitting else arbitrary


@cache
def messages() -> st.SearchStrategy[str]:
    """Message text: short or long (up to ~20,000 characters), never empty."""
    longer = st.builds(lambda s, n: s * n, st.sampled_from(SAMPLES), st.integers(20, 400))
    return st.one_of(texts(1, 500), longer)


@cache
def non_empty_texts(max_size: int = 200) -> st.SearchStrategy[str]:
    """Text with at least one character (what a required field needs)."""
    return texts(1, max_size)


@cache
def ids() -> st.SearchStrategy[str]:
    """Chat and contact ids as integrations send them: numbers, uuids, phones, words, any text."""
    return st.one_of(
        st.integers(1, 10**12).map(str),
        st.uuids().map(str),
        # Phone numbers, as messengers keyed by phone use them ('+' is often decoded to ' ').
        st.from_regex(r"\+[0-9]{7,14}", fullmatch=True),
        st.text(string.ascii_letters + string.digits + "-_:.@", min_size=1, max_size=40),
        st.text(_CHARS, min_size=1, max_size=40),
    )


@cache
def provider_ids() -> st.SearchStrategy[str]:
    """Valid providerIds: non-empty, no '~'."""
    return st.one_of(
        st.sampled_from(["telegram", "whatsapp", "site-chat", "vk", "инстаграм"]),
        st.text(_CHARS, min_size=1, max_size=30).filter(lambda s: "~" not in s),
    )


@cache
def urls() -> st.SearchStrategy[str]:
    """File and picture links."""
    return st.one_of(
        st.builds("https://account.planfix.com/file/{}".format, st.uuids().map(str)),
        st.builds(
            "https://cdn.example.com/{}/{}".format,
            st.text(string.ascii_lowercase, min_size=1, max_size=8),
            st.text(_CHARS, min_size=1, max_size=30),
        ),
    )


@cache
def attachments(max_size: int = 12) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Zero or more (name, url) attachments."""
    name = st.one_of(
        st.sampled_from(["photo.jpg", "счёт.pdf", "صورة.png", "archive.tar.gz"]),
        non_empty_texts(60),
    )
    return st.lists(st.tuples(name, urls()), max_size=max_size)


def _optional(value: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    # Absent, present, or present but empty (clients in production send empty optional fields).
    return st.one_of(st.none(), st.just(""), value)


def _with_optional(required: Pairs, optional: dict[str, str | None]) -> Pairs:
    return required + tuple((k, v) for k, v in optional.items() if v is not None)


CONTACT_OPTIONAL = ("contactLastName", "contactIco", "contactEmail", "contactPhone", "contactData")
ECHO_TRUE = ("1", "true", "TRUE", "True", " 1 ")
ECHO_FALSE = ("0", "false", "FALSE", "")
ECHO_VALUES = ECHO_TRUE + ECHO_FALSE


@cache
def _contact_optional() -> st.SearchStrategy[dict[str, str | None]]:
    return st.fixed_dictionaries(
        {
            "contactLastName": _optional(texts(1, 40)),
            "contactIco": _optional(urls()),
            "contactEmail": _optional(st.emails()),
            "contactPhone": _optional(st.from_regex(r"\+?[0-9]{7,14}", fullmatch=True)),
            "contactData": _optional(texts(1, 100)),
        }
    )


@cache
def data_fields() -> st.SearchStrategy[dict[str, str]]:
    """`data_<field>` values keyed by field name."""
    name = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=20)
    return st.dictionaries(name, texts(0, 100), max_size=5)


# -- chat → Planfix: valid forms ----------------------------------------------------------------


@st.composite
def new_message_forms(draw: st.DrawFn, planfix_token: str) -> Pairs:
    """A valid `newMessage`: required fields non-empty, optional ones absent, empty or set."""
    contact_id = draw(ids())
    required: Pairs = (
        ("cmd", "newMessage"),
        ("providerId", draw(provider_ids())),
        ("chatId", draw(st.one_of(st.just(contact_id), ids()))),
        ("planfix_token", planfix_token),
        ("message", draw(messages())),
        ("contactId", contact_id),
        ("contactName", draw(non_empty_texts(60))),
    )
    optional = draw(
        st.fixed_dictionaries(
            {
                "channel": _optional(st.sampled_from(["telegram", "whatsapp", "site", "sms"])),
                "title": _optional(texts(1, 120)),
                "isEcho": st.one_of(st.none(), st.sampled_from(ECHO_VALUES)),
                "userEmail": _optional(st.emails()),
            }
        )
    )
    optional.update(draw(_contact_optional()))
    form = _with_optional(required, optional)
    form += tuple(attachment_pairs(draw(attachments())))
    form += tuple((DATA_PREFIX + k, v) for k, v in draw(data_fields()).items())
    return form


def _has_data_fields(form: Pairs) -> bool:
    return any(k.startswith(DATA_PREFIX) for k, _ in form)


@st.composite
def get_task_forms(draw: st.DrawFn, planfix_token: str) -> Pairs:
    """A well-formed `getTask` (its chat may or may not exist)."""
    return (
        ("cmd", "getTask"),
        ("providerId", draw(provider_ids())),
        ("planfix_token", planfix_token),
        ("chatId", draw(ids())),
    )


@st.composite
def get_contact_forms(draw: st.DrawFn, planfix_token: str) -> Pairs:
    """A well-formed `getContact` (its contact may or may not exist)."""
    return (
        ("cmd", "getContact"),
        ("providerId", draw(provider_ids())),
        ("planfix_token", planfix_token),
        ("contactId", draw(ids())),
    )


@st.composite
def update_contact_forms(draw: st.DrawFn, planfix_token: str) -> Pairs:
    """A valid `updateContact`."""
    required: Pairs = (
        ("cmd", "updateContact"),
        ("providerId", draw(provider_ids())),
        ("planfix_token", planfix_token),
        ("contactId", draw(ids())),
        ("contactName", draw(non_empty_texts(60))),
    )
    return _with_optional(required, draw(_contact_optional()))


@st.composite
def message_status_forms(draw: st.DrawFn, planfix_token: str) -> Pairs:
    """A valid `messageStatus` (any status text counts as `sent`)."""
    required: Pairs = (
        ("cmd", "messageStatus"),
        ("providerId", draw(provider_ids())),
        ("planfix_token", planfix_token),
        ("messageId", draw(ids())),
        ("messageStatus", draw(st.one_of(st.sampled_from(["sent", "read", "error"]), texts(1)))),
    )
    return _with_optional(required, {"messageStatusText": draw(_optional(texts(1, 100)))})


def _value(form: Pairs, key: str) -> str:
    return next(v for k, v in form if k == key)


def _first_message_for(form: Pairs, planfix_token: str, **fixed: str) -> Pairs:
    """A minimal newMessage that makes the chat/contact of `form` exist."""
    values = {
        "cmd": "newMessage",
        "providerId": _value(form, "providerId"),
        "chatId": fixed.get("chatId", "setup-chat"),
        "planfix_token": planfix_token,
        "message": "setup",
        "contactId": fixed.get("contactId", "setup-contact"),
        "contactName": "Setup",
    }
    return tuple(values.items())


@st.composite
def valid_command_cases(draw: st.DrawFn, planfix_token: str) -> Case:
    """A valid request for any of the five commands, with the setup it needs to get 200."""
    cmd = draw(st.sampled_from(COMMANDS))
    if cmd == "newMessage":
        form = draw(new_message_forms(planfix_token))
        if _has_data_fields(form):
            # A data_ field the task template lacks is dropped with a note; strict mode refuses.
            return Case("valid newMessage with data_ fields", form, strict_statuses=(400,))
        return Case("valid newMessage", form)
    if cmd == "getTask":
        form = draw(get_task_forms(planfix_token))
        setup = _first_message_for(form, planfix_token, chatId=_value(form, "chatId"))
        return Case("valid getTask (chat exists)", form, setup=(setup,))
    if cmd == "getContact":
        form = draw(get_contact_forms(planfix_token))
        setup = _first_message_for(form, planfix_token, contactId=_value(form, "contactId"))
        return Case("valid getContact (contact exists)", form, setup=(setup,))
    if cmd == "updateContact":
        form = draw(update_contact_forms(planfix_token))
        setup = _first_message_for(form, planfix_token, contactId=_value(form, "contactId"))
        return Case("valid updateContact", form, setup=(setup,))
    form = draw(message_status_forms(planfix_token))
    # No message with this id was sent: the default mode accepts it with a note, strict refuses.
    return Case(
        "messageStatus for an unknown messageId",
        form,
        strict_statuses=(400,),
        error="",
    )


# -- chat → Planfix: invalid forms --------------------------------------------------------------


def _without(form: Pairs, key: str) -> Pairs:
    return tuple((k, v) for k, v in form if k != key)


def _set(form: Pairs, key: str, value: str) -> Pairs:
    return tuple((k, value if k == key else v) for k, v in form)


def _bad(label: str, form: Pairs, status: int = 400, error: str = INVALID_PARAMETERS) -> Case:
    return Case(label, form, statuses=(status,), error=error)


@st.composite
def invalid_command_cases(
    draw: st.DrawFn, planfix_token: str, max_body_bytes: int | None = 1_048_576
) -> Case:
    """A request that must be refused, labelled with the status and wire error it must get.

    `max_body_bytes=None` leaves out the oversize case (for servers whose limit is unknown).
    """
    base = draw(valid_command_cases(planfix_token))
    form, cmd = base.form, base.cmd
    kinds = ["missing", "empty", "wrong token", "no token", "tilde", "unknown cmd", "no cmd"]
    if cmd == "newMessage":
        kinds += ["bad isEcho", "attachment count"]
    if max_body_bytes is not None:
        kinds.append("oversize")
    kind = draw(st.sampled_from(kinds))
    if kind in ("missing", "empty"):
        key = draw(st.sampled_from(REQUIRED[cmd]))
        if kind == "missing":
            return _bad(f"{cmd} without {key}", _without(form, key))
        return _bad(f"{cmd} with empty {key}", _set(form, key, ""))
    if kind == "wrong token":
        token = draw(
            st.text(string.hexdigits, min_size=1, max_size=40).filter(planfix_token.__ne__)
        )
        return _bad(
            f"{cmd} with a wrong token", _set(form, "planfix_token", token), 401, INVALID_TOKEN
        )
    if kind == "no token":
        return _bad(f"{cmd} without token", _without(form, "planfix_token"), 401, INVALID_TOKEN)
    if kind == "tilde":
        provider = _value(form, "providerId")
        at = draw(st.integers(0, len(provider)))
        return _bad(
            f"{cmd}: '~' in providerId",
            _set(form, "providerId", f"{provider[:at]}~{provider[at:]}"),
        )
    if kind in ("unknown cmd", "no cmd"):
        if kind == "no cmd":
            return _bad("cmd missing", _without(form, "cmd"))
        other = draw(st.one_of(st.just(""), texts(1, 30)).filter(lambda c: c not in COMMANDS))
        return _bad(f"unknown cmd {other!r}", _set(form, "cmd", other))
    if kind == "bad isEcho":
        value = draw(
            texts(1, 20).filter(lambda v: v.strip().lower() not in ("1", "true", "0", "false", ""))
        )
        return _bad("newMessage with a bad isEcho", (*_without(form, "isEcho"), ("isEcho", value)))
    if kind == "attachment count":
        names = draw(st.integers(0, 4))
        counts = draw(st.integers(0, 4).filter(lambda n: n != names))
        extra = tuple(("attachments[name]", f"file{i}.txt") for i in range(names))
        extra += tuple(("attachments[url]", f"https://example.com/f{i}") for i in range(counts))
        stripped = tuple((k, v) for k, v in form if not k.startswith("attachments["))
        # Planfix's pairing rule is unknown: accepted with a note, refused in strict mode.
        return Case(
            f"newMessage with {names} attachment names but {counts} urls",
            stripped + extra,
            statuses=(200,),
            strict_statuses=(400,),
        )
    # oversize: one byte over the limit is enough; the size check comes before the token check.
    assert max_body_bytes is not None  # noqa: S101 - "oversize" is only drawn with a limit
    return _bad(
        f"body over {max_body_bytes} bytes",
        (*form, ("padding", "x" * max_body_bytes)),
        413,
        TOO_LARGE,
    )


def command_cases(
    planfix_token: str, max_body_bytes: int | None = 1_048_576
) -> st.SearchStrategy[Case]:
    """Valid and invalid chat → Planfix requests, each labelled with its answer."""
    return st.one_of(
        valid_command_cases(planfix_token), invalid_command_cases(planfix_token, max_body_bytes)
    )


# -- Planfix → chat -----------------------------------------------------------------------------


@cache
def _employee() -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(
        {
            "userName": st.one_of(st.sampled_from(["Peter", "Пётр", "أحمد", "李"]), texts(1, 30)),
            "userLastName": texts(0, 30),
            "userIco": st.builds(
                "https://account.planfix.com/?action=getuserpic&id={}".format, st.integers(1, 999)
            ),
        }
    )


@st.composite
def _outbound(draw: st.DrawFn, token: str, chat_id: str | None) -> Pairs:
    head: list[tuple[str, str]] = [
        ("cmd", "newMessage"),
        ("providerId", draw(provider_ids())),
    ]
    if chat_id is not None:
        head.append(("chatId", chat_id))
    phone = draw(st.from_regex(r"\+?[0-9]{7,14}", fullmatch=True))
    head += [
        ("token", token),
        ("message", draw(messages())),
        ("messageId", str(draw(st.integers(1, 10**9)))),
    ]
    head += list(draw(_employee()).items())
    number = draw(st.integers(1000, 99999))
    head.append(("taskEmail", f"task+{number}@account.planfix.com"))
    if chat_id is None or draw(st.booleans()):
        head.append(("contactPhone", phone))
    channel = draw(st.one_of(st.none(), st.sampled_from(["telegram", "whatsapp", "site"])))
    if channel is not None:
        head.append(("channel", channel))
    return tuple(head) + tuple(attachment_pairs(draw(attachments())))


def reply_forms(token: str) -> st.SearchStrategy[Pairs]:
    """A valid reply in an existing chat, as Planfix posts it to the integration."""
    return ids().flatmap(lambda chat_id: _outbound(token, chat_id))


def first_message_forms(token: str) -> st.SearchStrategy[Pairs]:
    """A valid first message to a contact by phone (no chatId)."""
    return _outbound(token, None)


# Fields without which an integration cannot act on a delivery. messageId, userName, … are not
# here: the documentation's own sample call omits some of them.
WEBHOOK_REQUIRED = ("providerId", "message")


VARIANTS = ("reply", "first")


@st.composite
def webhook_cases(draw: st.DrawFn, token: str, variants: tuple[str, ...] = VARIANTS) -> Case:
    """A Planfix → chat request, valid (one of `variants`) or invalid, labelled with its answer.

    Valid requests must get 200 with string chatId and contactId (chatId echoed for replies).
    Labels name the kind of request, never a generated value (failures are grouped by label).
    """
    variant = draw(st.sampled_from(variants))
    form = draw(reply_forms(token) if variant == "reply" else first_message_forms(token))
    kinds = ["valid", "valid", "valid", "wrong token", "no token", "cmd", "missing", "no route"]
    kind = draw(st.sampled_from(kinds))
    if kind == "valid":
        return Case(f"valid {variant}", form)
    if kind == "wrong token":
        other = draw(st.text(string.hexdigits, min_size=1, max_size=40).filter(token.__ne__))
        return _bad(f"{variant} with a wrong token", _set(form, "token", other), 401, INVALID_TOKEN)
    if kind == "no token":
        return _bad(f"{variant} without token", _without(form, "token"), 401, INVALID_TOKEN)
    if kind == "cmd":
        other = draw(st.one_of(st.just(""), texts(1, 30)).filter(lambda c: c != "newMessage"))
        return _bad(f"{variant} with a cmd other than newMessage", _set(form, "cmd", other))
    if kind == "missing":
        key = draw(st.sampled_from(WEBHOOK_REQUIRED))
        return _bad(f"{variant} without {key}", _without(form, key))
    return _bad(
        f"{variant} with neither chatId nor contactPhone",
        _without(_without(form, "chatId"), "contactPhone"),
    )


def describe(case: Case) -> dict[str, Any]:
    """A JSON-friendly description of a case (for reports and scenario files)."""
    return {
        "label": case.label,
        "form": [list(p) for p in case.form],
        "statuses": list(case.statuses),
        "error": case.error,
    }
