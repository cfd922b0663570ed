"""The one masking function: secrets in any output (answers, events, exports, the log) masked."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

# Form fields (wire names) that carry secrets.
SECRET_FIELDS = frozenset({"planfix_token", "token"})
# Query-string parameters that carry secrets (integrations put one in their webhook URL).
SECRET_PARAMS = ("planfix_token", "token", "secret", "admin_token", "api_key", "key", "password")
QUERY_SECRET = re.compile(rf"([?&](?:{'|'.join(SECRET_PARAMS)})=)([^&#\s\"'<>]+)", re.I)
# Known secret values shorter than this are masked only by name: masking "abc" in every text
# would mangle ordinary words.
MIN_KNOWN_SECRET = 6
MASK = "\u2026"


def mask_secret(value: str) -> str:
    """`303cb962ac59075b964b07152d234b70` → `303c…4b70`; short values are hidden whole."""
    if value == MASK or (len(value) == 9 and value[4] == MASK):
        return value  # masked already: masking twice must not hide what once is shown
    if len(value) < 12:
        return MASK if value else value
    return f"{value[:4]}{MASK}{value[-4:]}"


def mask_text(text: str, secrets: Collection[str] = ()) -> str:
    """`text` with secret query-string values and every known secret value masked."""
    if "=" in text:
        text = QUERY_SECRET.sub(lambda m: m.group(1) + mask_secret(m.group(2)), text)
    for secret in secrets:
        if len(secret) >= MIN_KNOWN_SECRET and secret in text:
            text = text.replace(secret, mask_secret(secret))
    return text


def mask_output(value: Any, secrets: Collection[str] = ()) -> Any:
    """Any JSON-like output with its secrets masked: the one pass every answer goes through.

    By name: the values of secret keys (`{"planfix_token": …}`) and of secret form pairs
    (`["token", …]`); by place: secret parameters of query strings in any text; by value: the
    `secrets` (the integrations' tokens) wherever they occur in text.
    """
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, Mapping):
        return {
            k: mask_secret(v)
            if k in SECRET_FIELDS and isinstance(v, str)
            else mask_output(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        pair = len(value) >= 2 and isinstance(value[0], str) and isinstance(value[1], str)
        if pair and value[0] in SECRET_FIELDS:
            return [value[0], mask_secret(value[1]), *(mask_output(v, secrets) for v in value[2:])]
        return [mask_output(v, secrets) for v in value]
    return value


def mask_form(form: Sequence[Sequence[str]]) -> list[list[str]]:
    """A journal form (ordered [name, value] pairs) with secret values masked."""
    return [list(pair) for pair in mask_output(list(form))]
