"""The fake third-party chat: the integration's side of the contract, played by the simulator.

- `POST /fake-chat/webhook` takes Planfix's `newMessage` (both variants), files it in the
  customer's inbox and answers `{"chatId", "contactId"}`; optionally it then reports
  `messageStatus` sent and read back to Planfix, off the request thread.
- The customer side (`/api/v1/chat/…`) posts `newMessage` or any command to a Planfix URL: this
  simulator's own `/webchat/api` by default, or any other.

Required webhook fields (both variants): cmd=newMessage, providerId, token, and message (empty
only when attachments come with it); chatId for a reply, contactPhone for a first message (no
chatId). messageId, userName, userLastName, userIco and taskEmail are accepted when absent,
because the documentation's own sample call omits messageId and taskEmail; their absence is noted
in the journal.
"""

from __future__ import annotations

import hmac
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.wrappers import Response as BaseResponse

from simulator import faults
from simulator.clients.http import Answer, post_form
from simulator.contract import (
    ATTACHMENT_NAME,
    ATTACHMENT_URL,
    TOKEN_FIELD,
    Form,
    Integration,
    Note,
    pair_attachments,
)
from simulator.errors import BadRequest, InvalidParameters, InvalidToken
from simulator.fakechat.bodies import COMMAND_SCHEMA, MESSAGE_FIELDS, MESSAGE_SCHEMA, OWN_KEYS
from simulator.planfix.delivery import DEFAULT_PROVIDER_ID, send_marked
from simulator.records import FakeChat, InboxItem
from simulator.runtime import runtime
from simulator.store.db import ExchangeRecord, Store
from simulator.web.api.control import (
    integration_filter,
    paged,
    resolve_integration,
)
from simulator.web.declare import declare, json_body, query_param
from simulator.web.schemas import INTEGRATION_FILTER, array_of
from simulator.web.schemas import ref as named
from simulator.wire import ORIGIN_HEADER, WEBHOOK_PATH, parse_body, request_headers

log = logging.getLogger("simulator.fake_chat")

SERVICE = "fake_chat_reporter"
STATUS_SEQUENCE = ("sent", "read")
SEND_TIMEOUT = 30.0

bp = Blueprint("chat_endpoint", __name__)

# -- the integration's webhook ----------------------------------------------------------------


@dataclass
class _Seen:
    """What the webhook call revealed, journaled after the answer (or the refusal)."""

    started: float
    form: Form = field(default_factory=Form)
    integration_id: int | None = None
    chat_id: str = ""
    notes: list[Note] = field(default_factory=list)
    fault: str = ""
    dropped: bool = False


def find_integration(token: str) -> Integration | None:
    """The integration whose chat token this is (constant-time; `?integration=` breaks ties)."""
    given = token.encode()
    matches = [
        item
        for item in runtime().store.integrations()
        # Compared against every integration so timing does not reveal which one matched.
        if hmac.compare_digest(item.token.encode(), given)
    ]
    wanted = request.args.get("integration")
    for item in matches:
        if wanted and wanted in (str(item.id), item.name):
            return item
    return matches[0] if matches else None


def _validate(form: Form) -> tuple[str, list[Note]]:
    """The variant of a Planfix `newMessage` (reply | first); InvalidParameters when invalid."""
    notes: list[Note] = []
    if form.get("cmd") != "newMessage":
        raise InvalidParameters(f"cmd is {form.get('cmd')!r}, not 'newMessage'")
    if not form.get("providerId"):
        raise InvalidParameters("providerId is missing or empty")
    names, urls = form.getlist(ATTACHMENT_NAME), form.getlist(ATTACHMENT_URL)
    if len(names) != len(urls):
        raise InvalidParameters(f"{len(names)} attachments[name] but {len(urls)} attachments[url]")
    if form.get("message") is None or (not form.get("message") and not names):
        raise InvalidParameters("message is missing or empty")
    if form.get("chatId"):
        variant = "reply"
    elif form.get("contactPhone"):
        variant = "first"
    else:
        raise InvalidParameters("neither chatId (a reply) nor contactPhone (a first message)")
    for key in ("messageId", "userName", "userLastName", "userIco", "taskEmail"):
        if form.get(key) is None:
            notes.append(
                Note("missing-field", f"{key} absent (accepted: the seed's sample omits some)")
            )
    return variant, notes


def webhook() -> BaseResponse:
    """`POST /fake-chat/webhook`: token, fault, parameters, inbox, answer."""
    rt = runtime()
    seen: _Seen = g.fake_chat_seen
    form, notes = parse_body(request.get_data(cache=True), request.content_type or "")
    seen.form, seen.notes = form, notes
    token = form.get("token")
    integration = find_integration(token) if token else None
    if integration is None:
        raise InvalidToken("token is missing" if not token else "no integration has it")
    seen.integration_id = integration.id
    injected = faults.take(rt.store, integration.id, "fake_chat")
    if injected is not None:
        seen.fault, seen.dropped = injected.label, injected.drop
        early = faults.apply(injected, rt.store, request.environ)
        if early is not None:
            return early
    variant, found = _validate(form)
    seen.notes = [*notes, *found]
    attachments, _ = pair_attachments(form.getlist(ATTACHMENT_NAME), form.getlist(ATTACHMENT_URL))
    chat_id = form.get("chatId") or f"fc-{uuid.uuid4().hex[:12]}"
    item = rt.store.file_inbox(
        InboxItem(
            id=0,
            ts="",
            integration_id=integration.id,
            variant=variant,
            provider_id=form.get("providerId") or "",
            chat_id=chat_id,
            contact_id="",
            contact_phone=form.get("contactPhone") or "",
            channel=form.get("channel") or "",
            message=form.get("message") or "",
            message_id=form.get("messageId") or "",
            user_name=form.get("userName") or "",
            user_last_name=form.get("userLastName") or "",
            user_ico=form.get("userIco") or "",
            task_email=form.get("taskEmail") or "",
            attachments=tuple(attachments),
        ),
        new_contact_id=f"fc-contact-{uuid.uuid4().hex[:12]}",
    )
    seen.chat_id = item.chat_id
    if rt.settings.fake_chat_reports_status and item.message_id and rt.base_url:
        reporter: Reporter = rt.services[SERVICE]
        # When this simulator delivered the message, the report waits for that delivery to be
        # recorded: a real chat reports after the exchange, and the journal keeps that order.
        own = request.headers.get(ORIGIN_HEADER) == rt.store.instance_id
        reporter.submit(
            lambda: report_status(
                reporter, rt.base_url, integration, item.provider_id, item.message_id, own
            )
        )
    return jsonify(chatId=item.chat_id, contactId=item.contact_id)


bp.add_url_rule(WEBHOOK_PATH, endpoint="webhook", view_func=webhook, methods=["POST"])


@bp.before_request
def _start() -> None:
    if request.endpoint == "chat_endpoint.webhook":
        g.fake_chat_seen = _Seen(started=time.perf_counter())


@bp.after_request
def _journal(response: Response) -> Response:
    seen: _Seen | None = g.get("fake_chat_seen")
    rt = runtime()
    if seen is None or request.headers.get(ORIGIN_HEADER) == rt.store.instance_id:
        return response  # the simulator called itself: the sender journals the exchange
    rt.store.record(
        ExchangeRecord(
            direction="to_chat",
            party="fake_chat",
            method=request.method,
            url=request.full_path.rstrip("?"),
            cmd=seen.form.get("cmd") or "",
            chat_id=seen.chat_id or seen.form.get("chatId") or "",
            form=seen.form.as_list(),
            request_headers=request_headers(request.environ),
            status=None if seen.dropped else response.status_code,
            response_body="" if seen.dropped else response.get_data(as_text=True),
            duration_ms=(time.perf_counter() - seen.started) * 1000,
            notes=[n.as_dict() for n in seen.notes],
            fault=seen.fault,
            error="connection dropped (fault)" if seen.dropped else g.get("planfix_error", ""),
            integration_id=seen.integration_id,
        )
    )
    return response


# -- status reports, off the request thread ---------------------------------------------------


class Reporter:
    """One background thread running the fake chat's follow-up calls in order."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []

    def submit(self, job: Callable[[], None]) -> None:
        """Run `job` soon, after the jobs before it (the thread starts on first use)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fake-chat", daemon=True)
                self._thread.start()
        self._queue.put(job)

    def stop(self) -> None:
        """Finish queued jobs and end the thread."""
        self.stopping.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=60)

    def _run(self) -> None:
        try:
            while (job := self._queue.get()) is not None:
                try:
                    job()
                except Exception as exc:  # a bug: keep it for tests, log it for people
                    self.errors.append(exc)
                    log.exception("fake chat job failed")
        finally:
            self.store.release_thread()


def settled(reporter: Reporter, integration: Integration, message_id: str) -> bool:
    """Wait until this simulator has recorded the delivery of `message_id` (bounded)."""
    store = reporter.store
    deadline = time.monotonic() + integration.timeout + 10.0
    while not reporter.stopping.is_set() and time.monotonic() < deadline:
        if store.outbound_delivery_state(integration.id, message_id) != "pending":
            return True
        with store.changed:
            store.changed.wait(0.2)
    return False


def report_status(
    reporter: Reporter,
    base_url: str,
    integration: Integration,
    provider_id: str,
    message_id: str,
    wait_for_delivery: bool,
) -> None:
    """Tell this simulator's Planfix that the customer got, then read, a message."""
    if wait_for_delivery and not settled(reporter, integration, message_id):
        return  # shutting down, or the delivery never settled: nothing sensible to report
    for status in STATUS_SEQUENCE:
        post_form(
            base_url + "/webchat/api",
            [
                ("cmd", "messageStatus"),
                ("providerId", provider_id),
                (TOKEN_FIELD, integration.planfix_token),
                ("messageId", message_id),
                ("messageStatus", status),
            ],
            timeout=SEND_TIMEOUT,
        )


# -- the customer side (/api/v1/chat) ----------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _integration(data: dict[str, Any]) -> Integration:
    found = resolve_integration(data.get("integration"))
    if found is not None:
        return found
    every = runtime().store.integrations()
    if not every:
        raise BadRequest("integration: the simulator has no integration")
    return every[0]


def _defaults(data: dict[str, Any], integration: Integration) -> dict[str, Any]:
    """providerId and planfix_token filled in unless given (null leaves a field out)."""
    return {"providerId": DEFAULT_PROVIDER_ID, TOKEN_FIELD: integration.planfix_token, **data}


def message_form(data: dict[str, Any], integration: Integration) -> list[tuple[str, str]]:
    """A customer's `newMessage` form from the control API's JSON."""
    values = _defaults(data, integration)
    pairs: list[tuple[str, str]] = [("cmd", "newMessage")]
    for name in MESSAGE_FIELDS:
        if values.get(name) is not None:
            pairs.append((name, _text(values[name])))
    for item in values.get("attachments", []):
        pairs += [(ATTACHMENT_NAME, item["name"]), (ATTACHMENT_URL, item["url"])]
    for name in ("isEcho", "userEmail"):
        if values.get(name) is not None:
            pairs.append((name, _text(values[name])))
    for name, value in values.get("data", {}).items():
        pairs.append((f"data_{name}", value))
    for name, value in values.items():
        if name not in (*MESSAGE_FIELDS, *OWN_KEYS, "cmd") and value is not None:
            pairs.append((name, _text(value)))
    return pairs


def command_form(data: dict[str, Any], integration: Integration) -> list[tuple[str, str]]:
    """Any command's form: cmd, providerId, planfix_token, then the fields in the order given."""
    values = _defaults(data, integration)
    pairs: list[tuple[str, str]] = [("cmd", str(values["cmd"]))]
    for name in ("providerId", TOKEN_FIELD):
        if values.get(name) is not None:
            pairs.append((name, _text(values[name])))
    for name, value in values.items():
        if name in ("cmd", "providerId", TOKEN_FIELD, "integration", "planfix_url"):
            continue
        if name == "attachments":
            for item in value:
                pairs += [(ATTACHMENT_NAME, item["name"]), (ATTACHMENT_URL, item["url"])]
        elif isinstance(value, list):
            pairs += [(name, _text(v)) for v in value]
        elif value is not None:
            pairs.append((name, _text(value)))
    return pairs


def send_to_planfix(
    integration: Integration, pairs: Sequence[tuple[str, str]], planfix_url: str | None
) -> Answer:
    """Post a form to this simulator's Planfix (which journals it) or to `planfix_url`."""
    # Calls to another Planfix are journaled here, as the fake chat's.
    rt = runtime()
    if not planfix_url:
        return post_form(rt.base_url + "/webchat/api", pairs, timeout=SEND_TIMEOUT)
    sent = send_marked(rt.store, planfix_url, pairs, SEND_TIMEOUT)
    form = Form.of(pairs)
    rt.store.record(
        ExchangeRecord(
            direction="to_planfix",
            party="fake_chat",
            method="POST",
            url=planfix_url,
            cmd=form.get("cmd") or "",
            chat_id=form.get("chatId") or "",
            form=form.as_list(),
            request_headers=sent.headers,
            status=sent.answer.status,
            response_body=sent.answer.text,
            duration_ms=sent.answer.duration_ms,
            fault=sent.fault,
            error=sent.answer.error,
            integration_id=integration.id,
        )
    )
    return sent.answer


def _sent(answer: Answer, pairs: Sequence[tuple[str, str]]) -> Response:
    return jsonify(
        status=answer.status,
        body=answer.text,
        json=answer.json_or_none(),
        duration_ms=round(answer.duration_ms, 3),
        form=[list(p) for p in pairs],
        error=answer.error,
    )


@bp.post("/api/v1/chat/messages")
@declare(
    "The fake chat's customer sends newMessage to Planfix (this simulator or planfix_url)",
    named("ChatSend"),
    body=MESSAGE_SCHEMA,
    errors=(400, 404),
)
def customer_message() -> Response:
    """The fake chat's customer writes: `newMessage` to Planfix; the answer as it came."""
    data = json_body()
    integration = _integration(data)
    pairs = message_form(data, integration)
    form = Form.of(pairs)
    if form.get("chatId"):
        runtime().store.note_fake_chat(
            FakeChat(
                integration.id,
                form.get("providerId") or "",
                form.get("chatId") or "",
                form.get("contactId") or "",
                " ".join(v for v in (form.get("contactName"), form.get("contactLastName")) if v),
                form.get("contactPhone") or "",
                form.get("channel") or "",
                "",
                "",
            )
        )
    return _sent(send_to_planfix(integration, pairs, data.get("planfix_url")), pairs)


@bp.post("/api/v1/chat/commands")
@declare(
    "The fake chat sends any command to Planfix",
    named("ChatSend"),
    body=COMMAND_SCHEMA,
    errors=(400, 404),
)
def customer_command() -> Response:
    """Send any command (getTask, getContact, updateContact, messageStatus, …) to Planfix."""
    data = json_body()
    integration = _integration(data)
    pairs = command_form(data, integration)
    return _sent(send_to_planfix(integration, pairs, data.get("planfix_url")), pairs)


@bp.get("/api/v1/chat/inbox")
@declare(
    "Messages the fake chat's customers received",
    array_of("InboxItem"),
    query=(INTEGRATION_FILTER, query_param("chatId", {"type": "string"}, "Only this chat")),
    paged=True,
    errors=(404,),
)
def inbox() -> Response:
    """What the fake chat's customers received; `?integration=`, `?chatId=` filter."""
    items = runtime().store.inbox(integration_filter(), request.args.get("chatId") or None)
    return paged([i.as_dict() for i in items])


@bp.get("/api/v1/chat/chats")
@declare(
    "Chats the fake chat knows",
    array_of("FakeChat"),
    query=(INTEGRATION_FILTER,),
    paged=True,
    errors=(404,),
)
def chats() -> Response:
    """Chats the fake chat knows; `?integration=` filters."""
    return paged([c.as_dict() for c in runtime().store.fake_chats(integration_filter())])


def install(services: dict[str, Any], store: Store) -> None:
    """Register the fake chat's background reporter (its thread starts on first use)."""
    services[SERVICE] = Reporter(store)
