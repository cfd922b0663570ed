"""Planfix's `/webchat/api` (and the older `/chat/api`): the five chat-API commands.

This edge is plain WSGI in front of the Flask app: it is the path integrations load-test, and
Flask's per-request machinery (contexts, hooks, routing) cost more than the command itself.

Checks run in one fixed order, pinned by tests:
method → size → body → cmd → token → parameters → command.
"body" is decoding it (broken percent-escapes, invalid UTF-8, bad JSON): a body that cannot be
read has no `cmd` or token to trust, so it is refused (400) before either is looked at.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from simulator import faults
from simulator.contract import (
    ALT_TOKEN_FIELD,
    COMMANDS,
    TOKEN_FIELD,
    Form,
    Integration,
    Note,
    Profile,
    parse_command,
    strict_check,
)
from simulator.errors import (
    BadRequest,
    InternalError,
    InvalidParameters,
    InvalidToken,
    MalformedRequest,
    MethodNotAllowed,
    SimulatorError,
    StorageUnavailable,
    error_response,
)
from simulator.planfix import commands as account
from simulator.planfix.exchange import exchange
from simulator.wire import (
    ORIGIN_HEADER,
    WEBHOOK_PATH,
    guard_input,
    header,
    malformed_request_line,
    read_form,
    request_headers,
    safe_method,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

from simulator.runtime import Runtime

API_PATHS = ("/webchat/api", "/chat/api")
# Commands that change nothing but the journal: answerable while the disk takes no writes.
READ_ONLY_COMMANDS = frozenset({"getTask", "getContact"})
# Paths that answer bad input as Planfix does; the control API and pages answer its own way.
WIRE_PATHS = (*API_PATHS, WEBHOOK_PATH)

log = logging.getLogger("simulator")


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
    error: str = ""


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


def route_error(error: MalformedRequest, path: str) -> SimulatorError:
    """A malformed request's 400 in `path`'s own shape: the wire body, or the control API's."""
    return error if path in WIRE_PATHS else BadRequest(error.detail)


def _json(body: object) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=200, mimetype="application/json")


class PlanfixApi:
    """WSGI middleware: answers the chat API's paths itself, passes every other to `inner`."""

    def __init__(
        self,
        inner: WSGIApplication,
        rt: Runtime,
        *,
        propagate: bool = False,
        on_error: Callable[[Exception], None] = lambda error: None,
    ) -> None:
        self.inner = inner
        self.rt = rt
        # Testing apps let a bug reach the caller, as Flask does for its own views.
        self.propagate = propagate
        self.on_error = on_error

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve `/webchat/api` and `/chat/api`; hand anything else to the Flask app."""
        # Every route reads its body through the guard: a broken body is its 400, not a 500.
        guard_input(environ)
        path = environ.get("PATH_INFO", "")
        if path not in API_PATHS and not (path.endswith("/") and path[:-1] in API_PATHS):
            malformed = malformed_request_line(environ)
            if malformed is not None:  # never routed: a line break would reach a Location
                return error_response(route_error(malformed, path))(environ, start_response)
            return self.inner(environ, start_response)
        response = self.respond(environ)
        if response.is_streamed or environ["REQUEST_METHOD"] == "HEAD":
            return response(environ, start_response)  # a dropped connection; no body for HEAD
        # Werkzeug's general path (location, range and encoding fix-ups) has nothing to do
        # for these fixed JSON answers, which carry their own Content-Length.
        start_response(response.status, response.headers.to_wsgi_list())
        return [response.get_data()]

    def respond(self, environ: WSGIEnvironment) -> Response:
        """Run one request through the fixed check order and journal it."""
        seen = _Seen(started=time.perf_counter())
        store = self.rt.store
        try:
            try:
                self._precheck(environ, seen)
            except SimulatorError as refused:
                response = error_response(refused)
                seen.error = refused.detail
                self._try_journal(environ, seen, response)
                return response
            notes = list(seen.notes)
            try:
                # From the token check on, the request is one write transaction: the lookups,
                # the command and its journal entry commit together, or not at all.
                done = store.batched(lambda: self._admit(environ, seen))
                if isinstance(done, Response):
                    return done
                # A fault was taken (committed): it may sleep, so never inside the
                # transaction, which every worker's requests need.
                early = faults.apply(done.fault, store, environ)
                return store.batched(lambda: self._finish(environ, seen, done.integration, early))
            except StorageUnavailable as failure:
                seen.notes, seen.error = notes, ""
                return self._degraded(environ, seen, failure)
        except Exception as error:
            # A bug: reported to listeners (as Flask does), then raised in testing apps,
            # else logged with its traceback and answered as JSON.
            self.on_error(error)
            if self.propagate:
                raise
            log.exception("unexpected error on %s", environ["PATH_INFO"])
            seen.error = f"internal error: {type(error).__name__}"
            response = error_response(InternalError())
            self._try_journal(environ, seen, response)
            return response

    def _degraded(
        self, environ: WSGIEnvironment, seen: _Seen, failure: StorageUnavailable
    ) -> Response:
        """The store took no write: answer what needs none, refuse the rest with a JSON 503."""
        # The store logged why; the wire gets the bare 503 body, as the contract's errors are.
        seen.dropped = False  # a fault taken before the failure is not what was answered
        try:
            if seen.fault or seen.cmd not in READ_ONLY_COMMANDS:
                self._integration(seen)  # a wrong token is still a 401
                raise failure
            response = self._command(seen, self._integration(seen))
        except StorageUnavailable as refused:
            seen.error = refused.detail
            response = error_response(StorageUnavailable())
        except SimulatorError as refused:
            seen.error = refused.detail
            response = error_response(refused)
        self._try_journal(environ, seen, response)
        return response

    def _try_journal(self, environ: WSGIEnvironment, seen: _Seen, response: Response) -> None:
        """Journal an answer if the store can: a full disk must not turn it into a 500."""
        with suppress(StorageUnavailable):
            self.rt.store.batched(partial(self._journal, environ, seen, response))

    def _integration(self, seen: _Seen) -> Integration:
        """Step 4: the integration whose planfix_token the form carries (InvalidToken if none)."""
        token = seen.form.get(TOKEN_FIELD)
        if token is None and seen.form.get(ALT_TOKEN_FIELD) is not None:
            token = seen.form.get(ALT_TOKEN_FIELD)
            seen.notes.append(
                Note(
                    "token-field",
                    "token sent as 'token', not 'planfix_token': the general rules page "
                    "allows it, every example uses planfix_token",
                    unknown=True,
                )
            )
        integration = self.rt.store.integration_by_token(token) if token else None
        if integration is None:
            detail = "planfix_token is missing" if not token else "no integration has it"
            raise InvalidToken(detail)
        seen.integration_id = integration.id
        return integration

    def _precheck(self, environ: WSGIEnvironment, seen: _Seen) -> None:
        """Steps 1 to 4, before the store: method, size, body (decoding), cmd."""
        method = environ["REQUEST_METHOD"]
        malformed = malformed_request_line(environ)
        if malformed is not None:
            seen.notes.append(
                Note("bad-method", "not an HTTP token (RFC 9110): journaled with bytes %-escaped")
            )
            raise malformed
        if method != "POST":
            raise MethodNotAllowed(f"{method} is not allowed; use POST")
        form, notes = read_form(environ, self.rt.settings.max_body_bytes)
        seen.form, seen.notes = form, notes
        if environ.get("PATH_INFO", "").endswith("/"):
            # Seen in production (a client whose base URL ends in "/"): Planfix serves it.
            seen.notes.append(Note("trailing-slash", "the path had a trailing slash"))
        cmd = form.get("cmd") or ""
        seen.cmd = cmd
        if cmd not in COMMANDS:
            raise InvalidParameters(f"unknown cmd {cmd!r}" if cmd else "cmd is missing")

    def _refuse(self, environ: WSGIEnvironment, seen: _Seen, error: SimulatorError) -> Response:
        if not seen.error:
            seen.error = error.detail
        response = error_response(error)
        self._journal(environ, seen, response)
        return response

    def _admit(self, environ: WSGIEnvironment, seen: _Seen) -> Response | _Faulted:
        """Step 5, the token (and a planned fault), then the command unless a fault was taken."""
        store = self.rt.store
        try:
            integration = self._integration(seen)
            injected = faults.take(store, integration.id, "planfix")
        except SimulatorError as error:
            return self._refuse(environ, seen, error)
        if injected is not None:
            seen.fault, seen.dropped = injected.label, injected.drop
            return _Faulted(injected, integration)
        return self._finish(environ, seen, integration, None)

    def _finish(
        self,
        environ: WSGIEnvironment,
        seen: _Seen,
        integration: Integration,
        early: Response | None,
    ) -> Response:
        """A fault's own answer (`early`), else the command's; journaled either way."""
        try:
            response = early if early is not None else self._command(seen, integration)
        except SimulatorError as error:
            return self._refuse(environ, seen, error)
        self._journal(environ, seen, response)
        return response

    def _command(self, seen: _Seen, integration: Integration) -> Response:
        """Steps 6 and 7: the parameters, then the command and its answer."""
        notes = seen.notes
        strict_check(notes, integration.strict)
        command, found = parse_command(seen.cmd, seen.form, integration)
        notes.extend(found)
        strict_check(notes, integration.strict)
        outcome = account.run(self.rt.store, integration, command, notes)
        response, answer_notes = answer(outcome, integration.profile)
        seen.notes = [*outcome.notes, *answer_notes]
        return response

    def _journal(self, environ: WSGIEnvironment, seen: _Seen, response: Response) -> None:
        store = self.rt.store
        if header(environ, ORIGIN_HEADER) == store.instance_id:
            return  # the simulator called itself: the sending side journals it
        query = environ.get("QUERY_STRING", "")
        store.record(
            exchange(
                "to_planfix",
                "planfix",
                safe_method(environ["REQUEST_METHOD"]),
                environ["PATH_INFO"] + (f"?{query}" if query else ""),
                seen.form,
                status=response.status_code,
                body=response.get_data(as_text=True),
                duration_ms=(time.perf_counter() - seen.started) * 1000,
                headers=request_headers(environ),
                notes=seen.notes,
                fault=seen.fault,
                error=seen.error,
                dropped=seen.dropped,
                integration_id=seen.integration_id,
            )
        )


@dataclass(frozen=True)
class _Faulted:
    """A fault was taken for this request: what the rest of it needs."""

    fault: faults.Injected
    integration: Integration
