"""What keeps the latencies a test suite feels low: a waited reply and the `planfix` fixture.

Each test pins a mechanism (which thread runs an attempt, which index a statement uses), never a
time: `tests/bench/bench.py`'s `latency` part measures the times.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from simulator.clients.http import Answer
from simulator.planfix import delivery
from simulator.serving.live import LiveServer
from tests.chat_stub import (
    IntegrationStub,
    _no_background_errors,  # noqa: F401 - autouse fixture
    api,
)
from tests.planfix.test_delivery import add_integration, customer_writes, reply


@pytest.fixture
def posting_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that post deliveries to integrations, in order."""
    names: list[str] = []
    post_form = delivery.post_form

    def recording(url: str, pairs: Sequence[tuple[str, str]], **kwargs: Any) -> Answer:
        names.append(threading.current_thread().name)
        return post_form(url, pairs, **kwargs)

    monkeypatch.setattr(delivery, "post_form", recording)
    return names


@pytest.mark.parametrize(
    ("wait", "runs_on_the_pool"),
    [
        (True, False),  # the request's own thread posts: no hand-off to the pool and back
        (False, True),  # nobody waits: the pool delivers in the background
    ],
)
def test_a_waited_reply_is_attempted_on_the_requests_own_thread(
    live_server: LiveServer,
    stub: IntegrationStub,
    posting_threads: list[str],
    wait: bool,
    runs_on_the_pool: bool,
) -> None:
    integration = add_integration(live_server, f"{stub.url}/webhook")
    number = customer_writes(live_server, integration, "chat-1")

    answer = reply(live_server, number, wait=wait)
    path = f"/api/v1/deliveries/{answer['delivery']['id']}"
    for _ in range(300):  # without wait, the answer may come before the attempt
        if answer["delivery"]["state"] == "delivered":
            break
        stub.release.wait(0.02)
        answer["delivery"] = api(live_server, "GET", path)

    assert answer["delivery"]["state"] == "delivered"
    assert answer["delivery"]["attempts"] == 1
    [name] = posting_threads
    assert name.startswith("delivery-") is runs_on_the_pool, name
