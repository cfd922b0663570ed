"""A scenario's integration: created fresh (deleted when it ends unless kept), or reused.

`integration: {reuse: true, planfix_token: …}` runs a scenario against the existing integration
that holds the token, as it is: the runner never changes, renames or deletes an integration it
did not create (faults the scenario plans on it are cleared when it ends).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from typing import Any

from simulator.clients import ControlClient, ControlError
from simulator.scenarios.results import StepError


def holding(control: ControlClient, planfix_token: str) -> dict[str, Any] | None:
    """The integration whose planfix_token this is, or None (every page of the list read)."""
    query: dict[str, Any] = {"limit": 1000}
    for _ in range(10_000):  # bounded: each page moves the cursor on
        answer = control.raw("GET", "/api/v1/integrations", query=query)
        if answer.status != 200:
            raise ControlError("GET", "/api/v1/integrations", answer)
        items: list[dict[str, Any]] = answer.json_or_none() or []
        for item in items:
            if item.get("planfix_token") == planfix_token:
                return item
        link = next((v for k, v in answer.headers.items() if k.lower() == "link"), "")
        found = re.search(r"[?&]cursor=(\d+)", link)
        if found is None:
            return None
        query["cursor"] = found.group(1)
    return None


def create(control: ControlClient, settings: dict[str, Any]) -> dict[str, Any]:
    """The scenario's fresh integration; a taken planfix_token fails saying what to do."""
    try:
        return dict(control.create_integration(**settings))
    except ControlError as exc:
        owner = None
        if exc.answer.status == 400 and "planfix_token" in settings:
            owner = holding(control, str(settings["planfix_token"]))
        if owner is None:
            raise
        raise StepError(
            f"planfix_token is the token of integration {owner['name']!r} (id {owner['id']}):"
            " to run against it, add `reuse: true` under `integration:`;"
            " or pick another planfix_token"
        ) from exc


def reused(
    control: ControlClient, token: str, integration_url: str | None, touches_faults: bool
) -> dict[str, Any]:
    """The existing integration holding `token`, which the scenario runs against as it is."""
    found = holding(control, token)
    if found is None:
        raise StepError(
            "reuse: no integration has this planfix_token; leave out `reuse` to create one"
        )
    if integration_url and integration_url != found["url"]:
        raise StepError(
            f"reuse: integration {found['name']!r} keeps its own URL, so --integration-url"
            " cannot apply; leave out one of them"
        )
    if touches_faults:
        planned = control.faults(found["id"])
        if planned.get("planfix") or planned.get("fake_chat"):
            # Clearing them when the scenario ends would lose them: refuse up front.
            raise StepError(
                f"reuse: integration {found['name']!r} has faults planned and this scenario"
                " plans its own; clear them first"
            )
    return found


def tidy(
    control: ControlClient,
    integration_id: int,
    *,
    created: bool,
    keep: bool,
    fixed_token: bool,
    touched_faults: bool,
) -> None:
    """After a scenario: delete what it created (unless kept); leave a reused one as it was."""
    if not created:
        if touched_faults:
            control.clear_faults(integration_id)  # it had none when the scenario began
        return
    if not keep:
        control.delete_integration(integration_id)
    elif fixed_token:
        # A fixed token must be free for the next scenario that names it.
        control.update_integration(integration_id, planfix_token=secrets.token_hex(16))


def discard(control: ControlClient, integration_id: int) -> None:
    """Delete an integration the runner just created, when its set-up failed half-way."""
    with contextlib.suppress(ControlError):
        control.delete_integration(integration_id)
