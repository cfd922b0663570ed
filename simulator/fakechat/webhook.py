"""The fake chat's webhook: `POST /fake-chat/webhook` takes Planfix's `newMessage` (both variants).

It files the message in the customer's inbox and answers `{"chatId", "contactId"}`; optionally
it then reports `messageStatus` sent and read back to Planfix, through the runtime's reporter.

Required webhook fields (both variants): cmd=newMessage, providerId, token, and message (empty
only when attachments come with it); chatId for a reply, contactPhone for a first message (no
chatId). messageId, userName, userLastName, userIco and taskEmail are accepted when absent,
because the documentation's own sample call omits messageId and taskEmail; their absence is noted
in the journal.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass, field

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.wrappers import Response as BaseResponse

from simulator import faults
from simulator.contract import (
    ATTACHMENT_NAME,
    ATTACHMENT_URL,
    Form,
    Integration,
    Note,
    pair_attachments,
)
from simulator.errors import InvalidParameters, InvalidToken
from simulator.fakechat.reporter import report_status
from simulator.planfix.exchange import exchange
from simulator.records import InboxItem
from simulator.runtime import runtime
from simulator.wire import ORIGIN_HEADER, WEBHOOK_PATH, parse_body, request_headers

bp = Blueprint("fake_chat_webhook", __name__)


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
        reporter = rt.reporter
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
    if request.endpoint == "fake_chat_webhook.webhook":
        g.fake_chat_seen = _Seen(started=time.perf_counter())


@bp.after_request
def _journal(response: Response) -> Response:
    seen: _Seen | None = g.get("fake_chat_seen")
    rt = runtime()
    if seen is None or request.headers.get(ORIGIN_HEADER) == rt.store.instance_id:
        return response  # the simulator called itself: the sender journals the exchange
    rt.store.record(
        exchange(
            "to_chat",
            "fake_chat",
            request.method,
            request.full_path.rstrip("?"),
            seen.form,
            status=response.status_code,
            body=response.get_data(as_text=True),
            duration_ms=(time.perf_counter() - seen.started) * 1000,
            headers=request_headers(request.environ),
            chat_id=seen.chat_id,
            notes=seen.notes,
            fault=seen.fault,
            error=g.get("planfix_error", ""),
            dropped=seen.dropped,
            integration_id=seen.integration_id,
        )
    )
    return response
