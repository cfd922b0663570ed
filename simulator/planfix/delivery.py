"""Planfix → integration: the two forms of `newMessage`, their delivery and its verdict.

A reply or first message is stored with a pending delivery; a per-process `DeliveryWorker`
claims due deliveries from the store (atomically, so several worker processes share the work),
posts the form with the integration's timeout, checks the answer against the contract, journals
the attempt and records the outcome. Nothing here runs on a thread serving `/webchat/api`; a
control-API call that waits for the outcome attempts its delivery on its own thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.clients.http import Answer, post_form
from simulator.config.settings import Settings
from simulator.contract import (
    Attachment,
    ContactInfo,
    Employee,
    Form,
    Integration,
    Note,
    Retry,
    attachment_pairs,
    choose_author,
    default_task_title,
    task_email,
)
from simulator.errors import BadRequest, NotFound, StorageUnavailable
from simulator.faults import REQUEST_HEADER
from simulator.planfix.exchange import exchange
from simulator.planfix.lifecycle import FirstChat, finish_attempt
from simulator.records import DeliveryRecord, MessageRecord
from simulator.store import AttemptResult, Store
from simulator.wire import ORIGIN_HEADER

log = logging.getLogger("simulator.planfix.delivery")

BASE_URL_PLACEHOLDER = "{base_url}"
# Where a first message goes when the integration has no chat yet to take a providerId from.
DEFAULT_PROVIDER_ID = "fakechat"
_EXCERPT = 200


def expand_url(url: str, base_url: str) -> str:
    """The integration URL with `{base_url}` filled in; the query string stays as given."""
    return url.replace(BASE_URL_PLACEHOLDER, base_url)


def outbound_author(store: Store, integration: Integration, email: str | None) -> Employee:
    """The author of a reply or first message, by the one author rule; 400 if there is none."""
    # An operator naming no employee, or an account without any, is the control call's error
    # (400), not a silent default as for an echo.
    author, unknown = choose_author(email, store.employees(), integration)
    if unknown:
        raise BadRequest(f"employee: no employee has the e-mail {email!r}")
    if author is None:
        raise BadRequest("employee: the account has no employees")
    return author


def _author_pairs(author: Employee) -> list[tuple[str, str]]:
    return [("userName", author.name), ("userLastName", author.last_name), ("userIco", author.ico)]


def reply_form(
    integration: Integration,
    *,
    provider_id: str,
    chat_id: str,
    message: MessageRecord,
    author: Employee,
    email: str,
    contact_phone: str | None,
    channel: str | None,
) -> list[tuple[str, str]]:
    """The reply variant, fields in CONTRACT.md's order; phone and channel only when known."""
    pairs = [
        ("cmd", "newMessage"),
        ("providerId", provider_id),
        ("chatId", chat_id),
        ("token", integration.token),
        ("message", message.text),
        ("messageId", message.message_id),
        *_author_pairs(author),
        ("taskEmail", email),
    ]
    if contact_phone:
        pairs.append(("contactPhone", contact_phone))
    if channel:
        pairs.append(("channel", channel))
    return pairs + attachment_pairs(message.attachments)


def first_form(
    integration: Integration,
    *,
    provider_id: str,
    contact_phone: str,
    message: MessageRecord,
    author: Employee,
    email: str,
    channel: str | None,
) -> list[tuple[str, str]]:
    """The first-message variant: a contact's phone and no chatId (the integration assigns it)."""
    pairs = [
        ("cmd", "newMessage"),
        ("providerId", provider_id),
        ("contactPhone", contact_phone),
        ("token", integration.token),
        ("message", message.text),
        ("messageId", message.message_id),
        *_author_pairs(author),
        ("taskEmail", email),
    ]
    if channel:
        pairs.append(("channel", channel))
    return pairs + attachment_pairs(message.attachments)


@dataclass(frozen=True)
class Verdict:
    """An answer judged against the contract: delivered, or the note saying what was wrong."""

    delivered: bool
    note: str = ""
    chat_id: str | None = None
    contact_id: str | None = None


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"


def _network_note(error: str) -> str:
    kind, _, detail = error.partition(": ")
    return {
        "timeout": f"timeout: {detail}",
        "refused": "connection refused: nothing accepts connections at the integration URL",
        "reset": f"connection dropped before an answer ({detail})",
        "tls": f"TLS error: {detail}",
    }.get(kind, f"network error: {detail or error}")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def check_answer(variant: str, sent_chat_id: str | None, answer: Answer) -> Verdict:
    """Judge an answer against the contract; a failure's note says exactly what was wrong."""
    # Delivered: 200 with a JSON object whose chatId and contactId are strings (for a reply,
    # the chatId sent; for a first message, neither empty). Anything else fails.
    if answer.error:
        return Verdict(False, _network_note(answer.error))
    if answer.status != 200:
        body = _excerpt(answer.text.strip()) or "(empty body)"
        return Verdict(False, f"HTTP {answer.status}, not 200: {body}")
    if not answer.body.strip():
        return Verdict(
            False, "200 with an empty body: the contract expects JSON {chatId, contactId}"
        )
    try:
        data = answer.json()
    except (ValueError, UnicodeDecodeError):
        return Verdict(False, f"200 but the body is not JSON: {_excerpt(answer.text)!r}")
    if not isinstance(data, dict):
        return Verdict(False, f"200 but the JSON is {_type_name(data)}, not an object")
    missing = [key for key in ("chatId", "contactId") if key not in data]
    if missing:
        return Verdict(False, f"the answer lacks {' and '.join(missing)}")
    for key in ("chatId", "contactId"):
        if not isinstance(data[key], str):
            return Verdict(False, f"{key} is {_type_name(data[key])} ({data[key]!r}), not a string")
    chat_id, contact_id = data["chatId"], data["contactId"]
    if variant == "reply" and chat_id != sent_chat_id:
        return Verdict(False, f"chatId {chat_id!r} is not the chatId sent ({sent_chat_id!r})")
    if variant == "first":
        for key, value in (("chatId", chat_id), ("contactId", contact_id)):
            if not value:
                return Verdict(False, f"{key} is empty: the integration must assign the chat")
    return Verdict(True, "", chat_id, contact_id)


def retry_at(policy: Retry, attempts_done: int, now: float) -> float | None:
    """When to try again after `attempts_done` failed attempts; None when the policy is spent."""
    if not policy.enabled or attempts_done > len(policy.schedule):
        return None
    return now + policy.schedule[attempts_done - 1] * policy.time_factor


@dataclass(frozen=True)
class Sent:
    """An outbound call of the simulator and the fault a face of its own injected, if any."""

    answer: Answer
    headers: dict[str, str]
    fault: str


def send_marked(store: Store, url: str, pairs: Sequence[tuple[str, str]], timeout: float) -> Sent:
    """POST a form marked as the simulator's own call; the fault a face of ours injected."""
    # A receiving face of this simulator skips journaling the call (the sender does) and
    # reports any fault it injected through the store, keyed by the request id.
    request_id = uuid.uuid4().hex
    headers = {ORIGIN_HEADER: store.instance_id, REQUEST_HEADER: request_id}
    answer = post_form(url, pairs, timeout=timeout, headers=headers)
    sent_headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        **headers,
    }
    return Sent(answer, sent_headers, store.take_fault_mark(request_id))


def attempt(store: Store, base_url: str, delivery_id: int, worker: str) -> DeliveryRecord | None:
    """One attempt of a claimed delivery: post, judge, journal, record."""
    delivery = store.delivery(delivery_id)
    integration = store.integration(delivery.integration_id)
    url = expand_url(integration.url, base_url)
    pairs = [(k, v) for k, v in delivery.form]
    sent_chat = next((v for k, v in pairs if k == "chatId"), None)
    sent = send_marked(store, url, pairs, integration.timeout)
    verdict = check_answer(delivery.variant, sent_chat, sent.answer)
    notes = [] if verdict.delivered else [Note("contract", verdict.note)]
    store.record(
        exchange(
            "to_chat",
            "planfix",
            "POST",
            url,
            Form.of(pairs),
            status=sent.answer.status,
            body=sent.answer.text,
            duration_ms=sent.answer.duration_ms,
            headers=sent.headers,
            chat_id=sent_chat or verdict.chat_id or "",
            notes=notes,
            fault=sent.fault,
            error=sent.answer.error,
            integration_id=integration.id,
            delivery_id=delivery.id,
        )
    )
    answer = (
        None
        if sent.answer.status is None
        else {"status": sent.answer.status, "body": sent.answer.text}
    )
    first_chat = None
    if verdict.delivered and delivery.variant == "first":
        form = dict(pairs)
        phone = form.get("contactPhone", "")
        first_chat = FirstChat(
            provider_id=form.get("providerId", ""),
            chat_id=verdict.chat_id or "",
            contact=ContactInfo(contact_id=verdict.contact_id or "", phone=phone or None),
            channel=form.get("channel"),
            title=default_task_title(phone or verdict.contact_id or ""),
        )
    result = AttemptResult(
        delivered=verdict.delivered,
        outcome=verdict.note,
        answer=answer,
        retry_at=(
            None
            if verdict.delivered
            else retry_at(integration.retry, delivery.attempts + 1, store.clock())
        ),
    )
    return finish_attempt(store, delivery.id, worker, result, first_chat)


class DeliveryWorker:
    """Per-process background service: claims due deliveries and runs them on a small pool."""

    def __init__(
        self,
        store: Store,
        base_url: Callable[[], str],
        *,
        threads: int = 4,
        poll_seconds: float = 0.5,
    ) -> None:
        self.store = store
        self.base_url = base_url
        self.size = threads
        self.poll_seconds = poll_seconds
        self.worker_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.errors: list[BaseException] = []  # bugs in attempts, for tests to inspect
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0
        self._threads: list[threading.Thread] = []

    def start(self) -> DeliveryWorker:
        """Start the dispatcher and the pool."""
        self._threads = [
            threading.Thread(target=self._dispatch, name="delivery-dispatch", daemon=True)
        ] + [
            threading.Thread(target=self._run, name=f"delivery-{i}", daemon=True)
            for i in range(self.size)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def wake(self) -> None:
        """Look for due deliveries now (a new one was queued in this process)."""
        self._wake.set()

    def attempt_now(self, delivery_id: int) -> DeliveryRecord | None:
        """Claim a due delivery and attempt it on the calling thread; None if it was not claimed."""
        # A caller that waits anyway skips the hand-off to the dispatcher, the pool and back
        # (three wake-ups). Same lease: if this process dies, another worker retries.
        if self._stopping.is_set() or not self.store.claim_delivery(delivery_id, self.worker_id):
            return None
        try:
            return attempt(self.store, self.base_url(), delivery_id, self.worker_id)
        except NotFound:
            return None  # a reset removed the delivery (or its integration) meanwhile

    def stop(self) -> None:
        """Stop claiming, let running attempts end, and join every thread."""
        self._stopping.set()
        self._wake.set()
        for _ in range(self.size):
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=60)
        self._threads = []

    def _dispatch(self) -> None:
        try:
            while not self._stopping.is_set():
                with self._lock:
                    free = self.size - self._busy
                try:
                    claimed = self.store.claim_deliveries(self.worker_id, free) if free > 0 else []
                    due = None if claimed else self.store.next_delivery_due()
                except StorageUnavailable:
                    # The store logged why; space may return (a full disk), so poll again later.
                    self._wake.wait(self.poll_seconds)
                    self._wake.clear()
                    continue
                if claimed:
                    with self._lock:
                        self._busy += len(claimed)
                    for delivery_id in claimed:
                        self._queue.put(delivery_id)
                    continue
                wait = self.poll_seconds
                if due is not None and free > 0:
                    wait = min(wait, max(due - self.store.clock(), 0.005))
                self._wake.wait(wait)
                self._wake.clear()
        except Exception as exc:  # a bug: keep it for tests, log it for people
            self.errors.append(exc)
            log.exception("delivery dispatcher stopped")
        finally:
            self.store.release_thread()

    def _run(self) -> None:
        try:
            while True:
                delivery_id = self._queue.get()
                if delivery_id is None:
                    return
                try:
                    attempt(self.store, self.base_url(), delivery_id, self.worker_id)
                except NotFound:
                    pass  # a reset removed the delivery (or its integration) meanwhile
                except StorageUnavailable:
                    pass  # logged by the store; the lease expires and the delivery is retried
                except Exception as exc:  # a bug: the lease expires and the delivery is retried
                    self.errors.append(exc)
                    log.exception("delivery %s: attempt failed", delivery_id)
                finally:
                    with self._lock:
                        self._busy -= 1
                    self._wake.set()
        finally:
            self.store.release_thread()


def wait_for_attempt(
    store: Store, delivery_id: int, attempts_before: int, timeout: float
) -> DeliveryRecord:
    """Block until the delivery has had another attempt (or `timeout` passes); its record."""
    deadline = time.monotonic() + timeout
    while True:
        found = store.delivery(delivery_id)
        left = deadline - time.monotonic()
        if found.attempts > attempts_before or left <= 0:
            return found
        with store.changed:
            # Commits in this process wake us at once; another process's worker is polled.
            store.changed.wait(min(left, 0.2))


def attempt_timeout(integration: Integration) -> float:
    """How long a caller may wait for one attempt: the integration's timeout plus slack."""
    return integration.timeout + 10.0


def queue_reply(
    store: Store,
    settings: Settings,
    task_number: int,
    *,
    text: str,
    employee: str | None,
    attachments: Sequence[Attachment],
) -> tuple[MessageRecord, DeliveryRecord]:
    """An operator's reply in a task: stored pending and queued for delivery."""
    task = store.task(task_number)
    integration = store.integration(task.integration_id)
    author = outbound_author(store, integration, employee)
    # One commit for the message and its delivery: both are kept, or neither.
    with store.transaction():
        message = store.add_outbound(
            task_number, kind="reply", text=text, author=author, attachments=attachments
        )
        form = reply_form(
            integration,
            provider_id=task.provider_id,
            chat_id=task.chat_id,
            message=message,
            author=author,
            email=task_email(task_number, settings.account, settings.account_domain),
            contact_phone=task.contact.phone if task.contact else None,
            channel=task.channel or None,
        )
        delivery = store.queue_delivery(
            integration.id,
            variant="reply",
            form=form,
            message_pk=message.pk,
            task_number=task_number,
        )
    return message, delivery


def queue_first_message(
    store: Store,
    settings: Settings,
    integration: Integration,
    *,
    contact_phone: str,
    text: str,
    employee: str | None,
    channel: str | None,
    attachments: Sequence[Attachment],
    provider_id: str | None = None,
) -> tuple[MessageRecord, DeliveryRecord]:
    """A first message to a contact's phone: stored pending in no task, queued for delivery."""
    author = outbound_author(store, integration, employee)
    if not provider_id:
        chats = store.chats(integration.id)
        provider_id = chats[0].provider_id if chats else DEFAULT_PROVIDER_ID
    message = store.add_outbound(
        None,
        kind="first",
        text=text,
        author=author,
        attachments=attachments,
        integration_id=integration.id,
        channel=channel or "",
    )
    number = store.reserve_task_number()
    form = first_form(
        integration,
        provider_id=provider_id,
        contact_phone=contact_phone,
        message=message,
        author=author,
        email=task_email(number, settings.account, settings.account_domain),
        channel=channel,
    )
    delivery = store.queue_delivery(
        integration.id, variant="first", form=form, message_pk=message.pk, task_number=number
    )
    return message, delivery
