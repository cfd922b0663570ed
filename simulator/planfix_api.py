"""Planfix's `/webchat/api` (and the older `/chat/api`): the five chat-API commands.

Checks run in one fixed order, pinned by tests:
method → size → cmd → token → parameters → command.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from flask import Blueprint, Response, g, request

from simulator import account, faults
from simulator.context import runtime
from simulator.domain import (
    ALT_TOKEN_FIELD,
    COMMANDS,
    TOKEN_FIELD,
    Form,
    Note,
    Profile,
    parse_command,
    strict_check,
)
from simulator.errors import InvalidParameters, InvalidToken, MethodNotAllowed, PayloadTooLarge
from simulator.store import ExchangeRecord, Store
from simulator.wire import ORIGIN_HEADER, read_form, request_headers

API_PATHS = ("/webchat/api", "/chat/api")
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]

bp = Blueprint("planfix_api", __name__)


@dataclass
class _Seen:
    """What the request revealed before it was answered (or refused): journaled afterwards."""

    started: float
    form: Form = field(default_factory=Form)
    cmd: str = ""
    integration_id: int | None = None
    notes: list[Note] = field(default_factory=list)
    fault: str = ""  # the injected fault's label, for the journal
    dropped: bool = False


def answer(outcome: account.Outcome, profile: Profile) -> tuple[Response, list[Note]]:
    """Turn a command's outcome into the body Planfix sends, in the integration's profile."""
    notes: list[Note] = []
    if outcome.cmd in ("getTask", "getContact"):
        number = outcome.task_number if outcome.cmd == "getTask" else outcome.contact_number
        data: dict[str, object] = {"number": number}
        if profile == "observed":
            if outcome.cmd == "getTask":
                data["statusIsActive"] = bool(outcome.task_active)
            notes.append(Note("observed-answer", "data sent as a JSON string (observed profile)"))
            body = {"data": json.dumps(data, separators=(",", ":"))}
            return _json(body), notes
        return _json({"data": data}), notes
    if profile == "observed":
        notes.append(
            Note(
                "observed-answer",
                "answered {} instead of an empty body (observed profile: the real body is "
                "unknown, clients parse it as JSON)",
            )
        )
        return _json({}), notes
    return Response(b"", status=200, content_type="text/plain; charset=utf-8"), notes


def _json(body: object) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=200, mimetype="application/json")


def handle() -> Response:
    """Run one `/webchat/api` request through the fixed check order."""
    rt = runtime()
    seen: _Seen = g.planfix_seen
    # 1. method
    if request.method != "POST":
        raise MethodNotAllowed(f"{request.method} is not allowed; use POST")
    # 2. size
    limit = rt.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"{request.content_length} bytes > {limit}")
    form, notes = read_form(request)
    seen.form, seen.notes = form, notes
    # 3. cmd
    cmd = form.get("cmd") or ""
    seen.cmd = cmd
    if cmd not in COMMANDS:
        raise InvalidParameters(f"unknown cmd {cmd!r}" if cmd else "cmd is missing")
    # From here on the request is one write transaction: the lookups, the command and the
    # journal entry written after the answer (`_journal`) commit together, or not at all.
    _begin(rt.store)
    # 4. token
    token = form.get(TOKEN_FIELD)
    if token is None and form.get(ALT_TOKEN_FIELD) is not None:
        token = form.get(ALT_TOKEN_FIELD)
        notes.append(
            Note(
                "token-field",
                "token sent as 'token', not 'planfix_token': the general rules page allows it, "
                "every example uses planfix_token",
                unknown=True,
            )
        )
    integration = rt.store.integration_by_token(token) if token else None
    if integration is None:
        raise InvalidToken("planfix_token is missing" if not token else "no integration has it")
    seen.integration_id = integration.id
    injected = faults.take(rt.store, integration.id, "planfix")
    if injected is not None:
        seen.fault, seen.dropped = injected.label, injected.drop
        # A fault may sleep (latency_ms): never while holding the write lock, which every
        # worker's requests need; the rest of this request uses a transaction per step.
        _end()
        early = faults.apply(injected, rt.store)
        if early is not None:
            return early
    # 5. parameters
    strict_check(notes, integration.strict)
    command, found = parse_command(cmd, form, integration)
    notes.extend(found)
    strict_check(notes, integration.strict)
    # 6. command
    outcome = account.run(rt.store, integration, command, notes)
    response, answer_notes = answer(outcome, integration.profile)
    seen.notes = [*outcome.notes, *answer_notes]
    return response


def _begin(store: Store) -> None:
    scope = ExitStack()
    scope.enter_context(store.transaction())
    g.planfix_scope = scope


def _end(error: BaseException | None = None) -> None:
    """Commit the request's transaction, or roll it back when `error` ended the request."""
    scope: ExitStack | None = g.pop("planfix_scope", None)
    if scope is None:
        return
    if error is None:
        scope.close()
    else:
        scope.__exit__(type(error), error, error.__traceback__)


@bp.before_request
def _start() -> None:
    g.planfix_seen = _Seen(started=time.perf_counter())


@bp.after_request
def _journal(response: Response) -> Response:
    try:
        _record(response)
    except BaseException as exc:
        _end(exc)
        raise
    _end()
    return response


@bp.teardown_request
def _finish(error: BaseException | None) -> None:
    # `_journal` has normally ended the transaction; when an error skipped it (testing mode
    # lets errors propagate), the request's writes roll back, as each step's did before.
    _end(error)


def _record(response: Response) -> None:
    rt = runtime()
    seen: _Seen | None = g.get("planfix_seen")
    if seen is None or request.headers.get(ORIGIN_HEADER) == rt.store.instance_id:
        return  # the simulator called itself: the sending side journals it
    error = getattr(g, "planfix_error", "")
    rt.store.record(
        ExchangeRecord(
            direction="to_planfix",
            party="planfix",
            method=request.method,
            url=request.full_path.rstrip("?"),
            cmd=seen.cmd,
            chat_id=seen.form.get("chatId") or "",
            form=seen.form.as_list(),
            request_headers=request_headers(request),
            status=None if seen.dropped else response.status_code,
            response_body="" if seen.dropped else response.get_data(as_text=True),
            duration_ms=(time.perf_counter() - seen.started) * 1000,
            notes=[n.as_dict() for n in seen.notes],
            error="connection dropped (fault)" if seen.dropped else error,
            fault=seen.fault,
            integration_id=seen.integration_id,
        )
    )


for _path in API_PATHS:
    bp.add_url_rule(
        _path,
        endpoint=_path.strip("/").replace("/", "_"),
        view_func=handle,
        methods=ALL_METHODS,
        provide_automatic_options=False,
    )
