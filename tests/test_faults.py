"""Faults on demand, on both faces, each observed by a real client over loopback HTTP."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.clients.http import Answer, post_form, request_json
from simulator.faults import decide, new_plan
from simulator.serving.live import LiveServer
from tests.chat_stub import _no_background_errors, api  # noqa: F401 - autouse fixture
from tests.conftest import PLANFIX_TOKEN
from tests.fakechat.test_endpoint import SEED_SAMPLE

STATUS_BODIES = {
    400: {"error": "Invalid parameters"},
    401: {"error": "Invalid token"},
    429: {"error": "Too many requests"},
    500: {"error": "Internal server error"},
    503: {"error": "Service unavailable"},
}
MALFORMED = '{"error": "Invalid par'


def plan(server: LiveServer, **sides: Any) -> dict[str, Any]:
    """PUT faults for the default integration."""
    return api(server, "PUT", "/api/v1/integrations/default/faults", sides)  # type: ignore[no-any-return]


def customer_message(server: LiveServer, chat_id: str = "c-1") -> Answer:
    """A newMessage to the simulator's Planfix face, as an integration sends it."""
    return post_form(
        server.url + "/webchat/api",
        [
            ("cmd", "newMessage"),
            ("providerId", "wa"),
            ("chatId", chat_id),
            ("planfix_token", PLANFIX_TOKEN),
            ("message", "Hello"),
            ("contactId", "u-1"),
            ("contactName", "Ivan"),
        ],
    )


def last_entry(server: LiveServer) -> dict[str, Any]:
    """The newest journal entry."""
    return api(server, "GET", "/api/v1/journal")[-1]  # type: ignore[no-any-return]


def journaled(server: LiveServer, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The newest journal entry once it is one `wanted` accepts (within 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        # The client can see its answer before the server's thread journals it: an empty
        # journal means "not yet".
        entries = api(server, "GET", "/api/v1/journal")
        entry: dict[str, Any] = entries[-1] if entries else {}
        if (entry and wanted(entry)) or time.monotonic() > deadline:
            return entry
        time.sleep(0.05)


STATUS_CASES = [pytest.param(s, id=str(s)) for s in STATUS_BODIES]


@pytest.mark.parametrize("status", STATUS_CASES)
def test_planfix_side_answers_the_chosen_status(live_server: LiveServer, status: int) -> None:
    plan(live_server, planfix={"status": status})

    answer = customer_message(live_server)

    assert (answer.status, answer.json()) == (status, STATUS_BODIES[status])
    entry = last_entry(live_server)
    assert (entry["status"], entry["fault"]) == (status, f"status={status}")
    assert api(live_server, "GET", "/api/v1/tasks") == []  # the command never ran


@pytest.mark.parametrize(
    ("fault", "status", "label"),
    [
        pytest.param({"malformed": True}, 200, "malformed", id="malformed"),
        pytest.param({"malformed": True, "status": 500}, 500, "status=500+malformed", id="500"),
    ],
)
def test_planfix_side_answers_a_malformed_body(
    live_server: LiveServer, fault: dict[str, Any], status: int, label: str
) -> None:
    plan(live_server, planfix=fault)

    answer = customer_message(live_server)

    assert (answer.status, answer.text) == (status, MALFORMED)
    assert answer.json_or_none() is None
    assert last_entry(live_server)["fault"] == label


def test_planfix_side_drops_the_connection(live_server: LiveServer) -> None:
    plan(live_server, planfix={"drop": True, "count": 1})

    dropped = customer_message(live_server)
    after = customer_message(live_server)

    assert dropped.status is None
    assert dropped.error.startswith("reset:")
    assert after.status == 200
    first, second = api(live_server, "GET", "/api/v1/journal")[-2:]
    assert (first["status"], first["fault"]) == (None, "drop")
    assert first["error"] == "connection dropped (fault)"
    assert (second["status"], second["fault"]) == (200, "")


def test_planfix_side_adds_latency_then_answers(live_server: LiveServer) -> None:
    plan(live_server, planfix={"latency_ms": 300})

    answer = customer_message(live_server)

    assert answer.status == 200
    assert answer.duration_ms >= 300
    assert last_entry(live_server)["fault"] == "latency=300ms"
    assert len(api(live_server, "GET", "/api/v1/tasks")) == 1


def test_count_limits_the_fault_to_the_next_calls(live_server: LiveServer) -> None:
    plan(live_server, planfix={"status": 503, "count": 2})

    statuses = [customer_message(live_server).status for _ in range(4)]

    assert statuses == [503, 503, 200, 200]
    shown = api(live_server, "GET", "/api/v1/integrations/default/faults")["planfix"]
    assert (shown["calls"], shown["injected"], shown["remaining"]) == (4, 2, 0)
    assert "rng" not in shown


def _expected(seed: int, probability: float, calls: int) -> list[int]:
    rng = random.Random(seed)  # noqa: S311 - the same generator the simulator uses
    return [500 if rng.random() < probability else 200 for _ in range(calls)]


def test_probability_is_seeded_and_reproducible(live_server: LiveServer) -> None:
    fault = {"status": 500, "probability": 0.5, "seed": 7}
    plan(live_server, planfix=fault)
    first = [customer_message(live_server, f"c-{i}").status for i in range(20)]

    plan(live_server, planfix=fault)
    second = [customer_message(live_server, f"c-{i}").status for i in range(20)]

    assert first == second == _expected(7, 0.5, 20)
    assert 0 < first.count(500) < 20


def test_seeded_draws_continue_across_processes(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.sqlite3")
    with LiveServer({"db": db}) as one, LiveServer({"db": db}) as two:
        plan(one, planfix={"status": 500, "probability": 0.3, "seed": 99})
        statuses = [customer_message(server).status for server in (one, two) * 10]
        one.check()
        two.check()
    assert statuses == _expected(99, 0.3, 20)


def test_a_seed_is_chosen_and_shown_when_none_is_given(live_server: LiveServer) -> None:
    shown = plan(live_server, planfix={"status": 429, "probability": 0.25})["planfix"]

    assert isinstance(shown["seed"], int)
    assert shown["probability"] == 0.25


@pytest.mark.parametrize("status", STATUS_CASES)
def test_fake_chat_side_answers_the_chosen_status(live_server: LiveServer, status: int) -> None:
    plan(live_server, fake_chat={"status": status})

    answer = post_form(live_server.url + "/fake-chat/webhook", SEED_SAMPLE)

    assert (answer.status, answer.json()) == (status, STATUS_BODIES[status])
    entry = last_entry(live_server)
    assert (entry["party"], entry["status"], entry["fault"]) == (
        "fake_chat",
        status,
        f"status={status}",
    )
    assert api(live_server, "GET", "/api/v1/chat/inbox") == []


def test_fake_chat_side_drops_the_connection(live_server: LiveServer) -> None:
    plan(live_server, fake_chat={"drop": True})

    answer = post_form(live_server.url + "/fake-chat/webhook", SEED_SAMPLE)

    assert answer.status is None
    assert answer.error.startswith("reset:")
    # The client sees the reset as the server drops the socket, possibly before the server's
    # thread has journaled the exchange: wait for the entry (bounded) instead of racing it.
    entry = journaled(live_server, lambda e: e["party"] == "fake_chat")
    assert (entry["party"], entry["status"], entry["fault"]) == ("fake_chat", None, "drop")


@pytest.mark.parametrize(
    ("fault", "outcome", "label"),
    [
        pytest.param(
            {"status": 503},
            'HTTP 503, not 200: {"error": "Service unavailable"}',
            "status=503",
            id="503",
        ),
        pytest.param(
            {"malformed": True},
            f"200 but the body is not JSON: {MALFORMED!r}",
            "malformed",
            id="bad",
        ),
        pytest.param({"drop": True}, "connection dropped before an answer", "drop", id="drop"),
        pytest.param({"latency_ms": 50}, "", "latency=50ms", id="latency"),
    ],
)
def test_planfix_delivery_observes_fake_chat_faults(
    live_server: LiveServer, fault: dict[str, Any], outcome: str, label: str
) -> None:
    api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {"chatId": "c-9", "contactId": "u-9", "contactName": "Ivan", "message": "Hi"},
    )
    [task] = api(live_server, "GET", "/api/v1/tasks")
    plan(live_server, fake_chat=fault)

    delivery = api(
        live_server, "POST", f"/api/v1/tasks/{task['number']}/replies", {"message": "Hello"}
    )["delivery"]

    assert delivery["outcome"].startswith(outcome)
    assert delivery["state"] == ("delivered" if not outcome else "failed")
    # The simulator called itself: the delivering side journals the exchange, fault included.
    [entry] = api(live_server, "GET", "/api/v1/journal?direction=to_chat")
    assert (entry["party"], entry["fault"]) == ("planfix", label)


def test_fake_chat_sending_to_its_own_planfix_url_sees_the_fault(live_server: LiveServer) -> None:
    plan(live_server, planfix={"status": 429})

    sent = api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {
            "planfix_url": live_server.url + "/webchat/api",
            "chatId": "c-1",
            "contactId": "u-1",
            "contactName": "Ivan",
            "message": "Hi",
        },
    )

    assert (sent["status"], sent["json"]) == (429, STATUS_BODIES[429])
    [entry] = api(live_server, "GET", "/api/v1/journal")
    assert (entry["party"], entry["direction"], entry["fault"]) == (
        "fake_chat",
        "to_planfix",
        "status=429",
    )


def test_faults_of_one_integration_spare_the_others(live_server: LiveServer) -> None:
    other = api(live_server, "POST", "/api/v1/integrations", {"name": "other"}, 201)
    api(live_server, "PUT", "/api/v1/integrations/other/faults", {"planfix": {"status": 500}})

    assert customer_message(live_server).status == 200
    assert (
        post_form(
            live_server.url + "/webchat/api",
            [
                ("cmd", "getTask"),
                ("providerId", "p"),
                ("chatId", "c"),
                ("planfix_token", other["planfix_token"]),
            ],
        ).status
        == 500
    )


def test_put_keeps_other_sides_and_delete_clears(live_server: LiveServer) -> None:
    plan(live_server, planfix={"status": 500})
    both = plan(live_server, fake_chat={"drop": True})
    assert both["planfix"]["status"] == 500
    assert both["fake_chat"]["drop"] is True

    one = api(live_server, "DELETE", "/api/v1/integrations/default/faults?side=planfix")
    assert (one["planfix"], one["fake_chat"]["drop"]) == (None, True)
    cleared = plan(live_server, fake_chat=None)
    assert (cleared["planfix"], cleared["fake_chat"]) == (None, None)
    plan(live_server, planfix={"status": 500})
    api(live_server, "DELETE", "/api/v1/integrations/default/faults")

    assert customer_message(live_server).status == 200
    assert last_entry(live_server)["fault"] == ""


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"planfix": {}}, id="no-effect"),
        pytest.param({"planfix": {"count": 2}}, id="count-only"),
        pytest.param({"planfix": {"status": 404}}, id="unlisted-status"),
        pytest.param({"planfix": {"status": 500, "probability": 2}}, id="probability>1"),
        pytest.param({"planfix": {"status": 500, "colour": "red"}}, id="unknown-key"),
        pytest.param({"webhook": {"status": 500}}, id="unknown-side"),
    ],
)
def test_invalid_fault_plans_are_refused(live_server: LiveServer, body: dict[str, Any]) -> None:
    answer = request_json("PUT", live_server.url + "/api/v1/integrations/default/faults", body)

    assert answer.status == 400
    assert api(live_server, "GET", "/api/v1/integrations/default/faults")["planfix"] is None


def test_faults_of_an_unknown_integration_are_404(live_server: LiveServer) -> None:
    assert request_json("GET", live_server.url + "/api/v1/integrations/nope/faults").status == 404


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=20),
    probability=st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
    seed=st.integers(min_value=0, max_value=2**32),
    calls=st.integers(min_value=0, max_value=60),
)
def test_decisions_respect_count_and_replay_from_the_seed(
    count: int, probability: float | None, seed: int, calls: int
) -> None:
    spec: dict[str, Any] = {"status": 503, "count": count, "seed": seed}
    if probability is not None:
        spec["probability"] = probability

    def run() -> list[bool]:
        plan, hits = new_plan(spec), []
        for _ in range(calls):
            plan, chosen = decide(json.loads(json.dumps(plan)))  # as stored: through JSON
            hits.append(chosen is not None)
        return hits

    hits = run()
    assert sum(hits) <= count
    assert hits == run()
    if probability is None:
        assert hits == [i < count for i in range(calls)]


@pytest.mark.slow
def test_drop_under_the_default_server_gunicorn(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        ["planfix-sim", "serve", "--port", "0", "--db", str(tmp_path / "sim.sqlite3")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        while not url:
            line = proc.stdout.readline()
            assert line, "serve exited before printing its URL"
            found = re.search(r"serving on (http://\S+)", line)
            url = found.group(1) if found else ""
        server = SimpleNamespace(url=url)
        plan(server, planfix={"drop": True, "count": 1})  # type: ignore[arg-type]

        dropped = customer_message(server)  # type: ignore[arg-type]
        after = customer_message(server)  # type: ignore[arg-type]

        assert (dropped.status, dropped.error[:6]) == (None, "reset:")
        assert after.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.communicate(timeout=30)[0] is not None
    assert proc.returncode == 0
