"""The fake chat's follow-up calls, off the request thread: `messageStatus` sent, then read."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from simulator.clients.http import post_form
from simulator.contract import (
    TOKEN_FIELD,
    Integration,
)
from simulator.store import Store

log = logging.getLogger("simulator.fake_chat")

STATUS_SEQUENCE = ("sent", "read")
SEND_TIMEOUT = 30.0


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
