"""Configuration: embedded defaults, then a YAML file, then `SIMULATOR_*` variables, then code."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.config.yaml_source import (
    Located,
    Problem,
    load_one,
    raise_problems,
    schema_problems,
    validate,
)
from simulator.contract import PROFILES, Employee, Integration, Options, Retry, new_token
from simulator.errors import ConfigError

# serve's log: its levels (stdlib logging's) and line formats.
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
LOG_FORMATS = ("text", "json")

# The documentation's own tokens, so its sample calls work verbatim against the default.
DOC_PLANFIX_TOKEN = "303cb962ac59075b964b07152d234b70"  # noqa: S105 - public sample
DOC_CHAT_TOKEN = "202cb962ac59075b964b07152d234b70"  # noqa: S105 - public sample
FAKE_CHAT_URL = "{base_url}/fake-chat/webhook"

DEFAULTS: dict[str, Any] = {
    "account": "test",
    "account_domain": "planfix.com",
    "task_number_start": 1000,
    "contact_number_start": 5000,
    "journal_retention": 10_000,
    "journal_entry_bytes": 65_536,
    "journal_bytes": 67_108_864,
    "max_body_bytes": 1_048_576,
    "base_url": "",
    "admin_token": "",
    "allowed_hosts": [],
    "fake_chat_reports_status": True,
    # Whether a config file's `integrations:` come beside the built-in `default` or replace it.
    "keep_default_integration": True,
    "log_level": "info",
    "log_format": "text",
    "employees": [
        {
            "email": "peter@example.com",
            "name": "Peter",
            "last_name": "Peterson",
            "ico": "https://test.planfix.com/?action=getuserpic&id=77",
        }
    ],
    "integrations": [
        {
            "name": "default",
            "planfix_token": DOC_PLANFIX_TOKEN,
            "token": DOC_CHAT_TOKEN,
            "url": FAKE_CHAT_URL,
        }
    ],
}

# Where the simulator may send a form: an http(s) URL with a host (no file:, gopher:, ...).
_HTTP_URL = r"[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]*[^/?#\s:@]"
HTTP_URL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": f"^{_HTTP_URL}",
    "description": "an http:// or https:// URL with a host",
}
# An integration's URL may also start with {base_url}: the simulator itself (its fake chat).
INTEGRATION_URL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": f"^(?:{_HTTP_URL}|\\{{base_url\\}}(?:[/?#]|$))",
    "description": "an http:// or https:// URL with a host, or one starting with {base_url}/",
}
# A name or address the simulator answers to (a Host header without the port); "*": any.
ALLOWED_HOST_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^(?:\*|[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])$",
}

_INTEGRATION_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1},
    "planfix_token": {"type": "string", "minLength": 1},
    "token": {"type": "string", "minLength": 1},
    "url": INTEGRATION_URL_SCHEMA,
    "profile": {"enum": list(PROFILES)},
    "strict": {"type": "boolean"},
    "task_fields": {"type": "array", "items": {"type": "string", "minLength": 1}},
    "default_employee": {"type": ["string", "null"]},
    "options": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "new_task_when_closed": {"type": "boolean"},
            "rename_task_on_title": {"type": "boolean"},
        },
    },
    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
    "retry": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "enabled": {"type": "boolean"},
            "schedule": {"type": "array", "items": {"type": "number", "minimum": 0}},
            "time_factor": {"type": "number", "exclusiveMinimum": 0},
        },
    },
}

INTEGRATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": _INTEGRATION_PROPERTIES,
}

EMPLOYEE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["email", "name"],
    "properties": {
        "email": {"type": "string", "minLength": 3},
        "name": {"type": "string", "minLength": 1},
        "last_name": {"type": "string"},
        "ico": {"type": "string"},
    },
}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "planfix-simulator configuration",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "account": {"type": "string", "pattern": "^[A-Za-z0-9-]+$"},
        "account_domain": {"type": "string", "minLength": 1},
        "task_number_start": {"type": "integer", "minimum": 1},
        "contact_number_start": {"type": "integer", "minimum": 1},
        "journal_retention": {"type": "integer", "minimum": 1},
        "journal_entry_bytes": {"type": "integer", "minimum": 1024},
        "journal_bytes": {"type": "integer", "minimum": 65_536},
        "max_body_bytes": {"type": "integer", "minimum": 1024},
        "base_url": {"type": "string"},
        "admin_token": {"type": "string"},
        "allowed_hosts": {"type": "array", "items": ALLOWED_HOST_SCHEMA},
        "fake_chat_reports_status": {"type": "boolean"},
        "keep_default_integration": {"type": "boolean"},
        "log_level": {"enum": list(LOG_LEVELS)},
        "log_format": {"enum": list(LOG_FORMATS)},
        "employees": {"type": "array", "items": EMPLOYEE_SCHEMA},
        "integrations": {
            "type": "array",
            # Tokens left out are generated, as the control API does.
            "items": {**INTEGRATION_SCHEMA, "required": ["name"]},
        },
    },
}

ENV_PREFIX = "SIMULATOR_"
_SCALARS = [k for k, v in DEFAULTS.items() if not isinstance(v, list)]


def environment_names() -> list[str]:
    """The `SIMULATOR_*` variable of every scalar setting, sorted."""
    return sorted(f"{ENV_PREFIX}{name.upper()}" for name in _SCALARS)


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to start, validated."""

    account: str
    account_domain: str
    task_number_start: int
    contact_number_start: int
    journal_retention: int
    max_body_bytes: int
    base_url: str
    admin_token: str
    fake_chat_reports_status: bool
    journal_entry_bytes: int = 65_536
    journal_bytes: int = 67_108_864
    allowed_hosts: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "text"
    employees: tuple[Employee, ...] = ()
    integrations: tuple[Integration, ...] = field(default=())
    # What became of the built-in `default` integration: "built-in" (nothing declared), "kept"
    # (beside the file's), "dropped" (keep_default_integration: false) or "declared" (by the file).
    default_integration: str = "built-in"


def integration_from_mapping(
    data: Mapping[str, Any], base: Integration | None = None
) -> Integration:
    """Build an integration from its JSON/YAML form, on top of `base` (defaults when None)."""
    current = base or Integration(
        id=0,
        name=f"integration-{new_token()[:8]}",
        planfix_token=new_token(),
        token=new_token(),
        url=FAKE_CHAT_URL,
    )
    options = data.get("options", {})
    retry = data.get("retry", {})
    return Integration(
        id=current.id,
        name=data.get("name", current.name),
        planfix_token=data.get("planfix_token", current.planfix_token),
        token=data.get("token", current.token),
        url=data.get("url", current.url),
        profile=data.get("profile", current.profile),
        strict=data.get("strict", current.strict),
        task_fields=tuple(data.get("task_fields", current.task_fields)),
        default_employee=data.get("default_employee", current.default_employee),
        options=Options(
            new_task_when_closed=options.get(
                "new_task_when_closed", current.options.new_task_when_closed
            ),
            rename_task_on_title=options.get(
                "rename_task_on_title", current.options.rename_task_on_title
            ),
        ),
        timeout=float(data.get("timeout", current.timeout)),
        retry=Retry(
            enabled=retry.get("enabled", current.retry.enabled),
            schedule=tuple(float(s) for s in retry.get("schedule", current.retry.schedule)),
            time_factor=float(retry.get("time_factor", current.retry.time_factor)),
        ),
    )


def integration_as_dict(item: Integration) -> dict[str, Any]:
    """The JSON form of an integration (what the control API shows)."""
    return {
        "id": item.id,
        "name": item.name,
        "planfix_token": item.planfix_token,
        "token": item.token,
        "url": item.url,
        "profile": item.profile,
        "strict": item.strict,
        "task_fields": list(item.task_fields),
        "default_employee": item.default_employee,
        "options": {
            "new_task_when_closed": item.options.new_task_when_closed,
            "rename_task_on_title": item.options.rename_task_on_title,
        },
        "timeout": item.timeout,
        "retry": {
            "enabled": item.retry.enabled,
            "schedule": list(item.retry.schedule),
            "time_factor": item.retry.time_factor,
        },
    }


def _env_value(name: str, raw: str) -> Any:
    default = DEFAULTS[name]
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"environment {ENV_PREFIX}{name.upper()}", None, name, "not a boolean")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(
                f"environment {ENV_PREFIX}{name.upper()}", None, name, "not an integer"
            ) from None
    return raw


def _duplicates(integrations: Any) -> list[Problem]:
    """Each integration whose name or planfix_token an earlier one of the file has too."""
    found: list[Problem] = []
    if not isinstance(integrations, list):
        return found
    for label in ("name", "planfix_token"):
        first: dict[Any, int] = {}
        for index, item in enumerate(integrations):
            value = item.get(label) if isinstance(item, dict) else None
            if not isinstance(value, str) or not value:
                continue
            if value in first:
                found.append(
                    Problem(
                        ("integrations", index, label),
                        f"must be unique: integrations[{first[value]}] has {value!r} too",
                    )
                )
            else:
                first[value] = index
    return found


def read_config_file(path: str) -> Located:
    """Load and validate a YAML configuration file; every problem is reported at once."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, None, "", f"cannot read: {exc.strerror}") from exc
    doc = load_one(text, path)
    if not isinstance(doc.value, dict):
        raise ConfigError(path, doc.start_line, "(top level)", "must be a mapping")
    problems = schema_problems(doc.value, CONFIG_SCHEMA)
    raise_problems(doc, [*problems, *_duplicates(doc.value.get("integrations"))])
    return doc


def _with_default(
    merged: dict[str, Any], declared: list[dict[str, Any]] | None, doc: Located | None
) -> str:
    """Keep or drop the built-in `default` beside a file's integrations; say which."""
    keep = bool(merged["keep_default_integration"])
    if declared is None:
        if keep:
            return "built-in"
        merged["integrations"] = []
        return "dropped"
    if any(item.get("name") == DEFAULTS["integrations"][0]["name"] for item in declared):
        return "declared"
    if not keep:
        return "dropped"
    default = DEFAULTS["integrations"][0]
    clashes = [
        Problem(
            ("integrations", index, "planfix_token"),
            "must be unique: it is the default integration's planfix_token; set"
            " keep_default_integration: false, or name this integration default to replace it",
        )
        for index, item in enumerate(declared)
        if item.get("planfix_token") == default["planfix_token"]
    ]
    if doc is not None:
        raise_problems(doc, clashes)
    merged["integrations"] = [default, *declared]
    return "kept"


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then the config file, then `SIMULATOR_*`, then `overrides`; all validated."""
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = dict(DEFAULTS)
    path = config_file or env.get(f"{ENV_PREFIX}CONFIG") or None
    doc = read_config_file(path) if path else None
    if doc is not None:
        merged.update(doc.value)
    for name in _SCALARS:
        raw = env.get(f"{ENV_PREFIX}{name.upper()}")
        if raw is not None:
            merged[name] = _env_value(name, raw)
    raw_hosts = env.get(f"{ENV_PREFIX}ALLOWED_HOSTS")
    if raw_hosts is not None:
        # Comma-separated, as the list settings of other servers' environments are.
        merged["allowed_hosts"] = [h.strip() for h in raw_hosts.split(",") if h.strip()]
    default_integration = _with_default(
        merged, doc.value.get("integrations") if doc is not None else None, doc
    )
    if overrides:
        merged.update(overrides)
    validate(Located(merged, "settings"), CONFIG_SCHEMA)
    names = [i["name"] for i in merged["integrations"]]
    tokens = [i["planfix_token"] for i in merged["integrations"] if i.get("planfix_token")]
    for label, values in (("name", names), ("planfix_token", tokens)):
        if len(set(values)) != len(values):
            raise ConfigError(path or "settings", None, f"integrations.{label}", "must be unique")
    return Settings(
        account=merged["account"],
        account_domain=merged["account_domain"],
        task_number_start=merged["task_number_start"],
        contact_number_start=merged["contact_number_start"],
        journal_retention=merged["journal_retention"],
        max_body_bytes=merged["max_body_bytes"],
        journal_entry_bytes=merged["journal_entry_bytes"],
        journal_bytes=merged["journal_bytes"],
        base_url=merged["base_url"].rstrip("/"),
        admin_token=merged["admin_token"],
        fake_chat_reports_status=merged["fake_chat_reports_status"],
        allowed_hosts=tuple(merged["allowed_hosts"]),
        log_level=merged["log_level"],
        log_format=merged["log_format"],
        employees=tuple(
            Employee(0, e["email"], e["name"], e.get("last_name", ""), e.get("ico", ""))
            for e in merged["employees"]
        ),
        # An empty token is generated when the store first takes the integration (then kept).
        integrations=tuple(
            integration_from_mapping({"planfix_token": "", "token": "", **i})
            for i in merged["integrations"]
        ),
        default_integration=default_integration,
    )
